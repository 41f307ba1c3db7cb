"""Restarts seen from boto3: each test starts brokers of its own (the release binary, on a
free port, with its own data directory), so it can stop them with SIGTERM or SIGKILL."""

import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import (
    MAX_POLLS,
    broker_binary,
    free_port,
    make_client,
    read_shard,
    shard_id,
    wait_active,
    wait_port,
)


class Broker:
    """One broker process; SIGKILLed at the end of the test if still running."""

    def __init__(self, data_dir, log_path, durability="flush"):
        self.port = free_port()
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [broker_binary(), "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", data_dir,
                 "--durability", durability,
                 "--create-stream-delay-ms", "0", "--delete-stream-delay-ms", "0", "--update-stream-delay-ms", "0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        wait_port(self.port, self.proc, log_path)

    def client(self, attempts=10):
        return make_client(url=self.endpoint, attempts=attempts)

    def stop(self, sig):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)


@pytest.fixture
def dirs():
    with tempfile.TemporaryDirectory() as d:
        yield os.path.join(d, "data"), os.path.join(d, "broker.log")


def test_sigterm_exits_0_and_a_restart_serves_the_same_stream_and_records(dirs):
    data, log = dirs
    b = Broker(data, log)
    try:
        k = b.client()
        k.create_stream(StreamName="keep", ShardCount=2)
        wait_active(k, "keep")
        put = k.put_records(StreamName="keep", Records=[{"PartitionKey": f"p{i}", "Data": f"v{i}".encode()} for i in range(50)])
        assert put["FailedRecordCount"] == 0
        before = {s: read_shard(k, "keep", shard_id(s)) for s in range(2)}
        assert b.stop(signal.SIGTERM) == 0, open(log).read()
    finally:
        b.kill()
    b = Broker(data, log)
    try:
        k = b.client()
        after = {s: read_shard(k, "keep", shard_id(s)) for s in range(2)}
        assert after == before
        new = k.put_record(StreamName="keep", PartitionKey="p0", Data=b"after")
        last = max(int(r["SequenceNumber"]) for r in before[int(new["ShardId"][-1])])
        assert int(new["SequenceNumber"]) > last, "sequence numbers went backwards after a restart"
    finally:
        b.kill()


@pytest.mark.parametrize("durability", ["flush", "page-cache"])
def test_every_acknowledged_record_survives_sigkill_during_writes(dirs, durability):
    data, log = dirs
    b = Broker(data, log, durability)
    acked = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        k = b.client()
        k.create_stream(StreamName="crash", ShardCount=3)
        wait_active(k, "crash")

        def writer(w):
            # No retries: once the broker is killed a writer must stop, not back off for seconds.
            c = b.client(attempts=1)
            n = 0
            while not stop.is_set():
                recs = [{"PartitionKey": f"w{w}-{i % 5}", "Data": f"w{w}-{n + i}".encode()} for i in range(20)]
                n += 20
                try:
                    out = c.put_records(StreamName="crash", Records=recs)
                except (ClientError, BotoCoreError):
                    return  # the broker is gone: these were never acknowledged
                with lock:
                    acked.extend(
                        (r["Data"], o["ShardId"], o["SequenceNumber"]) for r, o in zip(recs, out["Records"]) if "SequenceNumber" in o
                    )

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        for _ in range(MAX_POLLS * 10):
            with lock:
                if len(acked) >= 1500:
                    break
            time.sleep(0.01)
        b.proc.kill()  # SIGKILL while the writers have requests in flight
        b.proc.wait(timeout=60)
        stop.set()
        for t in threads:
            t.join(timeout=120)
    finally:
        stop.set()
        b.kill()
    assert len(acked) >= 1500, "writers stalled before the kill"

    b = Broker(data, log, durability)
    try:
        k = b.client()
        stored = {}
        for s in range(3):
            for r in read_shard(k, "crash", shard_id(s)):
                assert r["Data"] not in stored, f"{r['Data']} stored twice"
                stored[r["Data"]] = (shard_id(s), r["SequenceNumber"])
        lost = [d for d, shard, seq in acked if stored.get(d) != (shard, seq)]
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged records lost or changed, e.g. {lost[:3]}"
    finally:
        b.kill()
