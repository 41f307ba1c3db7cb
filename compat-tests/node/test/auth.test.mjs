// The AWS SDK for JavaScript v3 against a broker of its own started with `--auth verify`: two
// accounts from a credentials file, a wrong secret refused with AWS's error, another account
// isolated until the stream's resource policy grants it the reads, and a Deny winning.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  KinesisClient,
  CreateStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListStreamsCommand,
  PutRecordCommand,
  PutResourcePolicyCommand,
  waitUntilStreamExists,
} from "@aws-sdk/client-kinesis";

const BIN = process.env.KINESIS_BROKER_BIN;
if (!BIN) throw new Error("KINESIS_BROKER_BIN is not set: run through compat-tests/run");
const START_WAIT_MS = 30_000;

const OWNER = { account: "111111111111", id: "AKIDOWNER0000000001", secret: "owner-secret" };
const OTHER = { account: "222222222222", id: "AKIDOTHER0000000001", secret: "other-secret" };

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const dir = mkdtempSync(path.join(os.tmpdir(), "kinesis-auth-node-"));
const credentialsFile = path.join(dir, "credentials");
writeFileSync(
  credentialsFile,
  [OWNER, OTHER]
    .map(
      (who) =>
        `[${who.account}]\naws_access_key_id = ${who.id}\naws_secret_access_key = ${who.secret}\naccount_id = ${who.account}\n`,
    )
    .join("\n"),
);
const port = await freePort();
const ENDPOINT = `http://127.0.0.1:${port}`;
const broker = spawn(
  BIN,
  [
    "--host", "127.0.0.1", "--port", String(port), "--data-dir", path.join(dir, "data"),
    "--create-stream-delay-ms", "0", "--auth", "verify", "--credentials-file", credentialsFile,
  ],
  { stdio: ["ignore", "pipe", "pipe"] },
);
let output = "";
broker.stdout.on("data", (d) => (output += d));
broker.stderr.on("data", (d) => (output += d));

after(async () => {
  if (broker.exitCode === null) {
    const exited = new Promise((resolve) => broker.once("exit", resolve));
    broker.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const started = Date.now();
for (;;) {
  if (broker.exitCode !== null) throw new Error(`broker exited ${broker.exitCode}: ${output}`);
  if (Date.now() - started > START_WAIT_MS) throw new Error(`broker not ready: ${output}`);
  const ready = await fetch(`${ENDPOINT}/ready`).then((r) => r.ok, () => false);
  if (ready) break;
  await new Promise((r) => setTimeout(r, 50));
}

function client(who, secret = who.secret) {
  return new KinesisClient({
    endpoint: ENDPOINT,
    region: "us-east-1",
    credentials: { accessKeyId: who.id, secretAccessKey: secret },
    maxAttempts: 1,
  });
}

const owner = client(OWNER);
const other = client(OTHER);
after(() => {
  owner.destroy();
  other.destroy();
});

const STREAM = "shared-orders";
const STREAM_ARN = `arn:aws:kinesis:us-east-1:${OWNER.account}:stream/${STREAM}`;
let shardId;

test("the right key works and the account comes from the credentials file", async () => {
  await owner.send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 1 }));
  await waitUntilStreamExists({ client: owner, maxWaitTime: 30 }, { StreamName: STREAM });
  const put = await owner.send(
    new PutRecordCommand({ StreamName: STREAM, PartitionKey: "k", Data: Buffer.from("for the owner") }),
  );
  shardId = put.ShardId;
  const { StreamNames } = await owner.send(new ListStreamsCommand({}));
  assert.deepEqual(StreamNames, [STREAM]);
  // The other account has a namespace of its own.
  const theirs = await other.send(new ListStreamsCommand({}));
  assert.deepEqual(theirs.StreamNames, []);
});

test("a wrong secret is refused with InvalidSignatureException and changes nothing", async () => {
  const forger = client(OWNER, "not-the-secret");
  try {
    await assert.rejects(
      forger.send(new CreateStreamCommand({ StreamName: "forged", ShardCount: 1 })),
      (err) => {
        assert.equal(err.name, "InvalidSignatureException");
        assert.match(err.message, /signature we calculated does not match/);
        return true;
      },
    );
  } finally {
    forger.destroy();
  }
  const { StreamNames } = await owner.send(new ListStreamsCommand({}));
  assert.deepEqual(StreamNames, [STREAM]);
});

async function otherReads() {
  const { ShardIterator } = await other.send(
    new GetShardIteratorCommand({ StreamARN: STREAM_ARN, ShardId: shardId, ShardIteratorType: "TRIM_HORIZON" }),
  );
  const { Records } = await other.send(new GetRecordsCommand({ ShardIterator, StreamARN: STREAM_ARN }));
  return Records.map((r) => Buffer.from(r.Data).toString());
}

function policy(statements) {
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

const READS = ["kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:DescribeStreamSummary"];

test("another account is refused until the stream's policy grants it, and a Deny wins", async () => {
  await assert.rejects(otherReads(), (err) => {
    assert.equal(err.name, "AccessDeniedException");
    assert.match(err.message, new RegExp(`${OTHER.account}.*not authorized.*kinesis:GetShardIterator`));
    return true;
  });
  const allow = {
    Sid: "share",
    Effect: "Allow",
    Principal: { AWS: `arn:aws:iam::${OTHER.account}:root` },
    Action: READS,
    Resource: STREAM_ARN,
  };
  await owner.send(new PutResourcePolicyCommand({ ResourceARN: STREAM_ARN, Policy: policy([allow]) }));
  assert.deepEqual(await otherReads(), ["for the owner"]);

  const deny = { ...allow, Sid: "but-not-records", Effect: "Deny", Action: "kinesis:GetRecords" };
  await owner.send(new PutResourcePolicyCommand({ ResourceARN: STREAM_ARN, Policy: policy([allow, deny]) }));
  await assert.rejects(otherReads(), (err) => {
    assert.equal(err.name, "AccessDeniedException");
    assert.match(err.message, /kinesis:GetRecords/);
    return true;
  });
});
