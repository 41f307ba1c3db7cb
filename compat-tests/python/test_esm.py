"""Event-source mappings seen from real clients: boto3's `lambda` client creates the mapping
on the broker's port, and an unmodified handler runs under the official Python runtime
interface client (`awslambdaric`) against the Runtime API the broker serves for the
function (`--function fn=runtime://127.0.0.1:PORT`)."""

import os
import subprocess
import sys
import tempfile
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import MAX_POLLS, broker_binary, free_port, make_client, wait_active, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def setup():
    with tempfile.TemporaryDirectory() as d:
        port, runtime_port = free_port(), free_port()
        log = open(os.path.join(d, "broker.log"), "ab")
        broker = subprocess.Popen(
            [broker_binary(), "--host", "127.0.0.1", "--port", str(port), "--data-dir", os.path.join(d, "data"),
             "--create-stream-delay-ms", "0", "--update-stream-delay-ms", "0",
             "--event-source-mapping-delay-ms", "0",
             "--function", f"fn=runtime://127.0.0.1:{runtime_port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        procs = [broker]
        try:
            wait_port(port, broker, os.path.join(d, "broker.log"))
            yield d, f"http://127.0.0.1:{port}", runtime_port, procs
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=60)
            log.close()


def lambda_client(url):
    return boto3.session.Session().client(
        "lambda", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="dummy-secret",
        config=Config(retries={"max_attempts": 1}),
    )


def test_awslambdaric_handler_gets_every_record_in_order(setup):
    d, url, runtime_port, procs = setup
    kinesis = make_client(url=url)
    kinesis.create_stream(StreamName="esm-py", ShardCount=1)
    wait_active(kinesis, "esm-py")
    arn = kinesis.describe_stream_summary(StreamName="esm-py")["StreamDescriptionSummary"]["StreamARN"]
    expected = [f"rec-{i:04d}" for i in range(300)]
    for start in range(0, 300, 100):
        out = kinesis.put_records(StreamName="esm-py", Records=[
            {"PartitionKey": "k", "Data": v.encode()} for v in expected[start:start + 100]])
        assert out["FailedRecordCount"] == 0

    lam = lambda_client(url)
    with pytest.raises(ClientError) as refused:
        lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        FilterCriteria={"Filters": [{"Pattern": '{"data": {"a": [{"bogus": 1}]}}'}]})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert refused.value.response["Error"]["Message"] == "Invalid filter pattern definition."
    with pytest.raises(ClientError) as undeclared:
        lam.create_event_source_mapping(FunctionName="nope", EventSourceArn=arn, StartingPosition="TRIM_HORIZON")
    assert undeclared.value.response["Error"]["Code"] == "InvalidParameterValueException"

    m = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="TRIM_HORIZON",
                                        BatchSize=50)
    assert m["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert m["State"] == "Creating" and m["BatchSize"] == 50
    listed = lam.list_event_source_mappings(FunctionName="fn")["EventSourceMappings"]
    assert [x["UUID"] for x in listed] == [m["UUID"]]

    out_file = os.path.join(d, "records.txt")
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime_port}", ESM_OUT=out_file,
               PYTHONPATH=os.path.join(HERE, "esm_handler"))
    runtime_log = open(os.path.join(d, "runtime.log"), "ab")
    procs.append(subprocess.Popen([sys.executable, "-m", "awslambdaric", "app.handler"], env=env,
                                  cwd=os.path.join(HERE, "esm_handler"), stdin=subprocess.DEVNULL,
                                  stdout=runtime_log, stderr=runtime_log))
    got = []
    for _ in range(MAX_POLLS):
        if os.path.exists(out_file):
            got = open(out_file).read().splitlines()
            if len(got) >= len(expected):
                break
        time.sleep(0.05)
    assert got == expected
    for _ in range(MAX_POLLS):
        if lam.get_event_source_mapping(UUID=m["UUID"])["LastProcessingResult"] == "OK":
            break
        time.sleep(0.025)
    got_mapping = lam.get_event_source_mapping(UUID=m["UUID"])
    assert got_mapping["State"] == "Enabled"
    assert got_mapping["LastProcessingResult"] == "OK"
    deleted = lam.delete_event_source_mapping(UUID=m["UUID"])
    assert deleted["State"] == "Deleting"
    with pytest.raises(ClientError) as gone:
        lam.get_event_source_mapping(UUID=m["UUID"])
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
