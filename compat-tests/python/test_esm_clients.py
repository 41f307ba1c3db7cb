"""Event-source mappings with the other official runtime interface clients and the AWS CLI:
an unmodified handler on the Rust `lambda_runtime` crate and one under Node's `aws-lambda-ric`
each receive every record, in order per shard, through a mapping created with the AWS CLI
(`aws lambda create-event-source-mapping --endpoint-url`) or boto3; the CLI's list, get,
update and delete of mappings are checked against the members and types of Lambda's own
model (botocore's `lambda` service model, the one the CLI itself parses with)."""

import json
import os
import subprocess
import tempfile

import botocore.session
import pytest

from conftest import cli_env, make_client, wait_active
from esm_support import Broker, Runtimes, by_shard, lambda_client, read_lines, wait_for

LAMBDA_MODEL = botocore.session.get_session().get_service_model("lambda")
MAPPING_SHAPE = LAMBDA_MODEL.shape_for("EventSourceMappingConfiguration")
LIST_SHAPE = LAMBDA_MODEL.operation_model("ListEventSourceMappings").output_shape


def check_shape(value, shape, path="$", cli=True):
    """`value` (the CLI's JSON, or boto3's parsed answer) fits `shape`: known members only,
    right types, enums within their values."""
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: {value!r} is not an object"
        unknown = set(value) - set(shape.members) - {"ResponseMetadata"}
        assert not unknown, f"{path}: members not in Lambda's model: {sorted(unknown)}"
        for name, member in shape.members.items():
            if name in value:
                check_shape(value[name], member, f"{path}.{name}", cli)
    elif t == "list":
        assert isinstance(value, list), f"{path}: {value!r} is not a list"
        for i, item in enumerate(value):
            check_shape(item, shape.member, f"{path}[{i}]", cli)
    elif t == "map":
        assert isinstance(value, dict), f"{path}: {value!r} is not a map"
        for k, v in value.items():
            check_shape(v, shape.value, f"{path}.{k}", cli)
    elif t == "string":
        assert isinstance(value, str), f"{path}: {value!r} is not a string"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not in {shape.enum}"
    elif t in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r} is not an integer"
    elif t == "boolean":
        assert isinstance(value, bool), f"{path}: {value!r} is not a boolean"
    elif t == "timestamp":
        # AWS CLI v1 prints a timestamp as it came over the wire (cli_timestamp_format
        # `none`: Lambda sends epoch seconds); boto3 hands back datetimes.
        if cli:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), \
                f"{path}: {value!r} is not epoch seconds"
        else:
            assert hasattr(value, "isoformat"), f"{path}: {value!r} is not a datetime"
    else:
        raise AssertionError(f"{path}: no check for shape type {t}")


def aws_lambda(url, *args, check=True):
    cmd = [os.environ.get("AWS_CLI", "aws"), "--endpoint-url", url, "--output", "json", "lambda", *args]
    proc = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr}")
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.stderr


@pytest.fixture
def env():
    with tempfile.TemporaryDirectory() as d:
        broker = Broker(d, ["rustfn", "nodefn"]).start()
        runtimes = Runtimes(d)
        try:
            yield d, broker, runtimes
        finally:
            runtimes.kill_all()
            broker.stop()


def prefilled_stream(url, name, shards, n):
    """A stream with `n` records over many keys; returns (ARN, [(key, seq, data)] in put
    order, {seq: shard})."""
    kinesis = make_client(url=url)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    wait_active(kinesis, name)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    put, shard_of = [], {}
    for start in range(0, n, 100):
        batch = [(f"key-{i % 17}", f"rec-{i:05d}") for i in range(start, min(n, start + 100))]
        out = kinesis.put_records(StreamName=name, Records=[{"PartitionKey": k, "Data": v.encode()} for k, v in batch])
        assert out["FailedRecordCount"] == 0
        for (k, v), r in zip(batch, out["Records"]):
            put.append((k, r["SequenceNumber"], v))
            shard_of[r["SequenceNumber"]] = r["ShardId"]
    return arn, put, shard_of


def assert_in_order_per_shard(delivered, put, shard_of):
    """Every record exactly once, each shard's in the order it was stored."""
    assert by_shard(delivered, shard_of) == by_shard(put, shard_of)
    assert len(delivered) == len(put)


def test_rust_lambda_runtime_handler_through_a_cli_mapping(env):
    d, broker, runtimes = env
    arn, put, shard_of = prefilled_stream(broker.url, "esm-rust", 2, 400)
    _, created, _ = aws_lambda(broker.url, "create-event-source-mapping", "--function-name", "rustfn",
                               "--event-source-arn", arn, "--starting-position", "TRIM_HORIZON",
                               "--batch-size", "25")
    check_shape(created, MAPPING_SHAPE)
    assert created["State"] == "Creating" and created["BatchSize"] == 25
    assert created["EventSourceArn"] == arn
    assert created["FunctionArn"].endswith(":function:rustfn")

    out = os.path.join(d, "rust.out")
    runtimes.rust(broker.runtime_ports["rustfn"], "rustfn", ESM_OUT=out)
    wait_for(lambda: len(read_lines(out)) >= len(put), "the Rust handler to receive every record")
    assert_in_order_per_shard(read_lines(out), put, shard_of)
    got = wait_for(lambda: (lambda m: m if m["LastProcessingResult"] == "OK" else None)(
        aws_lambda(broker.url, "get-event-source-mapping", "--uuid", created["UUID"])[1]),
        "LastProcessingResult OK")
    check_shape(got, MAPPING_SHAPE)
    assert got["State"] == "Enabled"


def test_node_aws_lambda_ric_handler_through_a_boto3_mapping(env):
    d, broker, runtimes = env
    arn, put, shard_of = prefilled_stream(broker.url, "esm-node", 3, 300)
    lam = lambda_client(broker.url)
    m = lam.create_event_source_mapping(FunctionName="nodefn", EventSourceArn=arn,
                                        StartingPosition="TRIM_HORIZON", BatchSize=40)
    check_shape(m, MAPPING_SHAPE, cli=False)
    out = os.path.join(d, "node.out")
    runtimes.node(broker.runtime_ports["nodefn"], "nodefn", ESM_OUT=out)
    wait_for(lambda: len(read_lines(out)) >= len(put), "the Node handler to receive every record")
    assert_in_order_per_shard(read_lines(out), put, shard_of)

    # Records put after the handler caught up arrive too (the mapping waits on the tail).
    kinesis = make_client(url=broker.url)
    more = kinesis.put_records(StreamName="esm-node", Records=[
        {"PartitionKey": "late", "Data": f"late-{i}".encode()} for i in range(10)])
    late = [("late", r["SequenceNumber"], f"late-{i}") for i, r in enumerate(more["Records"])]
    wait_for(lambda: len(read_lines(out)) >= len(put) + 10, "the records put later")
    assert read_lines(out)[len(put):] == late


def test_cli_lists_gets_updates_and_deletes_mappings(env):
    d, broker, runtimes = env
    kinesis = make_client(url=broker.url)
    arns = []
    for name in ("esm-cli-a", "esm-cli-b"):
        kinesis.create_stream(StreamName=name, ShardCount=1)
        wait_active(kinesis, name)
        arns.append(kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"])
    uuids = []
    for arn, fn in zip(arns, ("rustfn", "nodefn")):
        _, m, _ = aws_lambda(broker.url, "create-event-source-mapping", "--function-name", fn,
                             "--event-source-arn", arn, "--starting-position", "LATEST")
        uuids.append(m["UUID"])

    # A second mapping of the same stream to the same function: Lambda's 409.
    code, _, err = aws_lambda(broker.url, "create-event-source-mapping", "--function-name", "rustfn",
                              "--event-source-arn", arns[0], "--starting-position", "LATEST", check=False)
    # AWS CLI v1 exits 255 on a service error (v2: 254).
    assert code == 255, err
    assert "An error occurred (ResourceConflictException) when calling the CreateEventSourceMapping operation" in err

    _, listed, _ = aws_lambda(broker.url, "list-event-source-mappings")
    check_shape(listed, LIST_SHAPE)
    assert sorted(m["UUID"] for m in listed["EventSourceMappings"]) == sorted(uuids)
    _, by_fn, _ = aws_lambda(broker.url, "list-event-source-mappings", "--function-name", "nodefn")
    assert [m["UUID"] for m in by_fn["EventSourceMappings"]] == [uuids[1]]
    _, by_arn, _ = aws_lambda(broker.url, "list-event-source-mappings", "--event-source-arn", arns[0])
    assert [m["UUID"] for m in by_arn["EventSourceMappings"]] == [uuids[0]]
    # The CLI pages with Marker/NextMarker itself; one item per page still lists both.
    _, paged, _ = aws_lambda(broker.url, "list-event-source-mappings", "--page-size", "1")
    assert sorted(m["UUID"] for m in paged["EventSourceMappings"]) == sorted(uuids)
    _, first, _ = aws_lambda(broker.url, "list-event-source-mappings", "--max-items", "1")
    assert len(first["EventSourceMappings"]) == 1 and "NextToken" in first

    _, got, _ = aws_lambda(broker.url, "get-event-source-mapping", "--uuid", uuids[0])
    check_shape(got, MAPPING_SHAPE)
    assert got["UUID"] == uuids[0] and got["StartingPosition"] == "LATEST" and got["BatchSize"] == 100

    _, updated, _ = aws_lambda(broker.url, "update-event-source-mapping", "--uuid", uuids[0],
                               "--batch-size", "7", "--maximum-retry-attempts", "3")
    check_shape(updated, MAPPING_SHAPE)
    # As Lambda: the answer shows the settings in force, the new ones once the update settles.
    assert updated["BatchSize"] == 100 and updated["MaximumRetryAttempts"] == -1
    assert updated["State"] == "Updating"
    _, got, _ = aws_lambda(broker.url, "get-event-source-mapping", "--uuid", uuids[0])
    assert got["BatchSize"] == 7 and got["MaximumRetryAttempts"] == 3

    _, disabled, _ = aws_lambda(broker.url, "update-event-source-mapping", "--uuid", uuids[0], "--no-enabled")
    check_shape(disabled, MAPPING_SHAPE)
    assert disabled["State"] == "Disabling"
    wait_for(lambda: aws_lambda(broker.url, "get-event-source-mapping", "--uuid", uuids[0])[1]["State"] == "Disabled",
             "the mapping to be Disabled")

    code, _, err = aws_lambda(broker.url, "update-event-source-mapping", "--uuid", uuids[0], "--batch-size", "0",
                              check=False)
    assert code != 0 and "BatchSize" in err, err

    for uuid in uuids:
        _, deleted, _ = aws_lambda(broker.url, "delete-event-source-mapping", "--uuid", uuid)
        check_shape(deleted, MAPPING_SHAPE)
        assert deleted["State"] == "Deleting"
    code, _, err = aws_lambda(broker.url, "get-event-source-mapping", "--uuid", uuids[0], check=False)
    assert code == 255
    assert "An error occurred (ResourceNotFoundException) when calling the GetEventSourceMapping operation" in err
    _, listed, _ = aws_lambda(broker.url, "list-event-source-mappings")
    assert listed["EventSourceMappings"] == []
