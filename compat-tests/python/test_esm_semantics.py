"""Lambda's delivery semantics for Kinesis event-source mappings, seen from real clients:
boto3's `lambda` client configures the mapping, unmodified handlers (esm_handler/semantics.py)
run under the official Python runtime interface client (`awslambdaric`) against the Runtime
API the broker serves. Bisect + MaximumRetryAttempts + the on-failure record read back from
a destination stream, ReportBatchItemFailures, a tumbling-window sum, ParallelizationFactor 10
with several runtime processes, and ordered delivery through a shard split."""

import base64
import json
import os
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from conftest import MAX_POLLS, make_client, wait_active
from test_esm import HERE, lambda_client, setup  # noqa: F401  (setup is a fixture)


def start_runtimes(d, runtime_port, procs, handler, count=1):
    out_file = os.path.join(d, "out.txt")
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime_port}", ESM_OUT=out_file,
               PYTHONPATH=os.path.join(HERE, "esm_handler"))
    log = open(os.path.join(d, "runtime.log"), "ab")
    for _ in range(count):
        procs.append(subprocess.Popen([sys.executable, "-m", "awslambdaric", f"semantics.{handler}"], env=env,
                                      cwd=os.path.join(HERE, "esm_handler"), stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=log))
    return out_file


def lines(path):
    return open(path).read().splitlines() if os.path.exists(path) else []


def wait_lines(path, done):
    got = []
    for _ in range(MAX_POLLS):
        got = lines(path)
        if done(got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out; {path} holds {got}")


def new_stream(kinesis, name, shards=1):
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    wait_active(kinesis, name)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def put(kinesis, name, values, key="k"):
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        records = [{"PartitionKey": k, "Data": v.encode()} for k, v in
                   (x if isinstance(x, tuple) else (key, x) for x in chunk)]
        assert kinesis.put_records(StreamName=name, Records=records)["FailedRecordCount"] == 0


def read_all(kinesis, name):
    it = kinesis.get_shard_iterator(StreamName=name, ShardId="shardId-000000000000",
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return kinesis.get_records(ShardIterator=it)["Records"]


def test_poison_record_is_bisected_out_retried_and_reported_to_the_destination_stream(setup):
    d, url, runtime_port, procs = setup
    kinesis, lam = make_client(url=url), lambda_client(url)
    arn = new_stream(kinesis, "sem-poison")
    dlq = new_stream(kinesis, "sem-dlq")
    values = [f"v{i}" for i in range(10)]
    values[6] = "poison"
    put(kinesis, "sem-poison", values)

    with pytest.raises(ClientError) as refused:
        lam.create_event_source_mapping(
            FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
            DestinationConfig={"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:dlq"}})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "only Kinesis streams of this broker" in refused.value.response["Error"]["Message"]

    m = lam.create_event_source_mapping(
        FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON", BatchSize=10,
        BisectBatchOnFunctionError=True, MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": dlq}})
    assert m["BisectBatchOnFunctionError"] is True
    assert m["DestinationConfig"] == {"OnFailure": {"Destination": dlq}}
    out = start_runtimes(d, runtime_port, procs, "poison")
    got = wait_lines(out, lambda g: len(g) >= 9)
    assert got == [v for v in values if v != "poison"]

    records = []
    for _ in range(MAX_POLLS):
        records = read_all(kinesis, "sem-dlq")
        if records:
            break
        time.sleep(0.05)
    assert len(records) == 1
    assert records[0]["PartitionKey"] == "shardId-000000000000"
    failure = json.loads(records[0]["Data"])
    assert failure["version"] == "1.0"
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2
    assert failure["requestContext"]["functionArn"] == m["FunctionArn"]
    assert failure["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                          "functionError": "Unhandled"}
    info = failure["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == arn and info["shardId"] == "shardId-000000000000"
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    poison_record = kinesis.get_records(ShardIterator=kinesis.get_shard_iterator(
        StreamName="sem-poison", ShardId="shardId-000000000000", ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=info["startSequenceNumber"])["ShardIterator"], Limit=1)["Records"][0]
    assert poison_record["Data"] == b"poison"
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")


def test_report_batch_item_failures_resumes_at_the_lowest_failed_record(setup):
    d, url, runtime_port, procs = setup
    kinesis, lam = make_client(url=url), lambda_client(url)
    arn = new_stream(kinesis, "sem-rbif")
    values = [f"r{i}" for i in range(4)] + ["fail-here"] + [f"r{i}" for i in range(5, 10)]
    put(kinesis, "sem-rbif", values)
    with pytest.raises(ClientError) as refused:
        lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        FunctionResponseTypes=["ReportBatchItemFailure"])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    m = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    out = start_runtimes(d, runtime_port, procs, "partial")
    got = wait_lines(out, lambda g: len(g) >= 10)
    time.sleep(0.3)
    # r0-r3 processed once, then everything from the lowest reported record, once.
    assert lines(out) == values


def test_tumbling_window_sum(setup):
    d, url, runtime_port, procs = setup
    kinesis, lam = make_client(url=url), lambda_client(url)
    arn = new_stream(kinesis, "sem-window")
    m = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=4, TumblingWindowInSeconds=1)
    assert m["TumblingWindowInSeconds"] == 1
    out = start_runtimes(d, runtime_port, procs, "window_sum")
    put(kinesis, "sem-window", [str(i) for i in range(1, 11)])
    time.sleep(1.1)
    put(kinesis, "sem-window", [str(i) for i in range(11, 21)])
    got = wait_lines(out, lambda g: sum(int(x.split()[2]) for x in g) >= 210)
    assert all(x.startswith("FINAL ") for x in got)
    assert sum(int(x.split()[2]) for x in got) == 210
    starts = [x.split()[1] for x in got]
    assert len(starts) >= 2 and starts == sorted(set(starts)), "one final invoke per window, in order"


def test_parallelization_factor_10_keeps_each_partition_key_in_order(setup):
    d, url, runtime_port, procs = setup
    kinesis, lam = make_client(url=url), lambda_client(url)
    arn = new_stream(kinesis, "sem-par")
    keys = [f"key{i}" for i in range(20)]
    items = [(k, f"{i:03d}") for i in range(15) for k in keys]
    put(kinesis, "sem-par", items)
    m = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=5, ParallelizationFactor=10)
    assert m["ParallelizationFactor"] == 10
    out = start_runtimes(d, runtime_port, procs, "keyed", count=4)
    got = wait_lines(out, lambda g: len(g) >= len(items))
    assert len(got) == len(items)
    for k in keys:
        assert [x.split()[1] for x in got if x.split()[0] == k] == [f"{i:03d}" for i in range(15)], k


def test_ordered_delivery_through_a_shard_split(setup):
    d, url, runtime_port, procs = setup
    kinesis, lam = make_client(url=url), lambda_client(url)
    arn = new_stream(kinesis, "sem-split")
    first = [f"a{i:03d}" for i in range(60)]
    put(kinesis, "sem-split", first)
    lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                    BatchSize=25)
    out = start_runtimes(d, runtime_port, procs, "keyed")
    wait_lines(out, lambda g: len(g) >= 30)
    kinesis.split_shard(StreamName="sem-split", ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2 ** 127))
    wait_active(kinesis, "sem-split")
    second = [f"b{i:03d}" for i in range(60)]
    put(kinesis, "sem-split", second)
    got = wait_lines(out, lambda g: len(g) >= 120)
    assert [x.split()[1] for x in got] == first + second


def test_filter_criteria_deliver_only_matching_records(setup):
    d, url, runtime_port, procs = setup
    kinesis, lam = make_client(url=url), lambda_client(url)
    arn = new_stream(kinesis, "sem-filter")
    criteria = {"Filters": [
        {"Pattern": json.dumps({"data": {"order": {"type": ["buy"]}, "qty": [{"numeric": [">=", 10]}]}})},
        {"Pattern": json.dumps({"data": {"urgent": [True]}})},
    ]}
    m = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=5, FilterCriteria=criteria)
    assert m["FilterCriteria"] == criteria
    values = []
    for i in range(40):
        kind = ["buy", "sell"][i % 2]
        values.append(json.dumps({"order": {"type": kind}, "qty": i, "urgent": i % 7 == 0}))
    values.insert(5, "plain text, not JSON")
    put(kinesis, "sem-filter", values)
    expected = []
    for v in values:
        try:
            doc = json.loads(v)
        except ValueError:
            continue
        if (doc["order"]["type"] == "buy" and doc["qty"] >= 10) or doc["urgent"]:
            expected.append(v)
    out = start_runtimes(d, runtime_port, procs, "poison")
    got = wait_lines(out, lambda g: len(g) >= len(expected))
    time.sleep(0.3)
    assert lines(out) == expected
    got = lam.get_event_source_mapping(UUID=m["UUID"])
    assert got["FilterCriteria"] == criteria
