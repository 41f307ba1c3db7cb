"""UpdateStreamRecordDistributionStrategy seen from boto3: AUTO spreads records evenly over
an on-demand stream's shards whatever keys producers send (and lets them omit the key),
USER_PARTITION_KEY routes by key again; provisioned streams refuse the setting; it survives
a restart of the broker."""

import collections
import os
import signal
import tempfile

import pytest
from botocore.exceptions import ClientError

from conftest import (
    arn,
    assert_error,
    assert_error_prefix,
    expected_shard,
    md5_hash_key,
    put_all,
    read_shard,
    shard_id,
    unique,
    wait_active,
)
from test_persistence import Broker


def create_on_demand(client, prefix="auto"):
    name = unique(prefix)
    client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(client, name)
    return name


def strategy(client, name):
    return client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"].get(
        "RecordDistributionStrategy"
    )


def set_strategy(client, name, value):
    client.update_stream_record_distribution_strategy(StreamARN=arn(name), RecordDistributionStrategy=value)


def spread(client, name, n):
    """Writes n records with one partition key and an explicit hash key of shard 0."""
    records = [{"Data": f"r{i}".encode(), "PartitionKey": "same-key", "ExplicitHashKey": "0"} for i in range(n)]
    return collections.Counter(r["ShardId"] for r in put_all(client, name, records))


def test_auto_spreads_evenly_ignoring_keys_and_switching_back_routes_by_key(kinesis):
    name = create_on_demand(kinesis)
    try:
        assert strategy(kinesis, name) == "USER_PARTITION_KEY"
        set_strategy(kinesis, name, "AUTO")
        assert strategy(kinesis, name) == "AUTO"
        assert spread(kinesis, name, 400) == {shard_id(i): 100 for i in range(4)}

        keyless = collections.Counter(
            kinesis.put_record(StreamName=name, Data=f"keyless{i}".encode())["ShardId"] for i in range(8)
        )
        assert keyless == {shard_id(i): 2 for i in range(4)}
        out = kinesis.put_records(StreamName=name, Records=[{"Data": b"no key in a batch"}])
        assert out["FailedRecordCount"] == 0
        read = [r for i in range(4) for r in read_shard(kinesis, name, shard_id(i)) if r["Data"].startswith(b"keyless")]
        assert len(read) == 8 and all(r["PartitionKey"] == "" for r in read)

        seq = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")["SequenceNumber"]
        with pytest.raises(ClientError) as e:
            kinesis.put_record(StreamName=name, Data=b"y", PartitionKey="k", SequenceNumberForOrdering=seq)
        assert_error_prefix(e, "InvalidArgumentException", "SequenceNumberForOrdering cannot be used")

        set_strategy(kinesis, name, "USER_PARTITION_KEY")
        assert strategy(kinesis, name) == "USER_PARTITION_KEY"
        records = [{"Data": f"k{i}".encode(), "PartitionKey": "same-key"} for i in range(40)]
        shards = {r["ShardId"] for r in put_all(kinesis, name, records)}
        assert shards == {shard_id(expected_shard(md5_hash_key("same-key"), 4))}
        with pytest.raises(ClientError) as e:
            kinesis.put_record(StreamName=name, Data=b"no key")
        assert_error(
            e,
            "ValidationException",
            "1 validation error detected: Value null at 'partitionKey' failed to satisfy constraint: "
            "Member must not be null",
        )
    finally:
        kinesis.delete_stream(StreamName=name)


def test_errors_provisioned_stream_bad_value_missing_arn_and_mode_switch(kinesis, unvalidated, make_stream):
    prov = make_stream(shards=2, prefix="prov")
    assert strategy(kinesis, prov) is None, "only present for on-demand streams"
    for value in ["AUTO", "USER_PARTITION_KEY"]:
        with pytest.raises(ClientError) as e:
            set_strategy(kinesis, prov, value)
        assert_error_prefix(e, "InvalidArgumentException", f"Stream {prov} under account 000000000000 is in PROVISIONED mode")

    name = create_on_demand(kinesis, "od")
    try:
        with pytest.raises(ClientError) as e:
            set_strategy(unvalidated, name, "SOMETIMES")
        assert_error(
            e,
            "ValidationException",
            "1 validation error detected: Value 'SOMETIMES' at 'recordDistributionStrategy' failed to satisfy "
            "constraint: Member must satisfy enum value set: [AUTO, USER_PARTITION_KEY]",
        )
        with pytest.raises(ClientError) as e:
            unvalidated.update_stream_record_distribution_strategy(RecordDistributionStrategy="AUTO")
        assert_error(
            e,
            "ValidationException",
            "1 validation error detected: Value null at 'streamARN' failed to satisfy constraint: "
            "Member must not be null",
        )
        with pytest.raises(ClientError) as e:
            set_strategy(kinesis, unique("missing"), "AUTO")
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"

        set_strategy(kinesis, name, "AUTO")
        with pytest.raises(ClientError) as e:
            kinesis.update_stream_mode(StreamARN=arn(name), StreamModeDetails={"StreamMode": "PROVISIONED"})
        assert_error_prefix(
            e, "InvalidArgumentException", f"Stream {name} under account 000000000000 uses the AUTO record distribution strategy"
        )
        set_strategy(kinesis, name, "USER_PARTITION_KEY")
        kinesis.update_stream_mode(StreamARN=arn(name), StreamModeDetails={"StreamMode": "PROVISIONED"})
        wait_active(kinesis, name)
        assert strategy(kinesis, name) is None
    finally:
        kinesis.delete_stream(StreamName=name)


def test_the_strategy_survives_a_restart():
    with tempfile.TemporaryDirectory() as d:
        data, log = os.path.join(d, "data"), os.path.join(d, "broker.log")
        broker = Broker(data, log)
        try:
            client = broker.client()
            kept = create_on_demand(client, "kept")
            default = create_on_demand(client, "default")
            set_strategy(client, kept, "AUTO")
            assert broker.stop(signal.SIGTERM) == 0
            broker = Broker(data, log)
            client = broker.client()
            assert strategy(client, kept) == "AUTO"
            assert strategy(client, default) == "USER_PARTITION_KEY"
            assert spread(client, kept, 40) == {shard_id(i): 10 for i in range(4)}
        finally:
            broker.kill()


def test_create_stream_sets_the_strategy_on_demand_only(kinesis):
    name = unique("born-auto")
    kinesis.create_stream(
        StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"}, RecordDistributionStrategy="AUTO"
    )
    try:
        wait_active(kinesis, name)
        assert strategy(kinesis, name) == "AUTO"
        assert spread(kinesis, name, 40) == {shard_id(i): 10 for i in range(4)}
    finally:
        kinesis.delete_stream(StreamName=name)
    prov = unique("prov-auto")
    with pytest.raises(ClientError) as e:
        kinesis.create_stream(StreamName=prov, ShardCount=1, RecordDistributionStrategy="AUTO")
    assert_error_prefix(e, "InvalidArgumentException", f"Stream {prov} under account 000000000000 is in PROVISIONED mode")
