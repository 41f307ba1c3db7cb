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


def test_json_1_0_content_type_is_not_routed():
    """AWS does not route x-amz-json-1.0 to Kinesis (kinesalite index.js since 2018)."""
    status, headers, body = call("ListStreams", {}, content_type="application/x-amz-json-1.0")
    assert (status, body) == (404, "<UnknownOperationException/>\n")
    assert "content-type" not in headers


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
    for raw in ["hello", "{", '{"StreamName": }', "[1, 2", "", "true", "null"]:
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


def test_malformed_json_wins_over_an_unknown_target():
    status, _, body = post("Kinesis_20131202.NoSuchOperation", "hello", sign=False)
    assert (status, body) == (400, {"__type": "SerializationException"})


TRUNCATING = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber"


def test_wrong_json_types_get_aws_texts():
    """kinesalite test/helpers.js assertType, recorded against the live service."""
    cases = [
        ("DescribeStreamSummary", '{"StreamName": true}', "class java.lang.Boolean can not be converted to an String"),
        ("DescribeStreamSummary", '{"StreamName": 23}', f"{TRUNCATING} can not be converted to an String"),
        ("DescribeStreamSummary", '{"StreamName": 2147483648}', f"{TRUNCATING} can not be converted to an String"),
        ("DescribeStreamSummary", '{"StreamName": 34.56}', f"{TRUNCATING} can not be converted to an String"),
        ("DescribeStreamSummary", '{"StreamName": []}', "Start of list found where not expected"),
        ("DescribeStreamSummary", '{"StreamName": {}}', "Start of structure or map found where not expected."),
        ("ListStreams", '{"Limit": "23"}', "class java.lang.String can not be converted to an Integer"),
        ("ListStreams", '{"Limit": true}', "class java.lang.Boolean can not be converted to an Integer"),
        ("DeleteStream", '{"StreamName": "x", "EnforceConsumerDeletion": 23}', f"{TRUNCATING} can not be converted to an Boolean"),
        ("DeleteStream", '{"StreamName": "x", "EnforceConsumerDeletion": "23"}', "'23' can not be converted to an Boolean"),
        ("PutRecord", '{"StreamName": "x", "PartitionKey": "a", "Data": true}', "class java.lang.Boolean can not be converted to a Blob"),
        ("PutRecord", '{"StreamName": "x", "PartitionKey": "a", "Data": -2147483648}', f"{TRUNCATING} can not be converted to a Blob"),
        ("PutRecord", '{"StreamName": "x", "PartitionKey": "a", "Data": "23456"}',
         "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"),
        ("PutRecord", '{"StreamName": "x", "PartitionKey": "a", "Data": "=+/="}',
         "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='"),
        ("PutRecord", '{"StreamName": "x", "PartitionKey": "a", "Data": "+/+="}',
         "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"),
        ("GetShardIterator", '{"StreamName": "x", "ShardId": "0", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": "23"}',
         "class java.lang.String can not be converted to milliseconds since epoch"),
        ("GetShardIterator", '{"StreamName": "x", "ShardId": "0", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": true}',
         "class java.lang.Boolean can not be converted to milliseconds since epoch"),
        ("AddTagsToStream", '{"StreamName": "x", "Tags": "23"}', "Expected map or null"),
        ("AddTagsToStream", '{"StreamName": "x", "Tags": []}', "Start of list found where not expected"),
        ("RemoveTagsFromStream", '{"StreamName": "x", "TagKeys": 23}', "Expected list or null"),
        ("RemoveTagsFromStream", '{"StreamName": "x", "TagKeys": {}}', "Start of structure or map found where not expected."),
        ("CreateStream", '{"StreamName": "x", "StreamModeDetails": 34.56}', "Expected null"),
    ]
    for op, raw, message in cases:
        status, headers, body = post(f"Kinesis_20131202.{op}", raw)
        assert (status, body) == (400, {"__type": "SerializationException", "Message": message}), (op, raw)
        assert headers.get("content-type") == "application/x-amz-json-1.1"


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


ACCESS_DENIED_XML = (
    "<AccessDeniedException>\n"
    "  <Message>Unable to determine service/operation name to be authorized</Message>\n"
    "</AccessDeniedException>\n"
)


def test_a_request_without_a_json_content_type_gets_aws_xml():
    """kinesalite test/connection.js and index.js since 2018/2019 (after AWS's CBOR change)."""
    # A body under no content type: 404 when the target has both parts, signed or not.
    status, headers, body = raw("POST", {"X-Amz-Target": "Kinesis_20131202.ListStreams"}, b"{}")
    assert (status, body) == (404, "<UnknownOperationException/>\n")
    assert "content-type" not in headers
    status, _, body = raw(
        "POST",
        {"X-Amz-Target": "Kinesis_20131202.ListStreams", "Authorization": "AWS4-HMAC-SHA256 Credential=a/b/c/d/e"},
        b"{}",
    )
    assert (status, body) == (404, "<UnknownOperationException/>\n")
    # ... and 403 AccessDenied when it lacks one ("should return AccessDeniedException if body and no Content-Type").
    for target in [None, "Whatever", "Kinesis_20131202."]:
        headers = {"X-Amz-Target": target} if target else {}
        status, _, body = raw("POST", headers, b"{}")
        assert (status, body) == (403, ACCESS_DENIED_XML), target
    # Any method but POST ("should return AccessDeniedException if GET / PUT / DELETE").
    for method in ["GET", "PUT"]:
        status, _, body = raw(method, {})
        assert (status, body) == (403, ACCESS_DENIED_XML), method


def raw_bytes(method, headers, body=b""):
    url = urllib.parse.urlsplit(endpoint())
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request(method, "/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def cbor_error(code):
    """AWS's CBOR error map, `{"__type": code}` (indefinite-length map, kinesalite index.js)."""
    return b"\xbf\x66__type" + bytes([0x60 + len(code)] if len(code) < 24 else [0x78, len(code)]) + code.encode() + b"\xff"


def test_an_empty_body_is_answered_in_cbor_unless_the_request_is_json_1_1():
    """kinesalite test/connection.js: "should return CBOR UnknownOperationException if POST with no
    auth", "... if x-amz-json-1.0 Content-Type", "... if random Content-Type", "... if random target",
    "should return CBOR SerializationException if no Content-Type", "... if valid target and
    application/json"."""
    target = {"X-Amz-Target": "Kinesis_20131202.ListStreams"}
    cases = [
        ({}, "UnknownOperationException"),
        ({"Content-Type": "application/x-amz-json-1.0"}, "UnknownOperationException"),
        ({"Content-Type": "application/x-amz-json-1.1asdf"}, "UnknownOperationException"),
        ({"X-Amz-Target": "Kinesis_20131202.Whatever"}, "UnknownOperationException"),
        ({"Content-Type": "application/json"}, "UnknownOperationException"),
        (target, "SerializationException"),
        ({**target, "Content-Type": "application/json"}, "SerializationException"),
    ]
    for headers, code in cases:
        status, resp_headers, body = raw_bytes("POST", headers)
        assert status == 400, headers
        assert resp_headers.get("content-type") == "application/x-amz-cbor-1.1", headers
        assert body == cbor_error(code), (headers, body)
        assert UUID.match(resp_headers.get("x-amzn-requestid", ""))
    # JSON 1.1 gets JSON ("should return UnknownOperationException if no target", "... SerializationException if no body").
    status, _, body = post(None, "", sign=False)
    assert (status, body) == (400, {"__type": "UnknownOperationException"})
    status, _, body = post("Kinesis_20131202.ListStreams", "", sign=False)
    assert (status, body) == (400, {"__type": "SerializationException"})


def test_plain_application_json_gets_the_legacy_wrapped_answer():
    """kinesalite assertUnknownDeprecated / assertSerializationDeprecated (2019)."""
    headers = {"Content-Type": "application/json", "X-Amz-Target": "Kinesis_20131202.ListStreams"}
    status, resp_headers, body = raw("POST", headers, b"{}")
    assert status == 404
    assert resp_headers.get("content-type") == "application/json"
    assert json.loads(body) == {"Output": {"__type": "com.amazon.coral.service#UnknownOperationException"}, "Version": "1.0"}
    status, _, body = raw("POST", {**headers, "Content-Type": "     application/json     ;"}, b"hello")
    assert status == 400
    assert json.loads(body) == {"Output": {"__type": "com.amazon.coral.service#SerializationException"}, "Version": "1.0"}
