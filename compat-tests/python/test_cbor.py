"""application/x-amz-cbor-1.1 driven the way the AWS SDK for Java (v1, v2) and the KCL drive
it: SigV4-signed POSTs with `Content-Type: application/x-amz-cbor-1.1` and `X-Amz-Target`,
bodies as Jackson's CBORGenerator writes them (indefinite-length maps, blobs as byte strings,
timestamps as tag 1 holding epoch milliseconds), answers read with cbor2 keeping tag 1 as
it is (the Java SDK reads the integer inside as milliseconds).

Sources for the wire details: compat-tests/AWS_BEHAVIOUR.md, "CBOR".
"""

import http.client
import struct
import time
import urllib.parse

import cbor2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import MAX_POLLS, arn, endpoint, unique

CBOR = "application/x-amz-cbor-1.1"


def jackson(value):
    """CBOR as Jackson's CBORGenerator writes it: maps and lists with indefinite length
    (`bf … ff`, `9f … ff`); everything else as cbor2 writes it (shortest heads)."""
    if isinstance(value, dict):
        return b"\xbf" + b"".join(jackson(k) + jackson(v) for k, v in value.items()) + b"\xff"
    if isinstance(value, list):
        return b"\x9f" + b"".join(jackson(v) for v in value) + b"\xff"
    return cbor2.dumps(value)


def millis(ms):
    """A timestamp as the Java SDK writes it: `writeTag(1); writeNumber(epochMillis)`."""
    return cbor2.CBORTag(1, ms)


def loads(raw):
    # Keep tag 1 as a tag: cbor2 would read its number as seconds.
    return cbor2.loads(raw, semantic_decoders={1: lambda value, *_: cbor2.CBORTag(1, value)})


def signed_headers(target, body, content_type=CBOR):
    h = {"Content-Type": content_type, "X-Amz-Target": f"Kinesis_20131202.{target}"}
    req = AWSRequest(method="POST", url=endpoint() + "/", data=body, headers=h)
    SigV4Auth(Credentials("AKIDEXAMPLE", "dummy-secret"), "kinesis", "us-east-1").add_auth(req)
    return dict(req.headers.items())


def connection():
    url = urllib.parse.urlsplit(endpoint())
    return http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def call(op, payload=None, raw=None):
    """POSTs a CBOR request; returns (status, headers, decoded body or None)."""
    body = raw if raw is not None else jackson(payload or {})
    conn = connection()
    try:
        conn.request("POST", "/", body=body, headers=signed_headers(op, body))
        resp = conn.getresponse()
        data = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    return resp.status, headers, (loads(data) if data else None)


def throttled(status, body):
    """What an SDK retries: the per-account control-plane rates and shard throughput."""
    if status != 400 or not isinstance(body, dict):
        return False
    kind = body.get("__type", "")
    return kind == "ProvisionedThroughputExceededException" or (
        kind == "LimitExceededException" and "Rate exceeded" in str(body.get("message", ""))
    )


def ok(op, payload=None):
    # Retried like the SDKs' standard mode retries throttling: the whole suite shares one
    # broker, and CreateStream is limited to 5 per second per account.
    for attempt in range(10):
        status, headers, body = call(op, payload)
        if not throttled(status, body):
            break
        time.sleep(min(0.1 * 2**attempt, 1.0))
    assert status == 200, (op, status, body)
    assert headers.get("content-type") == CBOR, headers
    return body


def create_stream(shards=1):
    name = unique("cbor")
    assert ok("CreateStream", {"StreamName": name, "ShardCount": shards}) is None
    for _ in range(MAX_POLLS):
        d = ok("DescribeStream", {"StreamName": name})["StreamDescription"]
        if d["StreamStatus"] == "ACTIVE":
            return name, d
        time.sleep(0.025)
    raise AssertionError(f"stream {name} never became ACTIVE")


def test_describe_stream_has_tag_1_millis_and_shards():
    before = int(time.time() * 1000) - 5_000
    name, d = create_stream(2)
    assert d["StreamName"] == name and d["StreamARN"] == arn(name)
    ts = d["StreamCreationTimestamp"]
    assert isinstance(ts, cbor2.CBORTag) and ts.tag == 1 and isinstance(ts.value, int), ts
    assert before <= ts.value <= int(time.time() * 1000) + 5_000, "milliseconds, not seconds"
    assert [s["ShardId"] for s in d["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    assert d["HasMoreShards"] is False and d["RetentionPeriodHours"] == 24

    shards = ok("ListShards", {"StreamName": name})["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000000", "shardId-000000000001"]
    assert shards[0]["HashKeyRange"]["StartingHashKey"] == "0"
    # A ListShards filter with a tag-1 timestamp is read as milliseconds (all shards are
    # open at "now").
    filtered = ok(
        "ListShards",
        {"StreamName": name, "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": millis(int(time.time() * 1000))}},
    )["Shards"]
    assert len(filtered) == 2


def test_put_and_get_records_carry_byte_strings_and_tag_1_arrival_times():
    name, _ = create_stream(1)
    data = bytes(range(256)) * 3
    put = ok("PutRecord", {"StreamName": name, "Data": data, "PartitionKey": "a"})
    assert put["ShardId"] == "shardId-000000000000" and put["SequenceNumber"].isdigit()
    batch = ok(
        "PutRecords",
        {
            "StreamName": name,
            "Records": [
                {"Data": b"", "PartitionKey": "b"},
                {"Data": b"\x00\xff binary", "PartitionKey": "c", "ExplicitHashKey": "1"},
            ],
        },
    )
    assert batch["FailedRecordCount"] == 0 and len(batch["Records"]) == 2

    t0 = int(time.time() * 1000) - 60_000
    it = ok(
        "GetShardIterator",
        {
            "StreamName": name,
            "ShardId": "shardId-000000000000",
            "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": millis(t0),
        },
    )["ShardIterator"]
    got = ok("GetRecords", {"ShardIterator": it, "Limit": 10})
    records = got["Records"]
    assert [r["Data"] for r in records] == [data, b"", b"\x00\xff binary"]
    assert all(isinstance(r["Data"], bytes) for r in records), "blobs are byte strings"
    assert [r["PartitionKey"] for r in records] == ["a", "b", "c"]
    assert records[0]["SequenceNumber"] == put["SequenceNumber"]
    for r in records:
        ts = r["ApproximateArrivalTimestamp"]
        assert isinstance(ts, cbor2.CBORTag) and ts.tag == 1 and isinstance(ts.value, int), ts
        assert t0 <= ts.value <= int(time.time() * 1000) + 5_000
    assert isinstance(got["NextShardIterator"], str) and got["MillisBehindLatest"] == 0

    # A timestamp in the future is refused, in AWS's words, with the milliseconds as sent:
    # the tag-1 integer was read as milliseconds, not seconds.
    future = int(time.time() * 1000) + 600_000
    status, _, body = call(
        "GetShardIterator",
        {
            "StreamName": name,
            "ShardId": "shardId-000000000000",
            "ShardIteratorType": "AT_TIMESTAMP",
            "Timestamp": millis(future),
        },
    )
    assert status == 400 and body["__type"] == "InvalidArgumentException", body
    assert f"timestampInMillis: {future}," in body["message"], body


def test_errors_are_cbor_maps_with_type_and_message():
    status, headers, body = call("DescribeStream", {"StreamName": unique("missing")})
    assert status == 400 and headers.get("content-type") == CBOR
    assert body["__type"] == "ResourceNotFoundException"
    assert "not found" in body["message"]

    status, _, body = call("PutRecord", {"StreamName": True, "PartitionKey": "a", "Data": b""})
    assert (status, body) == (
        400,
        {"__type": "SerializationException", "Message": "class java.lang.Boolean can not be converted to an String"},
    )

    status, _, body = call("ListShards", {"StreamName": "x", "MaxResults": 0})
    assert status == 400 and body["__type"] == "ValidationException"

    # Not CBOR, truncated, trailing bytes, a nesting bomb: SerializationException, no message.
    good = jackson({"StreamName": "s"})
    for raw in [b"{}", good[:-1], good + b"\x00", b"\xa1\x61a" + b"\x81" * 10_000 + b"\x00"]:
        status, headers, body = call("DescribeStream", raw=raw)
        assert (status, body) == (400, {"__type": "SerializationException"}), raw[:16]
        assert headers.get("content-type") == CBOR

    status, _, body = call("NoSuchOperation", {})
    assert (status, body) == (400, {"__type": "UnknownOperationException"})


def read_messages(resp):
    """Yields (headers, payload) of each event-stream message of a streaming answer."""
    while True:
        prelude = resp.read(12)
        if len(prelude) < 12:
            return
        total, headers_len, _ = struct.unpack(">III", prelude)
        rest = resp.read(total - 12)
        raw_headers, payload = rest[:headers_len], rest[headers_len:-4]
        headers, i = {}, 0
        while i < len(raw_headers):
            n = raw_headers[i]
            key = raw_headers[i + 1 : i + 1 + n].decode()
            i += 1 + n
            assert raw_headers[i] == 7, "string header"
            (vlen,) = struct.unpack(">H", raw_headers[i + 1 : i + 3])
            headers[key] = raw_headers[i + 3 : i + 3 + vlen].decode()
            i += 3 + vlen
        yield headers, payload


def test_subscribe_to_shard_events_are_cbor():
    name, d = create_stream(1)
    consumer = ok("RegisterStreamConsumer", {"StreamARN": d["StreamARN"], "ConsumerName": "c"})["Consumer"]
    assert consumer["ConsumerCreationTimestamp"].tag == 1
    for _ in range(MAX_POLLS):
        c = ok("DescribeStreamConsumer", {"ConsumerARN": consumer["ConsumerARN"]})["ConsumerDescription"]
        if c["ConsumerStatus"] == "ACTIVE":
            break
        time.sleep(0.025)
    else:
        raise AssertionError("consumer never became ACTIVE")
    ok("PutRecord", {"StreamName": name, "Data": b"\x01\x02fan-out", "PartitionKey": "p"})

    body = jackson(
        {
            "ConsumerARN": consumer["ConsumerARN"],
            "ShardId": "shardId-000000000000",
            "StartingPosition": {"Type": "TRIM_HORIZON"},
        }
    )
    conn = connection()
    try:
        conn.request("POST", "/", body=body, headers=signed_headers("SubscribeToShard", body))
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("content-type") == "application/vnd.amazon.eventstream"
        messages = read_messages(resp)
        headers, payload = next(messages)
        assert headers[":event-type"] == "initial-response" and headers[":content-type"] == CBOR
        assert loads(payload) == {}
        for headers, payload in messages:
            assert headers[":message-type"] == "event", (headers, payload)
            assert headers[":event-type"] == "SubscribeToShardEvent"
            assert headers[":content-type"] == CBOR
            event = loads(payload)
            assert isinstance(event["MillisBehindLatest"], int)
            assert isinstance(event["ContinuationSequenceNumber"], str)
            if event["Records"]:
                (record,) = event["Records"]
                assert record["Data"] == b"\x01\x02fan-out"
                assert record["ApproximateArrivalTimestamp"].tag == 1
                break
        else:
            raise AssertionError("the subscription ended without the record")
    finally:
        conn.close()
