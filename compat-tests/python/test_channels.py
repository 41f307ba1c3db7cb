"""Channels (issue 22) with boto3: the five operations, and delivery to a real S3-compatible
server (moto's server mode on a free 127.0.0.1 port: the `s3_url` fixture, conftest.py)
read back with boto3's S3 client, including exactly-once objects across a kill -9 of the
broker.

Each test starts a broker of its own (KINESIS_BROKER_BIN) with --s3-endpoint pointing at
the moto server.
"""

import base64
import gzip
import json
import struct
import tempfile
import time
import urllib.request

import pytest
import zstandard
from botocore.exceptions import ClientError

from channel_support import Broker, s3_client
from conftest import ACCOUNT, MAX_POLLS, REGION, arn, make_client, put_all, wait_active

ROLE = f"arn:aws:iam::{ACCOUNT}:role/channel-writer"


@pytest.fixture
def broker_factory(s3_url):
    made = []
    with tempfile.TemporaryDirectory() as d:
        def make(buffer_bytes=5 * 1024 * 1024, extra_args=()):
            b = Broker(d, s3_url, buffer_bytes, extra_args).start()
            made.append(b)
            return b
        try:
            yield make
        finally:
            for b in made:
                if b.proc.poll() is None:
                    b.kill()


def on_demand(kinesis, name):
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, name)


def create_channel(kinesis, name, stream, bucket, fmt="JSON", compression="GZIP", **extra):
    storage = {"BucketARN": f"arn:aws:s3:::{bucket}", "ExpectedBucketOwner": ACCOUNT,
               "CompressionType": compression}
    storage.update(extra.pop("storage", {}))
    return kinesis.create_channel(
        ChannelName=name, ServiceExecutionRoleARN=ROLE,
        StreamConfigurationList=[{"StreamARN": arn(stream), "RecordConfiguration": {"RecordFormatType": fmt}}],
        S3DestinationConfiguration={"StorageConfiguration": storage, **extra},
    )["ChannelDescription"]


def wait_status(kinesis, channel_arn, status):
    for _ in range(MAX_POLLS):
        d = kinesis.describe_channel(ChannelARN=channel_arn)["ChannelDescription"]
        if d["ChannelStatus"] == status:
            return d
        time.sleep(0.025)
    raise AssertionError(f"channel never {status}: {d}")


def objects(s3, bucket, prefix=""):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return sorted(keys)


def lines_of(s3, bucket, key):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    elif key.endswith(".zst"):
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return [line for line in body.decode().split("\n") if line]


def numbered_records_behind_a_channel(broker, s3, name, total):
    """An on-demand stream NAME with an ACTIVE JSON channel NAME into bucket NAME-lake, then
    JSON records {"n": 0..total} (about 50 bytes each) put into it, 100 per request."""
    kinesis = make_client(url=broker.url)
    s3.create_bucket(Bucket=f"{name}-lake")
    on_demand(kinesis, name)
    ch = create_channel(kinesis, name, name, f"{name}-lake")
    wait_status(kinesis, ch["ChannelARN"], "ACTIVE")
    for start in range(0, total, 100):
        kinesis.put_records(StreamName=name, Records=[
            {"PartitionKey": f"k{i}", "Data": json.dumps({"n": i, "pad": "y" * 30}).encode()}
            for i in range(start, min(start + 100, total))])


def numbers_in(s3, bucket):
    """The "n" of every JSON line of every object in the bucket, in key order."""
    return [json.loads(line)["n"] for k in objects(s3, bucket) for line in lines_of(s3, bucket, k)]


def wait_for(predicate, what, polls=MAX_POLLS * 2, pause=0.05):
    for _ in range(polls):
        value = predicate()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"timed out waiting for {what}")


def test_channel_operations_with_boto3(broker_factory, s3_url):
    b = broker_factory()
    kinesis = make_client(url=b.url)
    on_demand(kinesis, "src")
    kinesis.create_stream(StreamName="prov", ShardCount=1)
    wait_active(kinesis, "prov")

    with pytest.raises(ClientError) as e:
        create_channel(kinesis, "c", "prov", "lake")
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        create_channel(kinesis, "c", "src", "lake", DataFreshnessInSeconds=60)
    assert e.value.response["Error"]["Code"] == "InvalidArgumentException"

    d = create_channel(kinesis, "c", "src", "lake", storage={"StorageClass": "STANDARD"})
    assert d["ChannelARN"] == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:channel/c"
    assert d["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 300
    d = wait_status(kinesis, d["ChannelARN"], "ACTIVE")
    assert "ChannelStatusReason" not in d

    listed = kinesis.list_channels(StreamFilter=[{"StreamARN": arn("src")}])["ChannelSummaries"]
    assert [c["ChannelName"] for c in listed] == ["c"]
    assert listed[0]["ChannelDestinationType"] == "S3"

    u = kinesis.update_channel(ChannelARN=d["ChannelARN"],
                               S3DestinationConfiguration={"DataFreshnessInSeconds": 600},
                               LoggingConfiguration={"CloudWatchLogs": {"Enabled": True}})["ChannelDescription"]
    assert u["S3DestinationConfiguration"]["DataFreshnessInSeconds"] == 600
    assert u["LoggingConfiguration"]["CloudWatchLogs"]["LogStreamName"] == "DestinationDelivery"

    kinesis.tag_resource(ResourceARN=d["ChannelARN"], Tags={"team": "lake"})
    assert kinesis.list_tags_for_resource(ResourceARN=d["ChannelARN"])["Tags"] == [{"Key": "team", "Value": "lake"}]
    assert kinesis.describe_limits()["ChannelCount"] == 1
    assert kinesis.describe_stream_summary(StreamName="src")["StreamDescriptionSummary"]["ChannelCount"] == 1

    with pytest.raises(ClientError) as e:
        kinesis.delete_stream(StreamName="src")
    assert e.value.response["Error"]["Code"] == "ResourceInUseException"
    kinesis.delete_channel(ChannelARN=d["ChannelARN"])
    with pytest.raises(ClientError) as e:
        kinesis.describe_channel(ChannelARN=d["ChannelARN"])
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    kinesis.delete_stream(StreamName="src")


def test_json_records_are_delivered_as_gzip_json_lines_with_dead_letters(broker_factory, s3_url):
    b = broker_factory(buffer_bytes=400)
    kinesis = make_client(url=b.url)
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket="json-lake")
    on_demand(kinesis, "events")
    ch = create_channel(kinesis, "json", "events", "json-lake")
    wait_status(kinesis, ch["ChannelARN"], "ACTIVE")

    sent = [{"n": i, "pad": "x" * 40} for i in range(40)]
    for doc in sent:
        kinesis.put_record(StreamName="events", PartitionKey=f"k{doc['n']}", Data=json.dumps(doc).encode())
    kinesis.put_record(StreamName="events", PartitionKey="bad", Data=b"{not json")
    # Records under the size threshold are written once DataFreshnessInSeconds passes.
    b.advance_clock(301_000)

    def delivered():
        keys = [k for k in objects(s3, "json-lake") if k.startswith("kinesis-channel/")]
        docs = [json.loads(line) for k in keys for line in lines_of(s3, "json-lake", k)]
        return (keys, docs) if len(docs) >= len(sent) else None

    keys, docs = wait_for(delivered, "40 JSON records in S3")
    assert sorted(d["n"] for d in docs) == list(range(40)), "each record exactly once"
    for k in keys:
        # AWS's default template: kinesis-channel/NAME/ID/yyyy/MM/dd/HH/NAME-ID-yyyy-MM-dd-HH-mm…
        parts = k.split("/")
        assert parts[1] == "json" and parts[2] == ch["ChannelId"], k
        assert k.endswith(".json.gz"), k
    dead = wait_for(lambda: objects(s3, "json-lake", "errors/"), "a dead-letter object")
    errors = [json.loads(line) for k in dead for line in lines_of(s3, "json-lake", k)]
    assert len(errors) == 1
    assert errors[0]["errorCode"] == "InvalidJson"
    assert base64.b64decode(errors[0]["data"]) == b"{not json"
    assert errors[0]["partitionKey"] == "bad"


def test_byte_array_and_string_layouts(broker_factory, s3_url):
    b = broker_factory(buffer_bytes=1)
    kinesis = make_client(url=b.url)
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket="raw-lake")
    on_demand(kinesis, "raw")
    bin_ch = create_channel(kinesis, "bin", "raw", "raw-lake", fmt="BYTE_ARRAY", compression="NONE",
                            storage={"OutputKeyTemplate": "bytes/!{stream-name}/!{yyyy}!{extension}"})
    txt_ch = create_channel(kinesis, "txt", "raw", "raw-lake", fmt="STRING", compression="NONE",
                            storage={"OutputKeyTemplate": "text/!{channel-name}!{extension}"})
    wait_status(kinesis, bin_ch["ChannelARN"], "ACTIVE")
    wait_status(kinesis, txt_ch["ChannelARN"], "ACTIVE")
    payloads = [b"alpha", b"", b"gamma delta"]
    for i, p in enumerate(payloads):
        kinesis.put_record(StreamName="raw", PartitionKey=f"p{i}", Data=p)

    def read_bytes():
        keys = objects(s3, "raw-lake", "bytes/raw/")
        out = []
        for k in keys:
            assert k.endswith(".bin"), k
            body = s3.get_object(Bucket="raw-lake", Key=k)["Body"].read()
            while body:
                (n,) = struct.unpack(">I", body[:4])
                out.append(body[4:4 + n])
                body = body[4 + n:]
        return out if len(out) >= len(payloads) else None

    assert sorted(wait_for(read_bytes, "three BYTE_ARRAY records")) == sorted(payloads)

    def read_text():
        keys = objects(s3, "raw-lake", "text/txt")
        out = [line for k in keys for line in
               s3.get_object(Bucket="raw-lake", Key=k)["Body"].read().decode().split("\n")[:-1]]
        return out if len(out) >= len(payloads) else None

    assert sorted(wait_for(read_text, "three STRING records")) == sorted(p.decode() for p in payloads)


def test_objects_are_exactly_once_across_a_kill(broker_factory, s3_url):
    b = broker_factory(buffer_bytes=2000)
    s3 = s3_client(s3_url)
    total = 600
    numbered_records_behind_a_channel(b, s3, "crash", total)
    # Killed while objects are being written.
    wait_for(lambda: objects(s3, "crash-lake"), "a first object", pause=0.005)
    b.kill()
    b2 = broker_factory(buffer_bytes=2000)
    b2.advance_clock(301_000)

    def all_delivered():
        docs = numbers_in(s3, "crash-lake")
        return docs if len(set(docs)) >= total else None

    docs = wait_for(all_delivered, f"{total} records after the restart")
    # A retried object overwrote its own key: no record is in two objects.
    assert sorted(docs) == list(range(total))


def put_numbers(kinesis, stream, numbers, key=None):
    """Records {"n": i} for i in NUMBERS, 100 per PutRecords (throttled ones sent again)."""
    numbers = list(numbers)
    for start in range(0, len(numbers), 100):
        put_all(kinesis, stream, [{"PartitionKey": key or f"k{i}", "Data": json.dumps({"n": i, "pad": "y" * 30}).encode()}
                                  for i in numbers[start:start + 100]])


def test_a_resharded_stream_is_delivered_exactly_once(broker_factory, s3_url):
    # Parents before children, with objects built ahead of their upload (small objects: many
    # in flight at once, a parent's last one among them when its children start). The split
    # is the on-demand autoscaler's (SplitShard refuses ON_DEMAND streams, as on AWS).
    b = broker_factory(buffer_bytes=2000, extra_args=["--on-demand-scale-interval-ms", "300"])
    s3 = s3_client(s3_url)
    kinesis = make_client(url=b.url)
    numbered_records_behind_a_channel(b, s3, "split", 300)
    # One partition key far over a shard's write limit makes its shard hot.
    put_numbers(kinesis, "split", range(300, 1200), key="hot")
    wait_for(lambda: len(kinesis.list_shards(StreamName="split")["Shards"]) > 4, "the autoscaler's split")
    wait_active(kinesis, "split")
    put_numbers(kinesis, "split", range(1200, 1500))
    put_numbers(kinesis, "split", range(1500, 1600), key="hot")
    b.advance_clock(301_000)
    docs = wait_for(lambda: (lambda d: d if len(d) >= 1600 else None)(numbers_in(s3, "split-lake")),
                    "every record of the parents and the children")
    assert sorted(docs) == list(range(1600))


def test_a_backlog_is_delivered_without_waiting_for_new_records(broker_factory, s3_url):
    # A backlog with no appends to wake delivery (here: left by a broker whose objects were
    # never full, then restarted with a small object size): every full object must go out
    # at once, not one per shard per idle period (30 s).
    b = broker_factory(buffer_bytes=5 * 1024 * 1024)
    s3 = s3_client(s3_url)
    total = 600
    numbered_records_behind_a_channel(b, s3, "backlog", total)
    b.stop()
    assert objects(s3, "backlog-lake") == []
    b = broker_factory(buffer_bytes=2000)

    def full_objects():
        docs = numbers_in(s3, "backlog-lake")
        # The last object of each shard is partial and waits for its freshness (300 s).
        return docs if len(docs) >= total - 4 * 40 else None

    started = time.monotonic()
    docs = wait_for(full_objects, "every full object of the backlog", polls=400)
    assert time.monotonic() - started < 20, "the backlog went out at the pace of idle periods"
    assert len(set(docs)) == len(docs)
    b.advance_clock(301_000)
    docs = wait_for(lambda: (lambda d: d if len(d) >= total else None)(numbers_in(s3, "backlog-lake")),
                    "the partial objects once fresh enough")
    assert sorted(docs) == list(range(total))


def test_objects_the_store_refuses_go_to_the_dead_letter_bucket(broker_factory, s3_url):
    b = broker_factory(buffer_bytes=1)
    kinesis = make_client(url=b.url)
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket="dlq-lake")
    on_demand(kinesis, "refused")
    # The destination bucket does not exist: the store refuses every object.
    ch = create_channel(kinesis, "refused", "refused", "no-such-bucket",
                        DeadLetterQueueS3Configuration={"BucketARN": "arn:aws:s3:::dlq-lake",
                                                        "ExpectedBucketOwner": ACCOUNT,
                                                        "ErrorOutputPrefix": "failed/"})
    wait_status(kinesis, ch["ChannelARN"], "ACTIVE")
    kinesis.put_record(StreamName="refused", PartitionKey="a", Data=b'{"ok": 1}')
    keys = wait_for(lambda: objects(s3, "dlq-lake", "failed/"), "a dead-letter object", polls=600, pause=0.1)
    errors = [json.loads(line) for k in keys for line in lines_of(s3, "dlq-lake", k)]
    assert [e["errorCode"] for e in errors] == ["S3PutFailed"]
    assert "NoSuchBucket" in errors[0]["errorMessage"], errors[0]
    assert base64.b64decode(errors[0]["data"]) == b'{"ok": 1}'
    # The channel goes on.
    assert kinesis.describe_channel(ChannelARN=ch["ChannelARN"])["ChannelDescription"]["ChannelStatus"] == "ACTIVE"


def scrape(b):
    """The broker's /metrics as {series (name and labels): value}."""
    text = urllib.request.urlopen(f"{b.url}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def channel_series(metric, channel, stream):
    return f'kinesis_broker_channel_{metric}{{channel="{channel}",stream="{stream}",account="{ACCOUNT}"}}'


def test_zstd_objects_read_back_and_the_metrics_count_them(broker_factory, s3_url):
    b = broker_factory(buffer_bytes=600)
    kinesis = make_client(url=b.url)
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket="zstd-lake")
    on_demand(kinesis, "zs")
    ch = create_channel(kinesis, "zs", "zs", "zstd-lake", compression="ZSTD")
    assert ch["S3DestinationConfiguration"]["StorageConfiguration"]["CompressionType"] == "ZSTD"
    ch = wait_status(kinesis, ch["ChannelARN"], "ACTIVE")
    assert "ChannelStatusReason" not in ch

    sent = [{"n": i, "pad": "z" * 40} for i in range(50)]
    kinesis.put_records(StreamName="zs", Records=[
        {"PartitionKey": f"k{d['n']}", "Data": json.dumps(d).encode()} for d in sent])
    kinesis.put_record(StreamName="zs", PartitionKey="bad", Data=b"[oops")
    m = scrape(b)
    assert m[channel_series("lag_records", "zs", "zs")] > 0
    b.advance_clock(301_000)
    m = scrape(b)
    # The oldest undelivered record arrived at least the 301 s just passed ago.
    assert m[channel_series("lag_milliseconds", "zs", "zs")] >= 301_000 or \
        m[channel_series("lag_records", "zs", "zs")] == 0

    def delivered():
        keys = [k for k in objects(s3, "zstd-lake") if k.startswith("kinesis-channel/")]
        docs = [json.loads(line) for k in keys for line in lines_of(s3, "zstd-lake", k)]
        return (keys, docs) if len(docs) >= len(sent) else None

    keys, docs = wait_for(delivered, "50 JSON records in ZSTD objects")
    assert sorted(d["n"] for d in docs) == list(range(50)), "each record exactly once"
    for k in keys:
        assert k.endswith(".json.zst"), k
        body = s3.get_object(Bucket="zstd-lake", Key=k)["Body"].read()
        # A standard frame with its content checksum, which zstandard verifies.
        params = zstandard.get_frame_parameters(body)
        assert params.has_checksum, k
    dead = wait_for(lambda: objects(s3, "zstd-lake", "errors/"), "a dead-letter object")
    assert all(k.endswith(".json") for k in dead), dead

    # Once the channel is caught up, /metrics agrees with what the bucket holds.
    def caught_up():
        m = scrape(b)
        done = m[channel_series("lag_records", "zs", "zs")] == 0 and \
            m[channel_series("dead_letter_records_total", "zs", "zs")] == 1
        return m if done else None

    m = wait_for(caught_up, "the channel caught up in /metrics")
    stored = keys + dead
    sizes = sum(s3.head_object(Bucket="zstd-lake", Key=k)["ContentLength"] for k in stored)
    assert m[channel_series("lag_milliseconds", "zs", "zs")] == 0
    assert m[channel_series("records_total", "zs", "zs")] == len(sent)
    assert m[channel_series("objects_total", "zs", "zs")] == len(stored)
    assert m[channel_series("bytes_total", "zs", "zs")] == sizes
    assert m[channel_series("failed_writes_total", "zs", "zs")] == 0


def test_refused_writes_show_in_the_metrics(broker_factory, s3_url):
    b = broker_factory(buffer_bytes=1)
    kinesis = make_client(url=b.url)
    s3 = s3_client(s3_url)
    s3.create_bucket(Bucket="refused-dlq")
    on_demand(kinesis, "nowhere")
    ch = create_channel(kinesis, "nowhere", "nowhere", "missing-bucket", compression="ZSTD",
                        DeadLetterQueueS3Configuration={"BucketARN": "arn:aws:s3:::refused-dlq",
                                                        "ExpectedBucketOwner": ACCOUNT,
                                                        "ErrorOutputPrefix": "failed/"})
    wait_status(kinesis, ch["ChannelARN"], "ACTIVE")
    kinesis.put_record(StreamName="nowhere", PartitionKey="a", Data=b'{"ok": 1}')
    wait_for(lambda: objects(s3, "refused-dlq", "failed/"), "a dead-letter object", polls=600, pause=0.1)
    m = wait_for(lambda: (lambda m: m if m[channel_series("lag_records", "nowhere", "nowhere")] == 0 else None)(
        scrape(b)), "the refused record counted")
    # Five refusals in a row, then the record went to the dead letters and the channel on.
    assert m[channel_series("failed_writes_total", "nowhere", "nowhere")] == 5
    assert m[channel_series("dead_letter_records_total", "nowhere", "nowhere")] == 1
    assert m[channel_series("records_total", "nowhere", "nowhere")] == 0
