"""Queues (issue 18) with unmodified boto3: every queue operation and its errors.

The rules pinned here are the model's documentation (service-2.json, the AWS API
Reference pages of the same operations); error message texts are the broker's (NOT PINNED
against AWS), so only the error codes are asserted.
"""

import base64
import time

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


def test_worker_pool_acknowledges_good_records_once_and_dead_letters_bad_ones(kinesis):
    """The issue's worker-pool scenario, scaled down for CI: 8 boto3 workers receive,
    process and acknowledge; one record in 100 always fails (its visibility is set to 0 so
    it comes back at once) and must end as a dead letter after MaxReceiveCount receives;
    Restore brings the dead letters back with their receive count reset."""
    import threading
    from collections import Counter

    from conftest import make_client

    records, workers, max_receive = 3000, 8, 3
    stream = on_demand_stream(kinesis)
    for start in range(0, records, 500):
        out = kinesis.put_records(
            StreamName=stream,
            Records=[{"PartitionKey": f"k{n}", "Data": f"rec-{n}".encode()} for n in range(start, start + 500)],
        )
        assert out["FailedRecordCount"] == 0
    queue_arn = create_queue(
        kinesis, stream, DeadLetterConfiguration={"TargetType": "BUILT_IN", "MaxReceiveCount": max_receive}
    )
    bad = {f"rec-{n}" for n in range(records) if n % 100 == 7}
    good_total = records - len(bad)
    lock = threading.Lock()
    acks = Counter()  # good record -> successful acknowledgements
    failed_acks = []
    receives_of_bad = Counter()
    done = threading.Event()

    def worker():
        client = make_client()
        for _ in range(10_000):
            if done.is_set():
                return
            batch = client.receive_queue_records(QueueARN=queue_arn, Limit=10, WaitTimeSeconds=1)["QueueRecords"]
            good = [r for r in batch if r["Data"].decode() not in bad]
            poison = [r for r in batch if r["Data"].decode() in bad]
            if poison:
                client.update_queue_records_visibility(
                    QueueARN=queue_arn,
                    Entries=[{"ReceiptHandle": r["ReceiptHandle"], "VisibilityTimeoutSeconds": 0} for r in poison],
                )
            if good:
                out = client.acknowledge_queue_records(QueueARN=queue_arn, Entries=entries(good))
                by_handle = {r["ReceiptHandle"]: r["Data"].decode() for r in good}
                with lock:
                    for s in out["Successful"]:
                        acks[by_handle[s["ReceiptHandle"]]] += 1
                    failed_acks.extend(out["Failed"])
            with lock:
                for r in poison:
                    receives_of_bad[r["Data"].decode()] += 1
                if len(acks) == good_total:
                    done.set()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "workers did not finish"
    assert failed_acks == []
    assert len(acks) == good_total and set(acks.values()) == {1}, "every good record acknowledged exactly once"

    # Every bad record was received MaxReceiveCount times and is now a dead letter.
    dead = {}
    for _ in range(MAX_POLLS):
        if len(dead) == len(bad):
            break
        for r in kinesis.receive_dead_letter_queue_records(QueueARN=queue_arn, Limit=10, WaitTimeSeconds=1)[
            "QueueRecords"
        ]:
            dead[r["Data"].decode()] = r
    assert set(dead) == bad
    assert {r["ReceiveCount"] for r in dead.values()} == {max_receive}
    assert all(receives_of_bad[d] == max_receive for d in bad), receives_of_bad
    assert receive(kinesis, queue_arn) == []

    # Restore brings them back to the normal path, receive count reset.
    handles = [{"ReceiptHandle": r["ReceiptHandle"]} for r in dead.values()]
    for i in range(0, len(handles), 10):
        out = kinesis.restore_dead_letter_queue_records(QueueARN=queue_arn, Entries=handles[i : i + 10])
        assert out["Failed"] == []
    back = {}
    for _ in range(MAX_POLLS):
        if len(back) == len(bad):
            break
        for r in receive(kinesis, queue_arn, Limit=10):
            back[r["Data"].decode()] = r["ReceiveCount"]
    assert set(back) == bad and set(back.values()) == {1}
