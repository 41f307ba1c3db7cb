"""boto3 against the broker: every operation of issue 3, routing, ordering, iterator types,
pagination, bulk reads and AWS's exact errors (compat-tests/AWS_BEHAVIOUR.md)."""

import base64
import datetime
import os
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import (
    ACCOUNT,
    REGION,
    arn,
    assert_error,
    assert_error_prefix,
    endpoint,
    expected_ranges,
    expected_shard,
    iterator,
    make_client,
    md5_hash_key,
    put_all,
    read_shard,
    read_to_tip,
    shard_id,
    unique,
    wait_active,
    wait_deleted,
)

TWO_POW_128 = 2**128


# ---- streams ---------------------------------------------------------------------------


def test_describe_stream_gives_arn_status_shard_ids_and_aws_hash_ranges(kinesis, make_stream):
    name = make_stream(3)
    d = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert d["StreamName"] == name
    assert d["StreamARN"] == arn(name)
    assert d["StreamStatus"] == "ACTIVE"
    assert d["HasMoreShards"] is False
    assert d["RetentionPeriodHours"] == 24
    assert d["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    got = [(s["ShardId"], s["HashKeyRange"]["StartingHashKey"], s["HashKeyRange"]["EndingHashKey"]) for s in d["Shards"]]
    assert got == [
        ("shardId-000000000000", "0", "113427455640312821154458202477256070484"),
        ("shardId-000000000001", "113427455640312821154458202477256070485", "226854911280625642308916404954512140969"),
        ("shardId-000000000002", "226854911280625642308916404954512140970", "340282366920938463463374607431768211455"),
    ]
    for s in d["Shards"]:
        assert s["SequenceNumberRange"]["StartingSequenceNumber"].isdigit()
        assert "EndingSequenceNumber" not in s["SequenceNumberRange"]


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_hash_ranges_split_the_key_space_evenly(kinesis, make_stream, n):
    name = make_stream(n)
    shards = kinesis.list_shards(StreamName=name)["Shards"]
    got = [(s["ShardId"], int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards]
    assert got == [(shard_id(i), lo, hi) for i, (lo, hi) in enumerate(expected_ranges(n))]


def test_describe_stream_summary_counts_open_shards(kinesis, make_stream):
    name = make_stream(4)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert (s["StreamName"], s["StreamARN"], s["StreamStatus"], s["OpenShardCount"]) == (name, arn(name), "ACTIVE", 4)
    assert s["RetentionPeriodHours"] == 24
    assert isinstance(s["StreamCreationTimestamp"], datetime.datetime)


def test_stream_exists_waiter_and_stream_not_exists_waiter_work(kinesis):
    name = unique("waiter")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    kinesis.delete_stream(StreamName=name)
    kinesis.get_waiter("stream_not_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def test_on_demand_stream_has_four_shards(kinesis):
    name = unique("ondemand")
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, name)
    s = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 4
    assert s["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    kinesis.delete_stream(StreamName=name)


def test_creating_an_existing_stream_is_resource_in_use(kinesis, make_stream):
    name = make_stream(1)
    with pytest.raises(ClientError) as e:
        kinesis.create_stream(StreamName=name, ShardCount=1)
    assert_error(e, "ResourceInUseException", f"Stream {name} under account {ACCOUNT} already exists.")


@pytest.mark.parametrize("op", ["describe_stream", "describe_stream_summary", "delete_stream", "list_shards"])
def test_unknown_stream_is_resource_not_found(kinesis, op):
    name = unique("missing")
    with pytest.raises(ClientError) as e:
        getattr(kinesis, op)(StreamName=name)
    assert_error(e, "ResourceNotFoundException", f"Stream {name} under account {ACCOUNT} not found.")


def test_deleted_stream_is_gone_and_its_name_reusable(kinesis):
    name = unique("del")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    wait_active(kinesis, name)
    kinesis.delete_stream(StreamName=name)
    wait_deleted(kinesis, name)
    assert name not in kinesis.list_streams(Limit=10000)["StreamNames"]
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    assert len(kinesis.list_shards(StreamName=name)["Shards"]) == 1
    kinesis.delete_stream(StreamName=name)


def test_list_streams_pages_in_name_order(kinesis):
    # Other tests create streams concurrently only in other processes, so look at our own names.
    prefix = unique("ls")
    names = [f"{prefix}-{c}" for c in "dacbe"]
    for n in names:
        kinesis.create_stream(StreamName=n, ShardCount=1)
    for n in names:
        wait_active(kinesis, n)
    try:
        everything = kinesis.list_streams(Limit=10000)
        mine = [n for n in everything["StreamNames"] if n.startswith(prefix)]
        assert mine == sorted(names)
        assert everything["StreamNames"] == sorted(everything["StreamNames"])
        summaries = {s["StreamName"]: s for s in everything["StreamSummaries"]}
        for n in names:
            assert summaries[n]["StreamARN"] == arn(n)
            assert summaries[n]["StreamStatus"] == "ACTIVE"

        # ExclusiveStartStreamName + Limit.
        page = kinesis.list_streams(Limit=2, ExclusiveStartStreamName=f"{prefix}-a")
        assert page["StreamNames"] == [f"{prefix}-b", f"{prefix}-c"]
        assert page["HasMoreStreams"] is True

        # boto3's paginator follows NextToken.
        seen = []
        for p in kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}):
            assert len(p["StreamNames"]) <= 2
            seen.extend(p["StreamNames"])
        assert [n for n in seen if n.startswith(prefix)] == sorted(names)
        assert len(seen) == len(set(seen)), "paginator saw a stream twice"
    finally:
        for n in names:
            kinesis.delete_stream(StreamName=n)


def test_describe_stream_pages_shards(kinesis, make_stream):
    name = make_stream(5)
    d = kinesis.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == [shard_id(0), shard_id(1)]
    assert d["HasMoreShards"] is True
    d = kinesis.describe_stream(StreamName=name, Limit=2, ExclusiveStartShardId=shard_id(1))["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == [shard_id(2), shard_id(3)]
    d = kinesis.describe_stream(StreamName=name, ExclusiveStartShardId=shard_id(3))["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == [shard_id(4)]
    assert d["HasMoreShards"] is False
    # The paginator pages DescribeStream too.
    pages = list(kinesis.get_paginator("describe_stream").paginate(StreamName=name, PaginationConfig={"PageSize": 2}))
    ids = [s["ShardId"] for p in pages for s in p["StreamDescription"]["Shards"]]
    assert ids == [shard_id(i) for i in range(5)]


def test_list_shards_pages_with_next_token_and_exclusive_start(kinesis, make_stream):
    name = make_stream(5)
    ids = []
    out = kinesis.list_shards(StreamName=name, MaxResults=2)
    for _ in range(10):
        assert len(out["Shards"]) <= 2
        ids.extend(s["ShardId"] for s in out["Shards"])
        if "NextToken" not in out:
            break
        # AWS takes the NextToken alone: it names the stream.
        out = kinesis.list_shards(NextToken=out["NextToken"], MaxResults=2)
    assert ids == [shard_id(i) for i in range(5)]
    out = kinesis.list_shards(StreamName=name, ExclusiveStartShardId=shard_id(2))
    assert [s["ShardId"] for s in out["Shards"]] == [shard_id(3), shard_id(4)]
    assert "NextToken" not in out


def test_boto3_list_shards_paginator_fails_on_page_two_as_against_aws(kinesis, make_stream):
    """botocore's ListShards paginator resends StreamName with NextToken, which AWS rejects
    (boto/botocore#2009); the broker must answer the same way, not paper over it."""
    name = make_stream(3)
    pages = kinesis.get_paginator("list_shards").paginate(StreamName=name, PaginationConfig={"PageSize": 2})
    with pytest.raises(ClientError) as e:
        list(pages)
    assert_error(e, "InvalidArgumentException", "NextToken and StreamName cannot be provided together.")


def test_list_shards_next_token_with_stream_name_is_invalid(kinesis, make_stream):
    name = make_stream(3)
    token = kinesis.list_shards(StreamName=name, MaxResults=1)["NextToken"]
    with pytest.raises(ClientError) as e:
        kinesis.list_shards(StreamName=name, NextToken=token)
    assert_error(e, "InvalidArgumentException", "NextToken and StreamName cannot be provided together.")


def test_list_shards_without_stream_or_token_is_invalid(kinesis):
    with pytest.raises(ClientError) as e:
        kinesis.list_shards()
    assert_error(e, "InvalidArgumentException", "Either NextToken or StreamName should be provided.")


def test_stream_arn_works_in_place_of_stream_name(kinesis, make_stream):
    name = make_stream(2)
    a = arn(name)
    assert kinesis.describe_stream_summary(StreamARN=a)["StreamDescriptionSummary"]["StreamName"] == name
    assert len(kinesis.list_shards(StreamARN=a)["Shards"]) == 2
    put = kinesis.put_record(StreamARN=a, PartitionKey="k", Data=b"by-arn")
    it = kinesis.get_shard_iterator(StreamARN=a, ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in read_to_tip(kinesis, it)] == [b"by-arn"]


def test_streams_are_scoped_by_account_and_region(kinesis, make_stream):
    name = make_stream(1)
    other = make_client(access_key="123456789012")
    with pytest.raises(ClientError) as e:
        other.describe_stream_summary(StreamName=name)
    assert_error(e, "ResourceNotFoundException", f"Stream {name} under account 123456789012 not found.")
    other.create_stream(StreamName=name, ShardCount=2)
    wait_active(other, name)
    s = other.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert s["StreamARN"] == arn(name, account="123456789012")
    assert s["OpenShardCount"] == 2
    other.delete_stream(StreamName=name)
    west = make_client(region="us-west-2")
    assert name not in west.list_streams(Limit=10000)["StreamNames"]


def test_aws_endpoint_url_kinesis_environment_variable_is_honoured(make_stream, monkeypatch):
    name = make_stream(1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", endpoint())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    client = boto3.session.Session().client("kinesis", config=Config(retries={"total_max_attempts": 10, "mode": "standard"}))
    assert client.meta.endpoint_url == endpoint()
    assert client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamName"] == name


# ---- writes and routing ----------------------------------------------------------------


def test_put_record_routes_by_md5_of_the_partition_key(kinesis, make_stream):
    name = make_stream(4)
    for i in range(40):
        pk = f"key-{i}"
        out = kinesis.put_record(StreamName=name, PartitionKey=pk, Data=pk.encode())
        assert out["ShardId"] == shard_id(expected_shard(md5_hash_key(pk), 4)), pk
        assert out["SequenceNumber"].isdigit()
    name3 = make_stream(3)
    for pk, shard in [("a", 0), ("b", 1), ("e", 2), ("f", 1)]:
        assert kinesis.put_record(StreamName=name3, PartitionKey=pk, Data=b"")["ShardId"] == shard_id(shard)


def test_explicit_hash_key_routes_at_range_boundaries(kinesis, make_stream):
    name = make_stream(3)
    r = expected_ranges(3)
    cases = [(0, 0), (r[0][1], 0), (r[1][0], 1), (r[1][1], 1), (r[2][0], 2), (TWO_POW_128 - 1, 2)]
    for h, shard in cases:
        out = kinesis.put_record(StreamName=name, PartitionKey="a", ExplicitHashKey=str(h), Data=b"x")
        assert out["ShardId"] == shard_id(shard), h
    out = kinesis.put_records(
        StreamName=name, Records=[{"PartitionKey": "a", "Data": b"y", "ExplicitHashKey": str(h)} for h, _ in cases]
    )
    assert [x["ShardId"] for x in out["Records"]] == [shard_id(s) for _, s in cases]


def test_put_records_answers_in_request_order_and_reads_back_where_it_said(kinesis, make_stream):
    name = make_stream(4)
    keys = [f"pk{i}" for i in range(150)]
    out = kinesis.put_records(StreamName=name, Records=[{"PartitionKey": k, "Data": k.encode()} for k in keys])
    assert out["FailedRecordCount"] == 0
    assert len(out["Records"]) == len(keys)
    for k, r in zip(keys, out["Records"]):
        assert r["ShardId"] == shard_id(expected_shard(md5_hash_key(k), 4)), k
    for s in range(4):
        want = [(k, r["SequenceNumber"]) for k, r in zip(keys, out["Records"]) if r["ShardId"] == shard_id(s)]
        got = [(x["PartitionKey"], x["SequenceNumber"]) for x in read_shard(kinesis, name, shard_id(s))]
        assert got == want, s


def test_sequence_numbers_strictly_increase_per_shard(kinesis, make_stream):
    name = make_stream(2)
    last = {}
    for round_ in range(15):
        outs = [kinesis.put_record(StreamName=name, PartitionKey=f"r{round_}", Data=b"z")]
        outs += kinesis.put_records(StreamName=name, Records=[{"PartitionKey": f"r{round_}-{i}", "Data": b"z"} for i in range(8)])["Records"]
        for o in outs:
            s = int(o["SequenceNumber"])
            assert s > last.get(o["ShardId"], -1), (o, last)
            last[o["ShardId"]] = s


def test_same_key_records_read_back_in_write_order(kinesis, make_stream):
    name = make_stream(3)
    for i in range(20):
        kinesis.put_record(StreamName=name, PartitionKey="user-7", Data=str(i).encode())
    kinesis.put_records(StreamName=name, Records=[{"PartitionKey": "user-7", "Data": str(i).encode()} for i in range(20, 40)])
    recs = read_shard(kinesis, name, shard_id(expected_shard(md5_hash_key("user-7"), 3)))
    assert [int(r["Data"]) for r in recs] == list(range(40))


def test_get_records_returns_bytes_key_sequence_and_arrival_time(kinesis, make_stream):
    name = make_stream(1)
    payload = bytes(range(256))
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
    put = kinesis.put_record(StreamName=name, PartitionKey="pk", Data=payload)
    kinesis.put_record(StreamName=name, PartitionKey="empty", Data=b"")
    after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    recs = read_shard(kinesis, name, shard_id(0))
    assert [(r["Data"], r["PartitionKey"]) for r in recs] == [(payload, "pk"), (b"", "empty")]
    assert recs[0]["SequenceNumber"] == put["SequenceNumber"]
    for r in recs:
        assert before <= r["ApproximateArrivalTimestamp"] <= after


# ---- iterators ---------------------------------------------------------------------------


def test_trim_horizon_and_latest(kinesis, make_stream):
    name = make_stream(1)
    empty = kinesis.get_records(ShardIterator=iterator(kinesis, name, shard_id(0), "TRIM_HORIZON"))
    assert empty["Records"] == [] and empty["MillisBehindLatest"] == 0
    cont = empty["NextShardIterator"]
    for i in range(3):
        kinesis.put_record(StreamName=name, PartitionKey="k", Data=f"old{i}".encode())
    latest = iterator(kinesis, name, shard_id(0), "LATEST")
    assert kinesis.get_records(ShardIterator=latest)["Records"] == []
    for i in range(2):
        kinesis.put_record(StreamName=name, PartitionKey="k", Data=f"new{i}".encode())
    assert [r["Data"] for r in read_to_tip(kinesis, latest)] == [b"new0", b"new1"]
    assert [r["Data"] for r in read_shard(kinesis, name, shard_id(0))] == [b"old0", b"old1", b"old2", b"new0", b"new1"]
    assert len(read_to_tip(kinesis, cont)) == 5


def test_at_and_after_sequence_number(kinesis, make_stream):
    name = make_stream(2)
    shard = shard_id(expected_shard(md5_hash_key("same"), 2))
    seqs = [kinesis.put_record(StreamName=name, PartitionKey="same", Data=f"r{i}".encode())["SequenceNumber"] for i in range(5)]
    for k in range(5):
        at = iterator(kinesis, name, shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[k])
        assert [r["SequenceNumber"] for r in read_to_tip(kinesis, at)] == seqs[k:]
        after = iterator(kinesis, name, shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[k])
        assert [r["SequenceNumber"] for r in read_to_tip(kinesis, after)] == seqs[k + 1 :]


def test_at_timestamp(kinesis, make_stream):
    name = make_stream(1)
    for i in range(4):
        kinesis.put_record(StreamName=name, PartitionKey="k", Data=f"a{i}".encode())
        time.sleep(0.005)  # distinct arrival times; nothing is asserted about durations
    allrecs = read_shard(kinesis, name, shard_id(0))
    arrivals = [r["ApproximateArrivalTimestamp"] for r in allrecs]
    for k, ts in enumerate(arrivals):
        first = next(i for i, a in enumerate(arrivals) if a >= ts)
        it = iterator(kinesis, name, shard_id(0), "AT_TIMESTAMP", Timestamp=ts)
        assert [r["SequenceNumber"] for r in read_to_tip(kinesis, it)] == [r["SequenceNumber"] for r in allrecs[first:]], k
    it = iterator(kinesis, name, shard_id(0), "AT_TIMESTAMP", Timestamp=arrivals[0] - datetime.timedelta(minutes=1))
    assert len(read_to_tip(kinesis, it)) == len(allrecs)


def test_get_records_limit_pages_and_iterators_are_reusable(kinesis, make_stream):
    name = make_stream(1)
    kinesis.put_records(StreamName=name, Records=[{"PartitionKey": "k", "Data": bytes([i])} for i in range(25)])
    it = iterator(kinesis, name, shard_id(0), "TRIM_HORIZON")
    first = kinesis.get_records(ShardIterator=it, Limit=10)
    assert [r["Data"][0] for r in first["Records"]] == list(range(10))
    assert [r["Data"][0] for r in kinesis.get_records(ShardIterator=it, Limit=3)["Records"]] == [0, 1, 2]
    rest = read_to_tip(kinesis, first["NextShardIterator"], limit=7)
    assert [r["Data"][0] for r in rest] == list(range(10, 25))


def test_five_thousand_records_over_four_shards_read_back_exactly_once_in_order(kinesis, make_stream):
    name = make_stream(4)
    acked = []
    for b in range(10):
        recs = [{"PartitionKey": f"c-{(b * 500 + j) % 997}", "Data": f"record-{b * 500 + j}".encode()} for j in range(500)]
        results = put_all(kinesis, name, recs)
        acked += [(r["PartitionKey"], r["Data"], o["ShardId"], int(o["SequenceNumber"])) for r, o in zip(recs, results)]
    seen = set()
    for s in range(4):
        it = iterator(kinesis, name, shard_id(s), "TRIM_HORIZON")
        got = [(r["PartitionKey"], r["Data"], shard_id(s), int(r["SequenceNumber"])) for r in read_to_tip(kinesis, it, limit=400)]
        want = sorted((a for a in acked if a[2] == shard_id(s)), key=lambda a: a[3])
        assert got == want, f"shard {s}"
        for pk, data, _, _ in got:
            assert shard_id(expected_shard(md5_hash_key(pk), 4)) == shard_id(s)
            assert data not in seen
            seen.add(data)
    assert len(seen) == 5000


# ---- errors --------------------------------------------------------------------------------


def test_writes_to_unknown_stream_are_not_found(kinesis):
    name = unique("ghost")
    with pytest.raises(ClientError) as e:
        kinesis.put_record(StreamName=name, PartitionKey="a", Data=b"x")
    assert_error(e, "ResourceNotFoundException", f"Stream {name} under account {ACCOUNT} not found.")
    with pytest.raises(ClientError) as e:
        kinesis.put_records(StreamName=name, Records=[{"PartitionKey": "a", "Data": b"x"}])
    assert_error(e, "ResourceNotFoundException", f"Stream {name} under account {ACCOUNT} not found.")


def test_explicit_hash_key_out_of_range(kinesis, make_stream):
    name = make_stream(1)
    msg = f"Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {TWO_POW_128}"
    with pytest.raises(ClientError) as e:
        kinesis.put_record(StreamName=name, PartitionKey="a", ExplicitHashKey=str(TWO_POW_128), Data=b"x")
    assert_error(e, "InvalidArgumentException", msg)
    with pytest.raises(ClientError) as e:
        kinesis.put_records(
            StreamName=name,
            Records=[{"PartitionKey": "a", "Data": b"ok"}, {"PartitionKey": "a", "Data": b"x", "ExplicitHashKey": str(TWO_POW_128)}],
        )
    assert_error(e, "InvalidArgumentException", msg)
    assert read_shard(kinesis, name, shard_id(0)) == []


def test_get_shard_iterator_errors(kinesis, make_stream):
    name = make_stream(2)
    ghost = unique("ghost")
    with pytest.raises(ClientError) as e:
        iterator(kinesis, ghost, shard_id(0), "TRIM_HORIZON")
    assert_error(e, "ResourceNotFoundException", f"Shard shardId-000000000000 in stream {ghost} under account {ACCOUNT} does not exist")
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, "shardId-000000000007", "LATEST")
    assert_error(e, "ResourceNotFoundException", f"Shard shardId-000000000007 in stream {name} under account {ACCOUNT} does not exist")
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, "ABKLFD8", "LATEST")
    assert_error(e, "ResourceNotFoundException", f"Could not find shard ABKLFD8 in stream {name} under account {ACCOUNT}.")

    seq1 = kinesis.put_record(StreamName=name, PartitionKey="a", ExplicitHashKey=str(TWO_POW_128 - 1), Data=b"x")["SequenceNumber"]
    both = (
        "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or "
        "(2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. "
    )
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, shard_id(0), "AT_SEQUENCE_NUMBER")
    assert_error(e, "InvalidArgumentException", both + "Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber.")
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, shard_id(1), "LATEST", StartingSequenceNumber=seq1)
    assert_error(e, "InvalidArgumentException", both + "Request specified LATEST and also a StartingSequenceNumber.")
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, shard_id(0), "AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq1)
    assert_error(
        e,
        "InvalidArgumentException",
        "Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used in a call to a shard with shardId-000000000000",
    )
    huge = "9" * 60
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, shard_id(0), "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=huge)
    assert_error(
        e,
        "InvalidArgumentException",
        f"StartingSequenceNumber {huge} used in GetShardIterator on shard shardId-000000000000 in stream {name} under account {ACCOUNT} is invalid.",
    )
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, shard_id(0), "AT_TIMESTAMP")
    assert_error(
        e,
        "InvalidArgumentException",
        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.",
    )
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    future = future.replace(microsecond=(future.microsecond // 1000) * 1000)
    with pytest.raises(ClientError) as e:
        iterator(kinesis, name, shard_id(0), "AT_TIMESTAMP", Timestamp=future)
    ms = int(future.timestamp() * 1000 + 0.5)
    assert_error_prefix(
        e,
        "InvalidArgumentException",
        f"The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {ms}, currentTimestampInMillis: ",
    )


def test_bad_shard_iterators(kinesis, make_stream):
    name = make_stream(1)
    with pytest.raises(ClientError) as e:
        kinesis.get_records(ShardIterator="not-an-iterator")
    assert_error(e, "InvalidArgumentException", "Invalid ShardIterator.")
    it = iterator(kinesis, name, shard_id(0), "TRIM_HORIZON")
    mid = len(it) // 2
    altered = it[:mid] + ("B" if it[mid] == "A" else "A") + it[mid + 1 :]
    with pytest.raises(ClientError) as e:
        kinesis.get_records(ShardIterator=altered)
    assert_error(e, "InvalidArgumentException", "Invalid ShardIterator.")
    kinesis.delete_stream(StreamName=name)
    wait_deleted(kinesis, name)
    with pytest.raises(ClientError) as e:
        kinesis.get_records(ShardIterator=it)
    assert_error(e, "ResourceNotFoundException", f"Shard shardId-000000000000 in stream {name} under account {ACCOUNT} does not exist")


def test_validation_errors_reach_the_broker_and_use_aws_wording(unvalidated, make_stream):
    long = "a" * 129
    with pytest.raises(ClientError) as e:
        unvalidated.create_stream(StreamName=long, ShardCount=1)
    assert_error(
        e,
        "ValidationException",
        f"1 validation error detected: Value '{long}' at 'streamName' failed to satisfy constraint: Member must have length less than or equal to 128",
    )
    with pytest.raises(ClientError) as e:
        unvalidated.create_stream(StreamName=unique("zero"), ShardCount=0)
    assert_error(
        e,
        "ValidationException",
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
    )
    with pytest.raises(ClientError) as e:
        unvalidated.list_streams(Limit=0)
    assert_error(
        e,
        "ValidationException",
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
    )
    name = make_stream(1)
    it = iterator(unvalidated, name, shard_id(0), "TRIM_HORIZON")
    with pytest.raises(ClientError) as e:
        unvalidated.get_records(ShardIterator=it, Limit=10001)
    assert_error(
        e,
        "ValidationException",
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000",
    )
    pk = "k" * 257
    with pytest.raises(ClientError) as e:
        unvalidated.put_record(StreamName=name, PartitionKey=pk, Data=b"x")
    assert_error(
        e,
        "ValidationException",
        f"1 validation error detected: Value '{pk}' at 'partitionKey' failed to satisfy constraint: Member must have length less than or equal to 256",
    )
    with pytest.raises(ClientError) as e:
        unvalidated.get_shard_iterator(StreamName=name, ShardId=shard_id(0), ShardIteratorType="SIDEWAYS")
    assert_error(
        e,
        "ValidationException",
        "1 validation error detected: Value 'SIDEWAYS' at 'shardIteratorType' failed to satisfy constraint: "
        "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]",
    )
    with pytest.raises(ClientError) as e:
        unvalidated.put_records(StreamName=name, Records=[{"PartitionKey": "k", "Data": b"x"}] * 501)
    msg = e.value.response["Error"]["Message"]
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert msg.startswith("1 validation error detected: Value '"), msg
    assert msg.endswith("' at 'records' failed to satisfy constraint: Member must have length less than or equal to 500"), msg


def test_record_size_limits(kinesis, make_stream):
    name = make_stream(1)
    kinesis.put_record(StreamName=name, PartitionKey="p", Data=b"\x07" * (1024 * 1024 - 1))
    with pytest.raises(ClientError) as e:
        kinesis.put_record(StreamName=name, PartitionKey="p", Data=b"\x07" * (1024 * 1024))
    assert e.value.response["Error"]["Code"] in ("ValidationException", "InvalidArgumentException")
    big = b"\x01" * (1024 * 1024 - 8)
    with pytest.raises(ClientError) as e:
        kinesis.put_records(StreamName=name, Records=[{"PartitionKey": f"k{i}", "Data": big} for i in range(11)])
    assert_error_prefix(e, "InvalidArgumentException", "Records size exceeds ")
    assert len(read_shard(kinesis, name, shard_id(0))) == 1


def test_base64_of_data_on_the_wire_round_trips(kinesis, make_stream):
    """boto3 base64-encodes Data; the broker must decode and re-encode it exactly."""
    name = make_stream(1)
    odd = [b"", b"a", b"ab", b"abc", base64.b64decode("+/+/"), bytes(range(255, -1, -1))]
    for d in odd:
        kinesis.put_record(StreamName=name, PartitionKey="k", Data=d)
    assert [r["Data"] for r in read_shard(kinesis, name, shard_id(0))] == odd
