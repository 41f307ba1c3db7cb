"""boto3 against the broker: enhanced fan-out's SubscribeToShard, iterating the EventStream
as applications do. Consumers are registered with RegisterStreamConsumer and used once ACTIVE
(DescribeStreamConsumer). Expected behaviour and sources: AWS_BEHAVIOUR.md, "SubscribeToShard".

Every wait is bounded: the subscribing client's read timeout (the broker sends an event at
least every 5 s) and a deadline checked at each event.
"""

import time
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import (
    ACCOUNT,
    MAX_POLLS,
    arn,
    make_subscriber,
    put_all,
    register_consumer,
    shard_id,
    wait_active,
)

SHARD0 = shard_id(0)
EVENT_WAIT = 20  # s: bound on waiting for the events a step expects


@pytest.fixture(scope="module")
def sub_client():
    return make_subscriber()


class Sub:
    """One SubscribeToShard call and its event stream."""

    def __init__(self, client, consumer, shard, position):
        self.started = time.monotonic()
        out = client.subscribe_to_shard(ConsumerARN=consumer, ShardId=shard, StartingPosition=position)
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 200
        self.stream = out["EventStream"]
        self.it = iter(self.stream)
        self.events = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stream.close()

    def next(self, deadline):
        """The next SubscribeToShardEvent (StopIteration when the stream ended; botocore's
        EventStreamError for an exception event)."""
        assert time.monotonic() < deadline, f"events expected but not seen in time; got {self.events}"
        ev = next(self.it)
        assert list(ev) == ["SubscribeToShardEvent"], ev
        e = ev["SubscribeToShardEvent"]
        check_event(e)
        self.events.append(e)
        return e

    def records(self, n, timeout=EVENT_WAIT):
        """Exactly the next n records (failing if an event overshoots)."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            got.extend(self.next(deadline)["Records"])
        assert len(got) == n, f"expected {n} records, got {len(got)}: {got}"
        return got

    def error(self, timeout=EVENT_WAIT):
        """Iterates (records and heartbeats allowed) until botocore raises the stream's
        exception event; returns its error code."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.next(deadline)
        except EventStreamError as e:
            return e.response["Error"]["Code"]
        except StopIteration:
            raise AssertionError(f"the stream ended without an exception event; events: {self.events}")


def check_event(e):
    """Every SubscribeToShardEvent's shape: records with their fields; a continuation number
    equal to the last record's sequence number; MillisBehindLatest never negative."""
    assert isinstance(e["Records"], list)
    assert isinstance(e["MillisBehindLatest"], int) and e["MillisBehindLatest"] >= 0, e
    for r in e["Records"]:
        assert set(r) >= {"SequenceNumber", "ApproximateArrivalTimestamp", "Data", "PartitionKey"}, r
    seqs = [int(r["SequenceNumber"]) for r in e["Records"]]
    assert seqs == sorted(set(seqs)), "records of an event out of order"
    if e["Records"] and "ContinuationSequenceNumber" in e:
        assert e["ContinuationSequenceNumber"] == e["Records"][-1]["SequenceNumber"], e


def payloads(prefix, n):
    return [{"PartitionKey": f"{prefix}-pk{i}", "Data": f"{prefix}-{i}".encode()} for i in range(n)]


def put(kinesis, stream, entries):
    """Returns the put entries with their SequenceNumber, in order."""
    res = put_all(kinesis, stream, entries)
    return [dict(e, SequenceNumber=r["SequenceNumber"]) for e, r in zip(entries, res)]


def assert_same(got, expected):
    assert [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in got] == [
        (e["SequenceNumber"], e["PartitionKey"], e["Data"]) for e in expected
    ]


@pytest.fixture
def stream_and_arn(make_stream):
    def make(shards=1):
        name = make_stream(shards, prefix="sub")
        return name, arn(name)

    return make


def test_trim_horizon_delivers_records_put_before_and_after_in_order(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    before = put(kinesis, name, payloads("before", 5))
    with Sub(sub_client, consumer, SHARD0, {"Type": "TRIM_HORIZON"}) as s:
        assert_same(s.records(5), before)
        after = []
        for e in payloads("after", 5):
            r = kinesis.put_record(StreamName=name, **e)
            after.append(dict(e, SequenceNumber=r["SequenceNumber"]))
        assert_same(s.records(5), after)
        assert s.events[-1]["ContinuationSequenceNumber"] == after[-1]["SequenceNumber"]
        assert s.events[-1]["MillisBehindLatest"] == 0


def test_latest_delivers_only_records_put_after_subscribing(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    put(kinesis, name, payloads("old", 3))
    with Sub(sub_client, consumer, SHARD0, {"Type": "LATEST"}) as s:
        first = s.next(time.monotonic() + EVENT_WAIT)
        assert first["Records"] == []
        assert "ContinuationSequenceNumber" in first
        new = put(kinesis, name, payloads("new", 3))
        assert_same(s.records(3), new)


def test_at_and_after_sequence_number(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    c1, c2 = register_consumer(kinesis, sarn), register_consumer(kinesis, sarn)
    recs = put(kinesis, name, payloads("r", 10))
    at = {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": recs[3]["SequenceNumber"]}
    after = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": recs[3]["SequenceNumber"]}
    with Sub(sub_client, c1, SHARD0, at) as s:
        assert_same(s.records(7), recs[3:])
    with Sub(sub_client, c2, SHARD0, after) as s:
        assert_same(s.records(6), recs[4:])


def test_at_timestamp(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    put(kinesis, name, payloads("early", 4))
    time.sleep(0.1)
    ts = datetime.now(timezone.utc)
    time.sleep(0.1)
    late = put(kinesis, name, payloads("late", 4))
    with Sub(sub_client, consumer, SHARD0, {"Type": "AT_TIMESTAMP", "Timestamp": ts}) as s:
        assert_same(s.records(4), late)


def test_continuation_numbers_resume_with_after_sequence_number_without_loss_or_duplicates(
    kinesis, sub_client, stream_and_arn
):
    """Three consumers in turn (a consumer may not resubscribe to a shard within 5 s), each
    resuming AFTER_SEQUENCE_NUMBER the previous one's last continuation number."""
    name, sarn = stream_and_arn()
    consumers = [register_consumer(kinesis, sarn) for _ in range(3)]
    # The continuation number of an empty shard (nothing read yet) must resume at its first record.
    with Sub(sub_client, consumers[0], SHARD0, {"Type": "TRIM_HORIZON"}) as s:
        first = s.next(time.monotonic() + EVENT_WAIT)
        assert first["Records"] == []
        cont = first["ContinuationSequenceNumber"]
    batch1 = put(kinesis, name, payloads("b1", 5))  # while nobody is subscribed
    with Sub(sub_client, consumers[1], SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": cont}) as s:
        assert_same(s.records(5), batch1)
        batch2 = put(kinesis, name, payloads("b2", 5))
        assert_same(s.records(5), batch2)
        cont = s.events[-1]["ContinuationSequenceNumber"]
        assert cont == batch2[-1]["SequenceNumber"]
    batch3 = put(kinesis, name, payloads("b3", 5))
    with Sub(sub_client, consumers[2], SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": cont}) as s:
        assert_same(s.records(5), batch3)


def test_latest_continuation_resumes_after_the_newest_record(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    c1, c2 = register_consumer(kinesis, sarn), register_consumer(kinesis, sarn)
    put(kinesis, name, payloads("old", 3))
    with Sub(sub_client, c1, SHARD0, {"Type": "LATEST"}) as s:
        cont = s.next(time.monotonic() + EVENT_WAIT)["ContinuationSequenceNumber"]
    new = put(kinesis, name, payloads("new", 3))
    with Sub(sub_client, c2, SHARD0, {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": cont}) as s:
        assert_same(s.records(3), new)


def test_second_subscription_within_5_s_is_refused_then_takes_over(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    with Sub(sub_client, consumer, SHARD0, {"Type": "LATEST"}) as old:
        old.next(time.monotonic() + EVENT_WAIT)
        with pytest.raises(ClientError) as e:
            Sub(sub_client, consumer, SHARD0, {"Type": "LATEST"})
        assert e.value.response["Error"]["Code"] == "ResourceInUseException", e.value.response
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        # Another shard-consumer pair is not affected: another consumer may subscribe at once.
        other = register_consumer(kinesis, sarn)
        Sub(sub_client, other, SHARD0, {"Type": "LATEST"}).close()
        # After 5 s a new subscription of the same pair takes over; the old one ends with
        # ResourceInUseException.
        time.sleep(max(0.0, old.started + 5.3 - time.monotonic()))
        with Sub(sub_client, consumer, SHARD0, {"Type": "LATEST"}) as new:
            assert old.error() == "ResourceInUseException"
            new.next(time.monotonic() + EVENT_WAIT)
            recs = put(kinesis, name, payloads("x", 2))
            assert_same(new.records(2), recs)


def test_unknown_consumer_and_unknown_shard_are_resource_not_found(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    for bad_arn in (f"{sarn}/consumer/never-registered:1700000000", consumer.rsplit(":", 1)[0] + ":1"):
        with pytest.raises(ClientError) as e:
            Sub(sub_client, bad_arn, SHARD0, {"Type": "LATEST"})
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException", (bad_arn, e.value.response)
    with pytest.raises(ClientError) as e:
        Sub(sub_client, consumer, shard_id(7), {"Type": "LATEST"})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException", e.value.response
    # A consumer ARN naming a stream that does not exist.
    with pytest.raises(ClientError) as e:
        Sub(sub_client, arn("no-such-stream-x") + "/consumer/c:1700000000", SHARD0, {"Type": "LATEST"})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException", e.value.response


def test_stream_deleted_mid_subscription_ends_it_with_an_exception_event(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    recs = put(kinesis, name, payloads("r", 3))
    with Sub(sub_client, consumer, SHARD0, {"Type": "TRIM_HORIZON"}) as s:
        assert_same(s.records(3), recs)
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        assert s.error() == "ResourceNotFoundException"
        with pytest.raises(StopIteration):
            next(s.it)


def test_consumer_deregistered_mid_subscription_ends_it_with_an_exception_event(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    with Sub(sub_client, consumer, SHARD0, {"Type": "LATEST"}) as s:
        s.next(time.monotonic() + EVENT_WAIT)
        kinesis.deregister_stream_consumer(ConsumerARN=consumer)
        assert s.error() == "ResourceNotFoundException"
    # Once gone, subscribing with its ARN is refused.
    for _ in range(MAX_POLLS):
        try:
            kinesis.describe_stream_consumer(ConsumerARN=consumer)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        time.sleep(0.025)
    else:
        raise AssertionError("deregistered consumer never went away")
    with pytest.raises(ClientError) as e:
        Sub(sub_client, consumer, SHARD0, {"Type": "LATEST"})
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException", e.value.response


def test_closed_shard_ends_with_child_shards_and_no_continuation(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    recs = put(kinesis, name, payloads("p", 4))
    kinesis.split_shard(StreamName=name, ShardToSplit=SHARD0, NewStartingHashKey=str(2**127))
    wait_active(kinesis, name)
    with Sub(sub_client, consumer, SHARD0, {"Type": "TRIM_HORIZON"}) as s:
        deadline = time.monotonic() + EVENT_WAIT
        got = []
        while True:
            e = s.next(deadline)
            got.extend(e["Records"])
            if "ContinuationSequenceNumber" not in e:
                break
            assert "ChildShards" not in e or not e["ChildShards"], e
        assert_same(got, recs)
        assert e["Records"] == []
        children = sorted(e["ChildShards"], key=lambda c: c["ShardId"])
        assert [c["ShardId"] for c in children] == [shard_id(1), shard_id(2)]
        assert all(c["ParentShards"] == [SHARD0] for c in children)
        assert [c["HashKeyRange"] for c in children] == [
            {"StartingHashKey": "0", "EndingHashKey": str(2**127 - 1)},
            {"StartingHashKey": str(2**127), "EndingHashKey": str(2**128 - 1)},
        ]
        with pytest.raises(StopIteration):
            next(s.it)
    # The children are subscribable and get the records routed to them.
    with Sub(sub_client, consumer, shard_id(2), {"Type": "TRIM_HORIZON"}) as s:
        r = kinesis.put_record(StreamName=name, PartitionKey="x", ExplicitHashKey=str(2**128 - 1), Data=b"child")
        assert r["ShardId"] == shard_id(2)
        [got] = s.records(1)
        assert (got["SequenceNumber"], got["Data"]) == (r["SequenceNumber"], b"child")


def test_idle_subscription_gets_its_first_event_at_once_then_heartbeats(kinesis, sub_client, stream_and_arn):
    name, sarn = stream_and_arn()
    consumer = register_consumer(kinesis, sarn)
    with Sub(sub_client, consumer, SHARD0, {"Type": "LATEST"}) as s:
        first = s.next(time.monotonic() + 3)
        assert time.monotonic() - s.started < 3, "the first event must not wait for records or a heartbeat"
        beat = s.next(time.monotonic() + 9)
        assert beat["Records"] == [] and beat["MillisBehindLatest"] == 0
        assert beat["ContinuationSequenceNumber"] == first["ContinuationSequenceNumber"]
