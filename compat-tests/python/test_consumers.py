"""Enhanced fan-out consumers through boto3: RegisterStreamConsumer, DescribeStreamConsumer,
ListStreamConsumers, DeregisterStreamConsumer, consumer tags, DeleteStream's
EnforceConsumerDeletion.

compat-tests/run starts the broker with the default consumer delays (500 ms), so a new
consumer is CREATING and a deregistered one DELETING for a while. botocore has no waiter
for stream consumers (its Kinesis waiters are StreamExists and StreamNotExists), so the
tests poll DescribeStreamConsumer as the KCL does.
"""

import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, MAX_POLLS, arn, assert_error, make_client, unique, wait_deleted


def consumer_status(client, consumer_arn):
    return client.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]["ConsumerStatus"]


def wait_consumer_active(client, consumer_arn):
    for _ in range(MAX_POLLS):
        if consumer_status(client, consumer_arn) == "ACTIVE":
            return
        time.sleep(0.025)
    raise AssertionError(f"consumer {consumer_arn} never became ACTIVE")


def wait_consumer_gone(client, consumer_arn):
    for _ in range(MAX_POLLS):
        try:
            client.describe_stream_consumer(ConsumerARN=consumer_arn)
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return
            raise
        time.sleep(0.025)
    raise AssertionError(f"consumer {consumer_arn} never went away")


def register_active(client, stream, name, **kw):
    c = client.register_stream_consumer(StreamARN=arn(stream), ConsumerName=name, **kw)["Consumer"]
    wait_consumer_active(client, c["ConsumerARN"])
    return c


def test_lifecycle_arn_describe_list_deregister(kinesis, make_stream):
    stream = make_stream()
    c = kinesis.register_stream_consumer(StreamARN=arn(stream), ConsumerName="app")["Consumer"]
    assert c["ConsumerName"] == "app"
    assert c["ConsumerStatus"] == "CREATING"
    secs = int(c["ConsumerCreationTimestamp"].timestamp())
    assert c["ConsumerARN"] == f"{arn(stream)}/consumer/app:{secs}"
    assert re.fullmatch(r"arn:aws:kinesis:us-east-1:\d{12}:stream/[^/]+/consumer/app:\d+", c["ConsumerARN"])

    wait_consumer_active(kinesis, c["ConsumerARN"])
    by_arn = kinesis.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])["ConsumerDescription"]
    by_name = kinesis.describe_stream_consumer(StreamARN=arn(stream), ConsumerName="app")["ConsumerDescription"]
    assert by_arn == by_name
    assert by_arn["StreamARN"] == arn(stream)
    assert by_arn["ConsumerStatus"] == "ACTIVE"
    assert by_arn["ConsumerCreationTimestamp"] == c["ConsumerCreationTimestamp"]

    listed = kinesis.list_stream_consumers(StreamARN=arn(stream))["Consumers"]
    assert [(x["ConsumerName"], x["ConsumerARN"], x["ConsumerStatus"]) for x in listed] == [
        ("app", c["ConsumerARN"], "ACTIVE")
    ]

    kinesis.deregister_stream_consumer(ConsumerARN=c["ConsumerARN"])
    # DELETING for the deregistration delay, still described and listed; then gone.
    assert consumer_status(kinesis, c["ConsumerARN"]) == "DELETING"
    assert [x["ConsumerStatus"] for x in kinesis.list_stream_consumers(StreamARN=arn(stream))["Consumers"]] == [
        "DELETING"
    ]
    wait_consumer_gone(kinesis, c["ConsumerARN"])
    assert kinesis.list_stream_consumers(StreamARN=arn(stream))["Consumers"] == []


def test_errors_are_aws_shaped_and_change_nothing(kinesis, make_stream):
    stream = make_stream()
    c = register_active(kinesis, stream, "dup")
    with pytest.raises(ClientError) as e:
        kinesis.register_stream_consumer(StreamARN=arn(stream), ConsumerName="dup")
    assert_error(e, "ResourceInUseException", f"Consumer dup under stream {stream} under account {ACCOUNT} already exists.")

    missing = unique("missing")
    with pytest.raises(ClientError) as e:
        kinesis.register_stream_consumer(StreamARN=arn(missing), ConsumerName="c")
    assert_error(e, "ResourceNotFoundException", f"Stream {missing} under account {ACCOUNT} not found.")

    with pytest.raises(ClientError) as e:
        kinesis.describe_stream_consumer(StreamARN=arn(stream), ConsumerName="ghost")
    assert_error(e, "ResourceNotFoundException", f"Consumer ghost under stream {stream} under account {ACCOUNT} not found.")

    stale = c["ConsumerARN"].rsplit(":", 1)[0] + ":1"
    with pytest.raises(ClientError) as e:
        kinesis.deregister_stream_consumer(ConsumerARN=stale)
    assert_error(e, "ResourceNotFoundException", f"Consumer {stale} under account {ACCOUNT} not found.")

    for kw in ({}, {"ConsumerName": "dup"}, {"StreamARN": arn(stream)}):
        with pytest.raises(ClientError) as e:
            kinesis.describe_stream_consumer(**kw)
        assert_error(
            e,
            "InvalidArgumentException",
            "ConsumerArn or both ConsumerName and StreamARN are required for this request.",
        )

    with pytest.raises(ClientError) as e:
        kinesis.register_stream_consumer(StreamARN=arn(stream), ConsumerName="bad name")
    assert e.value.response["Error"]["Code"] == "ValidationException"

    listed = kinesis.list_stream_consumers(StreamARN=arn(stream))["Consumers"]
    assert [(x["ConsumerName"], x["ConsumerStatus"]) for x in listed] == [("dup", "ACTIVE")]


def test_twenty_consumers_per_stream(kinesis, make_stream):
    stream = make_stream()
    arns = []
    for i in range(20):
        arns.append(kinesis.register_stream_consumer(StreamARN=arn(stream), ConsumerName=f"c{i:02d}")["Consumer"]["ConsumerARN"])
    for a in arns:
        wait_consumer_active(kinesis, a)
    # No retries here: the SDK retries LimitExceededException as throttling.
    strict = make_client(attempts=1)
    time.sleep(1.1)  # a full RegisterStreamConsumer rate bucket
    with pytest.raises(ClientError) as e:
        strict.register_stream_consumer(StreamARN=arn(stream), ConsumerName="c20")
    assert_error(
        e,
        "LimitExceededException",
        f"Stream {stream} under account {ACCOUNT} already has 20 registered consumers, the most a stream can have.",
    )
    assert len(kinesis.list_stream_consumers(StreamARN=arn(stream))["Consumers"]) == 20


def test_pagination_and_stream_creation_timestamp(kinesis, make_stream):
    stream = make_stream()
    names = ["e", "a", "d", "b", "c"]
    for n in names:
        kinesis.register_stream_consumer(StreamARN=arn(stream), ConsumerName=n)
    seen, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        out = kinesis.list_stream_consumers(StreamARN=arn(stream), MaxResults=2, **kw)
        pages += 1
        assert len(out["Consumers"]) <= 2
        seen += [c["ConsumerName"] for c in out["Consumers"]]
        token = out.get("NextToken")
        if not token:
            break
        assert pages < 10
    assert (pages, seen) == (3, sorted(names))

    # The botocore paginator follows NextToken the same way.
    paged = [
        c["ConsumerName"]
        for page in kinesis.get_paginator("list_stream_consumers").paginate(
            StreamARN=arn(stream), PaginationConfig={"PageSize": 2}
        )
        for c in page["Consumers"]
    ]
    assert paged == sorted(names)

    created = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamCreationTimestamp"]
    out = kinesis.list_stream_consumers(StreamARN=arn(stream), StreamCreationTimestamp=created)
    assert len(out["Consumers"]) == 5
    with pytest.raises(ClientError) as e:
        kinesis.list_stream_consumers(StreamARN=arn(stream), StreamCreationTimestamp=created.timestamp() - 3600)
    assert_error(e, "ResourceNotFoundException", f"Stream {stream} under account {ACCOUNT} not found.")
    first = kinesis.list_stream_consumers(StreamARN=arn(stream), MaxResults=1)
    with pytest.raises(ClientError) as e:
        kinesis.list_stream_consumers(StreamARN=arn(stream), NextToken=first["NextToken"], StreamCreationTimestamp=created)
    assert_error(e, "InvalidArgumentException", "NextToken and StreamCreationTimestamp cannot be provided together.")


def test_tags_by_consumer_arn(kinesis, make_stream):
    stream = make_stream()
    c = register_active(kinesis, stream, "tagged", Tags={"team": "data"})
    consumer_arn = c["ConsumerARN"]
    assert kinesis.list_tags_for_resource(ResourceARN=consumer_arn)["Tags"] == [{"Key": "team", "Value": "data"}]
    kinesis.tag_resource(ResourceARN=consumer_arn, Tags={"env": "test"})
    kinesis.untag_resource(ResourceARN=consumer_arn, TagKeys=["team"])
    assert kinesis.list_tags_for_resource(ResourceARN=consumer_arn)["Tags"] == [{"Key": "env", "Value": "test"}]
    assert kinesis.list_tags_for_resource(ResourceARN=arn(stream))["Tags"] == []

    kinesis.tag_resource(ResourceARN=consumer_arn, Tags={f"k{i:02d}": "v" for i in range(49)})
    with pytest.raises(ClientError) as e:
        kinesis.tag_resource(ResourceARN=consumer_arn, Tags={"one-more": "v"})
    assert_error(
        e,
        "InvalidArgumentException",
        f"Failed to add tags to consumer tagged under stream {stream} under account {ACCOUNT} "
        "because a given consumer cannot have more than 50 tags associated with it.",
    )
    assert len(kinesis.list_tags_for_resource(ResourceARN=consumer_arn)["Tags"]) == 50


def test_delete_stream_needs_enforce_consumer_deletion(kinesis):
    name = unique("held")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": MAX_POLLS})
    c = register_active(kinesis, name, "reader")
    message = (
        f"DeleteStream can\u2019t delete {ACCOUNT}:{name} because there are consumers associated with this data "
        f"stream. To delete {name} anyway, set the EnforceConsumerDeletion parameter to true to force the "
        "deletion of all the consumers that are associated with it."
    )
    with pytest.raises(ClientError) as e:
        kinesis.delete_stream(StreamName=name)
    assert_error(e, "ResourceInUseException", message)
    with pytest.raises(ClientError) as e:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=False)
    assert_error(e, "ResourceInUseException", message)
    assert consumer_status(kinesis, c["ConsumerARN"]) == "ACTIVE"

    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    wait_deleted(kinesis, name)
    with pytest.raises(ClientError) as e:
        kinesis.describe_stream_consumer(ConsumerARN=c["ConsumerARN"])
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
