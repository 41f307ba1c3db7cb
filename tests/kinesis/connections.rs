//! The connection cap (`--max-connections`): at the cap a new client is served by closing
//! the connection idle the longest, never one with a request in flight; when every one is
//! busy, the new client waits until one is idle.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Upper bound on every wait of these tests.
const WITHIN: Duration = Duration::from_secs(10);
const CAP: usize = 4;

const LIST_STREAMS_HEAD: &str = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\
    Content-Type: application/x-amz-json-1.1\r\n\
    X-Amz-Target: Kinesis_20131202.ListStreams\r\n\
    X-Amz-Date: 20261125T000000Z\r\n\
    Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/kinesis/aws4_request, \
    SignedHeaders=host;x-amz-date;x-amz-target, Signature=0123abcd\r\n\
    Content-Length: 2\r\n\r\n";

/// Reads one answer (head and `Content-Length` body) off a keep-alive connection.
async fn read_answer(socket: &mut TcpStream) -> u16 {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                return head[9..12].parse().unwrap();
            }
        }
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the answer");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A keep-alive connection that has made one request.
async fn used_connection(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    request(&mut socket).await;
    socket
}

async fn request(socket: &mut TcpStream) {
    let status = tokio::time::timeout(WITHIN, async {
        socket
            .write_all(format!("{LIST_STREAMS_HEAD}{{}}").as_bytes())
            .await
            .unwrap();
        read_answer(socket).await
    })
    .await
    .expect("answered in time");
    assert_eq!(status, 200);
}

/// Sends a request head and half its body: the request stays in flight.
async fn busy_connection(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(format!("{LIST_STREAMS_HEAD}{{").as_bytes())
        .await
        .unwrap();
    socket
}

/// Ends the half-sent body of a [`busy_connection`] and reads its answer.
async fn finish(socket: &mut TcpStream) {
    socket.write_all(b"}").await.unwrap();
    let status = tokio::time::timeout(WITHIN, read_answer(socket))
        .await
        .expect("answered in time");
    assert_eq!(status, 200);
}

/// True when the broker closed `socket` within `wait`.
async fn closed_within(socket: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, socket.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn evictions(addr: SocketAddr) -> String {
    tokio::time::timeout(WITHIN, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        raw.lines()
            .filter(|l| l.starts_with("kinesis_broker_idle_connections_evicted_total"))
            .collect::<String>()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room_and_a_busy_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.max_connections = CAP;
        // ListStreams is limited to 5 calls a second per account, as on AWS.
        c.throughput_limits = false;
    })
    .await;
    let addr = server.local_addr();

    // The oldest connection is busy, so the next oldest is the longest idle.
    let mut busy = busy_connection(addr).await;
    let mut longest_idle = used_connection(addr).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut others = vec![used_connection(addr).await, used_connection(addr).await];

    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    request(&mut newcomer).await;
    assert!(
        closed_within(&mut longest_idle, WITHIN).await,
        "the longest-idle connection is closed"
    );
    for other in &mut others {
        request(other).await;
    }
    finish(&mut busy).await;
    request(&mut newcomer).await;

    // The scrape itself needs room: another idle connection goes for it.
    assert_eq!(
        evictions(addr).await,
        "kinesis_broker_idle_connections_evicted_total 2"
    );
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_client_waits_for_one_to_be_idle() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in(dir.path(), |c| {
        c.max_connections = CAP;
        // ListStreams is limited to 5 calls a second per account, as on AWS.
        c.throughput_limits = false;
    })
    .await;
    let addr = server.local_addr();

    let mut busy = Vec::new();
    for _ in 0..CAP {
        busy.push(busy_connection(addr).await);
    }
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    newcomer
        .write_all(format!("{LIST_STREAMS_HEAD}{{}}").as_bytes())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(500), read_answer(&mut newcomer)).await;
    assert!(waited.is_err(), "served while every connection was busy");

    // Once one request is answered, its connection is idle and gives way.
    finish(&mut busy[0]).await;
    let status = tokio::time::timeout(WITHIN, read_answer(&mut newcomer))
        .await
        .expect("served once a connection was idle");
    assert_eq!(status, 200);
    assert!(closed_within(&mut busy[0], WITHIN).await);
    for socket in &mut busy[1..] {
        finish(socket).await;
    }
}
