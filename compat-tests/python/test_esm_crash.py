"""Event-source mappings survive crashes: kill -9 of the broker while batches are in flight
(the handler is slow) and a restart on the same data directory, then kill -9 of a runtime
process in the middle of a batch and a new one started. Lambda's guarantee is at-least-once:
every record reaches the handler, in order per shard; a batch may come again after a crash,
but no record is ever skipped."""

import os
import tempfile

import pytest

from conftest import make_client, wait_active
from esm_support import Broker, Runtimes, by_shard, lambda_client, read_lines, wait_for


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield d


def put_stream(url, name, shards, n):
    """Returns (ARN, [(key, seq, data)] in put order, {seq: shard})."""
    kinesis = make_client(url=url)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    wait_active(kinesis, name)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    put, shard_of = [], {}
    for start in range(0, n, 100):
        batch = [(f"key-{i % 11}", f"rec-{i:05d}") for i in range(start, min(n, start + 100))]
        out = kinesis.put_records(StreamName=name, Records=[{"PartitionKey": k, "Data": v.encode()} for k, v in batch])
        assert out["FailedRecordCount"] == 0
        for (k, v), r in zip(batch, out["Records"]):
            put.append((k, r["SequenceNumber"], v))
            shard_of[r["SequenceNumber"]] = r["ShardId"]
    return arn, put, shard_of


def assert_at_least_once_in_order(delivered, put, shard_of, max_rewinds):
    """Per shard: deliveries start at the shard's first record, each one is the next record or
    goes back (a redelivery after a crash: at most `max_rewinds` times), never forward past
    one not yet delivered, and the last record is reached."""
    want = by_shard(put, shard_of)
    got = by_shard(delivered, shard_of)
    assert set(got) == set(want), "a shard got nothing"
    rewinds = 0
    for shard, records in want.items():
        index = {rec[1]: i for i, rec in enumerate(records)}
        seen = got[shard]
        for rec in seen:
            assert rec == records[index[rec[1]]], f"{shard}: record changed: {rec}"
        positions = [index[rec[1]] for rec in seen]
        assert positions[0] == 0, f"{shard}: first delivery is record {positions[0]}"
        for a, b in zip(positions, positions[1:]):
            assert b <= a + 1, f"{shard}: skipped from record {a} to {b}"
            rewinds += b <= a
        assert max(positions) == len(records) - 1, f"{shard}: stopped at {max(positions)} of {len(records)}"
    assert rewinds <= max_rewinds, f"{rewinds} redeliveries"
    return rewinds


def test_kill9_broker_mid_delivery_then_restart_resumes_from_checkpoints(workdir):
    broker = Broker(workdir, ["fn"]).start()
    runtimes = Runtimes(workdir)
    try:
        arn, put, shard_of = put_stream(broker.url, "esm-crash", 2, 240)
        lam = lambda_client(broker.url)
        lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=10)
        out, started = os.path.join(workdir, "out"), os.path.join(workdir, "started")
        # One runtime per shard so both shards have a batch in flight when the broker dies.
        for _ in range(2):
            runtimes.rust(broker.runtime_ports["fn"], "fn", ESM_OUT=out, ESM_STARTED=started, ESM_DELAY_MS="150")
        # The handlers note each batch as it arrives and write its records after their sleep:
        # records noted but not written are in flight. Kill once a third is delivered and a
        # batch is in flight (the sleep leaves 150 ms between this check and the kill).
        def in_flight():
            handed_out = sum(int(line.split()[0]) for line in open(started).read().splitlines()) \
                if os.path.exists(started) else 0
            written = len(read_lines(out))
            return written >= 60 and handed_out > written
        wait_for(in_flight, "a third of the records delivered and a batch in flight", interval=0.01)
        broker.kill9()
        runtimes.kill_all()
        assert len(read_lines(out)) < len(put), "everything was delivered before the kill"

        broker.start()
        for _ in range(2):
            runtimes.rust(broker.runtime_ports["fn"], "fn", ESM_OUT=out, ESM_DELAY_MS="10")

        def all_delivered():
            return {rec[1] for rec in read_lines(out)} >= {rec[1] for rec in put}
        try:
            wait_for(all_delivered, "every record after the restart", timeout_s=30)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- broker\n{broker.log()}\n{runtimes.logs()}") from None
        # Both shards were in flight: each resumes from its checkpoint, at most once back.
        assert_at_least_once_in_order(read_lines(out), put, shard_of, max_rewinds=2)
        mapping = lam.list_event_source_mappings(FunctionName="fn")["EventSourceMappings"]
        assert len(mapping) == 1 and mapping[0]["State"] == "Enabled"
    finally:
        runtimes.kill_all()
        broker.stop()


def start_runtime(runtimes, client, port, **handler_env):
    if client == "rust":
        return runtimes.rust(port, "fn", **handler_env)
    return runtimes.node(port, "fn", **handler_env)


@pytest.mark.parametrize("client", ["rust", "node"])
def test_kill9_runtime_mid_batch_redelivers_the_batch_to_a_new_runtime(workdir, client):
    broker = Broker(workdir, ["fn"]).start()
    runtimes = Runtimes(workdir)
    try:
        arn, put, shard_of = put_stream(broker.url, "esm-rt-crash", 1, 80)
        lam = lambda_client(broker.url)
        lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=10)
        out, started = os.path.join(workdir, "out"), os.path.join(workdir, "started")
        slow = start_runtime(runtimes, client, broker.runtime_ports["fn"], ESM_OUT=out, ESM_STARTED=started,
                             ESM_DELAY_MS="400")

        def third_batch_in_flight():
            lines = open(started).read().splitlines() if os.path.exists(started) else []
            return lines[2] if len(lines) >= 3 else None
        in_flight = wait_for(third_batch_in_flight, "the third batch to reach the handler")
        slow.kill()
        slow.wait(timeout=30)
        count, first_seq = in_flight.split()
        done = read_lines(out)
        assert len(done) == 20 and int(count) == 10, (len(done), in_flight)
        assert first_seq == put[20][1]

        # The lost invocation fails at its deadline (3 s, Lambda's default timeout) and the
        # batch is retried: the next runtime (of the same client) gets that same batch first.
        start_runtime(runtimes, client, broker.runtime_ports["fn"], ESM_OUT=out)
        wait_for(lambda: len(read_lines(out)) >= len(put), "every record after the runtime died", timeout_s=30)
        got = read_lines(out)
        assert got[20] == put[20], "the batch in flight was not delivered again first"
        assert got == put
        result = wait_for(lambda: (lambda m: m if m["LastProcessingResult"] == "OK" else None)(
            lam.list_event_source_mappings(FunctionName="fn")["EventSourceMappings"][0]), "LastProcessingResult OK")
        assert result["State"] == "Enabled"
    finally:
        runtimes.kill_all()
        broker.stop()
