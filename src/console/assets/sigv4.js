// AWS Signature Version 4 in plain JavaScript. crypto.subtle exists only in secure contexts
// (https or localhost), and the console is often opened over plain http from another host,
// so SHA-256 and HMAC are computed here. Checked against AWS's published SigV4 test suite
// (compat-tests/python/test_console.py).
'use strict';

(function (global) {
  const K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);

  const utf8 = (text) => new TextEncoder().encode(text);
  const bytes = (data) => (typeof data === 'string' ? utf8(data) : data);

  function sha256(data) {
    const message = bytes(data);
    const bitLength = message.length * 8;
    // Message, the 0x80 terminator, zeros, then the 64-bit length: a multiple of 64 bytes.
    const padded = new Uint8Array(Math.ceil((message.length + 9) / 64) * 64);
    padded.set(message);
    padded[message.length] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000));
    view.setUint32(padded.length - 4, bitLength >>> 0);

    const h = new Uint32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    const w = new Uint32Array(64);
    const rotr = (x, n) => (x >>> n) | (x << (32 - n));
    for (let offset = 0; offset < padded.length; offset += 64) {
      for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + i * 4);
      for (let i = 16; i < 64; i++) {
        const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
        const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
        const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
        hh = g;
        g = f;
        f = e;
        e = (d + t1) >>> 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    const out = new Uint8Array(32);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) outView.setUint32(i * 4, h[i]);
    return out;
  }

  function hmacSha256(key, data) {
    let k = bytes(key);
    if (k.length > 64) k = sha256(k);
    const inner = new Uint8Array(64 + bytes(data).length);
    const outer = new Uint8Array(64 + 32);
    for (let i = 0; i < 64; i++) {
      const b = i < k.length ? k[i] : 0;
      inner[i] = b ^ 0x36;
      outer[i] = b ^ 0x5c;
    }
    inner.set(bytes(data), 64);
    outer.set(sha256(inner), 64);
    return sha256(outer);
  }

  const hex = (data) => Array.from(data, (b) => b.toString(16).padStart(2, '0')).join('');

  // RFC 3986 unreserved characters stay, everything else is %XX (what SigV4 asks for).
  const encode = (text) =>
    encodeURIComponent(text).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

  // `query` is a list of [name, value] pairs, in any order.
  function canonicalQuery(query) {
    return query
      .map(([k, v]) => [encode(k), encode(v)])
      .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join('&');
  }

  const canonicalPath = (path) => path.split('/').map(encode).join('/');

  const amzDate = (date) => date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

  // Signs a request. `req`: method, host, path (not encoded), query ([name, value] pairs),
  // headers (object), body (string or bytes), credentials {accessKeyId, secretAccessKey},
  // region, service, date (a Date). Returns the headers to send (host included, which a
  // browser sets itself), the query string to put in the URL, and the intermediate strings.
  function sign(req) {
    const stamp = amzDate(req.date);
    const day = stamp.slice(0, 8);
    const headers = { host: req.host, 'x-amz-date': stamp };
    for (const [name, value] of Object.entries(req.headers || {})) {
      headers[name.toLowerCase()] = String(value).trim().replace(/\s+/g, ' ');
    }
    const names = Object.keys(headers).sort();
    const signedHeaders = names.join(';');
    const queryString = canonicalQuery(req.query || []);
    const canonicalRequest = [
      req.method,
      canonicalPath(req.path),
      queryString,
      names.map((n) => `${n}:${headers[n]}\n`).join(''),
      signedHeaders,
      hex(sha256(req.body || '')),
    ].join('\n');
    const scope = `${day}/${req.region}/${req.service}/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', stamp, scope, hex(sha256(canonicalRequest))].join('\n');
    let key = hmacSha256('AWS4' + req.credentials.secretAccessKey, day);
    key = hmacSha256(key, req.region);
    key = hmacSha256(key, req.service);
    key = hmacSha256(key, 'aws4_request');
    const signature = hex(hmacSha256(key, stringToSign));
    headers.authorization =
      `AWS4-HMAC-SHA256 Credential=${req.credentials.accessKeyId}/${scope}, ` +
      `SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return { headers, queryString, canonicalRequest, stringToSign, signature };
  }

  global.KBSigV4 = Object.freeze({ sha256, hmacSha256, hex, encode, canonicalQuery, sign });
})(window);
