//! The wire protocol over a real socket, with a stand-in service whose every operation is
//! "not implemented": what is tested here is everything before an operation runs.

use super::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A service implementing nothing: every operation answers with the trait's default.
struct NothingImplemented;
impl Kinesis for NothingImplemented {}

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/kinesis/aws4_request, \
                    SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0123abcd";

struct TestServer {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = shutdown::channel();
    let task = tokio::spawn(serve(listener, NothingImplemented, shutdown));
    TestServer {
        addr,
        trigger,
        task,
    }
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the whole answer.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    RawResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn kinesis_headers(target: &str) -> Vec<(&str, &str)> {
    vec![
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", target),
        ("X-Amz-Date", "20261125T000000Z"),
        ("Authorization", AUTH),
    ]
}

fn assert_common_headers(res: &RawResponse) {
    let id = res.header("x-amzn-RequestId").expect("x-amzn-RequestId");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(
        res.header("content-length")
            .map(|v| v.parse::<usize>().unwrap()),
        Some(res.body.len())
    );
}

#[tokio::test]
async fn unknown_target_is_unknown_operation_exception() {
    let server = start().await;
    let res = send(
        server.addr,
        "POST",
        "/",
        &kinesis_headers("Kinesis_20131202.ListStream"),
        b"{}",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body_str(), r#"{"__type":"UnknownOperationException"}"#);
    assert_eq!(
        res.header("content-type"),
        Some("application/x-amz-json-1.1")
    );
    assert!(res.header("x-amz-id-2").is_some());
    assert_common_headers(&res);
}

#[tokio::test]
async fn missing_target_is_unknown_operation_even_without_auth() {
    let server = start().await;
    let res = send(
        server.addr,
        "POST",
        "/",
        &[("Content-Type", "application/x-amz-json-1.1")],
        b"{}",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body_str(), r#"{"__type":"UnknownOperationException"}"#);
}

#[tokio::test]
async fn missing_authorization_is_missing_authentication_token() {
    let server = start().await;
    let headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
    ];
    let res = send(server.addr, "POST", "/", &headers, b"{}").await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.body_str(),
        r#"{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}"#
    );
    assert_common_headers(&res);
}

#[tokio::test]
async fn malformed_body_wins_over_missing_authorization() {
    let server = start().await;
    let headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
    ];
    let res = send(server.addr, "POST", "/", &headers, b"hello").await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body_str(), r#"{"__type":"SerializationException"}"#);
}

#[tokio::test]
async fn empty_body_is_serialization_exception() {
    let server = start().await;
    let res = send(
        server.addr,
        "POST",
        "/",
        &kinesis_headers("Kinesis_20131202.ListStreams"),
        b"",
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.body_str(), r#"{"__type":"SerializationException"}"#);
}

#[tokio::test]
async fn wrong_json_type_is_serialization_exception_with_message() {
    let server = start().await;
    let res = send(
        server.addr,
        "POST",
        "/",
        &kinesis_headers("Kinesis_20131202.ListStreams"),
        br#"{"Limit":"ten"}"#,
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.body_str(),
        r#"{"__type":"SerializationException","Message":"class java.lang.String can not be converted to an Integer"}"#
    );
}

#[tokio::test]
async fn valid_request_reaches_the_service() {
    let server = start().await;
    let res = send(
        server.addr,
        "POST",
        "/",
        &kinesis_headers("Kinesis_20131202.ListStreams"),
        b"{}",
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(
        body["__type"],
        "NotImplementedException",
        "{}",
        res.body_str()
    );
    assert_common_headers(&res);
}

/// kinesalite `test/connection.js` "should return AccessDeniedException if GET": signed
/// or not, since 2018 (`index.js` 89dbe27).
#[tokio::test]
async fn get_without_auth_is_xml_access_denied() {
    let server = start().await;
    let res = send(server.addr, "GET", "/", &[], b"").await;
    assert_eq!(res.status, 403);
    assert_eq!(
        res.body_str(),
        "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n"
    );
    assert_eq!(res.header("content-type"), None);
    assert_common_headers(&res);
}

#[tokio::test]
async fn put_with_auth_is_xml_access_denied() {
    let server = start().await;
    let res = send(
        server.addr,
        "PUT",
        "/anything",
        &[("Authorization", AUTH)],
        b"",
    )
    .await;
    assert_eq!(res.status, 403);
    assert!(res.body_str().starts_with("<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>"));
}

/// A body under a content type AWS does not route (kinesalite `index.js` since 89dbe27):
/// 404 `<UnknownOperationException/>` when the target has both parts, 403 AccessDenied
/// when it lacks one ("should return AccessDeniedException if body and no Content-Type").
#[tokio::test]
async fn unknown_content_type_is_xml_by_target() {
    let server = start().await;
    for auth in [Some(AUTH), None] {
        let mut headers = vec![
            ("Content-Type", "text/plain"),
            ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
        ];
        headers.extend(auth.map(|a| ("Authorization", a)));
        let res = send(server.addr, "POST", "/", &headers, b"{}").await;
        assert_eq!(res.status, 404);
        assert_eq!(res.body_str(), "<UnknownOperationException/>\n");
        assert_eq!(res.header("content-type"), None);
        let res = send(server.addr, "POST", "/", &[("Authorization", AUTH)], b"{}").await;
        assert_eq!(res.status, 403);
        assert!(res.body_str().starts_with("<AccessDeniedException>"));
    }
}

/// kinesalite `test/connection.js` "should return CBOR UnknownOperationException if POST
/// with no auth" / "… if random Content-Type", "should return CBOR SerializationException
/// if no Content-Type": an empty body is answered in CBOR unless the request is JSON 1.1.
#[tokio::test]
async fn empty_body_without_json_content_type_is_answered_in_cbor() {
    let server = start().await;
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "UnknownOperationException"),
        (
            &[("Content-Type", "application/x-amz-json-1.1asdf")],
            "UnknownOperationException",
        ),
        (
            &[
                ("Content-Type", "application/x-amz-json-1.0"),
                ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
            ],
            "SerializationException",
        ),
        (
            &[("X-Amz-Target", "Kinesis_20131202.ListStreams")],
            "SerializationException",
        ),
    ];
    for (headers, code) in cases {
        let res = send(server.addr, "POST", "/", headers, b"").await;
        assert_eq!(res.status, 400, "{headers:?}");
        assert_eq!(
            res.header("content-type"),
            Some("application/x-amz-cbor-1.1")
        );
        let expected = crate::protocol::error::cbor_error_body(&ApiError::new(
            ErrorCode::from_name(code).unwrap(),
            "",
        ));
        assert_eq!(res.body, expected, "{headers:?}");
        assert_common_headers(&res);
    }
}

/// A body that does not parse wins over an unknown target (kinesalite `index.js`: the body
/// is parsed before the target is looked at).
#[tokio::test]
async fn malformed_body_wins_over_unknown_target() {
    let server = start().await;
    let res = send(
        server.addr,
        "POST",
        "/",
        &kinesis_headers("Kinesis_20131202.Nope"),
        b"hello",
    )
    .await;
    assert_eq!(res.body_str(), r#"{"__type":"SerializationException"}"#);
    let res = send(
        server.addr,
        "POST",
        "/",
        &kinesis_headers("Kinesis_20131202.Nope"),
        b"{}",
    )
    .await;
    assert_eq!(res.body_str(), r#"{"__type":"UnknownOperationException"}"#);
}

/// kinesalite `assertUnknownDeprecated` / `assertSerializationDeprecated` (7d5e041).
#[tokio::test]
async fn legacy_application_json_gets_the_coral_envelope() {
    let server = start().await;
    let headers = [
        ("Content-Type", "     application/json     ;"),
        ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
    ];
    let res = send(server.addr, "POST", "/", &headers, b"{}").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(
        res.body_str(),
        r#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#
    );
    let res = send(server.addr, "POST", "/", &headers, b"hello").await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.body_str(),
        r#"{"Output":{"__type":"com.amazon.coral.service#SerializationException"},"Version":"1.0"}"#
    );
}

#[tokio::test]
async fn cbor_requests_get_a_cbor_error() {
    let server = start().await;
    let mut headers = kinesis_headers("Kinesis_20131202.ListStream");
    headers[0] = ("Content-Type", "application/x-amz-cbor-1.1");
    let res = send(server.addr, "POST", "/", &headers, &[0xbf, 0xff]).await;
    assert_eq!(res.status, 400);
    assert_eq!(
        res.header("content-type"),
        Some("application/x-amz-cbor-1.1")
    );
    assert_eq!(res.body[0], 0xbf);
}

/// AWS does not route `application/x-amz-json-1.0` (kinesalite "should return CBOR
/// UnknownOperationException if x-amz-json-1.0 Content-Type"; with a body, `index.js`).
#[tokio::test]
async fn json_1_0_is_not_routed() {
    let server = start().await;
    let mut headers = kinesis_headers("Kinesis_20131202.ListStreams");
    headers[0] = ("Content-Type", "application/x-amz-json-1.0");
    let res = send(server.addr, "POST", "/", &headers, b"{}").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), None);
    assert_eq!(res.body_str(), "<UnknownOperationException/>\n");
}

#[tokio::test]
async fn health_check_answers_ok() {
    let server = start().await;
    let res = send(server.addr, "GET", "/_broker/health", &[], b"").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body_str(), r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn cors_preflight_echoes_the_request() {
    let server = start().await;
    let headers = [
        ("Origin", "http://example.com"),
        ("Access-Control-Request-Headers", "a, b, c"),
        ("Access-Control-Request-Method", "POST"),
    ];
    let res = send(server.addr, "OPTIONS", "/", &headers, b"").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.header("access-control-allow-headers"), Some("a, b, c"));
    assert_eq!(res.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(res.header("access-control-max-age"), Some("172800"));
    assert_eq!(res.header("x-amz-id-2"), None);
    assert!(res.body.is_empty());
}

/// Reads until `needle` has arrived (not to the end: the server may still be draining).
async fn read_until(stream: &mut (impl AsyncReadExt + Unpin), needle: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !raw.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed before {:?} arrived: {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
    raw
}

#[tokio::test]
async fn oversized_body_is_answered_before_it_is_read() {
    let server = start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: {}\r\n\r\n{{",
        MAX_REQUEST_BODY_BYTES + 1
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let raw = read_until(&mut stream, b"RequestEntityTooLargeException").await;
    assert!(
        raw.starts_with(b"HTTP/1.1 413 "),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}

#[tokio::test]
async fn oversized_body_beyond_discard_limit_closes_the_connection() {
    let server = start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: {}\r\n\r\n{{",
        MAX_DISCARD_BYTES + 1
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let res = parse_response(&raw);
    assert_eq!(res.status, 413);
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(body["__type"], "RequestEntityTooLargeException");
    assert_eq!(res.header("connection"), Some("close"));
}

#[tokio::test]
async fn oversized_body_still_being_sent_gets_the_whole_answer() {
    let server = start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let size = MAX_REQUEST_BODY_BYTES + 1024;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Length: {size}\r\n\r\n"
    );
    let (mut rd, mut wr) = stream.split();
    let writer = async {
        wr.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'1'; 1024 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            wr.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
    };
    let reader = async {
        let mut raw = Vec::new();
        rd.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let ((), raw) = tokio::join!(writer, reader);
    // Everything was sent without a reset, and the whole answer arrived.
    let res = parse_response(&raw);
    assert_eq!(res.status, 413);
    assert_eq!(res.header("connection"), Some("close"));
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(body["__type"], "RequestEntityTooLargeException");
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = "GET /_broker/health HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..3 {
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(br#"{"status":"ok"}"#) {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200"));
    }
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let server = start().await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /_broker/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(stream.read(&mut buf).await.unwrap() > 0);
    server.trigger.trigger();
    server.task.await.unwrap();
    // The idle keep-alive connection was closed by the server.
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn request_ids_differ_between_requests() {
    let server = start().await;
    let a = send(server.addr, "GET", "/_broker/health", &[], b"").await;
    let b = send(server.addr, "GET", "/_broker/health", &[], b"").await;
    assert_ne!(a.header("x-amzn-RequestId"), b.header("x-amzn-RequestId"));
}
