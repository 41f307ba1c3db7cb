//! Raw Kinesis JSON over HTTP, for operations the Rust SDK does not have (queues, channels)
//! and for tests that must see the broker's exact answer (or its absence, when it is killed).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ACCESS_KEY;

/// Bound on every single HTTP exchange (long polls included).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// POSTs one Kinesis JSON request; returns (status, body as JSON).
pub async fn call(addr: SocketAddr, operation: &str, body: Value) -> (u16, Value) {
    call_as(addr, ACCESS_KEY, operation, body).await
}

/// [`call`] signed with `access_key` (a 12-digit key names the caller's account).
pub async fn call_as(
    addr: SocketAddr,
    access_key: &str,
    operation: &str,
    body: Value,
) -> (u16, Value) {
    try_call_as(addr, access_key, operation, body)
        .await
        .unwrap_or_else(|e| panic!("{operation}: {e}"))
}

/// [`call`] that reports a failed connection instead of panicking (the broker may be
/// killed under it).
pub async fn try_call(
    addr: SocketAddr,
    operation: &str,
    body: Value,
) -> Result<(u16, Value), String> {
    try_call_as(addr, ACCESS_KEY, operation, body).await
}

/// [`call_as`] that reports a failed connection instead of panicking.
pub async fn try_call_as(
    addr: SocketAddr,
    access_key: &str,
    operation: &str,
    body: Value,
) -> Result<(u16, Value), String> {
    let body = serde_json::to_vec(&body).unwrap();
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{operation}\r\n\
             Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261125T000000Z\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={access_key}/20261125/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header block in {} bytes", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let mut payload = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload).ok_or("bad chunked body")?;
    }
    let value = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&payload).map_err(|e| format!("body is not JSON ({e})"))?
    };
    Ok((status, value))
}

/// The body of a chunked answer; `None` when it is not well-formed chunked encoding.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let start = line_end + 2;
        out.extend_from_slice(data.get(start..start + size)?);
        data = data.get(start + size + 2..)?;
    }
}

/// Calls and expects 200.
pub async fn ok(addr: SocketAddr, operation: &str, body: Value) -> Value {
    let (status, v) = call(addr, operation, body).await;
    assert_eq!(status, 200, "{operation}: {v}");
    v
}

/// Calls and expects an error of `code`; returns its message.
pub async fn fails(addr: SocketAddr, operation: &str, body: Value, code: &str) -> String {
    let (status, v) = call(addr, operation, body).await;
    assert_ne!(status, 200, "{operation} should fail with {code}: {v}");
    let ty = v["__type"].as_str().unwrap_or_default();
    assert!(ty.ends_with(code), "{operation}: expected {code}, got {v}");
    v["message"].as_str().unwrap_or_default().to_string()
}
