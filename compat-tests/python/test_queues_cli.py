"""Queues (issue 18) through the AWS CLI v1: every queue command, its JSON output and the
error line the CLI prints.

No awscli 1.x release on PyPI has the queue commands (checked 2026-12-06): 1.45.0-1.45.64
pin botocore==1.43.0-1.43.64, 1.46.0-1.46.3 bundle botocore 1.43.62 (awscli/botocore,
aliased to `botocore` when the CLI runs), and the queue operations first appear in
botocore 1.44.5 (absent from 1.44.3 and 1.44.4). The CLI builds its commands from the service model it loads, and
AWS_DATA_PATH (the mechanism behind `aws configure add-model`) puts a newer model first in
its search path; so the pinned CLI runs with the kinesis model of the pinned botocore
1.44.8, copied alone so that every other service stays the CLI's own. Argument parsing,
serialization, pagination, output and error printing remain the CLI's code.
"""

import base64
import os
import shutil
import re
import subprocess
import threading
import time

import botocore
import pytest
from botocore.exceptions import ClientError

from conftest import MAX_POLLS, arn, aws, cli_env, unique, wait_active

QUEUE_COMMANDS = [
    "create-queue",
    "describe-queue",
    "list-queues",
    "update-queue",
    "delete-queue",
    "receive-queue-records",
    "acknowledge-queue-records",
    "update-queue-records-visibility",
    "receive-dead-letter-queue-records",
    "acknowledge-dead-letter-queue-records",
    "update-dead-letter-queue-records-visibility",
    "restore-dead-letter-queue-records",
]


@pytest.fixture(scope="module")
def qenv(tmp_path_factory):
    # The pytest process imports the top-level botocore (1.44.8, via conftest's boto3), never
    # the one bundled in awscli: its data directory has the kinesis model with queues.
    source = os.path.join(os.path.dirname(botocore.__file__), "data", "kinesis")
    models = tmp_path_factory.mktemp("cli-models")
    shutil.copytree(source, models / "kinesis")
    env = cli_env(AWS_DATA_PATH=str(models))
    missing = sorted(set(QUEUE_COMMANDS) - kinesis_commands(env))
    assert not missing, f"the CLI lacks {missing} even with the model of botocore {botocore.__version__}"
    return env


def kinesis_commands(env):
    """The CLI's kinesis commands, from the choices argparse lists for an unknown one (this
    needs no groff, unlike `aws kinesis help`)."""
    proc = subprocess.run(
        [os.environ.get("AWS_CLI", "aws"), "kinesis", "no-such-command"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "Invalid choice, valid choices are:" in proc.stderr, proc.stderr
    return set(re.findall(r"[a-z][a-z0-9-]+", proc.stderr.split("valid choices are:", 1)[1]))


def on_demand_stream(kinesis):
    name = unique("cliq")
    kinesis.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, name)
    return name


def q(env, *args, check=True):
    return aws(*args, env=env, check=check)


def wait_queue_active(env, queue_arn):
    for _ in range(MAX_POLLS):
        _, out, _ = q(env, "describe-queue", "--queue-arn", queue_arn)
        if out["QueueDescription"]["QueueStatus"] == "ACTIVE":
            return out["QueueDescription"]
        time.sleep(0.05)
    raise AssertionError(f"queue {queue_arn} never became ACTIVE")


def handles(records):
    return [f"ReceiptHandle={r['ReceiptHandle']}" for r in records]


def error_line(err):
    """The last line of stderr: the CLI may print warnings before its error line."""
    return err.strip().splitlines()[-1]


def test_cli_queue_lifecycle_and_listing(qenv, kinesis):
    stream = on_demand_stream(kinesis)
    name = unique("cliorders")
    _, out, _ = q(
        qenv,
        "create-queue",
        "--queue-name", name,
        "--stream-configuration-list", f"StreamARN={arn(stream)},StartingPosition={{Type=TRIM_HORIZON}}",
        "--queue-attributes", "VisibilityTimeoutSeconds=20,DeadLetterConfiguration={TargetType=BUILT_IN,MaxReceiveCount=3}",
        "--tags", "team=payments",
    )
    d = out["QueueDescription"]
    queue_arn = d["QueueARN"]
    assert d["QueueName"] == name and d["QueueStatus"] in ("CREATING", "ACTIVE")
    assert queue_arn.startswith("arn:aws:kinesis:us-east-1:000000000000:queue/")

    d = wait_queue_active(qenv, queue_arn)
    assert d["StreamConfigurationList"][0]["StreamARN"] == arn(stream)
    assert d["StreamConfigurationList"][0]["StartingPosition"]["Type"] == "TRIM_HORIZON"
    assert d["QueueAttributes"] == {
        "VisibilityTimeoutSeconds": 20,
        "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 3},
    }
    # CLI v1's default cli_timestamp_format (none) prints timestamps as the wire's epoch seconds.
    assert isinstance(d["QueueCreationTimestamp"], (int, float)) and abs(d["QueueCreationTimestamp"] - time.time()) < 600

    _, out, _ = q(qenv, "update-queue", "--queue-arn", queue_arn, "--queue-attributes", "VisibilityTimeoutSeconds=7")
    assert out["QueueDescription"]["QueueAttributes"]["VisibilityTimeoutSeconds"] == 7
    assert out["QueueDescription"]["QueueAttributes"]["DeadLetterConfiguration"]["MaxReceiveCount"] == 3
    wait_queue_active(qenv, queue_arn)

    _, out, _ = q(
        qenv,
        "create-queue",
        "--queue-name", unique("cliother"),
        "--stream-configuration-list", f"StreamARN={arn(stream)}",
    )
    other = out["QueueDescription"]["QueueARN"]
    wait_queue_active(qenv, other)
    # A queue on another stream, which the filter must leave out.
    elsewhere_stream = on_demand_stream(kinesis)
    _, out, _ = q(
        qenv,
        "create-queue",
        "--queue-name", unique("clielse"),
        "--stream-configuration-list", f"StreamARN={arn(elsewhere_stream)}",
    )
    elsewhere = out["QueueDescription"]["QueueARN"]
    wait_queue_active(qenv, elsewhere)

    # --page-size 1: the CLI pages through every ListQueues response itself, resending
    # StreamFilter with each NextToken, and prints the merged list without a NextToken.
    _, out, _ = q(qenv, "list-queues", "--stream-filter", f"StreamARN={arn(stream)}", "--page-size", "1")
    assert sorted(s["QueueARN"] for s in out["QueueSummaries"]) == sorted([queue_arn, other])
    assert all(s["Streams"][0]["StreamARN"] == arn(stream) for s in out["QueueSummaries"])
    assert "NextToken" not in out
    # --max-items 1: one queue and the CLI's own resumption token; --starting-token resumes.
    _, first, _ = q(qenv, "list-queues", "--stream-filter", f"StreamARN={arn(stream)}", "--max-items", "1")
    assert len(first["QueueSummaries"]) == 1 and first["NextToken"]
    _, rest, _ = q(
        qenv,
        "list-queues",
        "--stream-filter", f"StreamARN={arn(stream)}",
        "--max-items", "1",
        "--starting-token", first["NextToken"],
    )
    assert sorted(s["QueueARN"] for s in first["QueueSummaries"] + rest["QueueSummaries"]) == sorted([queue_arn, other])
    _, everything, _ = q(qenv, "list-queues")
    assert {queue_arn, other, elsewhere} <= {s["QueueARN"] for s in everything["QueueSummaries"]}

    for queue in (queue_arn, other, elsewhere):
        code, out, _ = q(qenv, "delete-queue", "--queue-arn", queue)
        assert code == 0 and out is None  # DeleteQueue has no output: the CLI prints nothing
    for _ in range(MAX_POLLS):
        code, _, err = q(qenv, "describe-queue", "--queue-arn", queue_arn, check=False)
        if code != 0:
            assert error_line(err).startswith(
                "An error occurred (ResourceNotFoundException) when calling the DescribeQueue operation"
            ), err
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the queue was never deleted")


def test_cli_receive_acknowledge_visibility_and_dead_letters(qenv, kinesis):
    stream = on_demand_stream(kinesis)
    kinesis.put_records(
        StreamName=stream, Records=[{"PartitionKey": f"k{i}", "Data": f"rec-{i}".encode()} for i in range(3)]
    )
    _, out, _ = q(
        qenv,
        "create-queue",
        "--queue-name", unique("cliwork"),
        "--stream-configuration-list", f"StreamARN={arn(stream)},StartingPosition={{Type=TRIM_HORIZON}}",
        "--queue-attributes", "DeadLetterConfiguration={TargetType=BUILT_IN,MaxReceiveCount=2}",
    )
    queue_arn = out["QueueDescription"]["QueueARN"]
    wait_queue_active(qenv, queue_arn)

    _, out, _ = q(
        qenv, "receive-queue-records", "--queue-arn", queue_arn, "--limit", "10", "--wait-time-seconds", "1",
        "--visibility-timeout-seconds", "30",
    )
    records = out["QueueRecords"]
    # The CLI prints blobs base64-encoded in its JSON output.
    assert sorted(base64.b64decode(r["Data"]) for r in records) == [b"rec-0", b"rec-1", b"rec-2"]
    for r in records:
        assert r["ReceiveCount"] == 1 and r["RecordId"] and r["ReceiptHandle"]
        assert base64.b64decode(r["Data"]).decode().replace("rec-", "k") == r["PartitionKey"]
        assert r["ApproximateArrivalTimestamp"] <= r["FirstReceiveTimestamp"]
    by_data = {base64.b64decode(r["Data"]): r for r in records}
    poison = by_data[b"rec-2"]

    _, out, _ = q(
        qenv, "acknowledge-queue-records", "--queue-arn", queue_arn,
        "--entries", *handles([by_data[b"rec-0"], by_data[b"rec-1"]]),
    )
    assert sorted(s["ReceiptHandle"] for s in out["Successful"]) == sorted(
        [by_data[b"rec-0"]["ReceiptHandle"], by_data[b"rec-1"]["ReceiptHandle"]]
    )
    assert out["Failed"] == []
    # A partial failure is per entry, exit code 0: the acknowledged handle is no longer valid.
    code, out, _ = q(
        qenv, "acknowledge-queue-records", "--queue-arn", queue_arn, "--entries", *handles([by_data[b"rec-0"]])
    )
    assert code == 0 and out["Successful"] == []
    assert [f["ReceiptHandle"] for f in out["Failed"]] == [by_data[b"rec-0"]["ReceiptHandle"]]
    assert out["Failed"][0]["ErrorCode"] in ("ResourceNotFoundException", "InvalidArgumentException")
    assert out["Failed"][0]["ErrorMessage"]

    # Visibility 0 on the poison record (and a forged handle in the same batch).
    _, out, _ = q(
        qenv, "update-queue-records-visibility", "--queue-arn", queue_arn,
        "--entries",
        f"ReceiptHandle={poison['ReceiptHandle']},VisibilityTimeoutSeconds=0",
        "ReceiptHandle=forged,VisibilityTimeoutSeconds=0",
    )
    assert [s["ReceiptHandle"] for s in out["Successful"]] == [poison["ReceiptHandle"]]
    assert [(f["ReceiptHandle"], f["ErrorCode"]) for f in out["Failed"]] == [("forged", "InvalidArgumentException")]

    # Second receive: MaxReceiveCount 2 reached, so visibility 0 turns it into a dead letter.
    _, out, _ = q(
        qenv, "receive-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "1",
        "--visibility-timeout-seconds", "0",
    )
    [again] = out["QueueRecords"]
    assert again["RecordId"] == poison["RecordId"] and again["ReceiveCount"] == 2
    assert again["ReceiptHandle"] != poison["ReceiptHandle"]
    _, out, _ = q(qenv, "receive-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "1")
    assert out["QueueRecords"] == []

    _, out, _ = q(
        qenv, "receive-dead-letter-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "1",
        "--limit", "10",
    )
    [dead] = out["QueueRecords"]
    assert dead["RecordId"] == poison["RecordId"] and base64.b64decode(dead["Data"]) == b"rec-2"
    _, out, _ = q(
        qenv, "update-dead-letter-queue-records-visibility", "--queue-arn", queue_arn,
        "--entries", f"ReceiptHandle={dead['ReceiptHandle']},VisibilityTimeoutSeconds=60",
    )
    assert [s["ReceiptHandle"] for s in out["Successful"]] == [dead["ReceiptHandle"]] and out["Failed"] == []
    _, out, _ = q(
        qenv, "restore-dead-letter-queue-records", "--queue-arn", queue_arn, "--entries", *handles([dead])
    )
    assert [s["ReceiptHandle"] for s in out["Successful"]] == [dead["ReceiptHandle"]] and out["Failed"] == []

    # Restored: back on the normal path with its receive count reset; dead-letter it again.
    _, out, _ = q(
        qenv, "receive-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "1",
        "--visibility-timeout-seconds", "0",
    )
    assert [(r["RecordId"], r["ReceiveCount"]) for r in out["QueueRecords"]] == [(poison["RecordId"], 1)]
    q(qenv, "receive-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "1",
      "--visibility-timeout-seconds", "0")
    _, out, _ = q(qenv, "receive-dead-letter-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "1")
    [dead] = out["QueueRecords"]
    _, out, _ = q(
        qenv, "acknowledge-dead-letter-queue-records", "--queue-arn", queue_arn, "--entries", *handles([dead])
    )
    assert [s["ReceiptHandle"] for s in out["Successful"]] == [dead["ReceiptHandle"]] and out["Failed"] == []
    _, out, _ = q(qenv, "receive-dead-letter-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "1")
    assert out["QueueRecords"] == []

    q(qenv, "delete-queue", "--queue-arn", queue_arn)


def test_cli_long_poll_returns_when_a_record_arrives(qenv, kinesis):
    stream = on_demand_stream(kinesis)
    _, out, _ = q(
        qenv, "create-queue", "--queue-name", unique("clipoll"), "--stream-configuration-list", f"StreamARN={arn(stream)}"
    )
    queue_arn = out["QueueDescription"]["QueueARN"]
    wait_queue_active(qenv, queue_arn)
    result = {}

    def waiter():
        started = time.monotonic()
        result["out"] = q(qenv, "receive-queue-records", "--queue-arn", queue_arn, "--wait-time-seconds", "20")[1]
        result["elapsed"] = time.monotonic() - started

    t = threading.Thread(target=waiter)
    t.start()
    # The CLI needs about a second to start before its request is waiting in the broker.
    time.sleep(2)
    kinesis.put_record(StreamName=stream, PartitionKey="late", Data=b"late")
    t.join(timeout=40)
    assert not t.is_alive()
    assert [base64.b64decode(r["Data"]) for r in result["out"]["QueueRecords"]] == [b"late"]
    assert result["elapsed"] < 15, "the long poll waited for its timeout instead of the record"
    q(qenv, "delete-queue", "--queue-arn", queue_arn)


def test_cli_prints_aws_errors_for_queues(qenv, kinesis):
    """The CLI's error line and exit code 255 for the same answer boto3 gets (the broker's
    message texts are not pinned against AWS, so the line is compared with boto3's)."""
    missing = "arn:aws:kinesis:us-east-1:000000000000:queue/nonexistent"
    code, out, err = q(qenv, "describe-queue", "--queue-arn", missing, check=False)
    with pytest.raises(ClientError) as e:
        kinesis.describe_queue(QueueARN=missing)
    assert (code, out) == (255, None)
    line = error_line(err)
    assert line.startswith("An error occurred (ResourceNotFoundException) when calling the DescribeQueue operation"), err
    assert line.endswith(": " + e.value.response["Error"]["Message"]), err

    provisioned = unique("cliprov")
    kinesis.create_stream(StreamName=provisioned, ShardCount=1)
    wait_active(kinesis, provisioned)
    code, out, err = q(
        qenv, "create-queue", "--queue-name", unique("q"), "--stream-configuration-list", f"StreamARN={arn(provisioned)}",
        check=False,
    )
    with pytest.raises(ClientError) as e:
        kinesis.create_queue(QueueName=unique("q"), StreamConfigurationList=[{"StreamARN": arn(provisioned)}])
    assert (code, out) == (255, None)
    line = error_line(err)
    assert line.startswith("An error occurred (InvalidArgumentException) when calling the CreateQueue operation"), err
    assert line.endswith(": " + e.value.response["Error"]["Message"]), err

    # The CLI checks the model's constraints itself, before any request. CLI v1 exits 255 for
    # every error (v2's 252/254 split does not exist in v1's clidriver).
    code, _, err = q(qenv, "receive-queue-records", "--queue-arn", missing, "--limit", "0", check=False)
    assert code == 255, err
    assert err.strip().splitlines() == [
        "Parameter validation failed:",
        "Invalid value for parameter Limit, value: 0, valid min value: 1",
    ], err
    kinesis.delete_stream(StreamName=provisioned)
