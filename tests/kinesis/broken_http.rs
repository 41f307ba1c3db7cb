//! Requests broken at the HTTP level, sent over a raw socket: each gets a 4xx with an
//! AWS-shaped JSON body (`__type`, message, `x-amzn-RequestId`) before the connection
//! closes, never a reset or an empty body. Some are refused by the broker's body reading,
//! the others by hyper before any service sees them (its empty 400/431/414, replaced on the
//! way out).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// How long a test waits for an answer; the body timeout of these brokers is far shorter.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// The broker's body timeout in these tests, instead of 30 s.
const BODY_READ_TIMEOUT: Duration = Duration::from_millis(300);

const HEAD: &str = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                    Content-Type: application/x-amz-json-1.1\r\n\
                    X-Amz-Target: Kinesis_20131202.ListStreams\r\n";

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    json: serde_json::Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// AWS's JSON error shape, and the connection closes after it.
    fn assert_aws_error(&self, status: u16, error_type: &str, message_part: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/x-amz-json-1.1"),
            "{self:?}"
        );
        let id = self.header("x-amzn-RequestId").expect("x-amzn-RequestId");
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(self.header("connection"), Some("close"), "{self:?}");
        assert_eq!(self.json["__type"], error_type, "{self:?}");
        // SerializationException carries AWS's capital-M `Message` (AWS_BEHAVIOUR.md 6a).
        let message = self.json["message"]
            .as_str()
            .or_else(|| self.json["Message"].as_str())
            .expect("a message");
        assert!(
            message.contains(message_part),
            "{message:?} lacks {message_part:?}"
        );
    }
}

/// Sends `request` on a fresh connection (then half-closes it when `then_close`), reads
/// until the broker closes, and parses the one answer.
async fn exchange(addr: SocketAddr, request: &[u8], then_close: bool) -> Answer {
    tokio::time::timeout(ANSWER_WITHIN, async {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(request).await.unwrap();
        if then_close {
            socket.shutdown().await.unwrap();
        }
        let mut raw = Vec::new();
        socket
            .read_to_end(&mut raw)
            .await
            .expect("an answer, not a reset");
        parse(&raw)
    })
    .await
    .expect("answered before the test's timeout")
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect::<Vec<_>>();
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: body {body:?}"));
    Answer {
        status,
        headers,
        json,
    }
}

async fn broker() -> (Handle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let handle = start_server_in(dir.path(), |c| c.body_read_timeout = BODY_READ_TIMEOUT).await;
    (handle, dir)
}

#[tokio::test]
async fn a_malformed_chunk_size_is_a_serialization_exception() {
    let (server, _dir) = broker().await;
    let request = format!("{HEAD}Transfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n");
    exchange(server.local_addr(), request.as_bytes(), false)
        .await
        .assert_aws_error(400, "SerializationException", "chunk size");
}

#[tokio::test]
async fn a_chunked_body_that_stops_is_a_request_timeout() {
    let (server, _dir) = broker().await;
    let request = format!("{HEAD}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n");
    exchange(server.local_addr(), request.as_bytes(), false)
        .await
        .assert_aws_error(408, "RequestTimeoutException", "stopped arriving");
}

#[tokio::test]
async fn a_chunked_body_cut_by_the_client_closing_is_a_serialization_exception() {
    let (server, _dir) = broker().await;
    let request = format!("{HEAD}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n");
    exchange(server.local_addr(), request.as_bytes(), true)
        .await
        .assert_aws_error(400, "SerializationException", "EOF");
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_a_request_timeout() {
    let (server, _dir) = broker().await;
    let request = format!("{HEAD}Content-Length: 10\r\n\r\n{{}}");
    exchange(server.local_addr(), request.as_bytes(), false)
        .await
        .assert_aws_error(408, "RequestTimeoutException", "Content-Length");
}

#[tokio::test]
async fn a_content_length_that_is_not_a_number_is_a_serialization_exception() {
    let (server, _dir) = broker().await;
    let request = format!("{HEAD}Content-Length: abc\r\n\r\n{{}}");
    exchange(server.local_addr(), request.as_bytes(), false)
        .await
        .assert_aws_error(400, "SerializationException", "Content-Length");
}

#[tokio::test]
async fn two_thousand_headers_are_431_in_aws_shape() {
    let (server, _dir) = broker().await;
    let mut request = HEAD.to_string();
    for i in 0..2000 {
        request.push_str(&format!("X-Header-{i}: value\r\n"));
    }
    request.push_str("Content-Length: 2\r\n\r\n{}");
    exchange(server.local_addr(), request.as_bytes(), false)
        .await
        .assert_aws_error(431, "SerializationException", "100 headers");
}

#[tokio::test]
async fn a_100_kb_url_is_414_in_aws_shape() {
    let (server, _dir) = broker().await;
    let request = format!(
        "POST /{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(100 * 1024)
    );
    exchange(server.local_addr(), request.as_bytes(), false)
        .await
        .assert_aws_error(414, "SerializationException", "URI too long");
}

#[tokio::test]
async fn the_broker_serves_normally_after_broken_requests() {
    let (server, _dir) = broker().await;
    let addr = server.local_addr();
    let broken = format!("{HEAD}Content-Length: abc\r\n\r\n");
    exchange(addr, broken.as_bytes(), false).await;
    let client = client_for(addr);
    create_stream(&client, "after-broken", 1).await;
    let streams = client.list_streams().send().await.unwrap();
    assert_eq!(streams.stream_names(), ["after-broken"]);
    // Each broken request counts as an error in /metrics, under its own label.
    let (_, metrics) = tokio::time::timeout(ANSWER_WITHIN, async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        raw.split_once("\r\n\r\n")
            .map(|(h, b)| (h.to_string(), b.to_string()))
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        metrics.contains(
            r#"kinesis_broker_requests_total{operation="unparsed",error="SerializationException"} 1"#
        ),
        "{metrics}"
    );
}
