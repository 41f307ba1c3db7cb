// Enhanced fan-out from the AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis, unmodified): it
// speaks HTTP/2 to an http:// endpoint (h2c), so SubscribeToShard's event stream arrives as an
// HTTP/2 response body. Consumers are registered with RegisterStreamConsumer and used once
// DescribeStreamConsumer says ACTIVE. Expected behaviour: compat-tests/AWS_BEHAVIOUR.md,
// "SubscribeToShard".
//
// Every wait is bounded: each event is awaited against a timer (the broker sends one at least
// every 5 s), and each subscription has its own client, destroyed (with its HTTP/2 session) when
// the subscription is closed, so nothing is left running.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  KinesisClient,
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  PutRecordCommand,
  PutRecordsCommand,
  RegisterStreamConsumerCommand,
  DescribeStreamConsumerCommand,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";

const ENDPOINT = process.env.KINESIS_BROKER_ENDPOINT;
if (!ENDPOINT) throw new Error("KINESIS_BROKER_ENDPOINT is not set: run through compat-tests/run");
const ACCOUNT = "000000000000";
const REGION = "us-east-1";
const MAX_POLLS = 400;
const EVENT_WAIT_MS = 20_000;

function makeClient() {
  return new KinesisClient({
    endpoint: ENDPOINT,
    region: REGION,
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "dummy-secret" },
    maxAttempts: 10,
  });
}
const kinesis = makeClient();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const unique = (p) => `${p}-${randomBytes(6).toString("hex")}`;
const shardId = (i) => `shardId-${String(i).padStart(12, "0")}`;
const streamArn = (name) => `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/${name}`;
const text = (bytes) => Buffer.from(bytes).toString("utf8");

const created = [];
after(async () => {
  for (const name of created) {
    try {
      await kinesis.send(new DeleteStreamCommand({ StreamName: name, EnforceConsumerDeletion: true }));
    } catch {}
  }
  kinesis.destroy();
});

async function makeStream(shards = 1) {
  const name = unique("nsub");
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  created.push(name);
  for (let i = 0; i < MAX_POLLS; i++) {
    const out = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (out.StreamDescriptionSummary.StreamStatus === "ACTIVE") return name;
    await sleep(10);
  }
  throw new Error(`stream ${name} never became ACTIVE`);
}

async function registerConsumer(stream) {
  const name = unique("c");
  const out = await kinesis.send(new RegisterStreamConsumerCommand({ StreamARN: streamArn(stream), ConsumerName: name }));
  assert.equal(out.Consumer.ConsumerName, name);
  assert.ok(out.Consumer.ConsumerARN.startsWith(`${streamArn(stream)}/consumer/${name}:`), out.Consumer.ConsumerARN);
  for (let i = 0; i < MAX_POLLS; i++) {
    const d = await kinesis.send(new DescribeStreamConsumerCommand({ ConsumerARN: out.Consumer.ConsumerARN }));
    if (d.ConsumerDescription.ConsumerStatus === "ACTIVE") return out.Consumer.ConsumerARN;
    await sleep(25);
  }
  throw new Error(`consumer ${name} never became ACTIVE`);
}

// Puts entries one PutRecords call at a time (retrying throttled entries); returns them with
// their sequence numbers.
async function put(stream, prefix, n) {
  const entries = Array.from({ length: n }, (_, i) => ({ PartitionKey: `${prefix}-pk${i}`, Data: Buffer.from(`${prefix}-${i}`) }));
  const out = [];
  let pending = entries;
  for (let attempt = 0; pending.length && attempt < MAX_POLLS; attempt++) {
    const res = await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: pending }));
    const still = [];
    res.Records.forEach((r, i) => {
      if (r.SequenceNumber) out.push({ ...pending[i], SequenceNumber: r.SequenceNumber });
      else if (r.ErrorCode === "ProvisionedThroughputExceededException") still.push(pending[i]);
      else throw new Error(`${r.ErrorCode} ${r.ErrorMessage}`);
    });
    pending = still;
    if (still.length) await sleep(200);
  }
  assert.equal(pending.length, 0, "PutRecords kept being throttled");
  // Retried entries may have been appended after later ones: order by sequence number.
  return out.sort((a, b) => (BigInt(a.SequenceNumber) < BigInt(b.SequenceNumber) ? -1 : 1));
}

// One SubscribeToShard call with its own client; `close()` ends it.
async function subscribe(consumerARN, shard, position) {
  const client = makeClient();
  const abort = new AbortController();
  let out;
  try {
    out = await client.send(
      new SubscribeToShardCommand({ ConsumerARN: consumerARN, ShardId: shard, StartingPosition: position }),
      { abortSignal: abort.signal },
    );
  } catch (err) {
    client.destroy();
    throw err;
  }
  assert.equal(out.$metadata.httpStatusCode, 200);
  const it = out.EventStream[Symbol.asyncIterator]();
  const events = [];
  const sub = {
    events,
    // The next SubscribeToShardEvent, or null when the stream ended; rejects with the
    // exception event's error, or when no event comes within timeoutMs.
    async next(timeoutMs = EVENT_WAIT_MS) {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms; so far ${JSON.stringify(events)}`)), timeoutMs);
      });
      try {
        const r = await Promise.race([it.next(), timeout]);
        if (r.done) return null;
        assert.deepEqual(Object.keys(r.value).filter((k) => r.value[k] !== undefined), ["SubscribeToShardEvent"]);
        const e = r.value.SubscribeToShardEvent;
        checkEvent(e);
        events.push(e);
        return e;
      } finally {
        clearTimeout(timer);
      }
    },
    // Exactly the next n records.
    async records(n) {
      const deadline = Date.now() + EVENT_WAIT_MS;
      const got = [];
      while (got.length < n) {
        const e = await sub.next(Math.max(1, deadline - Date.now()));
        assert.ok(e, `the stream ended after ${got.length} of ${n} records`);
        got.push(...e.Records);
      }
      assert.equal(got.length, n, "an event went past the records expected");
      return got;
    },
    close() {
      abort.abort();
      client.destroy();
    },
  };
  return sub;
}

function checkEvent(e) {
  assert.ok(Array.isArray(e.Records));
  assert.ok(Number.isInteger(e.MillisBehindLatest) && e.MillisBehindLatest >= 0, JSON.stringify(e));
  for (const r of e.Records) {
    assert.equal(typeof r.SequenceNumber, "string");
    assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
    assert.ok(r.Data instanceof Uint8Array);
    assert.equal(typeof r.PartitionKey, "string");
  }
  if (e.Records.length && e.ContinuationSequenceNumber !== undefined) {
    assert.equal(e.ContinuationSequenceNumber, e.Records.at(-1).SequenceNumber);
  }
}

function assertSame(got, expected) {
  assert.deepEqual(
    got.map((r) => [r.SequenceNumber, r.PartitionKey, text(r.Data)]),
    expected.map((e) => [e.SequenceNumber, e.PartitionKey, text(e.Data)]),
  );
}

async function assertRejectsWith(promise, name) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.name, name, `error type (message: ${err.message})`);
    assert.equal(err.$metadata?.httpStatusCode, 400);
    return true;
  });
}

test("SubscribeToShard over HTTP/2: TRIM_HORIZON records, then records put while subscribed, in order", async () => {
  const stream = await makeStream();
  const consumer = await registerConsumer(stream);
  const before = await put(stream, "before", 5);
  const sub = await subscribe(consumer, shardId(0), { Type: "TRIM_HORIZON" });
  try {
    assertSame(await sub.records(5), before);
    const after = [];
    for (let i = 0; i < 5; i++) {
      const e = { PartitionKey: `after-pk${i}`, Data: Buffer.from(`after-${i}`) };
      const r = await kinesis.send(new PutRecordCommand({ StreamName: stream, ...e }));
      after.push({ ...e, SequenceNumber: r.SequenceNumber });
    }
    assertSame(await sub.records(5), after);
    assert.equal(sub.events.at(-1).ContinuationSequenceNumber, after.at(-1).SequenceNumber);
    assert.equal(sub.events.at(-1).MillisBehindLatest, 0);
  } finally {
    sub.close();
  }
});

test("SubscribeToShard LATEST: an empty first event at once, then only records put after", async () => {
  const stream = await makeStream();
  const consumer = await registerConsumer(stream);
  await put(stream, "old", 3);
  const sub = await subscribe(consumer, shardId(0), { Type: "LATEST" });
  try {
    const first = await sub.next(3000);
    assert.deepEqual(first.Records, []);
    assert.equal(typeof first.ContinuationSequenceNumber, "string");
    const fresh = await put(stream, "new", 3);
    assertSame(await sub.records(3), fresh);
  } finally {
    sub.close();
  }
});

test("AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER (resuming from a continuation number)", async () => {
  const stream = await makeStream();
  const [c1, c2] = [await registerConsumer(stream), await registerConsumer(stream)];
  const recs = await put(stream, "r", 8);
  let sub = await subscribe(c1, shardId(0), { Type: "AT_SEQUENCE_NUMBER", SequenceNumber: recs[2].SequenceNumber });
  let cont;
  try {
    assertSame(await sub.records(6), recs.slice(2));
    cont = sub.events.at(-1).ContinuationSequenceNumber;
  } finally {
    sub.close();
  }
  const more = await put(stream, "m", 4);
  sub = await subscribe(c2, shardId(0), { Type: "AFTER_SEQUENCE_NUMBER", SequenceNumber: cont });
  try {
    assertSame(await sub.records(4), more);
  } finally {
    sub.close();
  }
});

test("a second subscription of the same consumer and shard at once is ResourceInUseException", async () => {
  const stream = await makeStream(2);
  const consumer = await registerConsumer(stream);
  const sub = await subscribe(consumer, shardId(0), { Type: "LATEST" });
  try {
    await sub.next();
    await assertRejectsWith(subscribe(consumer, shardId(0), { Type: "LATEST" }), "ResourceInUseException");
    // Another shard of the same consumer is a different subscription.
    const other = await subscribe(consumer, shardId(1), { Type: "LATEST" });
    other.close();
    // The refused call did not disturb the first subscription.
    const r = await kinesis.send(
      new PutRecordCommand({ StreamName: stream, PartitionKey: "k", ExplicitHashKey: "0", Data: Buffer.from("still") }),
    );
    assert.equal(r.ShardId, shardId(0));
    const [got] = await sub.records(1);
    assert.deepEqual([got.SequenceNumber, text(got.Data)], [r.SequenceNumber, "still"]);
  } finally {
    sub.close();
  }
});

test("an unknown consumer ARN and an unknown shard are ResourceNotFoundException", async () => {
  const stream = await makeStream();
  const consumer = await registerConsumer(stream);
  await assertRejectsWith(
    subscribe(`${streamArn(stream)}/consumer/never-registered:1700000000`, shardId(0), { Type: "LATEST" }),
    "ResourceNotFoundException",
  );
  await assertRejectsWith(
    subscribe(`${streamArn(unique("no-such-stream"))}/consumer/c:1700000000`, shardId(0), { Type: "LATEST" }),
    "ResourceNotFoundException",
  );
  await assertRejectsWith(subscribe(consumer, shardId(5), { Type: "LATEST" }), "ResourceNotFoundException");
});
