"""boto3 against the broker: resharding (issue 7). Producer threads write while the stream is
split, merged, scaled and switched between capacity modes; a consumer that reads parents
before children (as the KCL does) then sees every acknowledged record exactly once, in order
per partition key. Plus the pinned errors of SplitShard / MergeShards (kinesalite
test/splitShard.js, test/mergeShards.js, recorded against AWS).
"""

import random
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import (
    ACCOUNT,
    MAX_POLLS,
    arn,
    assert_error,
    expected_ranges,
    iterator,
    make_client,
    put_all,
    shard_id,
    unique,
    wait_active,
)

MAX = 2**128 - 1


def all_shards(client, name):
    d = client.describe_stream(StreamName=name, Limit=10000)["StreamDescription"]
    assert d["HasMoreShards"] is False
    return d["Shards"]


def is_open(s):
    return "EndingSequenceNumber" not in s["SequenceNumberRange"]


def rng(s):
    return int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])


def open_ranges(shards):
    return sorted(rng(s) for s in shards if is_open(s))


def parents(s):
    return [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p]


def read_whole(client, name, shard, closed):
    """TRIM_HORIZON to the end: a closed shard until no NextShardIterator (returning the last
    answer's ChildShards), an open one to the tip."""
    it = iterator(client, name, shard, "TRIM_HORIZON")
    records = []
    for _ in range(MAX_POLLS):
        try:
            out = client.get_records(ShardIterator=it)
        except ClientError as e:
            if e.response["Error"]["Code"] == "ProvisionedThroughputExceededException":
                time.sleep(0.2)
                continue
            raise
        records.extend(out["Records"])
        nxt = out.get("NextShardIterator")
        if nxt is None:
            assert closed, f"open shard {shard} ended its iterator"
            return records, out.get("ChildShards", [])
        assert not out.get("ChildShards"), f"ChildShards only at the end of closed {shard}"
        it = nxt
        if not closed and not out["Records"] and out.get("MillisBehindLatest") == 0:
            return records, []
    raise AssertionError(f"{shard} not read to its end")


def lineage_read(client, name):
    shards = all_shards(client, name)
    listed = {s["ShardId"] for s in shards}
    done, out, last = set(), [], {}
    while len(done) < len(shards):
        ready = [
            s for s in shards
            if s["ShardId"] not in done and all(p in done or p not in listed for p in parents(s))
        ]
        assert ready, "lineage has a cycle"
        for s in ready:
            closed = not is_open(s)
            records, children = read_whole(client, name, s["ShardId"], closed)
            if closed:
                want = sorted(c["ShardId"] for c in shards if s["ShardId"] in parents(c))
                assert sorted(c["ShardId"] for c in children) == want, s["ShardId"]
            prev = max([last[p] for p in parents(s) if p in last] or [0])
            for r in records:
                n = int(r["SequenceNumber"])
                assert n > prev, f"sequence numbers increase along lineage ({s['ShardId']})"
                prev = n
                out.append((s["ShardId"], r["SequenceNumber"], r["Data"].decode()))
            last[s["ShardId"]] = prev
            done.add(s["ShardId"])
    return shards, out


class Producer(threading.Thread):
    """Writes batches of distinct keys of its own until stopped; throttled entries are resent
    before the next batch, so each key is acknowledged in counter order."""

    def __init__(self, name, index, keys=20, batch=5, limit=1500):
        super().__init__(daemon=True)
        self.client = make_client()
        self.stream, self.index, self.keys, self.batch, self.limit = name, index, keys, batch, limit
        self.counters = [0] * keys
        self.acks = {}
        self.stop = threading.Event()
        self.count = 0
        self.error = None
        self.rand = random.Random(index)

    def run(self):
        try:
            while not self.stop.is_set() and self.count < self.limit:
                keys = self.rand.sample(range(self.keys), self.batch)
                entries = [
                    {"PartitionKey": f"p{self.index}-k{k}", "Data": f"p{self.index}-k{k}|{self.counters[k]}".encode()}
                    for k in keys
                ]
                results = put_all(self.client, self.stream, entries)
                for k, r in zip(keys, results):
                    self.acks.setdefault(f"p{self.index}-k{k}", []).append((self.counters[k], r["ShardId"], r["SequenceNumber"]))
                    self.counters[k] += 1
                self.count += len(keys)
        except Exception as e:  # reported by the test thread
            self.error = e


def wait_count(producers, n):
    for _ in range(3000):
        if sum(p.count for p in producers) >= n:
            return
        if any(p.error for p in producers):
            raise AssertionError(f"producer failed: {[p.error for p in producers if p.error]}")
        time.sleep(0.01)
    raise AssertionError("producers stalled")


def test_lineage_walk_reads_every_record_once_in_key_order(kinesis):
    name = unique("lineage")
    kinesis.create_stream(StreamName=name, ShardCount=2)
    wait_active(kinesis, name)
    try:
        producers = [Producer(name, i) for i in range(2)]
        for p in producers:
            p.start()
        steps = [
            lambda: kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**126)),
            # The split's upper child (shard 3) is adjacent to shard 1.
            lambda: kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(3), AdjacentShardToMerge=shard_id(1)),
            lambda: kinesis.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING"),
            lambda: kinesis.update_stream_mode(StreamARN=arn(name), StreamModeDetails={"StreamMode": "ON_DEMAND"}),
            lambda: kinesis.update_stream_mode(StreamARN=arn(name), StreamModeDetails={"StreamMode": "PROVISIONED"}),
            lambda: kinesis.update_shard_count(StreamName=name, TargetShardCount=3, ScalingType="UNIFORM_SCALING"),
        ]
        for i, step in enumerate(steps):
            wait_count(producers, 100 * (i + 1))
            wait_active(kinesis, name)
            step()
        wait_active(kinesis, name)
        wait_count(producers, 100 * (len(steps) + 1))
        for p in producers:
            p.stop.set()
        for p in producers:
            p.join(timeout=120)
            assert not p.is_alive(), "producer did not stop"
            assert p.error is None, p.error

        by_seq = {}
        for p in producers:
            for key, acks in p.acks.items():
                for i, (counter, shard, seq) in enumerate(acks):
                    assert counter == i
                    assert seq not in by_seq, "a sequence number acknowledged twice"
                    by_seq[seq] = (key, counter, shard)

        shards, read = lineage_read(kinesis, name)
        assert open_ranges(shards) == expected_ranges(3)
        seen, nxt = set(), {}
        for shard, seq, data in read:
            key, counter = data.split("|")
            assert by_seq.get(seq) == (key, int(counter), shard), f"{data} read where it was not acknowledged"
            assert seq not in seen, f"{data} read twice"
            seen.add(seq)
            assert int(counter) == nxt.get(key, 0), f"{key} out of order"
            nxt[key] = int(counter) + 1
        assert len(seen) == len(by_seq), "every acknowledged record was read"
    finally:
        kinesis.delete_stream(StreamName=name)


def test_split_and_merge_errors_in_aws_words(kinesis, make_stream):
    name = make_stream(3)
    r = expected_ranges(3)

    def bad_split(key, i):
        return (
            f"NewStartingHashKey {key} used in SplitShard() on shard {shard_id(i)} in stream {name} under account "
            f"{ACCOUNT} is not both greater than one plus the shard's StartingHashKey {r[i][0]} and less than "
            f"the shard's EndingHashKey {r[i][1]}."
        )

    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit="shard-0", NewStartingHashKey="1")
    assert_error(e, "InvalidArgumentException", bad_split("1", 0))
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit="shard-0", NewStartingHashKey=str(r[0][1]))
    assert_error(e, "InvalidArgumentException", bad_split(str(r[0][1]), 0))
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit="shardId-5", NewStartingHashKey="0")
    assert_error(e, "ResourceNotFoundException", f"Could not find shard {shard_id(5)} in stream {name} under account {ACCOUNT}.")
    with pytest.raises(ClientError) as e:
        kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(0), AdjacentShardToMerge=shard_id(2))
    assert_error(
        e,
        "InvalidArgumentException",
        f"Shards {shard_id(0)} and {shard_id(2)} in stream {name} under account {ACCOUNT} are not an adjacent pair "
        "of shards eligible for merging",
    )
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=unique("missing"), ShardToSplit="ABKLFD8", NewStartingHashKey="0")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"

    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey="2")
    wait_active(kinesis, name)
    shards = all_shards(kinesis, name)
    assert [s["ShardId"] for s in shards] == [shard_id(i) for i in range(5)]
    assert not is_open(shards[0])
    assert [(s.get("ParentShardId"), rng(s)) for s in shards[3:]] == [(shard_id(0), (0, 1)), (shard_id(0), (2, r[0][1]))]
    # moto's tests (test_split_shard_that_was_split_before).
    with pytest.raises(ClientError) as e:
        kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey="12345")
    assert_error(
        e,
        "InvalidArgumentException",
        f"Shard {shard_id(0)} in stream {name} under account {ACCOUNT} has already been merged or split, "
        "and thus is not eligible for merging or splitting.",
    )
