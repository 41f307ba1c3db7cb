"""Queues (issue 18) with unmodified boto3: every queue operation and its errors.

The rules pinned here are the model's documentation (service-2.json, the AWS API
Reference pages of the same operations); error message texts are the broker's (NOT PINNED
against AWS), so only the error codes are asserted.
"""

import base64
import time
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from conftest import arn, unique, wait_active

MAX_POLLS = 400


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def on_demand_stream(kinesis):
    name = unique("queues")
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, name)
    return name


def wait_queue_active(kinesis, queue_arn):
    for _ in range(MAX_POLLS):
        d = kinesis.describe_queue(QueueARN=queue_arn)["QueueDescription"]
        if d["QueueStatus"] == "ACTIVE":
            return d
        time.sleep(0.025)
    raise AssertionError(f"queue {queue_arn} never became ACTIVE")


def create_queue(kinesis, stream, position="TRIM_HORIZON", **attrs):
    kwargs = {
        "QueueName": unique("q"),
        "StreamConfigurationList": [{"StreamARN": arn(stream), "StartingPosition": {"Type": position}}],
    }
    if attrs:
        kwargs["QueueAttributes"] = attrs
    d = kinesis.create_queue(**kwargs)["QueueDescription"]
    assert d["QueueStatus"] in ("CREATING", "ACTIVE")
    return wait_queue_active(kinesis, d["QueueARN"])["QueueARN"]


def put(kinesis, stream, n, prefix="r"):
    for i in range(n):
        kinesis.put_record(StreamName=stream, PartitionKey=f"{prefix}-{i}", Data=f"{prefix}-{i}".encode())


def receive(kinesis, queue_arn, **kw):
    kw.setdefault("WaitTimeSeconds", 1)
    return kinesis.receive_queue_records(QueueARN=queue_arn, **kw)["QueueRecords"]


def entries(records):
    return [{"ReceiptHandle": r["ReceiptHandle"]} for r in records]


def test_create_describe_update_list_delete(kinesis):
    stream = on_demand_stream(kinesis)
    name = unique("orders")
    d = kinesis.create_queue(
        QueueName=name,
        StreamConfigurationList=[{"StreamARN": arn(stream)}],
        Tags={"team": "payments"},
    )["QueueDescription"]
    queue_arn = d["QueueARN"]
    assert queue_arn.startswith("arn:aws:kinesis:us-east-1:000000000000:queue/")
    assert name not in queue_arn
    d = wait_queue_active(kinesis, queue_arn)
    assert d["QueueName"] == name
    assert d["StreamConfigurationList"][0]["StreamARN"] == arn(stream)
    assert d["StreamConfigurationList"][0]["StartingPosition"]["Type"] == "LATEST"
    assert "Timestamp" in d["StreamConfigurationList"][0]["StartingPosition"]
    assert d["QueueAttributes"] == {
        "VisibilityTimeoutSeconds": 30,
        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 6},
    }

    assert kinesis.list_tags_for_resource(ResourceARN=queue_arn)["Tags"] == [{"Key": "team", "Value": "payments"}]
    kinesis.tag_resource(ResourceARN=queue_arn, Tags={"tier": "1"})
    kinesis.untag_resource(ResourceARN=queue_arn, TagKeys=["team"])
    assert kinesis.list_tags_for_resource(ResourceARN=queue_arn)["Tags"] == [{"Key": "tier", "Value": "1"}]

    with pytest.raises(ClientError) as e:
        kinesis.create_queue(QueueName=name, StreamConfigurationList=[{"StreamARN": arn(stream)}])
    assert code(e) == "ResourceInUseException"

    u = kinesis.update_queue(QueueARN=queue_arn, QueueAttributes={"VisibilityTimeoutSeconds": 7})["QueueDescription"]
    assert u["QueueAttributes"]["VisibilityTimeoutSeconds"] == 7
    assert u["QueueAttributes"]["DeadLetterConfiguration"]["MaxReceiveCount"] == 6
    wait_queue_active(kinesis, queue_arn)

    listed = kinesis.list_queues(StreamFilter=[{"StreamARN": arn(stream)}])["QueueSummaries"]
    assert [q["QueueARN"] for q in listed] == [queue_arn]
    assert listed[0]["Streams"][0]["StreamARN"] == arn(stream)
    # Pagination: every queue exactly once over pages of one.
    other = create_queue(kinesis, stream)
    seen, token = [], None
    for _ in range(MAX_POLLS):
        kw = {"MaxResults": 1, "StreamFilter": [{"StreamARN": arn(stream)}]}
        if token:
            kw["NextToken"] = token
        page = kinesis.list_queues(**kw)
        seen += [q["QueueARN"] for q in page["QueueSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted([queue_arn, other])

    # A stream with queues can be neither deleted nor switched to PROVISIONED.
    with pytest.raises(ClientError) as e:
        kinesis.delete_stream(StreamName=stream)
    assert code(e) == "ResourceInUseException"
    with pytest.raises(ClientError) as e:
        kinesis.update_stream_mode(StreamARN=arn(stream), StreamModeDetails={"StreamMode": "PROVISIONED"})
    assert code(e) == "ResourceInUseException"

    for q in (queue_arn, other):
        kinesis.delete_queue(QueueARN=q)
    for _ in range(MAX_POLLS):
        try:
            kinesis.describe_queue(QueueARN=queue_arn)
        except ClientError as err:
            assert err.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        time.sleep(0.025)
    else:
        raise AssertionError("the queue was never deleted")


def test_create_queue_errors(kinesis):
    provisioned = unique("prov")
    kinesis.create_stream(StreamName=provisioned, ShardCount=1)
    wait_active(kinesis, provisioned)
    with pytest.raises(ClientError) as e:
        kinesis.create_queue(QueueName=unique("q"), StreamConfigurationList=[{"StreamARN": arn(provisioned)}])
    assert code(e) == "InvalidArgumentException"
    with pytest.raises(ClientError) as e:
        kinesis.create_queue(QueueName=unique("q"), StreamConfigurationList=[{"StreamARN": arn(unique("absent"))}])
    assert code(e) == "ResourceNotFoundException"
    stream = on_demand_stream(kinesis)
    with pytest.raises(ClientError) as e:
        kinesis.create_queue(
            QueueName=unique("q"),
            StreamConfigurationList=[{"StreamARN": arn(stream), "StartingPosition": {"Type": "AT_TIMESTAMP"}}],
        )
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        kinesis.create_queue(
            QueueName=unique("q"),
            StreamConfigurationList=[{"StreamARN": arn(stream)}],
            QueueAttributes={"DeadLetterConfiguration": {"TargetType": "BUILT_IN"}},
        )
    assert code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        kinesis.describe_queue(QueueARN="arn:aws:kinesis:us-east-1:000000000000:queue/nonexistent")
    assert code(e) == "ResourceNotFoundException"


def test_receive_acknowledge_and_visibility(kinesis):
    stream = on_demand_stream(kinesis)
    put(kinesis, stream, 15)
    queue_arn = create_queue(kinesis, stream)
    got = {}
    for _ in range(MAX_POLLS):
        batch = receive(kinesis, queue_arn, Limit=10)
        if not batch:
            break
        assert len(batch) <= 10
        for r in batch:
            assert r["ReceiveCount"] == 1
            assert r["Data"].decode() == r["PartitionKey"]
            assert r["Data"].decode() not in got
            got[r["Data"].decode()] = r
        out = kinesis.acknowledge_queue_records(QueueARN=queue_arn, Entries=entries(batch))
        assert len(out["Successful"]) == len(batch) and out["Failed"] == []
        again = kinesis.acknowledge_queue_records(QueueARN=queue_arn, Entries=entries(batch))
        assert again["Successful"] == [] and len(again["Failed"]) == len(batch)
        assert again["Failed"][0]["ErrorCode"] in ("ResourceNotFoundException", "InvalidArgumentException")
    assert len(got) == 15

    put(kinesis, stream, 1, "vis")
    first = receive(kinesis, queue_arn)
    assert len(first) == 1
    assert receive(kinesis, queue_arn) == []  # in flight for 30 s
    out = kinesis.update_queue_records_visibility(
        QueueARN=queue_arn,
        Entries=[
            {"ReceiptHandle": first[0]["ReceiptHandle"], "VisibilityTimeoutSeconds": 0},
            {"ReceiptHandle": "forged", "VisibilityTimeoutSeconds": 0},
        ],
    )
    assert [s["ReceiptHandle"] for s in out["Successful"]] == [first[0]["ReceiptHandle"]]
    assert out["Failed"][0]["ReceiptHandle"] == "forged"
    assert out["Failed"][0]["ErrorCode"] == "InvalidArgumentException"
    second = receive(kinesis, queue_arn)
    assert second[0]["ReceiveCount"] == 2
    assert second[0]["RecordId"] == first[0]["RecordId"]
    assert second[0]["ReceiptHandle"] != first[0]["ReceiptHandle"]
    stale = kinesis.acknowledge_queue_records(QueueARN=queue_arn, Entries=entries(first))
    assert len(stale["Failed"]) == 1
    assert len(kinesis.acknowledge_queue_records(QueueARN=queue_arn, Entries=entries(second))["Successful"]) == 1


def test_record_id_is_the_same_in_every_queue_of_the_stream(kinesis):
    stream = on_demand_stream(kinesis)
    put(kinesis, stream, 3)
    a = create_queue(kinesis, stream)
    b = create_queue(kinesis, stream)
    ids_a = {r["Data"]: r["RecordId"] for r in receive(kinesis, a, Limit=10)}
    ids_b = {r["Data"]: r["RecordId"] for r in receive(kinesis, b, Limit=10)}
    assert ids_a == ids_b and len(ids_a) == 3


def test_long_poll_returns_when_a_record_arrives(kinesis):
    import threading

    stream = on_demand_stream(kinesis)
    queue_arn = create_queue(kinesis, stream, position="LATEST")
    result = {}

    def waiter():
        started = time.monotonic()
        result["records"] = receive(kinesis, queue_arn, WaitTimeSeconds=20)
        result["elapsed"] = time.monotonic() - started

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    put(kinesis, stream, 1, "late")
    t.join(timeout=25)
    assert not t.is_alive()
    assert [r["Data"] for r in result["records"]] == [b"late-0"]
    assert result["elapsed"] < 10


def test_dead_letters_and_restore(kinesis):
    stream = on_demand_stream(kinesis)
    put(kinesis, stream, 1, "poison")
    queue_arn = create_queue(
        kinesis, stream, DeadLetterConfiguration={"TargetType": "BUILT_IN", "MaxReceiveCount": 2}
    )
    for n in (1, 2):
        r = receive(kinesis, queue_arn, VisibilityTimeoutSeconds=0)
        assert [x["ReceiveCount"] for x in r] == [n]
    assert receive(kinesis, queue_arn) == []
    dead = kinesis.receive_dead_letter_queue_records(QueueARN=queue_arn, WaitTimeSeconds=1)["QueueRecords"]
    assert [d["Data"] for d in dead] == [b"poison-0"]
    wrong = kinesis.acknowledge_queue_records(QueueARN=queue_arn, Entries=entries(dead))
    assert wrong["Failed"][0]["ErrorCode"] == "InvalidArgumentException"
    vis = kinesis.update_dead_letter_queue_records_visibility(
        QueueARN=queue_arn, Entries=[{"ReceiptHandle": dead[0]["ReceiptHandle"], "VisibilityTimeoutSeconds": 60}]
    )
    assert len(vis["Successful"]) == 1
    restored = kinesis.restore_dead_letter_queue_records(QueueARN=queue_arn, Entries=entries(dead))
    assert len(restored["Successful"]) == 1 and restored["Failed"] == []
    back = receive(kinesis, queue_arn, VisibilityTimeoutSeconds=0)
    assert [b["ReceiveCount"] for b in back] == [1]
    receive(kinesis, queue_arn, VisibilityTimeoutSeconds=0)
    dead = kinesis.receive_dead_letter_queue_records(QueueARN=queue_arn, WaitTimeSeconds=1)["QueueRecords"]
    assert len(dead) == 1
    acked = kinesis.acknowledge_dead_letter_queue_records(QueueARN=queue_arn, Entries=entries(dead))
    assert len(acked["Successful"]) == 1
    assert kinesis.receive_dead_letter_queue_records(QueueARN=queue_arn, WaitTimeSeconds=1)["QueueRecords"] == []
    assert receive(kinesis, queue_arn) == []


def test_dead_letter_handling_none_redelivers_forever(kinesis):
    stream = on_demand_stream(kinesis)
    put(kinesis, stream, 1)
    queue_arn = create_queue(kinesis, stream, DeadLetterConfiguration={"TargetType": "NONE"})
    for n in range(1, 9):
        assert [r["ReceiveCount"] for r in receive(kinesis, queue_arn, VisibilityTimeoutSeconds=0)] == [n]


def test_data_plane_errors(kinesis):
    missing = "arn:aws:kinesis:us-east-1:000000000000:queue/nonexistent"
    for call, kw in [
        (kinesis.receive_queue_records, {"WaitTimeSeconds": 1}),
        (kinesis.receive_dead_letter_queue_records, {"WaitTimeSeconds": 1}),
        (kinesis.acknowledge_queue_records, {"Entries": [{"ReceiptHandle": "x"}]}),
        (kinesis.acknowledge_dead_letter_queue_records, {"Entries": [{"ReceiptHandle": "x"}]}),
        (kinesis.restore_dead_letter_queue_records, {"Entries": [{"ReceiptHandle": "x"}]}),
        (kinesis.update_queue_records_visibility, {"Entries": [{"ReceiptHandle": "x", "VisibilityTimeoutSeconds": 1}]}),
        (
            kinesis.update_dead_letter_queue_records_visibility,
            {"Entries": [{"ReceiptHandle": "x", "VisibilityTimeoutSeconds": 1}]},
        ),
        (kinesis.update_queue, {"QueueAttributes": {"VisibilityTimeoutSeconds": 1}}),
        (kinesis.delete_queue, {}),
    ]:
        with pytest.raises(ClientError) as e:
            call(QueueARN=missing, **kw)
        assert code(e) == "ResourceNotFoundException", call.__name__


def test_base64_data_round_trips_bytes(kinesis):
    stream = on_demand_stream(kinesis)
    payload = bytes(range(256))
    kinesis.put_record(StreamName=stream, PartitionKey="bin", Data=payload)
    queue_arn = create_queue(kinesis, stream)
    [r] = receive(kinesis, queue_arn)
    assert r["Data"] == payload
    assert base64.b64encode(r["Data"])  # boto3 decoded the blob itself


POOL_RECORDS = 100_000
POOL_WORKERS = 8
POOL_BAD_EVERY = 1000  # record n is bad (always fails) when n % POOL_BAD_EVERY == 7
POOL_MAX_RECEIVE = 6  # the documented default MaxReceiveCount, given explicitly
POOL_DEADLINE_S = 240  # bound on the whole pool run; it takes far less (see the docstring)


def _pool_worker(queue_arn, good_total, bad_receives_total, acked, bad_received, deadline, results):
    """One worker process (its own boto3 client and interpreter, so eight of them are not
    serialised by one GIL): long-polls batches of 10, acknowledges the good records of a
    batch in one call and hands the bad ones back at once (visibility 0), until every good
    record is acknowledged and every bad one has been received MaxReceiveCount times."""
    from collections import Counter

    from conftest import make_client

    client = make_client()
    deliveries, acks, bad_counts = Counter(), Counter(), Counter()
    good_receive_counts, failed = Counter(), []
    try:
        while time.monotonic() < deadline:
            if acked.value >= good_total and bad_received.value >= bad_receives_total:
                break
            batch = client.receive_queue_records(QueueARN=queue_arn, Limit=10, WaitTimeSeconds=1)["QueueRecords"]
            good, poison = [], []
            for r in batch:
                n = int(r["Data"])
                (poison if n % POOL_BAD_EVERY == 7 else good).append((n, r))
            if poison:
                out = client.update_queue_records_visibility(
                    QueueARN=queue_arn,
                    Entries=[{"ReceiptHandle": r["ReceiptHandle"], "VisibilityTimeoutSeconds": 0} for _, r in poison],
                )
                failed.extend(out["Failed"])
                for n, r in poison:
                    bad_counts[(n, r["ReceiveCount"])] += 1
                with bad_received.get_lock():
                    bad_received.value += len(poison)
            if good:
                out = client.acknowledge_queue_records(
                    QueueARN=queue_arn, Entries=[{"ReceiptHandle": r["ReceiptHandle"]} for _, r in good]
                )
                failed.extend(out["Failed"])
                by_handle = {r["ReceiptHandle"]: n for n, r in good}
                for n, r in good:
                    deliveries[n] += 1
                    good_receive_counts[r["ReceiveCount"]] += 1
                for ok in out["Successful"]:
                    acks[by_handle[ok["ReceiptHandle"]]] += 1
                with acked.get_lock():
                    acked.value += len(out["Successful"])
    except Exception as e:  # reported to the test, which fails on it
        failed.append({"exception": repr(e)})
    results.put((dict(deliveries), dict(acks), dict(bad_counts), dict(good_receive_counts), failed))


def _produce(kinesis, stream, records, batch=500, threads=4):
    """PutRecords of 500 from a few threads; records the broker throttles (the on-demand
    stream's per-shard rates are enforced) are sent again."""
    from concurrent.futures import ThreadPoolExecutor

    def put_range(start):
        pending = [{"PartitionKey": f"k{n}", "Data": str(n).encode()} for n in range(start, min(start + batch, records))]
        for _ in range(MAX_POLLS):
            out = kinesis.put_records(StreamName=stream, Records=pending)
            if out["FailedRecordCount"] == 0:
                return
            codes = {r["ErrorCode"] for r in out["Records"] if "ErrorCode" in r}
            assert codes <= {"ProvisionedThroughputExceededException"}, codes
            pending = [p for p, r in zip(pending, out["Records"]) if "ErrorCode" in r]
            time.sleep(0.05)
        raise AssertionError(f"records from {start} never accepted")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put_range, range(0, records, batch)))


def test_worker_pool_acknowledges_good_records_once_and_dead_letters_bad_ones(kinesis):
    """The issue's worker-pool scenario at full size: 8 boto3 worker processes receive,
    process and acknowledge 100,000 records while the producer writes them; one record in
    1,000 always fails (its visibility is set to 0 so it comes back at once) and must end as
    a dead letter after MaxReceiveCount receives; every good record is delivered once and
    acknowledged exactly once; Restore brings the dead letters back with their receive
    count reset, and they can be received again. Measured on the 2-core development
    machine: 28 s for the whole test (printed with -s), of which 25 s is the producer held
    to the new on-demand stream's write rate (4 shards x 1,000 records/s, enforced by the
    broker); the workers keep up with it and finish about 1 s after the last write."""
    import multiprocessing

    started = time.monotonic()
    stream = on_demand_stream(kinesis)
    queue_arn = create_queue(
        kinesis, stream, DeadLetterConfiguration={"TargetType": "BUILT_IN", "MaxReceiveCount": POOL_MAX_RECEIVE}
    )
    bad = {n for n in range(POOL_RECORDS) if n % POOL_BAD_EVERY == 7}
    good_total = POOL_RECORDS - len(bad)
    ctx = multiprocessing.get_context("fork")
    acked, bad_received = ctx.Value("q", 0), ctx.Value("q", 0)
    results = ctx.Queue()
    deadline = time.monotonic() + POOL_DEADLINE_S
    workers = [
        ctx.Process(
            target=_pool_worker,
            args=(queue_arn, good_total, len(bad) * POOL_MAX_RECEIVE, acked, bad_received, deadline, results),
        )
        for _ in range(POOL_WORKERS)
    ]
    for w in workers:
        w.start()
    try:
        # Workers are long-polling while the records arrive: the write path wakes them.
        _produce(kinesis, stream, POOL_RECORDS)
        produced = time.monotonic()
        outcomes = [results.get(timeout=POOL_DEADLINE_S + 30) for _ in workers]
    except BaseException:
        for w in workers:
            w.kill()
        raise
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()
    consumed = time.monotonic()

    deliveries, acks, bad_counts, good_receive_counts, failed = Counter(), Counter(), Counter(), Counter(), []
    for d, a, b, g, f in outcomes:
        deliveries.update(d)
        acks.update(a)
        bad_counts.update(b)
        good_receive_counts.update(g)
        failed.extend(f)
    assert failed == []
    assert set(acks) == set(range(POOL_RECORDS)) - bad, "every good record acknowledged"
    assert acks == deliveries, "acknowledged exactly once per delivery"
    assert set(deliveries.values()) == {1} and set(good_receive_counts) == {1}, "good records delivered once"
    # Each bad record was received exactly MaxReceiveCount times, with counts 1..MaxReceiveCount.
    assert bad_counts == Counter({(n, c): 1 for n in bad for c in range(1, POOL_MAX_RECEIVE + 1)})

    dead = {}
    for _ in range(MAX_POLLS):
        if len(dead) == len(bad):
            break
        for r in kinesis.receive_dead_letter_queue_records(QueueARN=queue_arn, Limit=10, WaitTimeSeconds=1)[
            "QueueRecords"
        ]:
            dead[int(r["Data"])] = r
    assert set(dead) == bad
    assert {r["ReceiveCount"] for r in dead.values()} == {POOL_MAX_RECEIVE}
    assert receive(kinesis, queue_arn) == []

    handles = [{"ReceiptHandle": r["ReceiptHandle"]} for r in dead.values()]
    for i in range(0, len(handles), 10):
        out = kinesis.restore_dead_letter_queue_records(QueueARN=queue_arn, Entries=handles[i : i + 10])
        assert out["Failed"] == [] and len(out["Successful"]) == len(handles[i : i + 10])
    back = {}
    for _ in range(MAX_POLLS):
        if len(back) == len(bad):
            break
        for r in receive(kinesis, queue_arn, Limit=10):
            back[int(r["Data"])] = r["ReceiveCount"]
    assert set(back) == bad and set(back.values()) == {1}
    assert kinesis.receive_dead_letter_queue_records(QueueARN=queue_arn, WaitTimeSeconds=1)["QueueRecords"] == []
    print(
        f"\nworker pool: produce {produced - started:.1f} s, all acknowledged/dead-lettered "
        f"{consumed - started:.1f} s, total with restore {time.monotonic() - started:.1f} s"
    )
