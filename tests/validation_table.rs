//! Every constraint of every operation's input in the service model, broken one at a time.
//!
//! The cases live in `tests/data/validation_table.json`, generated from
//! `../shared/aws-model/kinesis/service-2.json` by `cargo run -p xtask -- codegen` (which
//! also checks it with `--check`); the generator (`xtask/src/validation_table.rs`) explains
//! the encoding and where each piece of AWS's wording comes from. Each case is sent as raw
//! JSON over HTTP with a well-formed SigV4 `Authorization` header, and must come back as
//! HTTP 400 `ValidationException` with exactly the expected message. Operations the broker
//! does not implement validate first all the same, so they are in the table too.

use std::net::SocketAddr;

use kinesis_broker::{Config, Server};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TABLE: &str = include_str!("data/validation_table.json");

/// A string of `len` characters: `prefix` padded with `ch`.
fn pad(spec: &Value) -> String {
    let a = spec.as_array().expect("$pad is [prefix, ch, len]");
    let prefix = a[0].as_str().expect("prefix");
    let ch = a[1].as_str().expect("pad char");
    let len = a[2].as_u64().expect("len") as usize;
    let have = prefix.chars().count();
    assert!(len >= have, "$pad shorter than its prefix");
    format!("{prefix}{}", ch.repeat(len - have))
}

/// The body template of a case, expanded to real JSON.
fn expand_body(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$pad") => {
            Value::String(pad(&m["$pad"]))
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("$blob") => {
            let n = m["$blob"].as_u64().expect("$blob length") as usize;
            Value::String(base64_simd::STANDARD.encode_to_string(vec![0u8; n]))
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("$repeat") => {
            let a = m["$repeat"].as_array().expect("$repeat is [value, n]");
            let item = expand_body(&a[0]);
            Value::Array(vec![item; a[1].as_u64().expect("n") as usize])
        }
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), expand_body(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(expand_body).collect()),
        other => other.clone(),
    }
}

/// One violation's text from its segments.
fn expand_message(segs: &Value) -> String {
    let mut out = String::new();
    for seg in segs.as_array().expect("segments") {
        match seg {
            Value::String(s) => out.push_str(s),
            Value::Object(m) if m.contains_key("$pad") => out.push_str(&pad(&m["$pad"])),
            Value::Object(m) if m.contains_key("$join") => {
                let a = m["$join"].as_array().expect("$join is [item, sep, n]");
                let item = a[0].as_str().expect("item");
                let sep = a[1].as_str().expect("sep");
                let n = a[2].as_u64().expect("n") as usize;
                out.push_str(&vec![item; n].join(sep));
            }
            other => panic!("unknown message segment {other}"),
        }
    }
    out
}

/// Java's identity hash in `Object.toString` (`...PutRecordsRequestEntry@1b2c3d`) cannot be
/// reproduced: every `@<hex>` becomes `@{hash}`, as in the table.
fn mask_hashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('@') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let hex = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        if hex > 0 {
            out.push_str("{hash}");
            rest = &rest[hex..];
        }
    }
    out.push_str(rest);
    out
}

/// POSTs one Kinesis request over a fresh HTTP/1.1 connection; returns (status, body).
async fn post(addr: SocketAddr, operation: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{operation}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261125T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/kinesis/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let mut payload = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    (status, payload)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..line_end])
                .expect("ascii")
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .expect("hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `s` shortened to the part around its first difference from `other` (values can be
/// thousands of characters long).
fn around_difference(s: &str, other: &str) -> String {
    let at = s
        .char_indices()
        .zip(other.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(s.len().min(other.len()));
    let start = s[..at].char_indices().rev().nth(60).map_or(0, |(i, _)| i);
    let end = s[at..]
        .char_indices()
        .nth(60)
        .map_or(s.len(), |(i, _)| at + i);
    format!(
        "{}{:?}{} ({} chars, first difference at byte {at})",
        if start > 0 { "…" } else { "" },
        &s[start..end],
        if end < s.len() { "…" } else { "" },
        s.chars().count()
    )
}

/// What a case expects: the exact message when one violation is reported; with several,
/// the count and the set of violations (AWS's order between them is not stable).
fn check_message(actual: &str, expected: &[String]) -> Result<(), String> {
    let actual = mask_hashes(actual);
    if expected.len() == 1 {
        let want = format!("1 validation error detected: {}", expected[0]);
        return if actual == want {
            Ok(())
        } else {
            Err(format!(
                "message\n      got  {}\n      want {}",
                around_difference(&actual, &want),
                around_difference(&want, &actual)
            ))
        };
    }
    let prefix = format!("{} validation errors detected: ", expected.len());
    let Some(rest) = actual.strip_prefix(&prefix) else {
        return Err(format!("message {actual:?} does not start with {prefix:?}"));
    };
    let mut got: Vec<&str> = rest.split("; ").collect();
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    got.sort_unstable();
    want.sort_unstable();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "violations\n      got  {got:?}\n      want {want:?}"
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_constraint_is_reported_in_aws_words() {
    let table: Value = serde_json::from_str(TABLE).expect("the table is JSON");
    let cases = table["cases"].as_array().expect("cases");
    assert!(cases.len() > 500, "the table lost cases: {}", cases.len());

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(Config::for_tests(dir.path()))
        .await
        .expect("broker starts");
    let addr = server.local_addr();

    let mut failures = Vec::new();
    let mut operations = std::collections::BTreeSet::new();
    for case in cases {
        let op = case["operation"].as_str().expect("operation");
        let name = case["case"].as_str().expect("case");
        operations.insert(op.to_string());
        let body = serde_json::to_vec(&expand_body(&case["body"])).expect("encode body");
        let expected: Vec<String> = case["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .map(expand_message)
            .collect();
        let (status, payload) = post(addr, op, &body).await;
        let outcome = match serde_json::from_slice::<Value>(&payload) {
            Ok(reply) => {
                let ty = reply["__type"].as_str().unwrap_or("<none>");
                let msg = reply["message"].as_str().unwrap_or("<none>");
                if status != 400 || ty != "ValidationException" {
                    Err(format!("HTTP {status} {ty}: {msg}"))
                } else {
                    check_message(msg, &expected)
                }
            }
            Err(_) => Err(format!(
                "HTTP {status}, body not JSON: {:?}",
                String::from_utf8_lossy(&payload[..payload.len().min(300)])
            )),
        };
        if let Err(why) = outcome {
            failures.push(format!("{op} [{name}]: {why}"));
        }
    }
    server.shutdown().await.expect("clean shutdown");
    // 57 operations; DescribeLimits and DescribeAccountSettings have no input members.
    assert_eq!(
        operations.len(),
        55,
        "every operation with input members has cases"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n  {}",
        failures.len(),
        cases.len(),
        failures.join("\n  ")
    );
}

#[test]
fn masking_replaces_only_java_hashes() {
    assert_eq!(
        mask_hashes("[com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310]"),
        "[com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@{hash}]"
    );
    assert_eq!(mask_hashes("a@b.c @ x"), "a@{hash}.c @ x");
}
