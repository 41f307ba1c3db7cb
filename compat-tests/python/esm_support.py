"""Shared by the event-source-mapping suites that need brokers of their own: start a broker
with declared Runtime API functions (and restart it on the same data directory), start the
official runtime interface clients against those functions, read what the handlers wrote.

Handlers (every one unmodified for its runtime client; all write the same lines):
- Rust: `compat-tests/rust-handler` on the `lambda_runtime` crate (ESM_RUST_HANDLER: its binary);
- Node: `compat-tests/node-lambda/index.js` under `aws-lambda-ric`;
- Python: `esm_handler/app.py` under `awslambdaric` (its own line format, data only).
"""

import base64
import os
import signal
import socket
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config

from conftest import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_LAMBDA = os.path.join(os.path.dirname(HERE), "node-lambda")


def required_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run these suites through compat-tests/run", 2)
    return value


class Broker:
    """A broker process on a data directory of its own, with `functions` declared as
    Runtime API functions on ports of their own (kept across restarts)."""

    def __init__(self, workdir, functions, timeout_s=60, extra_args=()):
        self.workdir = workdir
        self.data = os.path.join(workdir, "data")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime_ports = {name: free_port() for name in functions}
        self.timeout_s = timeout_s
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(workdir, "broker.log")

    def start(self):
        args = [required_env("KINESIS_BROKER_BIN"), "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", self.data, "--create-stream-delay-ms", "0", "--update-stream-delay-ms", "0",
                "--event-source-mapping-delay-ms", "0"]
        for name, port in self.runtime_ports.items():
            args += ["--function", f"{name}=runtime://127.0.0.1:{port}"]
        args += self.extra_args
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        # Every port, the Runtime APIs' too: `lambda_runtime` exits at once when its first
        # poll is refused.
        deadline = time.monotonic() + self.timeout_s
        for port in [self.port, *self.runtime_ports.values()]:
            while True:
                assert self.proc.poll() is None, self.log()
                assert time.monotonic() < deadline, f"the broker did not listen on {port} within {self.timeout_s} s: {self.log()}"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.025)
        return self

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()[-4000:]
        except OSError:
            return ""


def lambda_client(url):
    return boto3.session.Session().client(
        "lambda", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="dummy-secret",
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


class Runtimes:
    """Runtime interface client processes, killed at the end."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def _start(self, name, args, env, cwd):
        log = open(os.path.join(self.workdir, f"{name}-{len(self.procs)}.log"), "ab")
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.procs.append(proc)
        return proc

    def rust(self, runtime_port, function, **handler_env):
        env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime_port}",
                   AWS_LAMBDA_FUNCTION_NAME=function, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
                   AWS_LAMBDA_FUNCTION_VERSION="$LATEST", **handler_env)
        return self._start("rust", [required_env("ESM_RUST_HANDLER")], env, self.workdir)

    def node(self, runtime_port, function, **handler_env):
        # aws-lambda-ric 4 takes the handler from _HANDLER and LAMBDA_TASK_ROOT (not from its
        # arguments), and exits at its first invocation unless the function's name, version,
        # memory size, log group and log stream are in its environment, as Lambda sets them.
        ric = os.path.join(NODE_LAMBDA, "node_modules", "aws-lambda-ric", "index.mjs")
        env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime_port}",
                   _HANDLER="index.handler", LAMBDA_TASK_ROOT=NODE_LAMBDA,
                   AWS_LAMBDA_FUNCTION_NAME=function, AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{function}",
                   AWS_LAMBDA_LOG_STREAM_NAME="local", **handler_env)
        return self._start("node", ["node", ric], env, NODE_LAMBDA)

    def python(self, runtime_port, **handler_env):
        handler_dir = os.path.join(HERE, "esm_handler")
        env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime_port}",
                   PYTHONPATH=handler_dir, **handler_env)
        return self._start("python", [sys.executable, "-m", "awslambdaric", "app.handler"], env, handler_dir)

    def logs(self):
        """The tail of every runtime's log, for a failure's message."""
        out = []
        for name in sorted(os.listdir(self.workdir)):
            if name.endswith(".log") and name != "broker.log":
                with open(os.path.join(self.workdir, name), errors="replace") as f:
                    out.append(f"--- {name}\n{f.read()[-1500:]}")
        return "\n".join(out)

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def read_lines(path):
    """(partitionKey, sequenceNumber, data) per record the Rust or Node handler recorded."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        text = f.read()
    # A line is complete once its newline is written; a handler killed mid-write leaves none.
    for line in text.split("\n")[:-1]:
        key, seq, data = line.split("\t")
        out.append((key, seq, base64.b64decode(data).decode()))
    return out


def wait_for(predicate, what, timeout_s=30, interval=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def by_shard(delivered, shard_of):
    """Delivered (key, seq, data) grouped by shard, in delivery order."""
    groups = {}
    for rec in delivered:
        groups.setdefault(shard_of[rec[1]], []).append(rec)
    return groups
