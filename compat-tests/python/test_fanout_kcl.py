"""An enhanced fan-out consumer written the way KCL 2.x's fan-out retriever
(software.amazon.kinesis.retrieval.fanout.FanOutRecordsPublisher, with the shard lineage
handling of its ShardConsumer/HierarchicalShardSyncer) works, in boto3, against a broker of
its own started with `--subscription-lifetime-ms 3000`, so that every shard's subscription
ends and is renewed several times while producers write and the stream is split and merged.

The consumer:
- registers a stream consumer and waits for it to be ACTIVE;
- subscribes every shard without parents from TRIM_HORIZON, one thread per shard;
- when a subscription ends (its lifetime, or an error), subscribes again AFTER_SEQUENCE_NUMBER
  its last continuation number; on ResourceInUseException it backs off 1 s and retries;
- on the final event of a closed shard (ChildShards, no ContinuationSequenceNumber) marks the
  shard finished, and starts each child once all of the child's parents are finished.

It must see every acknowledged record exactly once, in sequence-number order per shard.
"""

import os
import random
import signal
import tempfile
import threading
import time
from collections import defaultdict

import pytest
from botocore.exceptions import BotoCoreError, ClientError, EventStreamError

from conftest import (
    arn,
    broker_binary,
    free_port,
    make_client,
    make_subscriber,
    put_all,
    register_consumer,
    serving,
    shard_id,
    wait_active,
)

LIFETIME_MS = 3000
STREAM = "kcl-fanout"
MAX = 2**128 - 1


@pytest.fixture
def broker():
    """A broker of our own: short subscription lifetime, zero lifecycle delays."""
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        log_path = os.path.join(d, "broker.log")
        args = [broker_binary(), "--host", "127.0.0.1", "--port", str(port), "--data-dir", os.path.join(d, "data"),
                "--subscription-lifetime-ms", str(LIFETIME_MS),
                "--create-stream-delay-ms", "0", "--delete-stream-delay-ms", "0", "--update-stream-delay-ms", "0",
                "--register-consumer-delay-ms", "0", "--deregister-consumer-delay-ms", "0"]
        with serving(args, port, log_path) as proc:
            yield proc, f"http://127.0.0.1:{port}", log_path


class FanOutConsumer:
    """See the module documentation."""

    def __init__(self, endpoint, consumer_arn):
        self.endpoint = endpoint
        self.consumer_arn = consumer_arn
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.delivered = defaultdict(list)  # shard -> [(sequence number, data)]
        self.parents = {}  # child shard -> its parents, as ChildShards named them
        self.children = {}  # finished shard -> its ChildShards ids
        self.finished = set()
        self.started = set()
        self.threads = []
        self.problems = []  # anything a correct broker should never cause
        self.subscriptions = 0
        self.lifetime_ends = 0
        self.in_use = 0

    def start(self, shard):
        with self.lock:
            if shard in self.started:
                return
            self.started.add(shard)
        t = threading.Thread(target=self.run_shard, args=(shard,), name=f"fanout-{shard}", daemon=True)
        self.threads.append(t)
        t.start()

    def problem(self, text):
        with self.lock:
            self.problems.append(text)

    def run_shard(self, shard):
        client = make_subscriber(self.endpoint)
        position = {"Type": "TRIM_HORIZON"}
        while not self.stop.is_set():
            try:
                out = client.subscribe_to_shard(ConsumerARN=self.consumer_arn, ShardId=shard, StartingPosition=position)
            except ClientError as e:
                if e.response["Error"]["Code"] == "ResourceInUseException":
                    with self.lock:
                        self.in_use += 1
                    time.sleep(1)
                    continue
                self.problem(f"{shard}: SubscribeToShard {position} failed: {e.response['Error']}")
                time.sleep(1)
                continue
            except BotoCoreError as e:
                self.problem(f"{shard}: SubscribeToShard {position}: {e!r}")
                time.sleep(1)
                continue
            with self.lock:
                self.subscriptions += 1
            events = out["EventStream"]
            try:
                for ev in events:
                    e = ev["SubscribeToShardEvent"]
                    self.deliver(shard, e["Records"])
                    cont = e.get("ContinuationSequenceNumber")
                    if cont is None:
                        self.shard_ended(shard, e.get("ChildShards") or [])
                        return
                    if e.get("ChildShards"):
                        self.problem(f"{shard}: ChildShards with a continuation number: {e}")
                    position = {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": cont}
                    if self.stop.is_set():
                        return
                else:
                    with self.lock:
                        self.lifetime_ends += 1
            except EventStreamError as err:
                code = err.response["Error"]["Code"]
                if code == "ResourceInUseException":
                    with self.lock:
                        self.in_use += 1
                else:
                    self.problem(f"{shard}: exception event {err.response['Error']}")
                time.sleep(1)
            except BotoCoreError as err:
                self.problem(f"{shard}: while iterating: {err!r}")
                time.sleep(1)
            finally:
                events.close()

    def deliver(self, shard, records):
        with self.lock:
            got = self.delivered[shard]
            for r in records:
                seq = int(r["SequenceNumber"])
                if got and seq <= got[-1][0]:
                    self.problems.append(f"{shard}: {seq} delivered after {got[-1][0]} (duplicate or out of order)")
                got.append((seq, r["Data"]))

    def shard_ended(self, shard, child_shards):
        ready = []
        with self.lock:
            self.finished.add(shard)
            self.children[shard] = sorted(c["ShardId"] for c in child_shards)
            for c in child_shards:
                self.parents[c["ShardId"]] = sorted(c["ParentShards"])
            for c in child_shards:
                if all(p in self.finished for p in c["ParentShards"]):
                    ready.append(c["ShardId"])
        for c in ready:
            self.start(c)

    def count(self):
        with self.lock:
            return sum(len(v) for v in self.delivered.values())


class Producers:
    """Threads putting records with known payloads; keeps what was acknowledged, per shard."""

    def __init__(self, endpoint, n=2):
        self.acked = defaultdict(list)  # shard -> [(sequence number, data)]
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i, endpoint), daemon=True) for i in range(n)]

    def run(self, w, endpoint):
        client = make_client(url=endpoint)
        rnd = random.Random(w)
        n = 0
        while self.running.is_set():
            batch = [{"PartitionKey": f"k{rnd.randrange(1000)}", "Data": f"w{w}-{n + i}".encode()} for i in range(10)]
            n += len(batch)
            try:
                res = put_all(client, STREAM, batch)
            except (ClientError, BotoCoreError, AssertionError) as e:
                self.errors.append(repr(e))
                return
            with self.lock:
                for entry, r in zip(batch, res):
                    self.acked[r["ShardId"]].append((int(r["SequenceNumber"]), entry["Data"]))
            time.sleep(0.02)

    def start(self):
        self.running.set()
        for t in self.threads:
            t.start()

    def finish(self):
        self.running.clear()
        for t in self.threads:
            t.join(timeout=30)
            assert not t.is_alive(), "a producer did not stop"

    def total(self):
        with self.lock:
            return sum(len(v) for v in self.acked.values())


def shards_of(client):
    d = client.describe_stream(StreamName=STREAM)["StreamDescription"]
    return {s["ShardId"]: s for s in d["Shards"]}


def test_kcl_style_fanout_consumer_sees_every_record_once_in_order_across_lifetimes_split_and_merge(broker):
    proc, endpoint, log_path = broker
    k = make_client(url=endpoint)
    k.create_stream(StreamName=STREAM, ShardCount=2)
    wait_active(k, STREAM)
    consumer_arn = register_consumer(k, arn(STREAM))

    consumer = FanOutConsumer(endpoint, consumer_arn)
    for sid, s in shards_of(k).items():
        assert "ParentShardId" not in s
        consumer.start(sid)
    producers = Producers(endpoint)
    producers.start()
    try:
        time.sleep(3)
        # Split shard 0 ([0, 2^127)) at 2^126: children 2 [0, 2^126) and 3 [2^126, 2^127).
        k.split_shard(StreamName=STREAM, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**126))
        wait_active(k, STREAM)
        time.sleep(3)
        # Merge the adjacent open shards 3 and 1 into 4 [2^126, 2^128).
        k.merge_shards(StreamName=STREAM, ShardToMerge=shard_id(3), AdjacentShardToMerge=shard_id(1))
        wait_active(k, STREAM)
        time.sleep(3)
    finally:
        producers.finish()
    assert not producers.errors, producers.errors

    # Wait (bounded) until the consumer has seen as many records as were acknowledged.
    expected = producers.total()
    deadline = time.monotonic() + 20
    while consumer.count() < expected and time.monotonic() < deadline and not consumer.problems:
        time.sleep(0.1)
    # Stay a little longer, across a lifetime end, so a duplicate delivered late shows up.
    time.sleep(LIFETIME_MS / 1000 + 0.5)
    consumer.stop.set()
    for t in consumer.threads:
        t.join(timeout=15)
    assert not [t.name for t in consumer.threads if t.is_alive()], "consumer threads did not stop"

    print(f"acknowledged {expected}, delivered {consumer.count()}, subscriptions {consumer.subscriptions}, "
          f"lifetime ends {consumer.lifetime_ends}, ResourceInUse {consumer.in_use}")
    assert not consumer.problems, consumer.problems
    shards = shards_of(k)
    assert sorted(shards) == [shard_id(i) for i in range(5)]
    # Lineage as ChildShards reported it matches DescribeStream's.
    for sid, s in shards.items():
        parents = sorted(p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p)
        if parents:
            assert consumer.parents.get(sid) == parents, (sid, consumer.parents)
    assert consumer.finished == {shard_id(0), shard_id(1), shard_id(3)}
    assert consumer.children == {
        shard_id(0): [shard_id(2), shard_id(3)],
        shard_id(1): [shard_id(4)],
        shard_id(3): [shard_id(4)],
    }
    assert consumer.started == set(shards)
    # Every acknowledged record exactly once, in order per shard.
    assert expected > 500, f"only {expected} records were acknowledged"
    for sid in shards:
        want = sorted(producers.acked.get(sid, []))
        got = consumer.delivered.get(sid, [])
        assert got == want, (
            f"{sid}: acknowledged {len(want)}, delivered {len(got)}; "
            f"missing {sorted(set(want) - set(got))[:5]}, unexpected {sorted(set(got) - set(want))[:5]}"
        )
    # The subscriptions really were renewed after their lifetime ended, several times.
    assert consumer.lifetime_ends >= 4, (consumer.lifetime_ends, consumer.subscriptions, consumer.in_use)

    # Stopping the broker with SIGTERM still works after all this.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, open(log_path).read()[-3000:]
