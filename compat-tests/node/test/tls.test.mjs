// The AWS SDK for JavaScript v3 over HTTPS and HTTP/2 (ALPN h2): a broker of its own started
// with --tls-self-signed, the SDK's NodeHttp2Handler trusting the certificate it wrote.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
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
  waitUntilStreamExists,
} from "@aws-sdk/client-kinesis";

const BIN = process.env.KINESIS_BROKER_BIN;
if (!BIN) throw new Error("KINESIS_BROKER_BIN is not set: run through compat-tests/run");
const START_WAIT_MS = 30_000;

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const dir = mkdtempSync(path.join(os.tmpdir(), "kinesis-tls-node-"));
const port = await freePort();
const certPath = path.join(dir, "certs", "tls-self-signed-cert.pem");
const broker = spawn(
  BIN,
  [
    "--host", "127.0.0.1", "--port", String(port), "--data-dir", path.join(dir, "data"),
    "--create-stream-delay-ms", "0", "--tls-self-signed", "--tls-self-signed-dir", path.join(dir, "certs"),
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

// Ready once it has said where the certificate is and listens over https.
const started = Date.now();
while (!(output.includes(certPath) && output.includes(`https://127.0.0.1:${port}`))) {
  if (broker.exitCode !== null) throw new Error(`broker exited ${broker.exitCode}: ${output}`);
  if (Date.now() - started > START_WAIT_MS) throw new Error(`broker not ready: ${output}`);
  await new Promise((r) => setTimeout(r, 50));
}
assert.ok(existsSync(certPath));
const ca = readFileSync(certPath);
// 127.0.0.1 rather than localhost, which may resolve to ::1 first; the certificate names both.
const ENDPOINT = `https://127.0.0.1:${port}`;

function client(connectOptions) {
  return new KinesisClient({
    endpoint: ENDPOINT,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "dummy-secret" },
    maxAttempts: 1,
    // Options for the SDK's default handler, NodeHttp2Handler: http2.connect's TLS options.
    requestHandler: { nodeHttp2ConnectOptions: connectOptions, requestTimeout: 20_000 },
  });
}

test("ALPN gives h2 on the TLS port", async () => {
  const session = http2.connect(ENDPOINT, { ca });
  try {
    await new Promise((resolve, reject) => {
      session.once("connect", resolve);
      session.once("error", reject);
    });
    assert.equal(session.alpnProtocol, "h2");
    assert.equal(session.encrypted, true);
  } finally {
    session.close();
  }
});

test("the SDK over HTTPS/2 with the self-signed certificate trusted", async () => {
  const kinesis = client({ ca });
  assert.equal(kinesis.config.requestHandler?.constructor?.name, "NodeHttp2Handler");
  try {
    const name = `node-tls-${Date.now()}`;
    await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: 1 }));
    await waitUntilStreamExists({ client: kinesis, maxWaitTime: 30 }, { StreamName: name });
    const put = await kinesis.send(
      new PutRecordCommand({ StreamName: name, PartitionKey: "k", Data: Buffer.from("over h2 and tls") }),
    );
    const { ShardIterator } = await kinesis.send(
      new GetShardIteratorCommand({ StreamName: name, ShardId: put.ShardId, ShardIteratorType: "TRIM_HORIZON" }),
    );
    const { Records } = await kinesis.send(new GetRecordsCommand({ ShardIterator }));
    assert.equal(Buffer.from(Records[0].Data).toString(), "over h2 and tls");
    const { StreamNames } = await kinesis.send(new ListStreamsCommand({}));
    assert.ok(StreamNames.includes(name));
  } finally {
    kinesis.destroy();
  }
});

test("without the certificate trusted the SDK refuses the connection", async () => {
  const kinesis = client(undefined);
  try {
    await assert.rejects(kinesis.send(new ListStreamsCommand({})), (err) => {
      assert.match(`${err.code} ${err.message}`, /SELF_SIGNED|self[- ]signed|certificate/i);
      return true;
    });
  } finally {
    kinesis.destroy();
  }
});
