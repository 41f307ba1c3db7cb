// The console's pages, hash-routed: #/signin, #/streams, #/stream/NAME, #/stream/NAME/records.
// Everything it shows (stream names, record data, error messages) is untrusted: the DOM is
// built with textContent and properties only, never from markup.
'use strict';

(function () {
  const CREDENTIALS_KEY = 'kinesis-broker.console.credentials';
  const DEFAULT_ACCOUNT = '000000000000';
  const POLL_MS = 5000;
  const KEY_SPACE = 2n ** 128n;

  // ---- DOM ----------------------------------------------------------------------------

  // el('td', {className: 'num'}, 'text', childNode, ...): properties, not attributes or
  // markup, so nothing given here is ever parsed as HTML.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const link = (href, text, props) => el('a', Object.assign({ href }, props || {}), text);
  const streamHref = (name, page) => `#/stream/${encodeURIComponent(name)}${page ? '/' + page : ''}`;

  function table(headers, rows, props) {
    return el(
      'table',
      props,
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', { className: h.num ? 'num' : '' }, h.label || h)))),
      el('tbody', {}, rows),
    );
  }

  const errorText = (e) => (e && e.code ? `${e.code}: ${e.message}` : String(e && e.message ? e.message : e));
  const errorBox = (e, props) => el('p', Object.assign({ className: 'error' }, props || {}), errorText(e));

  // ---- credentials and signed requests --------------------------------------------------

  function credentials() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(CREDENTIALS_KEY) || 'null');
      return saved && saved.accessKeyId && saved.secretAccessKey && saved.region ? saved : null;
    } catch (_) {
      return null;
    }
  }

  // The broker puts a 12-digit access key id's streams in that account, any other key's
  // in the default one (src/http/auth.rs).
  const accountOf = (accessKeyId) => (/^\d{12}$/.test(accessKeyId) ? accessKeyId : DEFAULT_ACCOUNT);

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  async function signedFetch({ method, path, query, headers, body, service }) {
    const creds = credentials();
    if (!creds) {
      location.hash = '#/signin';
      throw new ApiError('NotSignedIn', 'Sign in first.');
    }
    const signed = KBSigV4.sign({
      method,
      host: location.host,
      path,
      query: query || [],
      headers: headers || {},
      body: body || '',
      credentials: creds,
      region: creds.region,
      service,
      date: new Date(),
    });
    const sendHeaders = Object.assign({}, signed.headers);
    delete sendHeaders.host; // the browser sets it, to the same value
    const url = path + (signed.queryString ? '?' + signed.queryString : '');
    const response = await fetch(url, { method, headers: sendHeaders, body: body || undefined, cache: 'no-store' });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : {};
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const code =
        (json && (json.__type || json.Type)) || response.headers.get('x-amzn-errortype') || `HTTP ${response.status}`;
      const message = (json && (json.message || json.Message)) || text || response.statusText;
      const error = new ApiError(String(code).split('#').pop(), message, response.status);
      error.notJson = json === null;
      throw error;
    }
    if (json === null) throw new ApiError('BadResponse', 'The broker answered something that is not JSON.');
    return json;
  }

  // What the SDKs retry: the broker enforces AWS's rates (GetRecords 5 a second per shard,
  // DescribeStreamSummary 20 a second per account), which a console page can exceed.
  const THROTTLED = new Set(['ProvisionedThroughputExceededException', 'LimitExceededException', 'ThrottlingException']);
  const RETRIES = 5;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function kinesis(operation, input) {
    const body = JSON.stringify(input || {});
    for (let attempt = 0; ; attempt++) {
      try {
        return await signedFetch({
          method: 'POST',
          path: '/',
          headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `Kinesis_20131202.${operation}` },
          body,
          service: 'kinesis',
        });
      } catch (e) {
        if (!THROTTLED.has(e.code) || attempt >= RETRIES) throw e;
        await sleep(100 * 2 ** attempt * (0.5 + Math.random() / 2));
      }
    }
  }

  async function eventSourceMappings(streamArn) {
    const mappings = [];
    let marker = null;
    for (let page = 0; page < 50; page++) {
      const query = [['EventSourceArn', streamArn]];
      if (marker) query.push(['Marker', marker]);
      const out = await signedFetch({
        method: 'GET',
        path: '/2015-03-31/event-source-mappings/',
        query,
        service: 'lambda',
      });
      mappings.push(...(out.EventSourceMappings || []));
      marker = out.NextMarker;
      if (!marker) break;
    }
    return mappings;
  }

  const throughput = (streamArn) =>
    signedFetch({ method: 'GET', path: '/_broker/throughput', query: [['StreamARN', streamArn]], service: 'kinesis' });

  // A wrapper that runs at most `n` of the tasks given to it at once.
  function limited(n) {
    let running = 0;
    const waiting = [];
    const next = () => {
      if (running >= n || !waiting.length) return;
      running += 1;
      const { task, resolve, reject } = waiting.shift();
      task()
        .then(resolve, reject)
        .finally(() => {
          running -= 1;
          next();
        });
    };
    return (task) =>
      new Promise((resolve, reject) => {
        waiting.push({ task, resolve, reject });
        next();
      });
  }

  // Follows NextToken through every page; `first` is the first request, `key` the list.
  async function allPages(operation, first, key, next) {
    const items = [];
    let input = first;
    for (let page = 0; page < 100; page++) {
      const out = await kinesis(operation, input);
      items.push(...(out[key] || []));
      if (!out.NextToken) break;
      input = next(out.NextToken);
    }
    return items;
  }

  // ---- record data ---------------------------------------------------------------------

  function base64ToBytes(data) {
    const binary = atob(data || '');
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  function bytesToBase64(bytes) {
    let binary = '';
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  const decodeUtf8 = (bytes) => new TextDecoder('utf-8').decode(bytes);

  function hexDump(bytes) {
    const lines = [];
    for (let offset = 0; offset < bytes.length; offset += 16) {
      const chunk = Array.from(bytes.subarray(offset, offset + 16));
      const hex = chunk.map((b) => b.toString(16).padStart(2, '0')).join(' ');
      const ascii = chunk.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
      lines.push(`${offset.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
    }
    return lines.join('\n');
  }

  // What a record's data looks like in `format`: {text, note} where note says why another
  // rendering was used.
  function render(bytes, format) {
    if (format === 'hex') return { text: hexDump(bytes) };
    const text = decodeUtf8(bytes);
    if (format === 'json') {
      try {
        return { text: JSON.stringify(JSON.parse(text), null, 2) };
      } catch (_) {
        return { text, note: 'not JSON, shown as UTF-8' };
      }
    }
    return { text };
  }

  // ---- pages -------------------------------------------------------------------------------

  const app = () => document.getElementById('app');
  let pageTimers = [];
  let pageToken = 0;

  function leavePage() {
    pageTimers.forEach(clearInterval);
    pageTimers = [];
    pageToken += 1;
    return pageToken;
  }

  function show(...nodes) {
    app().replaceChildren(...nodes);
  }

  /** The account of the signed-in key as the broker's answers show it (a stream ARN). */
  let seenAccount = null;

  function updateHeader() {
    const creds = credentials();
    const who = document.getElementById('who');
    const signOut = document.getElementById('sign-out');
    // With `--auth verify` the account is the key's in the broker's credentials file, not
    // the key id: once a stream ARN has been seen, its account is shown.
    const account =
      creds && seenAccount && seenAccount.key === creds.accessKeyId ? seenAccount.account : creds && accountOf(creds.accessKeyId);
    who.textContent = creds ? `account ${account} · ${creds.region}` : '';
    signOut.hidden = !creds;
  }

  function signInPage() {
    const saved = credentials() || { accessKeyId: 'test', secretAccessKey: 'test', region: 'us-east-1' };
    const field = (label, name, value, type) =>
      el('label', {}, el('span', {}, label), el('input', { name, id: `signin-${name}`, value, type: type || 'text', required: true, autocomplete: 'off' }));
    const form = el(
      'form',
      { className: 'card signin', id: 'signin' },
      el('h1', {}, 'Sign in'),
      el('p', { className: 'muted' }, 'Requests are signed with these credentials (SigV4) in this browser. A 12-digit access key id is the account whose streams you see.'),
      field('Access key id', 'accessKeyId', saved.accessKeyId),
      field('Secret access key', 'secretAccessKey', saved.secretAccessKey, 'password'),
      field('Region', 'region', saved.region),
      el('button', { type: 'submit' }, 'Sign in'),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const creds = {
        accessKeyId: String(data.get('accessKeyId')).trim(),
        secretAccessKey: String(data.get('secretAccessKey')),
        region: String(data.get('region')).trim(),
      };
      sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(creds));
      updateHeader();
      location.hash = '#/streams';
    });
    show(form);
  }

  async function streamsPage(token) {
    const status = el('p', { className: 'muted' }, 'Loading streams…');
    const refresh = el('button', { type: 'button', className: 'secondary', onclick: () => route() }, 'Refresh');
    show(el('div', { className: 'row' }, el('h1', {}, 'Streams'), refresh), status);
    let summaries;
    try {
      summaries = await allPages('ListStreams', { Limit: 100 }, 'StreamSummaries', (t) => ({ NextToken: t }));
    } catch (e) {
      status.replaceWith(errorBox(e));
      return;
    }
    if (token !== pageToken) return;
    if (summaries.length && summaries[0].StreamARN) {
      seenAccount = { key: credentials().accessKeyId, account: summaries[0].StreamARN.split(':')[4] };
      updateHeader();
    }
    if (!summaries.length) {
      status.textContent = 'No streams in this account and region.';
      return;
    }
    // DescribeStreamSummary is limited to 20 calls a second per account on AWS: a few at a
    // time, retried when throttled, rather than one per stream at once.
    const describe = limited(4);
    const rows = summaries.map((s) => {
      const cells = {
        status: el('td', {}, el('span', { className: `status ${s.StreamStatus}` }, s.StreamStatus)),
        mode: el('td', {}, (s.StreamModeDetails && s.StreamModeDetails.StreamMode) || ''),
        shards: el('td', { className: 'num' }, '…'),
        retention: el('td', { className: 'num' }, '…'),
        encryption: el('td', {}, '…'),
      };
      describe(() => kinesis('DescribeStreamSummary', { StreamARN: s.StreamARN }))
        .then(({ StreamDescriptionSummary: d }) => {
          cells.status.firstChild.textContent = d.StreamStatus;
          cells.status.firstChild.className = `status ${d.StreamStatus}`;
          cells.mode.textContent = (d.StreamModeDetails && d.StreamModeDetails.StreamMode) || '';
          cells.shards.textContent = String(d.OpenShardCount);
          cells.retention.textContent = `${d.RetentionPeriodHours} h`;
          cells.encryption.textContent = d.EncryptionType === 'KMS' ? `KMS (${d.KeyId || ''})` : d.EncryptionType || 'NONE';
        })
        .catch((e) => {
          cells.encryption.replaceChildren(errorBox(e));
        });
      return el(
        'tr',
        { dataset: { stream: s.StreamName } },
        el('td', {}, link(streamHref(s.StreamName), s.StreamName, { className: 'stream-link' })),
        cells.status,
        cells.mode,
        cells.shards,
        cells.retention,
        cells.encryption,
      );
    });
    status.replaceWith(
      table(['Name', 'Status', 'Mode', { label: 'Open shards', num: true }, { label: 'Retention', num: true }, 'Encryption'], rows, {
        id: 'streams',
      }),
    );
  }

  // ---- stream page ---------------------------------------------------------------------

  const CHARTS = [
    {
      id: 'chart-records',
      title: 'Records',
      unit: 'records/s',
      series: [
        ['IncomingRecords', 'in', '#1f77b4'],
        ['OutgoingRecords', 'out', '#2ca02c'],
      ],
    },
    {
      id: 'chart-bytes',
      title: 'Bytes',
      unit: 'bytes/s',
      series: [
        ['IncomingBytes', 'in', '#1f77b4'],
        ['OutgoingBytes', 'out', '#2ca02c'],
      ],
    },
    {
      id: 'chart-throttles',
      title: 'Throttled requests',
      unit: 'per s',
      series: [
        ['WriteThrottles', 'write', '#d62728'],
        ['ReadThrottles', 'read', '#ff7f0e'],
      ],
    },
  ];

  function percentOfKeySpace(value) {
    return Number((BigInt(value) * 10000n) / KEY_SPACE) / 100;
  }

  function shardNode(shard, childrenOf) {
    const closed = Boolean(shard.SequenceNumberRange && shard.SequenceNumberRange.EndingSequenceNumber);
    const start = shard.HashKeyRange.StartingHashKey;
    const end = shard.HashKeyRange.EndingHashKey;
    const from = percentOfKeySpace(start);
    const to = percentOfKeySpace((BigInt(end) + 1n).toString());
    const bar = el('span', { className: 'bar-range', title: `${start} – ${end}` }, el('i'));
    bar.firstChild.style.left = `${from}%`;
    bar.firstChild.style.width = `${Math.max(0.5, to - from)}%`;
    const state = closed ? 'Closed' : 'Open';
    const item = el(
      'li',
      { dataset: { shard: shard.ShardId, state } },
      el(
        'span',
        { className: 'shard' },
        el('code', {}, shard.ShardId),
        el('span', { className: `status ${state}` }, state),
        bar,
        el('span', { className: 'range mono' }, `${from}% – ${to}% · ${start} – ${end}`),
        shard.AdjacentParentShardId
          ? el('span', { className: 'muted' }, `merged from ${shard.ParentShardId} + ${shard.AdjacentParentShardId}`)
          : null,
      ),
    );
    const children = childrenOf.get(shard.ShardId) || [];
    if (children.length) item.append(el('ul', {}, children.map((c) => shardNode(c, childrenOf))));
    return item;
  }

  function shardTree(shards) {
    const ids = new Set(shards.map((s) => s.ShardId));
    const childrenOf = new Map();
    const roots = [];
    for (const shard of shards) {
      // A merged shard hangs under its first parent; a parent trimmed away (or listed on no
      // page) makes the child a root.
      const parent = shard.ParentShardId && ids.has(shard.ParentShardId) ? shard.ParentShardId : null;
      if (parent) {
        if (!childrenOf.has(parent)) childrenOf.set(parent, []);
        childrenOf.get(parent).push(shard);
      } else {
        roots.push(shard);
      }
    }
    return el('ul', { className: 'tree', id: 'shard-tree' }, roots.map((r) => shardNode(r, childrenOf)));
  }

  const lagText = (reader) => {
    if (!reader) return '–';
    if (reader.LagMilliseconds === null || reader.LagMilliseconds === undefined) return 'n/a';
    const records = reader.LagRecords === undefined ? '' : ` · ${reader.LagRecords} record${reader.LagRecords === 1 ? '' : 's'}`;
    return `${reader.LagMilliseconds} ms${records}`;
  };

  const statusCell = (status, reason) =>
    el('td', {}, el('span', { className: `status ${status}` }, status), reason ? el('div', { className: 'muted reason' }, reason) : null);

  // `readerOf(row)` is the row's entry in the throughput endpoint's `Readers`, if any.
  function readersTable(kind, rows, readerOf) {
    if (!rows.length) return el('p', { className: 'muted' }, `No ${kind}.`);
    return table(
      ['Name', 'Status', { label: 'Lag', num: true }, 'Since'],
      rows.map((r) =>
        el(
          'tr',
          { dataset: { reader: r.names[0] } },
          el('td', {}, el('code', {}, r.names[0])),
          statusCell(r.status),
          el('td', { className: 'num lag' }, lagText(readerOf(r))),
          el('td', {}, r.since ? new Date(r.since * 1000).toLocaleString() : ''),
        ),
      ),
    );
  }

  // Channels show where they deliver too; `r.detail` is their DescribeChannel, once read.
  function channelsTable(rows, readerOf) {
    if (!rows.length) return el('p', { className: 'muted' }, 'No channels.');
    return table(
      ['Name', 'Status', { label: 'Lag', num: true }, 'Format', 'Compression', 'Destination', { label: 'Freshness', num: true }, 'Since'],
      rows.map((r) => {
        const reader = readerOf(r);
        const d = r.detail || {};
        const stream = (d.StreamConfigurationList || [])[0] || {};
        const s3 = d.S3DestinationConfiguration || {};
        const storage = s3.StorageConfiguration || {};
        const bucket = (storage.BucketARN || '').replace(/^arn:[^:]*:s3:::/, '');
        const pending = r.detail === undefined ? '…' : '';
        return el(
          'tr',
          { dataset: { reader: r.names[0] } },
          el('td', {}, el('code', {}, r.names[0])),
          statusCell(r.status, r.reason),
          el(
            'td',
            { className: 'num lag', dataset: reader && reader.LagRecords !== undefined ? { lagRecords: String(reader.LagRecords) } : {} },
            lagText(reader),
          ),
          el('td', { className: 'format' }, (stream.RecordConfiguration && stream.RecordConfiguration.RecordFormatType) || pending),
          el('td', { className: 'compression' }, storage.CompressionType || pending),
          el(
            'td',
            { className: 'destination' },
            bucket ? el('code', {}, `s3://${bucket}/${storage.OutputKeyTemplate || ''}`) : r.detailError ? errorBox(r.detailError) : pending,
          ),
          el('td', { className: 'num' }, s3.DataFreshnessInSeconds ? `${s3.DataFreshnessInSeconds} s` : pending),
          el('td', {}, r.since ? new Date(r.since * 1000).toLocaleString() : ''),
        );
      }),
    );
  }

  async function streamPage(token, name) {
    const summaryBox = el('div', { className: 'card', id: 'summary' }, 'Loading…');
    const chartsBox = el('div', { className: 'charts' });
    const chartsNote = el('p', { className: 'muted', id: 'charts-note' });
    const canvases = {};
    for (const chart of CHARTS) {
      const canvas = el('canvas', { id: chart.id });
      canvases[chart.id] = canvas;
      chartsBox.append(el('div', { className: 'chart' }, el('h3', {}, `${chart.title} (${chart.unit})`), canvas));
    }
    const shardsBox = el('div', {}, el('p', { className: 'muted' }, 'Loading shards…'));
    const consumersBox = el('div', { id: 'consumers' });
    const queuesBox = el('div', { id: 'queues' });
    const mappingsBox = el('div', { id: 'mappings' });
    const channelsBox = el('div', { id: 'channels' });
    show(
      el('div', { className: 'crumbs' }, link('#/streams', 'Streams')),
      el('h1', { id: 'stream-name' }, name),
      el('p', {}, link(streamHref(name, 'records'), 'Browse records →', { id: 'records-link' })),
      summaryBox,
      el('h2', {}, 'Throughput'),
      chartsNote,
      chartsBox,
      el('h2', {}, 'Shards'),
      shardsBox,
      el('h2', {}, 'Consumers (enhanced fan-out)'),
      consumersBox,
      el('h2', {}, 'Queues'),
      queuesBox,
      el('h2', {}, 'Event-source mappings'),
      mappingsBox,
      el('h2', {}, 'Channels (delivery to S3)'),
      channelsBox,
    );

    let summary;
    try {
      summary = (await kinesis('DescribeStreamSummary', { StreamName: name })).StreamDescriptionSummary;
    } catch (e) {
      summaryBox.replaceChildren(errorBox(e));
      return;
    }
    if (token !== pageToken) return;
    const arn = summary.StreamARN;
    summaryBox.replaceChildren(
      el(
        'div',
        { className: 'row' },
        ...[
          ['Status', summary.StreamStatus],
          ['Mode', summary.StreamModeDetails && summary.StreamModeDetails.StreamMode],
          ['Open shards', summary.OpenShardCount],
          ['Retention', `${summary.RetentionPeriodHours} h`],
          ['Encryption', summary.EncryptionType || 'NONE'],
          ['Consumers', summary.ConsumerCount],
        ].map(([k, v]) => el('div', {}, el('div', { className: 'muted' }, k), el('strong', {}, v === undefined ? '' : v))),
      ),
      el('p', { className: 'mono muted' }, arn),
    );

    let readers = [];
    // By kind as well as name: a queue and a channel may share a name.
    const readerOf = (row) => readers.find((r) => r.Kind === row.kind && row.names.includes(r.Name));
    const readerRows = { consumers: [], queues: [], mappings: [], channels: [] };
    const drawReaders = () => {
      consumersBox.replaceChildren(readersTable('consumers', readerRows.consumers, readerOf));
      queuesBox.replaceChildren(readersTable('queues', readerRows.queues, readerOf));
      mappingsBox.replaceChildren(readersTable('event-source mappings', readerRows.mappings, readerOf));
      channelsBox.replaceChildren(channelsTable(readerRows.channels, readerOf));
    };

    const poll = async () => {
      try {
        const out = await throughput(arn);
        if (token !== pageToken) return;
        readers = out.Readers || [];
        const interval = out.IntervalSeconds || 1;
        const points = out.Points || [];
        for (const chart of CHARTS) {
          KBChart.draw(
            canvases[chart.id],
            chart.series.map(([key, label, color]) => ({
              label,
              color,
              points: points.map((p) => [p.Timestamp, (p[key] || 0) / interval]),
            })),
            chart.unit,
          );
        }
        const span = points.length * interval;
        const spanText = span < 120 ? `${span} s` : `${Math.round(span / 60)} min`;
        chartsNote.textContent = `${points.length} points, one every ${interval} s (the last ${spanText}); refreshed every ${POLL_MS / 1000} s.`;
        chartsNote.className = 'muted';
        drawReaders();
      } catch (e) {
        if (token !== pageToken) return;
        chartsNote.className = 'error';
        chartsNote.textContent =
          e.notJson
            ? `This broker does not serve throughput figures (GET /_broker/throughput answered ${e.status}).`
            : `Throughput: ${errorText(e)}`;
      }
    };
    poll();
    pageTimers.push(setInterval(poll, POLL_MS));

    allPages('ListShards', { StreamARN: arn, MaxResults: 1000 }, 'Shards', (t) => ({ NextToken: t, MaxResults: 1000 }))
      .then((shards) => token === pageToken && shardsBox.replaceChildren(shardTree(shards)))
      .catch((e) => shardsBox.replaceChildren(errorBox(e)));

    const readerLists = [
      allPages('ListStreamConsumers', { StreamARN: arn }, 'Consumers', (t) => ({ StreamARN: arn, NextToken: t })).then((list) => {
        readerRows.consumers = list.map((c) => ({
          kind: 'consumer',
          names: [c.ConsumerName, c.ConsumerARN],
          status: c.ConsumerStatus,
          since: c.ConsumerCreationTimestamp,
        }));
      }),
      allPages('ListQueues', { StreamFilter: [{ StreamARN: arn }] }, 'QueueSummaries', (t) => ({
        // A token belongs to the filter it was issued under (src/api/pagination.rs).
        StreamFilter: [{ StreamARN: arn }],
        NextToken: t,
      })).then((list) => {
        readerRows.queues = list.map((q) => ({
          kind: 'queue',
          names: [q.QueueName, q.QueueARN],
          status: q.QueueStatus,
          since: q.QueueCreationTimestamp,
        }));
      }),
      eventSourceMappings(arn).then((list) => {
        readerRows.mappings = list.map((m) => ({
          kind: 'event-source-mapping',
          names: [m.UUID, m.FunctionArn, (m.FunctionArn || '').split(':').pop()],
          status: m.State,
          since: m.LastModified,
        }));
      }),
      allPages('ListChannels', { StreamFilter: [{ StreamARN: arn }] }, 'ChannelSummaries', (t) => ({
        StreamFilter: [{ StreamARN: arn }],
        NextToken: t,
      })).then((list) => {
        readerRows.channels = list.map((c) => ({
          kind: 'channel',
          names: [c.ChannelName, c.ChannelARN],
          arn: c.ChannelARN,
          status: c.ChannelStatus,
          reason: c.ChannelStatusReason,
          since: c.ChannelCreationTimestamp,
        }));
      }),
    ];
    const boxes = [consumersBox, queuesBox, mappingsBox, channelsBox];
    const settled = await Promise.allSettled(readerLists);
    if (token !== pageToken) return;
    drawReaders();
    settled.forEach((result, i) => result.status === 'rejected' && boxes[i].replaceChildren(errorBox(result.reason)));

    // Where each channel delivers: DescribeChannel, a few at a time (the control plane's
    // rates apply), each row filled in as its answer comes.
    const describe = limited(4);
    for (const row of readerRows.channels) {
      describe(() => kinesis('DescribeChannel', { ChannelARN: row.arn }))
        .then(({ ChannelDescription: d }) => {
          row.detail = d;
          row.status = d.ChannelStatus;
          row.reason = d.ChannelStatusReason;
        })
        .catch((e) => {
          row.detail = null;
          row.detailError = e;
        })
        .finally(() => token === pageToken && drawReaders());
    }
  }

  // ---- record browser --------------------------------------------------------------------

  const POSITIONS = ['TRIM_HORIZON', 'LATEST', 'AT_SEQUENCE_NUMBER', 'AFTER_SEQUENCE_NUMBER', 'AT_TIMESTAMP'];
  // Empty reads can come before records (a gap, or records not yet reached): follow the
  // iterator a few times before showing an empty page.
  const EMPTY_READS = 5;

  async function recordsPage(token, name) {
    const shardSelect = el('select', { id: 'rb-shard' });
    const positionSelect = el('select', { id: 'rb-position' }, POSITIONS.map((p) => el('option', { value: p }, p)));
    const sequenceInput = el('input', { id: 'rb-sequence', placeholder: 'sequence number', size: 40 });
    const timeInput = el('input', { id: 'rb-time', type: 'datetime-local', step: 1 });
    const limitInput = el('input', { id: 'rb-limit', type: 'number', min: 1, max: 10000, value: 25, size: 6 });
    const readButton = el('button', { type: 'submit', id: 'rb-read' }, 'Read');
    const olderButton = el('button', { type: 'button', className: 'secondary', id: 'rb-older', disabled: true }, '← Older');
    const newerButton = el('button', { type: 'button', className: 'secondary', id: 'rb-newer', disabled: true }, 'Newer →');
    const pageInfo = el('span', { className: 'muted', id: 'rb-page' });
    const formatInputs = ['utf8', 'json', 'hex'].map((f, i) =>
      el('label', {}, el('input', { type: 'radio', name: 'rb-format', value: f, id: `rb-format-${f}`, checked: i === 0 }), ` ${{ utf8: 'UTF-8', json: 'JSON', hex: 'Hex' }[f]}`),
    );
    const results = el('div', { id: 'rb-results' });
    const status = el('p', { className: 'muted', id: 'rb-status' });

    const positionForm = el(
      'form',
      { className: 'card', id: 'rb-form' },
      el(
        'div',
        { className: 'row' },
        el('label', {}, el('span', {}, 'Shard'), shardSelect),
        el('label', {}, el('span', {}, 'Position'), positionSelect),
        el('label', {}, el('span', {}, 'Sequence number'), sequenceInput),
        el('label', {}, el('span', {}, 'Time (local)'), timeInput),
        el('label', {}, el('span', {}, 'Records per page'), limitInput),
        readButton,
      ),
    );

    const keyInput = el('input', { id: 'put-key', placeholder: 'partition key', value: 'console' });
    const dataInput = el('textarea', { id: 'put-data', placeholder: 'data (UTF-8)' });
    const putResult = el('p', { className: 'muted', id: 'put-result' });
    const putForm = el(
      'form',
      { className: 'card', id: 'put-form' },
      el('h2', {}, 'Put a test record'),
      el('label', {}, el('span', {}, 'Partition key'), keyInput),
      el('label', {}, el('span', {}, 'Data'), dataInput),
      el('button', { type: 'submit', id: 'put-send' }, 'Put record'),
      putResult,
    );

    show(
      el('div', { className: 'crumbs' }, link('#/streams', 'Streams'), ' / ', link(streamHref(name), name)),
      el('h1', {}, `Records of ${name}`),
      positionForm,
      el('div', { className: 'pager' }, olderButton, newerButton, pageInfo, el('span', { className: 'formats' }, formatInputs)),
      status,
      results,
      putForm,
    );

    // pages[i] = {records, next}: what page i showed and the iterator after it. Records are
    // immutable, so older pages are shown again from here rather than re-read.
    let pages = [];
    let current = -1;
    const format = () => formatInputs.map((l) => l.firstChild).find((i) => i.checked).value;

    function drawPage() {
      const page = pages[current];
      olderButton.disabled = current <= 0;
      newerButton.disabled = !page || !page.next;
      pageInfo.textContent = page ? `page ${current + 1}` : '';
      if (!page) return results.replaceChildren();
      if (!page.records.length) {
        return results.replaceChildren(el('p', { className: 'muted' }, page.atTip ? 'No records (at the tip of the shard).' : 'No records.'));
      }
      const chosen = format();
      results.replaceChildren(
        table(
          ['Sequence number', 'Arrived', 'Partition key', { label: 'Size', num: true }, 'Data'],
          page.records.map((r) => {
            const bytes = base64ToBytes(r.Data);
            const shown = render(bytes, chosen);
            return el(
              'tr',
              { className: 'record', dataset: { sequence: r.SequenceNumber } },
              el('td', {}, el('code', {}, r.SequenceNumber)),
              el('td', {}, r.ApproximateArrivalTimestamp ? new Date(r.ApproximateArrivalTimestamp * 1000).toISOString() : ''),
              el('td', {}, el('code', { className: 'partition-key' }, r.PartitionKey)),
              el('td', { className: 'num' }, String(bytes.length)),
              el('td', { className: 'data' }, shown.note ? el('div', { className: 'muted note' }, shown.note) : null, el('pre', { className: 'record-data' }, shown.text)),
            );
          }),
          { id: 'records' },
        ),
      );
    }
    formatInputs.forEach((l) => l.firstChild.addEventListener('change', drawPage));

    async function readFrom(iterator) {
      let records = [];
      let next = iterator;
      let behind = 0;
      for (let attempt = 0; attempt < EMPTY_READS && next; attempt++) {
        const out = await kinesis('GetRecords', { ShardIterator: next, Limit: Number(limitInput.value) || 25 });
        records = out.Records || [];
        next = out.NextShardIterator || null;
        behind = out.MillisBehindLatest || 0;
        if (records.length || behind === 0) break;
      }
      return { records, next, atTip: behind === 0 };
    }

    async function withStatus(label, work) {
      status.className = 'muted';
      status.textContent = label;
      try {
        await work();
        status.textContent = '';
      } catch (e) {
        status.className = 'error';
        status.textContent = errorText(e);
      }
    }

    positionForm.addEventListener('submit', (event) => {
      event.preventDefault();
      withStatus('Reading…', async () => {
        const input = { StreamName: name, ShardId: shardSelect.value, ShardIteratorType: positionSelect.value };
        if (positionSelect.value.endsWith('SEQUENCE_NUMBER')) input.StartingSequenceNumber = sequenceInput.value.trim();
        if (positionSelect.value === 'AT_TIMESTAMP') {
          const when = new Date(timeInput.value);
          if (Number.isNaN(when.getTime())) throw new ApiError('InvalidTime', 'Pick a time for AT_TIMESTAMP.');
          input.Timestamp = when.getTime() / 1000;
        }
        const { ShardIterator } = await kinesis('GetShardIterator', input);
        const page = await readFrom(ShardIterator);
        pages = [page];
        current = 0;
        drawPage();
      });
    });
    olderButton.addEventListener('click', () => {
      if (current > 0) current -= 1;
      drawPage();
    });
    newerButton.addEventListener('click', () => {
      if (current < pages.length - 1) {
        current += 1;
        return drawPage();
      }
      const page = pages[current];
      withStatus('Reading…', async () => {
        const nextPage = await readFrom(page.next);
        pages.push(nextPage);
        current = pages.length - 1;
        drawPage();
      });
    });

    putForm.addEventListener('submit', (event) => {
      event.preventDefault();
      putResult.className = 'muted';
      putResult.textContent = 'Putting…';
      kinesis('PutRecord', {
        StreamName: name,
        PartitionKey: keyInput.value,
        Data: bytesToBase64(new TextEncoder().encode(dataInput.value)),
      })
        .then((out) => {
          putResult.textContent = `Put in ${out.ShardId} at sequence number ${out.SequenceNumber}.`;
          putResult.dataset.sequence = out.SequenceNumber;
          putResult.dataset.shard = out.ShardId;
        })
        .catch((e) => {
          putResult.className = 'error';
          putResult.textContent = errorText(e);
        });
    });

    try {
      const shards = await allPages('ListShards', { StreamName: name, MaxResults: 1000 }, 'Shards', (t) => ({ NextToken: t, MaxResults: 1000 }));
      if (token !== pageToken) return;
      shardSelect.replaceChildren(
        ...shards.map((s) => {
          const closed = s.SequenceNumberRange && s.SequenceNumberRange.EndingSequenceNumber;
          return el('option', { value: s.ShardId }, `${s.ShardId}${closed ? ' (closed)' : ''}`);
        }),
      );
    } catch (e) {
      status.className = 'error';
      status.textContent = errorText(e);
    }
  }

  // ---- routing --------------------------------------------------------------------------

  function route() {
    const token = leavePage();
    updateHeader();
    const hash = location.hash || '#/streams';
    if (!credentials() && hash !== '#/signin') {
      location.hash = '#/signin';
      return;
    }
    const parts = hash.replace(/^#\/?/, '').split('/');
    let name = null;
    try {
      name = parts[1] !== undefined ? decodeURIComponent(parts[1]) : null;
    } catch (_) {
      name = null;
    }
    if (parts[0] === 'signin') return signInPage();
    if (parts[0] === 'stream' && name && parts[2] === 'records') return recordsPage(token, name);
    if (parts[0] === 'stream' && name) return streamPage(token, name);
    return streamsPage(token);
  }

  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('sign-out').addEventListener('click', () => {
      sessionStorage.removeItem(CREDENTIALS_KEY);
      location.hash = '#/signin';
    });
    window.addEventListener('hashchange', route);
    route();
  });

  // For tests and the curious: the pure helpers, nothing that holds credentials.
  window.KBConsole = Object.freeze({ render, hexDump, base64ToBytes, accountOf });
})();
