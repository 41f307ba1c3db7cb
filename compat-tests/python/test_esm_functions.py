"""Runtime processes the broker starts itself: `--function-command fn=COMMAND` runs the
official Python runtime interface client (`awslambdaric`, unmodified) with an unmodified
handler; the broker scales it from zero, retries the batch a handler error failed, lists
the function on `/_broker/functions`, and stops the runtimes when it stops."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

from conftest import MAX_POLLS, broker_binary, free_port, make_client, wait_active, wait_port

HERE = os.path.dirname(os.path.abspath(__file__))


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def lambda_client(url):
    return boto3.session.Session().client(
        "lambda", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="dummy-secret",
        config=Config(retries={"max_attempts": 1}),
    )


def test_broker_started_awslambdaric_gets_every_record_and_stops_with_the_broker():
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        out_file = os.path.join(d, "records.txt")
        fail_once = os.path.join(d, "fail-once")
        open(fail_once, "w").close()
        handler_dir = os.path.join(HERE, "esm_handler")
        command = f"cd {handler_dir} && exec {sys.executable} -m awslambdaric flaky.handler"
        env = dict(os.environ, ESM_OUT=out_file, FAIL_ONCE=fail_once)
        log_path = os.path.join(d, "broker.log")
        log = open(log_path, "ab")
        broker = subprocess.Popen(
            [broker_binary(), "--host", "127.0.0.1", "--port", str(port), "--data-dir", os.path.join(d, "data"),
             "--create-stream-delay-ms", "0", "--update-stream-delay-ms", "0",
             "--function-command", f"fn={command}", "--function", "fn=runtime://127.0.0.1:0?timeout=30"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_port(port, broker, log_path)
            listed = json.load(urllib.request.urlopen(f"{url}/_broker/functions"))["functions"]
            assert [f["name"] for f in listed] == ["fn"]
            assert listed[0]["kind"] == "runtime" and listed[0]["timeout_s"] == 30
            assert listed[0]["command"] == command

            kinesis = make_client(url=url)
            kinesis.create_stream(StreamName="esm-managed", ShardCount=1)
            wait_active(kinesis, "esm-managed")
            arn = kinesis.describe_stream_summary(StreamName="esm-managed")["StreamDescriptionSummary"]["StreamARN"]
            expected = [f"rec-{i:03d}" for i in range(120)]
            out = kinesis.put_records(StreamName="esm-managed", Records=[
                {"PartitionKey": "k", "Data": v.encode()} for v in expected])
            assert out["FailedRecordCount"] == 0

            lam = lambda_client(url)
            m = lam.create_event_source_mapping(FunctionName="fn", EventSourceArn=arn,
                                                StartingPosition="TRIM_HORIZON", BatchSize=50)
            lines = []
            for _ in range(MAX_POLLS):
                if os.path.exists(out_file):
                    lines = open(out_file).read().splitlines()
                    if len(lines) >= len(expected):
                        break
                time.sleep(0.05)
            assert [l.split(" ")[0] for l in lines] == expected, open(log_path).read()[-3000:]
            assert not os.path.exists(fail_once), "the handler's error was seen and the batch retried"
            pids = {l.split(" ")[1] for l in lines}
            assert {l.split(" ")[2] for l in lines} == {"fn"}
            for pid in pids:
                assert alive(pid)
            for _ in range(MAX_POLLS):
                if lam.get_event_source_mapping(UUID=m["UUID"])["LastProcessingResult"] == "OK":
                    break
                time.sleep(0.025)
            assert lam.get_event_source_mapping(UUID=m["UUID"])["LastProcessingResult"] == "OK"

            # A runtime killed with -9 while it waits for work: the broker starts another when
            # the next batch needs one.
            for pid in pids:
                os.kill(int(pid), signal.SIGKILL)
            more = [f"more-{i:03d}" for i in range(10)]
            kinesis.put_records(StreamName="esm-managed", Records=[
                {"PartitionKey": "k", "Data": v.encode()} for v in more])
            for _ in range(MAX_POLLS):
                lines = open(out_file).read().splitlines()
                if len(lines) >= len(expected) + len(more):
                    break
                time.sleep(0.05)
            assert [l.split(" ")[0] for l in lines] == expected + more, open(log_path).read()[-3000:]
            replacements = {l.split(" ")[1] for l in lines[len(expected):]}
            assert replacements.isdisjoint(pids)
            pids |= replacements

            broker.send_signal(signal.SIGTERM)
            assert broker.wait(timeout=60) == 0, open(log_path).read()[-3000:]
            for pid in pids:
                assert not alive(pid), f"runtime {pid} outlived the broker"
        finally:
            if broker.poll() is None:
                broker.kill()
                broker.wait(timeout=60)
            log.close()
