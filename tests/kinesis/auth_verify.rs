//! `--auth verify`: the real Rust SDK against a broker checking SigV4 signatures with a
//! credentials file (compat-tests/AWS_BEHAVIOUR.md section 13f).

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::Credentials;
use kinesis_broker::client::sigv4;
use kinesis_broker::config::AuthMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const ALICE: (&str, &str) = ("AKIDALICE", "alice-secret");
const ALICE_CI: (&str, &str) = ("AKIDALICECI", "alice-ci-secret");
const BOB: (&str, &str) = ("AKIDBOB", "bob/secret+1");
const ACCOUNT_A: &str = "111111111111";
const ACCOUNT_B: &str = "222222222222";

const CREDENTIALS: &str = "\
[alice]
aws_access_key_id = AKIDALICE
aws_secret_access_key = alice-secret
account_id = 111111111111
[alice-ci]
aws_access_key_id = AKIDALICECI
aws_secret_access_key = alice-ci-secret
account_id = 111111111111
[bob]
aws_access_key_id = AKIDBOB
aws_secret_access_key = bob/secret+1
account_id = 222222222222
";

/// Bound on every raw exchange below.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

async fn start_verifying() -> (Handle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.ini");
    std::fs::write(&file, CREDENTIALS).unwrap();
    let data = dir.path().join("data");
    let handle = start_server_in(&data, |c| {
        c.auth = AuthMode::Verify;
        c.credentials_file = Some(file);
    })
    .await;
    (handle, dir)
}

fn client(addr: SocketAddr, (key, secret): (&str, &str)) -> Client {
    let conf = client_no_retry(addr)
        .config()
        .to_builder()
        .credentials_provider(Credentials::new(key, secret, None, None, "tests"))
        .build();
    Client::from_conf(conf)
}

#[tokio::test]
async fn the_right_key_works_and_the_account_comes_from_the_file() {
    let (h, _d) = start_verifying().await;
    let alice = client(h.local_addr(), ALICE);
    create_stream(&alice, "orders", 1).await;
    let summary = alice
        .describe_stream_summary()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary.stream_description_summary().unwrap().stream_arn(),
        format!("arn:aws:kinesis:us-east-1:{ACCOUNT_A}:stream/orders")
    );
    // A second key of the same account sees the stream; the other account does not.
    let ci = client(h.local_addr(), ALICE_CI);
    let names = ci.list_streams().send().await.unwrap().stream_names;
    assert_eq!(names, vec!["orders".to_string()]);
    let bob = client(h.local_addr(), BOB);
    assert!(
        bob.list_streams()
            .send()
            .await
            .unwrap()
            .stream_names
            .is_empty()
    );
    // The same name in the other account is another stream.
    create_stream(&bob, "orders", 1).await;
    let summary = bob
        .describe_stream_summary()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary.stream_description_summary().unwrap().stream_arn(),
        format!("arn:aws:kinesis:us-east-1:{ACCOUNT_B}:stream/orders")
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_signature_and_changes_nothing() {
    let (h, _d) = start_verifying().await;
    let forger = client(h.local_addr(), (ALICE.0, "guessed"));
    assert_error_prefix(
        forger
            .create_stream()
            .stream_name("forged")
            .shard_count(1)
            .send()
            .await,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    );
    let alice = client(h.local_addr(), ALICE);
    assert!(
        alice
            .list_streams()
            .send()
            .await
            .unwrap()
            .stream_names
            .is_empty()
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unknown_key_is_unrecognized_client() {
    let (h, _d) = start_verifying().await;
    let stranger = client(h.local_addr(), ("AKIDSTRANGER", "x"));
    assert_error(
        stranger.list_streams().send().await,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
    // A 12-digit key id no longer names an account by itself.
    let claimed = client(h.local_addr(), (ACCOUNT_A, "x"));
    assert_error(
        claimed.list_streams().send().await,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_broker_clock_offset_moves_the_skew_window() {
    let (h, _d) = start_verifying().await;
    let alice = client(h.local_addr(), ALICE);
    alice.list_streams().send().await.unwrap();
    h.broker().clock().advance_ms(20 * 60 * 1000).unwrap();
    assert_error_prefix(
        alice.list_streams().send().await,
        "InvalidSignatureException",
        "Signature expired: ",
    );
    h.broker().clock().advance_ms(-40 * 60 * 1000).unwrap();
    assert_error_prefix(
        alice.list_streams().send().await,
        "InvalidSignatureException",
        "Signature not yet current: ",
    );
    h.broker().clock().advance_ms(20 * 60 * 1000).unwrap();
    alice.list_streams().send().await.unwrap();
    h.shutdown().await.unwrap();
}

/// One HTTP/1.1 exchange on a fresh connection: (status, headers and body as text).
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> (u16, Vec<u8>) {
    tokio::time::timeout(IO_TIMEOUT, async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        let status = std::str::from_utf8(&out[9..12]).unwrap().parse().unwrap();
        (status, out)
    })
    .await
    .expect("the broker answers in time")
}

/// A signed request built with the broker's own signing primitives.
fn signed(
    addr: SocketAddr,
    (key, secret): (&str, &str),
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    service: &str,
) -> Vec<u8> {
    let (amz_date, date) = sigv4::amz_date(std::time::SystemTime::now());
    let host = addr.to_string();
    let mut headers: Vec<(&str, &str)> = vec![("host", &host), ("x-amz-date", &amz_date)];
    headers.extend_from_slice(extra);
    let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
    let canonical = sigv4::canonical_request(
        method,
        &sigv4::canonical_uri(path_only),
        &sigv4::canonical_query(query),
        &headers,
        &sigv4::sha256_hex(body),
    );
    let scope = sigv4::credential_scope(&date, "us-east-1", service);
    let signature = sigv4::signature(
        &sigv4::signing_key(secret, &date, "us-east-1", service),
        &sigv4::string_to_sign(&amz_date, &scope, &canonical.text),
    );
    let authorization = sigv4::authorization(key, &scope, &canonical.signed_headers, &signature);
    let mut out = format!("{method} {path} HTTP/1.1\r\n");
    for (n, v) in &headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "authorization: {authorization}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test]
async fn cbor_requests_are_verified_too() {
    let (h, _d) = start_verifying().await;
    let addr = h.local_addr();
    let cbor = [
        ("content-type", "application/x-amz-cbor-1.1"),
        ("x-amz-target", "Kinesis_20131202.ListStreams"),
    ];
    // `{}` in CBOR: an empty map.
    let (status, out) = exchange(
        addr,
        signed(addr, ALICE, "POST", "/", &cbor, &[0xa0], "kinesis"),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    assert!(String::from_utf8_lossy(&out).contains("application/x-amz-cbor-1.1"));

    let (status, out) = exchange(
        addr,
        signed(
            addr,
            (ALICE.0, "wrong"),
            "POST",
            "/",
            &cbor,
            &[0xa0],
            "kinesis",
        ),
    )
    .await;
    assert_eq!(status, 400);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("InvalidSignatureException"), "{text}");
    assert!(text.contains("application/x-amz-cbor-1.1"), "{text}");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn lambda_mappings_need_a_lambda_scope_and_admin_endpoints_a_known_key() {
    let (h, _d) = start_verifying().await;
    let addr = h.local_addr();
    let path = "/2015-03-31/event-source-mappings";
    let (status, out) = exchange(addr, signed(addr, BOB, "GET", path, &[], b"", "lambda")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
    let (status, out) = exchange(addr, signed(addr, BOB, "GET", path, &[], b"", "kinesis")).await;
    assert_eq!(status, 403);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("Credential should be scoped to correct service: 'lambda'."),
        "{text}"
    );

    // The admin endpoints: signed by any known key, else refused.
    let unsigned =
        format!("GET /_broker/clock HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    let (status, out) = exchange(addr, unsigned.into_bytes()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&out).contains("MissingAuthenticationTokenException"));
    let (status, _) = exchange(
        addr,
        signed(addr, BOB, "GET", "/_broker/clock", &[], b"", "kinesis"),
    )
    .await;
    assert_eq!(status, 200);
    // Probes stay open: orchestrators cannot sign.
    for probe in ["/health", "/ready", "/_broker/health"] {
        let req = format!("GET {probe} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        assert_eq!(exchange(addr, req.into_bytes()).await.0, 200, "{probe}");
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn rejections_are_counted_by_error_type() {
    let (h, _d) = start_verifying().await;
    let forger = client(h.local_addr(), (BOB.0, "guessed"));
    let _ = forger.list_streams().send().await;
    let _ = forger.list_streams().send().await;
    let addr = h.local_addr();
    let (status, out) = exchange(
        addr,
        signed(addr, BOB, "GET", "/metrics", &[], b"", "kinesis"),
    )
    .await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("kinesis_broker_requests_total{operation=\"ListStreams\",error=\"InvalidSignatureException\"} 2"),
        "{text}"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_bad_credentials_file_stops_the_start_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.ini");
    std::fs::write(
        &file,
        "[a]\naws_access_key_id = K\naws_secret_access_key = s\naccount_id = 42\n",
    )
    .unwrap();
    let mut config = kinesis_broker::Config::for_tests(dir.path().join("data"));
    config.auth = AuthMode::Verify;
    config.credentials_file = Some(file.clone());
    let err = kinesis_broker::Server::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "invalid configuration: credentials file {}, line 4: account_id '42' must be 12 digits",
            file.display()
        )
    );
    let mut config = kinesis_broker::Config::for_tests(dir.path().join("data"));
    config.auth = AuthMode::Verify;
    let err = kinesis_broker::Server::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--auth verify needs --credentials-file"),
        "{err}"
    );
}
