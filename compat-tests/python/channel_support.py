"""Shared by the suites that deliver channels to S3 (test_channels.py, test_console.py): a
real S3-compatible server (moto's server mode, on a free 127.0.0.1 port; the `s3_url`
fixture in conftest.py), boto3's S3 client for it, and brokers of the test's own started
with `--s3-endpoint` pointing at it (restartable on the same data directory).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

from conftest import MAX_POLLS, REGION, broker_binary, free_port, serving, wait_port


@contextlib.contextmanager
def moto_server():
    """A moto S3 server on a free 127.0.0.1 port, for as long as the block runs; yields its URL."""
    moto = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        with serving([moto, "-H", "127.0.0.1", "-p", str(port)], port, os.path.join(d, "moto.log")):
            yield f"http://127.0.0.1:{port}"


def s3_client(url):
    return boto3.session.Session().client(
        "s3", endpoint_url=url, region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "dummy-secret"),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


class Broker:
    """A broker process of this test's own, restartable on the same data directory."""

    def __init__(self, data_dir, s3_url, buffer_bytes, extra_args=()):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.s3_url = s3_url
        self.buffer_bytes = buffer_bytes
        self.proc = None
        self.port = None

    def start(self):
        binary = broker_binary()
        self.port = free_port()
        self.log_path = os.path.join(self.data_dir, f"broker-{self.port}.log")
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "dummy-secret")
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", os.path.join(self.data_dir, "data"),
             "--create-stream-delay-ms", "0", "--delete-stream-delay-ms", "0",
             "--update-stream-delay-ms", "0",
             "--s3-endpoint", self.s3_url, "--channel-buffer-bytes", str(self.buffer_bytes),
             *self.extra_args],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )
        wait_port(self.port, self.proc, self.log_path)
        # The port is bound before recovery ends; /ready says when requests are served.
        for _ in range(MAX_POLLS):
            try:
                if urllib.request.urlopen(f"{self.url}/ready", timeout=5).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.025)
        raise AssertionError(open(self.log_path).read())

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        self.log.close()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()

    def advance_clock(self, ms):
        req = urllib.request.Request(f"{self.url}/_broker/clock", data=json.dumps({"advance_ms": ms}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
