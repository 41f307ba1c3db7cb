// The AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis, unmodified) against the broker that
// compat-tests/run started. Its Kinesis client speaks HTTP/2 (h2c for an http:// endpoint), so
// this suite also covers the broker's HTTP/2 side. Expected answers: compat-tests/AWS_BEHAVIOUR.md.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import http2 from "node:http2";
import {
  KinesisClient,
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamCommand,
  DescribeStreamSummaryCommand,
  ListStreamsCommand,
  ListShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
  paginateListStreams,
  waitUntilStreamExists,
} from "@aws-sdk/client-kinesis";

const ENDPOINT = process.env.KINESIS_BROKER_ENDPOINT;
if (!ENDPOINT) throw new Error("KINESIS_BROKER_ENDPOINT is not set: run through compat-tests/run");
const ACCOUNT = "000000000000";
const REGION = "us-east-1";
const MAX_POLLS = 400;
const TWO_128 = 1n << 128n;

function makeClient(extra = {}) {
  return new KinesisClient({
    endpoint: ENDPOINT,
    region: REGION,
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "dummy-secret" },
    // The SDK's standard retries, as users run it: only throttling and transient errors are
    // retried (the broker enforces AWS's rates), so other errors are the broker's first answer.
    maxAttempts: 10,
    ...extra,
  });
}
const kinesis = makeClient();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const unique = (p) => `${p}-${randomBytes(6).toString("hex")}`;
const shardId = (i) => `shardId-${String(i).padStart(12, "0")}`;
const arn = (name, account = ACCOUNT, region = REGION) => `arn:aws:kinesis:${region}:${account}:stream/${name}`;
const md5HashKey = (pk) => BigInt("0x" + createHash("md5").update(pk, "utf8").digest("hex"));
const text = (bytes) => Buffer.from(bytes).toString("utf8");

function expectedRanges(n) {
  const size = TWO_128 / BigInt(n);
  return Array.from({ length: n }, (_, i) => [
    BigInt(i) * size,
    i === n - 1 ? TWO_128 - 1n : BigInt(i + 1) * size - 1n,
  ]);
}
function expectedShard(hashKey, n) {
  return expectedRanges(n).findIndex(([lo, hi]) => lo <= hashKey && hashKey <= hi);
}

async function waitActive(name, client = kinesis) {
  for (let i = 0; i < MAX_POLLS; i++) {
    const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (out.StreamDescriptionSummary.StreamStatus === "ACTIVE") return;
    await sleep(10);
  }
  throw new Error(`stream ${name} never became ACTIVE`);
}

async function makeStream(shards, prefix = "n") {
  const name = unique(prefix);
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  await waitActive(name);
  return name;
}

async function iterator(stream, shard, type, extra = {}) {
  const out = await kinesis.send(
    new GetShardIteratorCommand({ StreamName: stream, ShardId: shard, ShardIteratorType: type, ...extra }),
  );
  return out.ShardIterator;
}

async function readToTip(it, limit) {
  const records = [];
  for (let i = 0; i < MAX_POLLS; i++) {
    let out;
    try {
      out = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: limit }));
    } catch (err) {
      // Over the shard's read limit (5 calls/s on AWS): back off as real consumers do.
      if (err.name !== "ProvisionedThroughputExceededException") throw err;
      await sleep(200);
      continue;
    }
    records.push(...out.Records);
    if (!out.NextShardIterator) return records;
    it = out.NextShardIterator;
    if (out.Records.length === 0 && out.MillisBehindLatest === 0) return records;
  }
  throw new Error("shard not read to its tip");
}
// PutRecords that resends entries rejected by AWS-style throttling, as producers do.
async function putAll(stream, records) {
  const results = new Array(records.length);
  let pending = records.map((_, i) => i);
  for (let attempt = 0; attempt < MAX_POLLS; attempt++) {
    const out = await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: pending.map((i) => records[i]) }));
    assert.equal(out.Records.length, pending.length);
    const still = [];
    pending.forEach((i, k) => {
      const r = out.Records[k];
      if (r.SequenceNumber) results[i] = r;
      else if (r.ErrorCode === "ProvisionedThroughputExceededException") still.push(i);
      else throw new Error(`entry ${i}: ${r.ErrorCode} ${r.ErrorMessage}`);
    });
    assert.equal(out.FailedRecordCount ?? 0, still.length);
    if (still.length === 0) return results;
    pending = still;
    await sleep(200);
  }
  throw new Error("PutRecords kept being throttled");
}
const readShard = async (stream, shard) => readToTip(await iterator(stream, shard, "TRIM_HORIZON"));

async function assertError(promise, name, message) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.name, name, `error type (message: ${err.message})`);
    assert.equal(err.message, message);
    assert.equal(err.$metadata?.httpStatusCode, 400);
    return true;
  });
}

test("DescribeStream gives the ARN, status, shard ids and AWS's hash ranges", async () => {
  const name = await makeStream(3);
  const d = (await kinesis.send(new DescribeStreamCommand({ StreamName: name }))).StreamDescription;
  assert.equal(d.StreamARN, arn(name));
  assert.equal(d.StreamStatus, "ACTIVE");
  assert.equal(d.HasMoreShards, false);
  assert.deepEqual(
    d.Shards.map((s) => [s.ShardId, s.HashKeyRange.StartingHashKey, s.HashKeyRange.EndingHashKey]),
    [
      ["shardId-000000000000", "0", "113427455640312821154458202477256070484"],
      ["shardId-000000000001", "113427455640312821154458202477256070485", "226854911280625642308916404954512140969"],
      ["shardId-000000000002", "226854911280625642308916404954512140970", "340282366920938463463374607431768211455"],
    ],
  );
  for (const s of d.Shards) assert.match(s.SequenceNumberRange.StartingSequenceNumber, /^\d+$/);
});

test("DescribeStreamSummary and the StreamExists waiter", async () => {
  const name = unique("waiter");
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: 2 }));
  await waitUntilStreamExists({ client: kinesis, maxWaitTime: 60, minDelay: 1, maxDelay: 1 }, { StreamName: name });
  const s = (await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }))).StreamDescriptionSummary;
  assert.deepEqual([s.StreamName, s.StreamARN, s.StreamStatus, s.OpenShardCount], [name, arn(name), "ACTIVE", 2]);
  assert.ok(s.StreamCreationTimestamp instanceof Date);
});

test("CreateStream of an existing name is ResourceInUseException", async () => {
  const name = await makeStream(1);
  await assertError(
    kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: 1 })),
    "ResourceInUseException",
    `Stream ${name} under account ${ACCOUNT} already exists.`,
  );
});

test("unknown streams are ResourceNotFoundException in every operation", async () => {
  const name = unique("missing");
  const msg = `Stream ${name} under account ${ACCOUNT} not found.`;
  for (const cmd of [
    new DescribeStreamCommand({ StreamName: name }),
    new DescribeStreamSummaryCommand({ StreamName: name }),
    new DeleteStreamCommand({ StreamName: name }),
    new ListShardsCommand({ StreamName: name }),
    new PutRecordCommand({ StreamName: name, PartitionKey: "a", Data: Buffer.from("x") }),
    new PutRecordsCommand({ StreamName: name, Records: [{ PartitionKey: "a", Data: Buffer.from("x") }] }),
  ]) {
    await assertError(kinesis.send(cmd), "ResourceNotFoundException", msg);
  }
  await assertError(
    kinesis.send(new GetShardIteratorCommand({ StreamName: name, ShardId: shardId(0), ShardIteratorType: "LATEST" })),
    "ResourceNotFoundException",
    `Shard shardId-000000000000 in stream ${name} under account ${ACCOUNT} does not exist`,
  );
});

test("ListShards pages with NextToken and ListStreams' paginator sees every name once, in order", async () => {
  const name = await makeStream(5);
  const ids = [];
  let page = await kinesis.send(new ListShardsCommand({ StreamName: name, MaxResults: 2 }));
  for (let i = 0; i < 10; i++) {
    assert.ok(page.Shards.length <= 2);
    ids.push(...page.Shards.map((s) => s.ShardId));
    if (!page.NextToken) break;
    // AWS takes the NextToken alone: it names the stream.
    page = await kinesis.send(new ListShardsCommand({ NextToken: page.NextToken, MaxResults: 2 }));
  }
  assert.deepEqual(ids, [0, 1, 2, 3, 4].map(shardId));

  const names = [];
  for await (const p of paginateListStreams({ client: kinesis, pageSize: 2 }, {})) {
    assert.ok(p.StreamNames.length <= 2);
    names.push(...p.StreamNames);
  }
  assert.ok(names.includes(name));
  assert.deepEqual(names, [...names].sort(), "names in order");
  assert.equal(new Set(names).size, names.length, "no name twice");

  const after = await kinesis.send(new ListShardsCommand({ StreamName: name, ExclusiveStartShardId: shardId(2) }));
  assert.deepEqual(after.Shards.map((s) => s.ShardId), [shardId(3), shardId(4)]);
  const first = await kinesis.send(new ListShardsCommand({ StreamName: name, MaxResults: 1 }));
  await assertError(
    kinesis.send(new ListShardsCommand({ StreamName: name, NextToken: first.NextToken })),
    "InvalidArgumentException",
    "NextToken and StreamName cannot be provided together.",
  );
});

test("records go to the shard whose range holds MD5(partition key) or the ExplicitHashKey", async () => {
  const name = await makeStream(4);
  for (let i = 0; i < 40; i++) {
    const pk = `key-${i}`;
    const out = await kinesis.send(new PutRecordCommand({ StreamName: name, PartitionKey: pk, Data: Buffer.from(pk) }));
    assert.equal(out.ShardId, shardId(expectedShard(md5HashKey(pk), 4)), pk);
  }
  const ranges = expectedRanges(4);
  const hashes = [0n, ranges[0][1], ranges[1][0], ranges[3][0], TWO_128 - 1n];
  const out = await kinesis.send(
    new PutRecordsCommand({
      StreamName: name,
      Records: hashes.map((h) => ({ PartitionKey: "a", ExplicitHashKey: h.toString(), Data: Buffer.from("e") })),
    }),
  );
  assert.deepEqual(out.Records.map((r) => r.ShardId), [0, 0, 1, 3, 3].map(shardId));
  await assertError(
    kinesis.send(
      new PutRecordCommand({ StreamName: name, PartitionKey: "a", ExplicitHashKey: TWO_128.toString(), Data: Buffer.from("x") }),
    ),
    "InvalidArgumentException",
    `Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was ${TWO_128}`,
  );
});

test("every iterator type starts where AWS says", async () => {
  const name = await makeStream(1);
  const shard = shardId(0);
  const seqs = [];
  for (let i = 0; i < 4; i++) {
    const out = await kinesis.send(new PutRecordCommand({ StreamName: name, PartitionKey: "k", Data: Buffer.from(`r${i}`) }));
    seqs.push(out.SequenceNumber);
    await sleep(5); // distinct arrival times; nothing is asserted about durations
  }
  const seqOf = (recs) => recs.map((r) => r.SequenceNumber);
  assert.deepEqual(seqOf(await readShard(name, shard)), seqs);
  for (let k = 0; k < 4; k++) {
    const at = await iterator(name, shard, "AT_SEQUENCE_NUMBER", { StartingSequenceNumber: seqs[k] });
    assert.deepEqual(seqOf(await readToTip(at)), seqs.slice(k));
    const after = await iterator(name, shard, "AFTER_SEQUENCE_NUMBER", { StartingSequenceNumber: seqs[k] });
    assert.deepEqual(seqOf(await readToTip(after)), seqs.slice(k + 1));
  }
  const all = await readShard(name, shard);
  const arrivals = all.map((r) => r.ApproximateArrivalTimestamp.getTime());
  for (let k = 0; k < 4; k++) {
    const first = arrivals.findIndex((a) => a >= arrivals[k]);
    const it = await iterator(name, shard, "AT_TIMESTAMP", { Timestamp: new Date(arrivals[k]) });
    assert.deepEqual(seqOf(await readToTip(it)), seqs.slice(first), `AT_TIMESTAMP ${k}`);
  }
  const latest = await iterator(name, shard, "LATEST");
  assert.deepEqual((await kinesis.send(new GetRecordsCommand({ ShardIterator: latest }))).Records, []);
  const late = await kinesis.send(new PutRecordCommand({ StreamName: name, PartitionKey: "k", Data: Buffer.from("late") }));
  assert.deepEqual(seqOf(await readToTip(latest)), [late.SequenceNumber]);
});

test("GetRecords returns bytes, key, sequence number and arrival time", async () => {
  const name = await makeStream(1);
  const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const before = Date.now() - 1000;
  const put = await kinesis.send(new PutRecordCommand({ StreamName: name, PartitionKey: "pk", Data: payload }));
  const after = Date.now() + 1000;
  const [r] = await readShard(name, shardId(0));
  assert.deepEqual(Buffer.from(r.Data), payload);
  assert.equal(r.PartitionKey, "pk");
  assert.equal(r.SequenceNumber, put.SequenceNumber);
  const t = r.ApproximateArrivalTimestamp.getTime();
  assert.ok(before <= t && t <= after, `arrival ${t}`);
});

test("5,000 records over 4 shards read back exactly once in per-shard order", async () => {
  const name = await makeStream(4);
  const acked = [];
  for (let b = 0; b < 10; b++) {
    const recs = Array.from({ length: 500 }, (_, j) => ({
      PartitionKey: `c-${(b * 500 + j) % 991}`,
      Data: Buffer.from(`record-${b * 500 + j}`),
    }));
    const results = await putAll(name, recs);
    recs.forEach((r, i) => acked.push([r.PartitionKey, text(r.Data), results[i].ShardId, BigInt(results[i].SequenceNumber)]));
  }
  const seen = new Set();
  for (let s = 0; s < 4; s++) {
    const got = (await readToTip(await iterator(name, shardId(s), "TRIM_HORIZON"), 450)).map((r) => [
      r.PartitionKey,
      text(r.Data),
      shardId(s),
      BigInt(r.SequenceNumber),
    ]);
    const want = acked.filter((a) => a[2] === shardId(s)).sort((x, y) => (x[3] < y[3] ? -1 : x[3] > y[3] ? 1 : 0));
    assert.deepEqual(got, want, `shard ${s}`);
    for (const [pk, data] of got) {
      assert.equal(expectedShard(md5HashKey(pk), 4), s, `${data} in the wrong shard`);
      assert.ok(!seen.has(data), `${data} read twice`);
      seen.add(data);
    }
  }
  assert.equal(seen.size, 5000);
});

test("shard iterator and sequence number errors use AWS's messages", async () => {
  const name = await makeStream(2);
  const seq1 = (
    await kinesis.send(
      new PutRecordCommand({ StreamName: name, PartitionKey: "a", ExplicitHashKey: (TWO_128 - 1n).toString(), Data: Buffer.from("x") }),
    )
  ).SequenceNumber;
  await assertError(
    iterator(name, shardId(0), "AT_SEQUENCE_NUMBER", { StartingSequenceNumber: seq1 }),
    "InvalidArgumentException",
    "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used in a call to a shard with shardId-000000000000",
  );
  await assertError(
    iterator(name, shardId(1), "TRIM_HORIZON", { StartingSequenceNumber: seq1 }),
    "InvalidArgumentException",
    "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or " +
      "(2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified TRIM_HORIZON and also a StartingSequenceNumber.",
  );
  await assertError(
    iterator(name, "shardId-000000000002", "LATEST"),
    "ResourceNotFoundException",
    `Shard shardId-000000000002 in stream ${name} under account ${ACCOUNT} does not exist`,
  );
  await assertError(
    kinesis.send(new GetRecordsCommand({ ShardIterator: "bm90LWFuLWl0ZXJhdG9y" })),
    "InvalidArgumentException",
    "Invalid ShardIterator.",
  );
  await assertError(
    kinesis.send(new ListStreamsCommand({ Limit: 0 })),
    "ValidationException",
    "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
  );
});

test("the SDK picks up AWS_ENDPOINT_URL_KINESIS", async () => {
  const name = await makeStream(1);
  const saved = { ...process.env };
  try {
    process.env.AWS_ENDPOINT_URL_KINESIS = ENDPOINT;
    process.env.AWS_ACCESS_KEY_ID = "AKIDEXAMPLE";
    process.env.AWS_SECRET_ACCESS_KEY = "dummy-secret";
    process.env.AWS_REGION = REGION;
    process.env.AWS_CONFIG_FILE = "/dev/null";
    process.env.AWS_SHARED_CREDENTIALS_FILE = "/dev/null";
    const client = new KinesisClient({ maxAttempts: 10 });
    const s = (await client.send(new DescribeStreamSummaryCommand({ StreamName: name }))).StreamDescriptionSummary;
    assert.equal(s.StreamARN, arn(name));
    client.destroy();
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});

// A SigV4-signed set of HTTP/2 request headers (AWS's algorithm, written out so the raw
// request stays valid once the broker verifies signatures).
function signedHeaders(operation, body) {
  const host = new URL(ENDPOINT).host;
  const amzDate = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const target = `Kinesis_20131202.${operation}`;
  const sha = (x) => createHash("sha256").update(x).digest("hex");
  const hmac = (k, x) => createHmac("sha256", k).update(x).digest();
  const signed = "content-type;host;x-amz-date;x-amz-target";
  const canonical = [
    "POST",
    "/",
    "",
    `content-type:application/x-amz-json-1.1\nhost:${host}\nx-amz-date:${amzDate}\nx-amz-target:${target}\n`,
    signed,
    sha(body),
  ].join("\n");
  const scope = `${day}/${REGION}/kinesis/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha(canonical)].join("\n");
  let key = hmac("AWS4dummy-secret", day);
  for (const part of [REGION, "kinesis", "aws4_request"]) key = hmac(key, part);
  const signature = createHmac("sha256", key).update(toSign).digest("hex");
  return {
    ":method": "POST",
    ":path": "/",
    ":authority": host,
    "content-type": "application/x-amz-json-1.1",
    "x-amz-date": amzDate,
    "x-amz-target": target,
    authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/${scope}, SignedHeaders=${signed}, Signature=${signature}`,
  };
}

test("the broker answers HTTP/2 with prior knowledge (h2c), which this SDK's Kinesis client uses", async () => {
  assert.equal(kinesis.config.requestHandler?.constructor?.name, "NodeHttp2Handler", "the SDK's handler is HTTP/2");
  const body = "{}";
  const session = http2.connect(ENDPOINT);
  try {
    const { status, headers, text: reply } = await new Promise((resolve, reject) => {
      const req = session.request(signedHeaders("ListStreams", body));
      let headers;
      const chunks = [];
      req.on("response", (h) => (headers = h));
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => resolve({ status: headers[":status"], headers, text: Buffer.concat(chunks).toString() }));
      req.on("error", reject);
      req.end(body);
    });
    assert.equal(status, 200, reply);
    assert.ok(Array.isArray(JSON.parse(reply).StreamNames), reply);
    assert.match(headers["x-amzn-requestid"] ?? "", /^[0-9a-f-]{36}$/);
  } finally {
    session.close();
  }
});

test.after(() => kinesis.destroy());
