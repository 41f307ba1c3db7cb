"""Shared fixtures for the black-box suites: boto3 clients and the AWS CLI pointed at the
broker that compat-tests/run started (its URL is in KINESIS_BROKER_ENDPOINT).

Expected AWS answers, with sources: compat-tests/AWS_BEHAVIOUR.md.
"""

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
REGION = "us-east-1"
MAX_POLLS = 400  # bound on polling loops; never an assertion about elapsed time


def free_port():
    """A port on 127.0.0.1 that nothing listens on, for a process the test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log_path):
    """Waits until something listens on PORT; fails with PROC's log if PROC ends first."""
    for _ in range(MAX_POLLS):
        assert proc.poll() is None, open(log_path).read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.025)
    raise AssertionError(f"nothing listens on {port}")


@contextlib.contextmanager
def serving(args, port, log_path, env=None):
    """Runs ARGS, a server that listens on 127.0.0.1:PORT (its output appended to LOG_PATH),
    for as long as the block runs; yields the process once it listens, kills it at the end."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_port(port, proc, log_path)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def broker_binary():
    """The release binary compat-tests/run built, for suites that start brokers of their own."""
    path = os.environ.get("KINESIS_BROKER_BIN")
    if not path:
        pytest.exit("KINESIS_BROKER_BIN is not set: run these suites through compat-tests/run", 2)
    return path


def endpoint():
    url = os.environ.get("KINESIS_BROKER_ENDPOINT")
    if not url:
        pytest.exit("KINESIS_BROKER_ENDPOINT is not set: run these suites through compat-tests/run", 2)
    return url


def make_client(validate=True, region=REGION, access_key="AKIDEXAMPLE", url=None, attempts=10):
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=url or endpoint(),
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key="dummy-secret",
        config=Config(
            # The SDK's standard retry mode, as users run it: only throttling and transient
            # errors are retried (the broker enforces AWS's rates), so every other error a
            # test sees is the broker's first answer.
            retries={"total_max_attempts": attempts, "mode": "standard"},
            parameter_validation=validate,
            connect_timeout=5,
            read_timeout=60,
        ),
    )


@pytest.fixture(scope="session")
def kinesis():
    return make_client()


@pytest.fixture(scope="session")
def unvalidated():
    """A client that sends what it is given: botocore otherwise rejects out-of-range values
    itself, before the broker can."""
    return make_client(validate=False)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def arn(name, account=ACCOUNT, region=REGION):
    return f"arn:aws:kinesis:{region}:{account}:stream/{name}"


def shard_id(i):
    return f"shardId-{i:012d}"


def wait_active(client, name):
    for _ in range(MAX_POLLS):
        s = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if s["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.025)
    raise AssertionError(f"stream {name} never became ACTIVE")


def wait_deleted(client, name):
    for _ in range(MAX_POLLS):
        try:
            client.describe_stream_summary(StreamName=name)
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return
            raise
        time.sleep(0.01)
    raise AssertionError(f"stream {name} never went away")


@pytest.fixture
def make_stream(kinesis):
    """Creates ACTIVE streams with unique names; deletes them after the test."""
    created = []

    def make(shards=1, prefix="s"):
        name = unique(prefix)
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        wait_active(kinesis, name)
        created.append(name)
        return name

    yield make
    for name in created:
        try:
            kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except ClientError:
            pass


@pytest.fixture(scope="module")
def s3_url():
    """A real S3-compatible server (moto) for the module's channels; its URL."""
    # Imported here: channel_support imports this module.
    from channel_support import moto_server

    with moto_server() as url:
        yield url


def md5_hash_key(partition_key):
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def expected_ranges(n):
    size = 2**128 // n
    return [(i * size, (2**128 - 1) if i == n - 1 else (i + 1) * size - 1) for i in range(n)]


def expected_shard(hash_key, n):
    for i, (lo, hi) in enumerate(expected_ranges(n)):
        if lo <= hash_key <= hi:
            return i
    raise AssertionError("ranges do not cover the key space")


def iterator(client, stream, shard, kind, **kw):
    return client.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType=kind, **kw)["ShardIterator"]


def read_to_tip(client, it, limit=None):
    """GetRecords from `it` until an empty read at the tip (MillisBehindLatest 0)."""
    records = []
    for _ in range(MAX_POLLS):
        kw = {"Limit": limit} if limit else {}
        try:
            out = client.get_records(ShardIterator=it, **kw)
        except ClientError as e:
            # Over the shard's read limit (5 calls/s on AWS): back off as real consumers do.
            if e.response["Error"]["Code"] == "ProvisionedThroughputExceededException":
                time.sleep(0.2)
                continue
            raise
        records.extend(out["Records"])
        nxt = out.get("NextShardIterator")
        if nxt is None:
            return records
        it = nxt
        if not out["Records"] and out.get("MillisBehindLatest") == 0:
            return records
    raise AssertionError("shard not read to its tip")


def put_all(client, stream, records):
    """PutRecords that resends entries rejected by AWS-style throttling, as producers do.
    Returns each entry's result ({ShardId, SequenceNumber}) in request order."""
    results = [None] * len(records)
    pending = list(range(len(records)))
    for _ in range(MAX_POLLS):
        out = client.put_records(StreamName=stream, Records=[records[i] for i in pending])
        assert len(out["Records"]) == len(pending)
        still = []
        for i, r in zip(pending, out["Records"]):
            if "SequenceNumber" in r:
                results[i] = r
            elif r.get("ErrorCode") == "ProvisionedThroughputExceededException":
                still.append(i)
            else:
                raise AssertionError(f"entry {i}: {r}")
        assert out.get("FailedRecordCount", 0) == len(still)
        if not still:
            return results
        pending = still
        time.sleep(0.2)
    raise AssertionError("PutRecords kept being throttled")


def read_shard(client, stream, shard):
    return read_to_tip(client, iterator(client, stream, shard, "TRIM_HORIZON"))


def assert_error(excinfo, code, message):
    """The ClientError has exactly this type and message, on HTTP 400."""
    err = excinfo.value.response
    assert (err["Error"].get("Code"), err["Error"].get("Message")) == (code, message)
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


def assert_error_prefix(excinfo, code, prefix):
    err = excinfo.value.response
    assert err["Error"].get("Code") == code, err["Error"]
    assert (err["Error"].get("Message") or "").startswith(prefix), err["Error"]
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


# ---- AWS CLI ---------------------------------------------------------------------------


def cli_env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("KINESIS_BROKER_ENDPOINT",)
    }
    env.update(
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="dummy-secret",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="10",
        AWS_RETRY_MODE="standard",
        AWS_PAGER="",
    )
    env.update(extra)
    return env


def aws(*args, endpoint_flag=True, env=None, check=True):
    """Runs `aws kinesis ...` from the virtualenv; returns (returncode, parsed stdout, stderr)."""
    cmd = [os.environ.get("AWS_CLI", "aws")]
    if endpoint_flag:
        cmd += ["--endpoint-url", endpoint()]
    cmd += ["--output", "json", "kinesis", *args]
    proc = subprocess.run(cmd, env=env or cli_env(), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr}")
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


# ---- Enhanced fan-out (SubscribeToShard) ------------------------------------------------

# The broker sends an event at least every 5 s on a live subscription (a heartbeat when idle),
# so a read timeout well above that means a silent subscription fails instead of hanging.
SUBSCRIBE_READ_TIMEOUT = 15


def make_subscriber(url=None):
    """A client for SubscribeToShard: its read timeout bounds the wait for each event."""
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=url or endpoint(),
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="dummy-secret",
        config=Config(
            retries={"total_max_attempts": 10, "mode": "standard"},
            connect_timeout=5,
            read_timeout=SUBSCRIBE_READ_TIMEOUT,
        ),
    )


def register_consumer(client, stream_arn, name=None):
    """RegisterStreamConsumer, then DescribeStreamConsumer until ACTIVE; returns the ARN."""
    name = name or unique("c")
    out = client.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name)["Consumer"]
    assert out["ConsumerName"] == name
    assert out["ConsumerStatus"] in ("CREATING", "ACTIVE")
    consumer_arn = out["ConsumerARN"]
    assert consumer_arn.startswith(f"{stream_arn}/consumer/{name}:"), consumer_arn
    for _ in range(MAX_POLLS):
        d = client.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]
        if d["ConsumerStatus"] == "ACTIVE":
            return consumer_arn
        time.sleep(0.025)
    raise AssertionError(f"consumer {consumer_arn} never became ACTIVE")
