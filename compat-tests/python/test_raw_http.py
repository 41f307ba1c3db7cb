"""Raw HTTP requests no SDK would send: malformed bodies, unknown targets, missing or broken
authentication, wrong member types and validation errors, with AWS's exact answers
(compat-tests/AWS_BEHAVIOUR.md sections 1 and 2)."""

import http.client
import json
import re
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCOUNT, endpoint, unique

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def post(target, body, content_type="application/x-amz-json-1.1", sign=True, headers=None, path="/"):
    """POSTs `body` (bytes or str) and returns (status, headers, parsed JSON or raw text)."""
    url = urllib.parse.urlsplit(endpoint())
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": content_type}
    if target is not None:
        h["X-Amz-Target"] = target
    if sign:
        req = AWSRequest(method="POST", url=endpoint() + path, data=body, headers=h)
        SigV4Auth(Credentials("AKIDEXAMPLE", "dummy-secret"), "kinesis", "us-east-1").add_auth(req)
        h = dict(req.headers.items())
    h.update(headers or {})
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return resp.status, headers, parsed


def call(op, payload, **kw):
    return post(f"Kinesis_20131202.{op}", json.dumps(payload), **kw)


def test_a_signed_request_succeeds_and_carries_a_request_id():
    status, headers, body = call("ListStreams", {})
    assert status == 200
    assert "StreamNames" in body
    assert UUID.match(headers.get("x-amzn-requestid", "")), headers
    assert headers.get("content-type", "").startswith("application/x-amz-json-1.1")


def test_json_1_0_content_type_is_accepted():
    status, _, body = call("ListStreams", {}, content_type="application/x-amz-json-1.0")
    assert status == 200 and "StreamNames" in body


def test_unknown_operation_is_unknown_operation_exception():
    status, headers, body = call("ListStreamz", {})
    assert status == 400
    assert body == {"__type": "UnknownOperationException"}
    assert UUID.match(headers.get("x-amzn-requestid", "")), "errors carry a request id too"


def test_wrong_target_prefix_is_unknown_operation_exception():
    status, _, body = post("Kinesis_20000101.ListStreams", "{}")
    assert (status, body) == (400, {"__type": "UnknownOperationException"})
    status, _, body = post(None, "{}")
    assert (status, body) == (400, {"__type": "UnknownOperationException"})


def test_unknown_operation_is_reported_before_authentication():
    status, _, body = call("NoSuchOperation", {}, sign=False)
    assert (status, body) == (400, {"__type": "UnknownOperationException"})


def test_malformed_json_is_serialization_exception():
    for raw in ["hello", "{", '{"StreamName": }', "[1, 2", ""]:
        status, _, body = post("Kinesis_20131202.ListStreams", raw)
        assert (status, body) == (400, {"__type": "SerializationException"}), raw


def test_malformed_json_is_reported_before_authentication():
    status, _, body = post("Kinesis_20131202.ListStreams", "hello", sign=False)
    assert (status, body) == (400, {"__type": "SerializationException"})


def test_member_of_the_wrong_json_type_is_serialization_exception():
    for payload in [{"StreamName": True}, {"StreamName": 12}, {"StreamName": ["a"]}, {"StreamName": {}}]:
        status, _, body = call("DescribeStreamSummary", payload)
        assert status == 400 and body.get("__type") == "SerializationException", (payload, body)
    status, _, body = call("ListStreams", {"Limit": "10"})
    assert status == 400 and body.get("__type") == "SerializationException", body
    status, _, body = call("PutRecord", {"StreamName": "x", "PartitionKey": "k", "Data": "not base64!"})
    assert status == 400 and body.get("__type") == "SerializationException", body


def test_missing_authorization_is_missing_authentication_token():
    status, _, body = call("ListStreams", {}, sign=False)
    assert (status, body) == (400, {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})


def test_incomplete_authorization_is_incomplete_signature():
    status, _, body = call("ListStreams", {}, sign=False, headers={"Authorization": "X"})
    assert status == 400
    assert body == {
        "__type": "IncompleteSignatureException",
        "message": "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        "Authorization=X",
    }


def test_validation_errors_are_reported_in_aws_words():
    long = "a" * 129
    cases = [
        (
            "CreateStream",
            {"StreamName": long, "ShardCount": 1},
            f"1 validation error detected: Value '{long}' at 'streamName' failed to satisfy constraint: "
            "Member must have length less than or equal to 128",
        ),
        (
            "CreateStream",
            {"StreamName": "ok-name", "ShardCount": 0},
            "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: "
            "Member must have value greater than or equal to 1",
        ),
        (
            "CreateStream",
            {"ShardCount": 1},
            "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null",
        ),
        (
            "GetRecords",
            {},
            "1 validation error detected: Value null at 'shardIterator' failed to satisfy constraint: Member must not be null",
        ),
        (
            "GetRecords",
            {"ShardIterator": "a" * 513},
            f"1 validation error detected: Value '{'a' * 513}' at 'shardIterator' failed to satisfy constraint: "
            "Member must have length less than or equal to 512",
        ),
        (
            "ListShards",
            {"StreamName": "x", "MaxResults": 10001},
            "1 validation error detected: Value '10001' at 'maxResults' failed to satisfy constraint: "
            "Member must have value less than or equal to 10000",
        ),
        (
            "PutRecords",
            {"StreamName": "x", "Records": []},
            "1 validation error detected: Value '[]' at 'records' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1",
        ),
        (
            "PutRecords",
            {"StreamName": "x", "Records": [{"PartitionKey": "", "Data": ""}]},
            "1 validation error detected: Value '' at 'records.1.member.partitionKey' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1",
        ),
        (
            "DescribeStream",
            {"StreamName": "x", "ExclusiveStartShardId": long},
            f"1 validation error detected: Value '{long}' at 'exclusiveStartShardId' failed to satisfy constraint: "
            "Member must have length less than or equal to 128",
        ),
        (
            "ListStreams",
            {"ExclusiveStartStreamName": "bad name"},
            "1 validation error detected: Value 'bad name' at 'exclusiveStartStreamName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ),
        (
            "GetShardIterator",
            {"StreamName": "x", "ShardId": "shardId-0", "ShardIteratorType": "SIDEWAYS"},
            "1 validation error detected: Value 'SIDEWAYS' at 'shardIteratorType' failed to satisfy constraint: "
            "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]",
        ),
    ]
    for op, payload, message in cases:
        status, _, body = call(op, payload)
        assert (status, body) == (400, {"__type": "ValidationException", "message": message}), (op, payload)


def test_a_request_for_an_unknown_stream_names_the_account_of_the_access_key():
    name = unique("acct")
    req_body = json.dumps({"StreamName": name})
    url = endpoint()
    req = AWSRequest(
        method="POST",
        url=url + "/",
        data=req_body.encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202.DescribeStream"},
    )
    SigV4Auth(Credentials("210987654321", "dummy-secret"), "kinesis", "eu-central-1").add_auth(req)
    status, _, body = post(
        "Kinesis_20131202.DescribeStream", req_body, sign=False, headers=dict(req.headers.items())
    )
    assert (status, body) == (
        400,
        {"__type": "ResourceNotFoundException", "message": f"Stream {name} under account 210987654321 not found."},
    )
    status, _, body = call("DescribeStream", {"StreamName": name})
    assert body["message"] == f"Stream {name} under account {ACCOUNT} not found."


def test_health_endpoint_answers_200():
    url = urllib.parse.urlsplit(endpoint())
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("GET", "/_broker/health")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200


def test_oversized_body_gets_a_clean_http_error_not_a_hang():
    """17 MiB is over any valid request; the broker must answer (413 or 400), not hang or
    drop the connection silently. It may answer before it has read everything."""
    import socket

    url = urllib.parse.urlsplit(endpoint())
    size = 17 * 1024 * 1024
    head = (
        f"POST / HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
        "Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=00\r\nX-Amz-Date: 20260101T000000Z\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=60)
    try:
        sock.sendall(head)
        chunk = b"1" * (1024 * 1024)
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early and stopped reading: fine, the answer is in our receive buffer
        reply = b""
        try:
            while b"\r\n" not in reply:
                part = sock.recv(4096)
                if not part:
                    break
                reply += part
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    status_line = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    assert status_line.startswith(("HTTP/1.1 413", "HTTP/1.1 400")), f"got {status_line!r}"


def raw(method, headers, body=b""):
    url = urllib.parse.urlsplit(endpoint())
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request(method, "/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_a_request_without_a_json_content_type_gets_aws_xml_403():
    status, headers, body = raw("POST", {"X-Amz-Target": "Kinesis_20131202.ListStreams"}, b"{}")
    assert status == 403
    assert body == (
        "<MissingAuthenticationTokenException>\n"
        "  <Message>Missing Authentication Token</Message>\n"
        "</MissingAuthenticationTokenException>\n"
    )
    status, _, body = raw("GET", {})
    assert (status, body) == (
        403,
        "<MissingAuthenticationTokenException>\n"
        "  <Message>Missing Authentication Token</Message>\n"
        "</MissingAuthenticationTokenException>\n",
    )
    status, _, body = raw(
        "POST",
        {"X-Amz-Target": "Kinesis_20131202.ListStreams", "Authorization": "AWS4-HMAC-SHA256 Credential=a/b/c/d/e"},
        b"{}",
    )
    assert (status, body) == (
        403,
        "<AccessDeniedException>\n"
        "  <Message>Unable to determine service/operation name to be authorized</Message>\n"
        "</AccessDeniedException>\n",
    )


def test_plain_application_json_gets_the_legacy_wrapped_answer():
    status, headers, body = raw(
        "POST", {"Content-Type": "application/json", "X-Amz-Target": "Kinesis_20131202.ListStreams"}, b"{}"
    )
    assert status == 200
    assert json.loads(body) == {
        "Output": {"__type": "com.amazon.coral.service#UnknownOperationException", "message": None},
        "Version": "1.0",
    }
