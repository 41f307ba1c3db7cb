"""`--auth verify`: a broker of its own (the binary compat-tests/run built, on a free port) that
checks SigV4 signatures against a credentials file, driven by boto3, the AWS CLI, botocore's
signer by hand (CBOR, the admin endpoints) and a presigned URL.

Expected texts and their sources: compat-tests/AWS_BEHAVIOUR.md section 13f."""

import datetime
import json
import os
import subprocess
import tempfile
from unittest import mock

import boto3
import cbor2
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import REGION, broker_binary, cli_env, free_port, serving, wait_active

ALICE = ("AKIDALICE", "alice-secret")
BOB = ("AKIDBOB", "bob/secret+1")
ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
CREDENTIALS = f"""\
# two accounts
[alice]
aws_access_key_id = {ALICE[0]}
aws_secret_access_key = {ALICE[1]}
account_id = {ACCOUNT_A}

[bob]
aws_access_key_id = {BOB[0]}
aws_secret_access_key = {BOB[1]}
account_id = {ACCOUNT_B}
"""
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
UNKNOWN = "The security token included in the request is invalid."
HTTP = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=30), retries=False)


@pytest.fixture(scope="module")
def broker():
    with tempfile.TemporaryDirectory() as d:
        creds = os.path.join(d, "credentials.ini")
        with open(creds, "w") as f:
            f.write(CREDENTIALS)
        port = free_port()
        args = [broker_binary(), "--host", "127.0.0.1", "--port", str(port), "--data-dir", os.path.join(d, "data"),
                "--auth", "verify", "--credentials-file", creds,
                "--create-stream-delay-ms", "0", "--delete-stream-delay-ms", "0"]
        with serving(args, port, os.path.join(d, "broker.log")):
            yield f"http://127.0.0.1:{port}"


def client(url, key, service="kinesis"):
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def signed(url, key, method, path, body=b"", headers=None, service="kinesis"):
    """Signs with botocore's own SigV4 signer and sends with urllib3: (status, headers, body)."""
    req = AWSRequest(method=method, url=url + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(*key), service, REGION).add_auth(req)
    prepared = req.prepare()
    r = HTTP.request(method, prepared.url, body=prepared.body, headers=dict(prepared.headers))
    return r.status, r.headers, r.data


def cbor_loads(raw):
    # Kinesis sends timestamps as tag 1 with integer milliseconds, which cbor2 reads as seconds.
    return cbor2.loads(raw, semantic_decoders={1: lambda value, *_: cbor2.CBORTag(1, value)})


def error_of(excinfo):
    e = excinfo.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"].get("Message", "")


def test_a_good_key_works_in_its_own_account(broker):
    alice = client(broker, ALICE)
    alice.create_stream(StreamName="orders", ShardCount=1)
    wait_active(alice, "orders")
    arn = alice.describe_stream_summary(StreamName="orders")["StreamDescriptionSummary"]["StreamARN"]
    assert arn == f"arn:aws:kinesis:{REGION}:{ACCOUNT_A}:stream/orders"
    assert client(broker, BOB).list_streams()["StreamNames"] == []


def test_a_bad_secret_is_invalid_signature_and_changes_nothing(broker):
    forger = client(broker, (ALICE[0], "guessed"))
    with pytest.raises(ClientError) as e:
        forger.create_stream(StreamName="forged", ShardCount=1)
    status, code, message = error_of(e)
    assert (status, code) == (400, "InvalidSignatureException")
    assert message.startswith(MISMATCH)
    assert "forged" not in client(broker, ALICE).list_streams()["StreamNames"]


def test_an_unknown_key_is_unrecognized_client(broker):
    with pytest.raises(ClientError) as e:
        client(broker, ("AKIDNOBODY", "x")).list_streams()
    assert error_of(e) == (400, "UnrecognizedClientException", UNKNOWN)


def test_the_aws_cli_signs_with_the_key_and_fails_with_a_bad_secret(broker):
    def cli(secret):
        env = cli_env(AWS_ACCESS_KEY_ID=BOB[0], AWS_SECRET_ACCESS_KEY=secret, AWS_MAX_ATTEMPTS="1")
        cmd = [os.environ.get("AWS_CLI", "aws"), "--endpoint-url", broker, "--output", "json",
               "kinesis", "list-streams"]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    ok = cli(BOB[1])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["StreamNames"] == []
    bad = cli("wrong")
    assert bad.returncode != 0
    assert "InvalidSignatureException" in bad.stderr, bad.stderr


def test_skew_follows_the_broker_clock(broker):
    alice = client(broker, ALICE)
    status, _, body = signed(broker, ALICE, "POST", "/_broker/clock", json.dumps({"advance_ms": 20 * 60 * 1000}).encode())
    assert status == 200, body
    try:
        with pytest.raises(ClientError) as e:
            alice.list_streams()
        status, code, message = error_of(e)
        assert (status, code) == (400, "InvalidSignatureException")
        assert message.startswith("Signature expired: ") and message.endswith(" - 5 min.)"), message
    finally:
        # Signed in the broker's future, so that the request to move back is within the window.
        req = AWSRequest(method="POST", url=broker + "/_broker/clock",
                         data=json.dumps({"advance_ms": -20 * 60 * 1000}).encode())
        signer = SigV4Auth(Credentials(*ALICE), "kinesis", REGION)
        future = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(minutes=20)
        with mock.patch("botocore.auth.get_current_datetime", return_value=future):
            signer.add_auth(req)
        p = req.prepare()
        r = HTTP.request("POST", p.url, body=p.body, headers=dict(p.headers))
        assert r.status == 200, r.data
    alice.list_streams()


def test_unsigned_admin_requests_are_refused_and_probes_stay_open(broker):
    r = HTTP.request("GET", broker + "/_broker/clock")
    assert r.status == 400
    assert json.loads(r.data)["__type"] == "MissingAuthenticationTokenException"
    assert signed(broker, BOB, "GET", "/_broker/clock")[0] == 200
    for probe in ("/health", "/ready"):
        assert HTTP.request("GET", broker + probe).status == 200, probe


def test_cbor_requests_signed_by_botocore_are_verified(broker):
    headers = {"Content-Type": "application/x-amz-cbor-1.1", "X-Amz-Target": "Kinesis_20131202.ListStreams"}
    status, h, body = signed(broker, ALICE, "POST", "/", cbor2.dumps({}), headers)
    assert status == 200, body
    assert "orders" in cbor_loads(body)["StreamNames"]
    status, h, body = signed(broker, (ALICE[0], "wrong"), "POST", "/", cbor2.dumps({}), headers)
    assert status == 400
    err = cbor_loads(body)
    assert err["__type"] == "InvalidSignatureException"
    assert err["message"].startswith(MISMATCH)


def test_the_lambda_mapping_api_is_signed_for_lambda(broker):
    lam = client(broker, BOB, "lambda")
    assert lam.list_event_source_mappings()["EventSourceMappings"] == []
    with pytest.raises(ClientError) as e:
        client(broker, (BOB[0], "wrong"), "lambda").list_event_source_mappings()
    status, code, message = error_of(e)
    assert (status, code) == (403, "InvalidSignatureException")
    assert message.startswith(MISMATCH)
    # Signed for the wrong service: AWS names the right one.
    status, _, body = signed(broker, BOB, "GET", "/2015-03-31/event-source-mappings", service="kinesis")
    assert status == 403
    assert "Credential should be scoped to correct service: 'lambda'." in body.decode()


def test_a_presigned_url_works_until_it_expires(broker):
    lam = client(broker, BOB, "lambda")
    url = lam.generate_presigned_url("list_event_source_mappings", Params={"FunctionName": "f"}, ExpiresIn=60)
    assert "X-Amz-Signature=" in url
    r = HTTP.request("GET", url)
    assert r.status == 200, r.data
    assert json.loads(r.data)["EventSourceMappings"] == []
    tampered = url.replace("FunctionName=f", "FunctionName=g")
    r = HTTP.request("GET", tampered)
    assert r.status == 403
    assert json.loads(r.data)["message"].startswith(MISMATCH)
