"""HTTPS: a broker of its own started with --tls-self-signed (a free port, its own data
directory), driven by boto3 with verify= the certificate it wrote and by the AWS CLI with
--ca-bundle; and one started with --tls-cert/--tls-key given that certificate."""

import json
import os
import ssl
import subprocess
import tempfile
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError

from conftest import MAX_POLLS, broker_binary, free_port, read_shard, shard_id, unique, wait_active

CERT_FILE = "tls-self-signed-cert.pem"
KEY_FILE = "tls-self-signed-key.pem"


class TlsBroker:
    """One broker process serving HTTPS; SIGKILLed at the end of the test if still running."""

    def __init__(self, workdir, extra_args):
        self.port = free_port()
        self.log_path = os.path.join(workdir, f"broker-{self.port}.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [broker_binary(), "--host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", os.path.join(workdir, "data"), "--create-stream-delay-ms", "0", *extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        self.endpoint = f"https://127.0.0.1:{self.port}"

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_ready(self, cafile):
        context = ssl.create_default_context(cafile=cafile)
        for _ in range(MAX_POLLS):
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/_broker/health", context=context, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"broker never answered over https: {self.log()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=60)
        return self.proc.returncode


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield d


@pytest.fixture
def self_signed(workdir):
    broker = TlsBroker(workdir, ["--tls-self-signed"])
    cert = os.path.join(workdir, "data", CERT_FILE)
    try:
        for _ in range(MAX_POLLS):
            if os.path.exists(cert):
                break
            time.sleep(0.05)
        broker.wait_ready(cert)
        yield broker, cert
    finally:
        broker.stop()


def cli(endpoint, *args):
    return subprocess.run(
        [os.environ.get("AWS_CLI", "aws"), "kinesis", "--endpoint-url", endpoint, "--output", "json", *args],
        capture_output=True, text=True, timeout=120,
    )


def test_boto3_with_verify_the_printed_certificate(self_signed):
    broker, cert = self_signed
    # The path is printed for the user to copy, and the log says the listener is https.
    assert f"self-signed TLS certificate for localhost and 127.0.0.1: {cert}" in broker.log()
    assert f"listening on https://127.0.0.1:{broker.port}" in broker.log()

    for host in ("127.0.0.1", "localhost"):
        client = https_client(host, broker.port, cert)
        name = unique(f"tls-{host.replace('.', '-')}")
        client.create_stream(StreamName=name, ShardCount=1)
        wait_active(client, name)
        client.put_record(StreamName=name, PartitionKey="k", Data=b"over https")
        records = read_shard(client, name, shard_id(0))
        assert [r["Data"] for r in records] == [b"over https"]


def https_client(host, port, cert):
    """boto3 trusting `cert` (botocore's verify=, which replaces its default CA bundle)."""
    return boto3.session.Session().client(
        "kinesis",
        endpoint_url=f"https://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="dummy-secret",
        verify=cert,
        config=Config(retries={"total_max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
    )


def test_boto3_without_the_certificate_is_refused(self_signed):
    broker, _cert = self_signed
    client = boto3.session.Session().client(
        "kinesis",
        endpoint_url=broker.endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="dummy-secret",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )
    with pytest.raises(SSLError) as err:
        client.list_streams()
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_aws_cli_with_ca_bundle(self_signed):
    broker, cert = self_signed
    name = unique("tls-cli")
    out = cli(broker.endpoint, "--ca-bundle", cert, "create-stream", "--stream-name", name, "--shard-count", "1")
    assert out.returncode == 0, out.stderr
    out = cli(broker.endpoint, "--ca-bundle", cert, "list-streams")
    assert out.returncode == 0, out.stderr
    assert name in json.loads(out.stdout)["StreamNames"]
    # AWS_CA_BUNDLE does the same.
    env_out = subprocess.run(
        [os.environ.get("AWS_CLI", "aws"), "kinesis", "--endpoint-url", broker.endpoint, "list-streams"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "AWS_CA_BUNDLE": cert},
    )
    assert env_out.returncode == 0, env_out.stderr
    # Without it the CLI refuses the certificate.
    out = cli(broker.endpoint, "list-streams", "--cli-read-timeout", "10")
    assert out.returncode != 0
    assert "SSL validation failed" in out.stderr, out.stderr


def test_given_certificate_files_and_restart_reuse(workdir):
    # First start generates; the second start reuses the same certificate.
    first = TlsBroker(workdir, ["--tls-self-signed"])
    cert = os.path.join(workdir, "data", CERT_FILE)
    key = os.path.join(workdir, "data", KEY_FILE)
    try:
        for _ in range(MAX_POLLS):
            if os.path.exists(cert):
                break
            time.sleep(0.05)
        first.wait_ready(cert)
    finally:
        assert first.stop() == 0
    with open(cert) as f:
        pem = f.read()

    again = TlsBroker(workdir, ["--tls-self-signed"])
    try:
        again.wait_ready(cert)
        with open(cert) as f:
            assert f.read() == pem, "certificate regenerated although still valid"
    finally:
        again.stop()

    # The same pair given as files.
    copy_dir = os.path.join(workdir, "given")
    os.makedirs(copy_dir)
    given_cert, given_key = os.path.join(copy_dir, "c.pem"), os.path.join(copy_dir, "k.pem")
    with open(given_cert, "w") as f:
        f.write(pem)
    with open(key) as src, open(given_key, "w") as dst:
        dst.write(src.read())
    given = TlsBroker(workdir, ["--tls-cert", given_cert, "--tls-key", given_key])
    try:
        given.wait_ready(given_cert)
        client = https_client("localhost", given.port, given_cert)
        assert "StreamNames" in client.list_streams()
    finally:
        given.stop()


def test_unusable_certificate_is_a_clear_start_error(workdir):
    bad = os.path.join(workdir, "bad.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    broker = TlsBroker(workdir, ["--tls-cert", bad, "--tls-key", bad])
    try:
        code = broker.proc.wait(timeout=60)
    finally:
        broker.stop()
    assert code != 0
    assert f"TLS certificate {bad}: no CERTIFICATE block" in broker.log(), broker.log()
