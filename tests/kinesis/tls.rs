//! HTTPS on the listener: the Rust SDK trusting the broker's self-signed certificate,
//! HTTP/2 and HTTP/1.1 chosen by ALPN, a client that never handshakes, bad certificate
//! files, and the command-line client over https.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kinesis_broker::http::tls::{HANDSHAKE_TIMEOUT, SELF_SIGNED_CERT_FILE, TlsSource};
use kinesis_broker::{Config, Server, ServerHandle};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use crate::common::*;

/// Longest any single exchange of these tests may take.
const STEP: Duration = Duration::from_secs(20);

async fn start_tls(dir: &Path) -> ServerHandle {
    start_server_in(dir, |config| {
        config.tls = Some(TlsSource::SelfSigned { dir: None });
    })
    .await
}

/// The Rust SDK over https, trusting only `cert_pem` (rustls on `ring`: the SDK's default
/// rustls provider is aws-lc, which this project does not build).
fn sdk_client(endpoint: &str, cert_pem: Option<&[u8]>) -> Client {
    let mut trust = tls::TrustStore::empty();
    if let Some(pem) = cert_pem {
        trust = trust.with_pem_certificate(pem.to_vec());
    }
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(
            tls::TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, "dummy", None, None, "tests"))
        .http_client(http)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// A rustls client trusting `cert_pem`, offering `alpn`.
fn connector(cert_pem: &[u8], alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in kinesis_broker::http::tls::read_certs_pem(cert_pem).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(kinesis_broker::http::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

fn list_streams_request(uri: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post(uri)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "Kinesis_20131202.ListStreams")
        .header("x-amz-date", "20261206T000000Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

#[tokio::test]
async fn sdk_over_https_trusting_the_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls(dir.path()).await;
    let port = server.local_addr().port();
    assert_eq!(server.endpoint(), format!("https://127.0.0.1:{port}"));
    let cert_path = server.tls_cert_path().unwrap().to_path_buf();
    assert_eq!(cert_path, dir.path().join(SELF_SIGNED_CERT_FILE));
    let pem = std::fs::read(&cert_path).unwrap();

    // The certificate names both localhost and 127.0.0.1.
    for (i, endpoint) in [server.endpoint(), format!("https://localhost:{port}")]
        .into_iter()
        .enumerate()
    {
        let client = sdk_client(&endpoint, Some(&pem));
        let name = format!("tls-{i}");
        tokio::time::timeout(STEP, create_stream(&client, &name, 1))
            .await
            .unwrap();
        client
            .put_record()
            .stream_name(&name)
            .partition_key("k")
            .data(blob(b"over tls".to_vec()))
            .send()
            .await
            .unwrap();
        let records = read_shard(&client, &name, &shard_id(0)).await;
        assert_eq!(data(&records[0]), b"over tls");
    }

    // A client that does not trust the certificate is refused by its own TLS stack; the
    // broker counts the aborted handshake.
    let failures = || {
        server
            .broker()
            .server_metrics()
            .tls_handshake_failures
            .load(Ordering::Relaxed)
    };
    let before = failures();
    let untrusting = sdk_client(&server.endpoint(), None);
    let err = tokio::time::timeout(STEP, untrusting.list_streams().send())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        format!("{:?}", err).to_lowercase().contains("certificate"),
        "{err:?}"
    );
    let deadline = tokio::time::Instant::now() + STEP;
    while failures() == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "failure not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Plain HTTP to the TLS port is a failed handshake, not an answer.
    let mut plain = TcpStream::connect(server.local_addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut plain,
        b"GET /_broker/health HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(STEP, plain.read_to_end(&mut out))
        .await
        .unwrap();
    assert!(!out.starts_with(b"HTTP/1.1 200"), "{out:?}");

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn alpn_picks_http2_or_http1() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls(dir.path()).await;
    let pem = std::fs::read(server.tls_cert_path().unwrap()).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();

    // Offering both: the broker picks h2, and speaks it.
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let tls = connector(&pem, &[b"h2", b"http/1.1"])
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let uri = format!("https://localhost:{}/", server.local_addr().port());
    let response = tokio::time::timeout(STEP, sender.send_request(list_streams_request(&uri)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("StreamNames"),
        "{body:?}"
    );

    // Offering only http/1.1: HTTP/1.1.
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let tls = connector(&pem, &[b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = tokio::time::timeout(STEP, sender.send_request(list_streams_request("/")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_11);
    assert_eq!(response.status(), 200);

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_silent_client_neither_blocks_others_nor_stays() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls(dir.path()).await;
    let pem = std::fs::read(server.tls_cert_path().unwrap()).unwrap();

    // Connects and never sends a ClientHello.
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    let client = sdk_client(&server.endpoint(), Some(&pem));
    tokio::time::timeout(Duration::from_secs(5), client.list_streams().send())
        .await
        .expect("answered while another client is silent")
        .unwrap();

    // The silent connection is closed once the handshake timeout is over.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT + STEP, silent.read(&mut buf))
        .await
        .expect("silent connection closed by the broker");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let failures = server
        .broker()
        .server_metrics()
        .tls_handshake_failures
        .load(Ordering::Relaxed);
    assert!(failures >= 1);

    // A shutdown does not wait for a handshake that never comes.
    let _silent_again = TcpStream::connect(server.local_addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown not held by a silent client")
        .unwrap();
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    for (cert, key, expected) in [
        (
            dir.path().join("missing.pem"),
            garbage.clone(),
            "missing.pem",
        ),
        (garbage.clone(), garbage.clone(), "no CERTIFICATE block"),
    ] {
        let mut config = Config::for_tests(dir.path().join("data"));
        config.tls = Some(TlsSource::Files { cert, key });
        let err = Server::start(config).await.unwrap_err().to_string();
        assert!(
            err.starts_with("cannot serve HTTPS: TLS certificate"),
            "{err}"
        );
        assert!(err.contains(expected), "{err}");
    }
    // Nothing was created: the start failed before the data directory was opened.
    assert!(!dir.path().join("data").exists());
}

#[tokio::test]
async fn self_signed_certificate_is_reused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls(dir.path()).await;
    let first = std::fs::read(server.tls_cert_path().unwrap()).unwrap();
    server.shutdown().await.unwrap();
    let server = start_tls(dir.path()).await;
    assert_eq!(
        std::fs::read(server.tls_cert_path().unwrap()).unwrap(),
        first
    );
    // Clients trusting the first start's certificate still connect.
    let client = sdk_client(&server.endpoint(), Some(&first));
    tokio::time::timeout(STEP, client.list_streams().send())
        .await
        .unwrap()
        .unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn command_line_client_over_https_with_a_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let server = start_tls(dir.path()).await;
    let cert = server.tls_cert_path().unwrap().to_path_buf();
    let client = sdk_client(&server.endpoint(), Some(&std::fs::read(&cert).unwrap()));
    create_stream(&client, "cli-tls", 1).await;

    let run = |ca: Option<(&str, &Path)>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
        cmd.env_clear()
            .env("HOME", home.path())
            .args(["streams", "--endpoint-url", &server.endpoint()])
            .kill_on_drop(true);
        match ca {
            Some(("flag", path)) => {
                cmd.arg("--ca-bundle").arg(path);
            }
            Some((_, path)) => {
                cmd.env("AWS_CA_BUNDLE", path);
            }
            None => {}
        }
        async move {
            tokio::time::timeout(Duration::from_secs(60), cmd.output())
                .await
                .expect("command finished in time")
                .unwrap()
        }
    };
    for how in ["flag", "env"] {
        let out = run(Some((how, &cert))).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{how}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("cli-tls"), "{how}: {stdout}");
    }
    // Without the bundle the certificate is not trusted: a connection error, not a hang.
    let out = run(None).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    server.shutdown().await.unwrap();
}
