"""Lambda's event-source-mapping states seen through boto3's `lambda` client: Creating →
Enabled, Updating, Disabling → Disabled, Enabling, Deleting → gone, each asynchronous
(the broker runs with a small --event-source-mapping-delay-ms), ResourceInUseException
while a transition is under way, and what a mapping shows once its stream is deleted."""

import os
import tempfile
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import MAX_POLLS, broker_binary, free_port, make_client, serving, wait_active, wait_deleted

DELAY_MS = 300


@pytest.fixture
def broker_url():
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        args = [broker_binary(), "--host", "127.0.0.1", "--port", str(port), "--data-dir", os.path.join(d, "data"),
                "--create-stream-delay-ms", "0", "--delete-stream-delay-ms", "0",
                "--event-source-mapping-delay-ms", str(DELAY_MS),
                "--function", f"fn=runtime://127.0.0.1:{free_port()}"]
        with serving(args, port, os.path.join(d, "broker.log")):
            yield f"http://127.0.0.1:{port}"


def lambda_client(url):
    return boto3.session.Session().client(
        "lambda", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="dummy-secret",
        config=Config(retries={"max_attempts": 1}),
    )


def wait_state(lam, uuid, state):
    for _ in range(MAX_POLLS):
        m = lam.get_event_source_mapping(UUID=uuid)
        if m["State"] == state:
            return m
        time.sleep(0.025)
    raise AssertionError(f"mapping {uuid} never {state}: {m}")


def assert_in_use(call, verb):
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response
    assert err["Error"]["Code"] == "ResourceInUseException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Message"] == f"Cannot {verb} the event source mapping because it is in use."


def stream(url, name):
    kinesis = make_client(url=url)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    wait_active(kinesis, name)
    return kinesis, kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def test_states_transition_asynchronously_and_refuse_changes_meanwhile(broker_url):
    _, arn = stream(broker_url, "esm-states")
    lam = lambda_client(broker_url)
    m = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn, StartingPosition="LATEST")
    assert m["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert m["State"] == "Creating"
    assert m["StateTransitionReason"] == "User action"
    uuid = m["UUID"]
    assert_in_use(lambda: lam.update_event_source_mapping(UUID=uuid, BatchSize=5), "update")
    assert_in_use(lambda: lam.delete_event_source_mapping(UUID=uuid), "delete")
    wait_state(lam, uuid, "Enabled")

    updating = lam.update_event_source_mapping(UUID=uuid, BatchSize=5)
    assert updating["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert (updating["State"], updating["BatchSize"]) == ("Updating", 100)
    assert wait_state(lam, uuid, "Enabled")["BatchSize"] == 5

    assert lam.update_event_source_mapping(UUID=uuid, Enabled=False)["State"] == "Disabling"
    wait_state(lam, uuid, "Disabled")
    assert lam.update_event_source_mapping(UUID=uuid, Enabled=True)["State"] == "Enabling"
    wait_state(lam, uuid, "Enabled")

    assert lam.delete_event_source_mapping(UUID=uuid)["State"] == "Deleting"
    assert lam.get_event_source_mapping(UUID=uuid)["State"] == "Deleting"
    for _ in range(MAX_POLLS):
        try:
            lam.get_event_source_mapping(UUID=uuid)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        time.sleep(0.025)
    else:
        raise AssertionError("the mapping was never deleted")
    assert lam.list_event_source_mappings(FunctionName="fn")["EventSourceMappings"] == []


def test_a_deleted_stream_disables_its_mapping(broker_url):
    kinesis, arn = stream(broker_url, "esm-going")
    lam = lambda_client(broker_url)
    uuid = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn,
                                           StartingPosition="TRIM_HORIZON")["UUID"]
    wait_state(lam, uuid, "Enabled")
    kinesis.delete_stream(StreamName="esm-going")
    wait_deleted(kinesis, "esm-going")
    m = lam.get_event_source_mapping(UUID=uuid)
    assert m["State"] == "Disabled"
    assert m["StateTransitionReason"] == "Lambda initiated"
    assert m["LastProcessingResult"] == f"PROBLEM: Stream not found: {arn}"
    # Still listed and deletable, as any disabled mapping.
    assert [x["UUID"] for x in lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"]] == [uuid]
    assert lam.delete_event_source_mapping(UUID=uuid)["State"] == "Deleting"
