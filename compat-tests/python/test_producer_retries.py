"""A boto3 producer against throttling and injected faults (issue 6), as a team would test
its own producer: botocore's `standard` retry mode for whole-call errors, plus the
producer's own PutRecords loop that resends only the failed entries, with exponential
backoff and full jitter, a bounded number of times.

The broker is the one compat-tests/run started. The runner starts it with AWS's limits on
(the default: it passes no --throughput-limits flag), which is what these tests need: a
1-shard stream written at three times its 1,000 records/s limit must refuse part of it.
The fault scenario configures rules for its own stream only (PUT /_broker/faults) and
clears them at the end.

Expected AWS wording: compat-tests/AWS_BEHAVIOUR.md section 10 ("Rate exceeded for shard SH
in stream S under account A.", mhart/kinesalite#87).
"""

import json
import random
import time
import urllib.request

from botocore.exceptions import ClientError

from conftest import ACCOUNT, endpoint, iterator, make_client, read_to_tip, shard_id

WRITE_LIMIT = 1000  # records per second per shard (AWS)
OFFERED_RATE = 3 * WRITE_LIMIT  # the producer offers three times that
RECORDS = 4500  # 1.5 s of offered load
BATCH = 500  # PutRecords' largest request
MAX_ATTEMPTS = 30  # per record, the producer's own bound
BASE_BACKOFF = 0.05  # s, first retry's backoff ceiling
MAX_BACKOFF = 1.0  # s, backoff ceiling
DEADLINE = 60.0  # s, the whole production run
LINGER = 0.05  # s, longest an entry waits for a batch to fill
RETRYABLE_ENTRY_CODES = {"ProvisionedThroughputExceededException", "InternalFailure"}


class Producer:
    """Offers `records` at `rate` records/s in PutRecords of up to 500 entries, resending
    only the entries that failed, each after an exponential backoff with full jitter."""

    def __init__(self, client, stream, rate, seed):
        self.client = client
        self.stream = stream
        self.rate = rate
        self.rng = random.Random(seed)
        self.acked = {}  # record index -> (sequence number, shard id)
        self.attempts = {}  # record index -> attempts so far
        self.calls = 0
        self.partial_responses = 0  # PutRecords answers with FailedRecordCount > 0
        self.entry_errors = {}  # ErrorCode -> count
        self.entry_messages = set()
        self.call_errors = {}  # whole-call errors left after botocore's retries

    def backoff(self, attempt):
        return self.rng.uniform(0, min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (attempt - 1)))

    def run(self, records):
        start = time.monotonic()
        offered = 0  # records offered for the first time so far
        ready = []  # (time the entry may be (re)sent, record index)
        while len(self.acked) < len(records):
            now = time.monotonic()
            assert now - start < DEADLINE, f"not all records written within {DEADLINE} s"
            due = min(len(records), int((now - start) * self.rate) + 1)
            ready.extend((now, i) for i in range(offered, due))
            offered = max(offered, due)
            ready.sort()
            batch = [i for t, i in ready if t <= now][:BATCH]
            # Like a real producer, send a full batch at once, a partial one only when its
            # oldest entry has lingered LINGER seconds.
            if len(batch) < BATCH and (not batch or now - ready[0][0] < LINGER):
                next_new = start + offered / self.rate if offered < len(records) else float("inf")
                next_due = ready[0][0] + LINGER if ready else float("inf")
                time.sleep(max(0.001, min(next_new, next_due) - now))
                continue
            chosen = set(batch)
            ready = [(t, i) for t, i in ready if i not in chosen]
            for i in batch:
                self.attempts[i] = self.attempts.get(i, 0) + 1
                assert self.attempts[i] <= MAX_ATTEMPTS, f"record {i} failed {MAX_ATTEMPTS} times"
            self.calls += 1
            try:
                out = self.client.put_records(
                    StreamName=self.stream,
                    Records=[{"Data": records[i], "PartitionKey": f"pk-{i % 97}"} for i in batch],
                )
            except ClientError as e:
                # botocore's standard mode already retried throttling and 5xx: resend all.
                code = e.response["Error"]["Code"]
                self.call_errors[code] = self.call_errors.get(code, 0) + 1
                again = time.monotonic()
                ready.extend((again + self.backoff(self.attempts[i]), i) for i in batch)
                continue
            assert len(out["Records"]) == len(batch), "one result per entry, in request order"
            failed = 0
            again = time.monotonic()
            for i, r in zip(batch, out["Records"]):
                if "SequenceNumber" in r:
                    assert "ErrorCode" not in r, r
                    assert i not in self.acked, f"record {i} acknowledged twice"
                    self.acked[i] = (r["SequenceNumber"], r["ShardId"])
                else:
                    failed += 1
                    code = r["ErrorCode"]
                    assert code in RETRYABLE_ENTRY_CODES, r
                    self.entry_errors[code] = self.entry_errors.get(code, 0) + 1
                    self.entry_messages.add((code, r.get("ErrorMessage")))
                    ready.append((again + self.backoff(self.attempts[i]), i))
            assert out.get("FailedRecordCount", 0) == failed, "FailedRecordCount counts the failed entries"
            if failed:
                self.partial_responses += 1
        return time.monotonic() - start


def make_records(tag):
    return [f"{tag}-{i:05d}-{'x' * 64}".encode() for i in range(RECORDS)]


def read_back(stream):
    """Every record of the stream's only shard, read from TRIM_HORIZON to the tip."""
    client = make_client()
    return read_to_tip(client, iterator(client, stream, shard_id(0), "TRIM_HORIZON"))


def assert_read_back_is_exactly_the_acked(stream, records, producer):
    read = read_back(stream)
    got = [(r["Data"], r["SequenceNumber"]) for r in read]
    assert len(got) == len(set(d for d, _ in got)), "a record was written more than once"
    expected = sorted(
        ((records[i], seq) for i, (seq, _) in producer.acked.items()), key=lambda p: int(p[1])
    )
    assert len(got) == len(expected) == len(records)
    assert got == expected, "the shard must hold exactly the acknowledged records, in sequence order"
    assert all(shard == shard_id(0) for _, shard in producer.acked.values())


def admin(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        endpoint() + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return res.status, json.loads(res.read())


def test_producer_at_three_times_the_write_limit_writes_every_record_exactly_once(make_stream):
    stream = make_stream(1, prefix="producer")
    records = make_records("t")
    producer = Producer(make_client(), stream, OFFERED_RATE, seed=1)
    elapsed = producer.run(records)
    print(f"{RECORDS} records in {elapsed:.1f} s, {producer.calls} calls, "
          f"{producer.partial_responses} partial, errors {producer.entry_errors}, "
          f"max attempts {max(producer.attempts.values())}")

    # AWS refused part of each over-limit request, entry by entry, in its own words.
    assert producer.partial_responses >= 1, (
        "no PutRecords was partially refused at 3x the shard's write limit: "
        "is the broker running with --throughput-limits off?"
    )
    assert set(producer.entry_errors) == {"ProvisionedThroughputExceededException"}
    assert producer.entry_messages == {
        (
            "ProvisionedThroughputExceededException",
            f"Rate exceeded for shard {shard_id(0)} in stream {stream} under account {ACCOUNT}.",
        )
    }
    # A 1,000 records/s shard cannot take 4,500 records offered in 1.5 s in one pass.
    assert producer.calls > RECORDS // BATCH
    assert producer.call_errors == {}, "partial failures are answered with HTTP 200"
    assert len(producer.acked) == RECORDS
    assert_read_back_is_exactly_the_acked(stream, records, producer)


def test_producer_survives_injected_faults_without_duplicates_or_losses(make_stream):
    """The same producer with, on top of throttling, injected entry failures (InternalFailure),
    whole-request 500s and 503s (retried by botocore's standard mode) and added latency.
    Injected failures write nothing, so a resent entry is never a duplicate."""
    stream = make_stream(1, prefix="faulty")
    records = make_records("f")
    rules = {
        "record_failure_rate": 0.1,
        "record_failure": "InternalFailure",
        "internal_failure_rate": 0.1,
        "service_unavailable_rate": 0.1,
        "latency_ms": [0, 20],
    }
    status, answer = admin("PUT", "/_broker/faults", {"seed": 6, "streams": {stream: rules}})
    assert status == 200, answer
    before = answer["counts"]
    try:
        producer = Producer(make_client(), stream, OFFERED_RATE, seed=2)
        elapsed = producer.run(records)
        print(f"{RECORDS} records in {elapsed:.1f} s, {producer.calls} calls, "
              f"{producer.partial_responses} partial, errors {producer.entry_errors}, "
              f"call errors {producer.call_errors}, max attempts {max(producer.attempts.values())}")
        _, after = admin("GET", "/_broker/faults")
    finally:
        admin("DELETE", "/_broker/faults")

    assert producer.entry_errors.get("InternalFailure", 0) > 0, producer.entry_errors
    assert producer.entry_errors.get("ProvisionedThroughputExceededException", 0) > 0
    counts = after["counts"]
    injected_requests = sum(counts["requests"].values()) - sum(before["requests"].values())
    assert injected_requests > 0, "some whole requests were failed (and retried by botocore)"
    injected_entries = counts["records"].get("InternalFailure", 0) - before["records"].get("InternalFailure", 0)
    assert injected_entries == producer.entry_errors["InternalFailure"]
    assert len(producer.acked) == RECORDS
    assert_read_back_is_exactly_the_acked(stream, records, producer)
