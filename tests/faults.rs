//! Fault injection (issue 6): record failures, whole-request 500/503, added latency and
//! GetRecords failures, configured at run time through the admin API (`PUT /_broker/faults`,
//! plain HTTP and JSON, as a user would with curl) and at start (`Config.faults`, the
//! `--faults JSON|@file` flag); per-stream rules over global ones; seeds that reproduce the
//! same failures; refused configurations; counts; and `/_broker/clock` expiring an iterator
//! without waiting five minutes.
//!
//! Throughput limits are off in every broker here, so only injected faults fail anything.
//! The Rust SDK makes one attempt per call: an injected failure is seen, not retried away.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use clap::Parser;
use common::*;
use kinesis_broker::Config;
use kinesis_broker::broker::faults::FaultConfig;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SHARD0: &str = "shardId-000000000000";

/// An SDK client that makes exactly one attempt per call.
fn one_attempt_client(addr: SocketAddr) -> Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            "dummy-secret",
            None,
            None,
            "tests",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    Client::from_conf(conf)
}

/// A broker with limits off and then `tweak`, and a one-attempt client.
async fn start(tweak: impl FnOnce(&mut Config)) -> (Client, Handle, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let handle = start_server_in(dir.path(), |c| {
        c.throughput_limits = false;
        tweak(c);
    })
    .await;
    let client = one_attempt_client(handle.local_addr());
    (client, handle, dir)
}

/// One admin request over plain HTTP/1.1 (what `curl -X METHOD` sends): the status and the
/// JSON body.
async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("admin answer within 30 s")
        .expect("read");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, json)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// `PUT /_broker/faults` that must be accepted; returns the answer (config and counts).
async fn put_faults(addr: SocketAddr, config: Value) -> Value {
    let (status, body) = admin(addr, "PUT", "/_broker/faults", &config.to_string()).await;
    assert_eq!(status, 200, "PUT /_broker/faults {config}: {body}");
    body
}

async fn get_faults(addr: SocketAddr) -> Value {
    let (status, body) = admin(addr, "GET", "/_broker/faults", "").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A count from the GET answer (`counts.records.X`, `counts.requests.X`), 0 when absent.
fn count(answer: &Value, kind: &str, key: &str) -> u64 {
    answer["counts"][kind][key].as_u64().unwrap_or(0)
}

/// Sum of every count of a kind (`records` or `requests`).
fn total(answer: &Value, kind: &str) -> u64 {
    answer["counts"][kind]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

fn entries(n: usize, tag: &str) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("pk-{i}"))
                .data(blob(format!("{tag}-{i}")))
                .build()
                .expect("entry")
        })
        .collect()
}

/// PutRecords of `n` records tagged `tag`; returns (failed positions with their error code
/// and message, acknowledged data), after checking FailedRecordCount.
async fn put_n(
    client: &Client,
    stream: &str,
    n: usize,
    tag: &str,
) -> (Vec<(usize, String, String)>, Vec<String>) {
    let out = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries(n, tag)))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecords: {}", describe_err(&e)));
    let mut failed = Vec::new();
    let mut acked = Vec::new();
    for (i, r) in out.records().iter().enumerate() {
        match (r.sequence_number(), r.error_code()) {
            (Some(_), None) => acked.push(format!("{tag}-{i}")),
            (None, Some(code)) => failed.push((
                i,
                code.to_owned(),
                r.error_message().unwrap_or_default().to_owned(),
            )),
            other => panic!("entry {i}: {other:?}"),
        }
    }
    assert_eq!(out.failed_record_count(), Some(failed.len() as i32));
    (failed, acked)
}

/// Every record of a one-shard stream, as data strings (faults must be off by now).
async fn shard_data(client: &Client, stream: &str) -> Vec<String> {
    read_shard(client, stream, SHARD0)
        .await
        .iter()
        .map(|r| String::from_utf8(data(r).to_vec()).expect("utf-8"))
        .collect()
}

/// Asserts an SDK error: code, HTTP status, and a message when given.
#[track_caller]
fn assert_failed<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: &Result<T, SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>>,
    code: &str,
    status: u16,
    message: Option<&str>,
) {
    let err = match result {
        Ok(v) => panic!("expected {code} ({status}), got {v:?}"),
        Err(e) => e,
    };
    assert_eq!(err.code(), Some(code), "{err:?}");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(status)
    );
    if let Some(message) = message {
        assert_eq!(err.message(), Some(message));
    }
}

async fn put_one(client: &Client, stream: &str, data: &str) -> Result<String, String> {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(blob(data))
        .send()
        .await
        .map(|o| o.sequence_number().to_owned())
        .map_err(|e| describe_err(&e))
}

// ---- record failures -------------------------------------------------------------------

#[tokio::test]
async fn throttled_record_failures_are_never_written_and_are_counted() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "rf", 1).await;
    let answer = put_faults(
        addr,
        json!({"seed": 7, "global": {"record_failure_rate": 0.3}}),
    )
    .await;
    assert_eq!(
        answer["config"]["global"]["record_failure_rate"],
        json!(0.3)
    );
    assert_eq!(
        answer["config"]["global"]["record_failure"],
        json!("ProvisionedThroughputExceededException"),
        "the default record failure is a throttle"
    );

    let (failed, acked) = put_n(&client, "rf", 400, "rf").await;
    assert!(
        (40..=200).contains(&failed.len()),
        "30% of 400 entries should fail, {} did",
        failed.len()
    );
    for (_, code, message) in &failed {
        assert_eq!(code, "ProvisionedThroughputExceededException");
        // The same words as a real throttle: a producer cannot tell them apart.
        assert_eq!(
            message,
            &format!(
                "Rate exceeded for shard {SHARD0} in stream rf under account {DEFAULT_ACCOUNT}."
            )
        );
    }
    let answer = get_faults(addr).await;
    assert_eq!(total(&answer, "records"), failed.len() as u64, "{answer}");

    admin(addr, "DELETE", "/_broker/faults", "").await;
    assert_eq!(
        shard_data(&client, "rf").await,
        acked,
        "exactly the acknowledged records"
    );
}

#[tokio::test]
async fn internal_failure_record_failures_are_never_written() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "if", 1).await;
    put_faults(
        addr,
        json!({"seed": 3, "global": {"record_failure_rate": 0.5, "record_failure": "InternalFailure"}}),
    )
    .await;

    let (failed, acked) = put_n(&client, "if", 200, "if").await;
    assert!((40..=160).contains(&failed.len()), "{}", failed.len());
    for (_, code, message) in &failed {
        assert_eq!(code, "InternalFailure");
        assert!(!message.is_empty());
    }
    assert_eq!(
        total(&get_faults(addr).await, "records"),
        failed.len() as u64
    );

    // PutRecord: a record failure answers the whole call (one record) with InternalFailure.
    put_faults(
        addr,
        json!({"global": {"record_failure_rate": 1.0, "record_failure": "InternalFailure"}}),
    )
    .await;
    let single = client
        .put_record()
        .stream_name("if")
        .partition_key("k")
        .data(blob("single"))
        .send()
        .await;
    assert_failed(&single, "InternalFailure", 500, None);

    admin(addr, "DELETE", "/_broker/faults", "").await;
    assert_eq!(shard_data(&client, "if").await, acked);
}

#[tokio::test]
async fn put_record_with_a_throttled_record_fault_is_refused_with_http_400() {
    let (client, h, _d) = start(|_| {}).await;
    create_stream(&client, "pr", 1).await;
    put_faults(
        h.local_addr(),
        json!({"global": {"record_failure_rate": 1.0}}),
    )
    .await;
    let result = client
        .put_record()
        .stream_name("pr")
        .partition_key("k")
        .data(blob("never"))
        .send()
        .await;
    assert_failed(
        &result,
        "ProvisionedThroughputExceededException",
        400,
        Some(&format!(
            "Rate exceeded for shard {SHARD0} in stream pr under account {DEFAULT_ACCOUNT}."
        )),
    );
    admin(h.local_addr(), "DELETE", "/_broker/faults", "").await;
    assert!(shard_data(&client, "pr").await.is_empty());
}

// ---- whole-request failures ------------------------------------------------------------

#[tokio::test]
async fn whole_requests_fail_with_500_internal_failure_and_write_nothing() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "five", 1).await;
    put_faults(addr, json!({"global": {"internal_failure_rate": 1.0}})).await;

    let batch = client
        .put_records()
        .stream_name("five")
        .set_records(Some(entries(10, "x")))
        .send()
        .await;
    assert_failed(&batch, "InternalFailure", 500, None);
    let single = client
        .put_record()
        .stream_name("five")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await;
    assert_failed(&single, "InternalFailure", 500, None);
    let it = client
        .get_shard_iterator()
        .stream_name("five")
        .shard_id(SHARD0)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await;
    assert_failed(&it, "InternalFailure", 500, None);
    // The control plane is not a target of injection.
    client
        .describe_stream_summary()
        .stream_name("five")
        .send()
        .await
        .expect("DescribeStreamSummary is not injected");

    let answer = get_faults(addr).await;
    assert_eq!(count(&answer, "requests", "InternalFailure"), 3, "{answer}");
    admin(addr, "DELETE", "/_broker/faults", "").await;
    assert!(
        shard_data(&client, "five").await.is_empty(),
        "a failed request wrote nothing"
    );
}

#[tokio::test]
async fn whole_requests_fail_with_503_service_unavailable() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "503", 1).await;
    put_faults(addr, json!({"global": {"service_unavailable_rate": 1.0}})).await;

    let batch = client
        .put_records()
        .stream_name("503")
        .set_records(Some(entries(10, "x")))
        .send()
        .await;
    assert_failed(&batch, "ServiceUnavailable", 503, None);
    let answer = get_faults(addr).await;
    assert_eq!(
        count(&answer, "requests", "ServiceUnavailable"),
        1,
        "{answer}"
    );
    admin(addr, "DELETE", "/_broker/faults", "").await;
    assert!(shard_data(&client, "503").await.is_empty());
}

#[tokio::test]
async fn request_failure_rates_split_between_500_and_503() {
    let (client, h, _d) = start(|_| {}).await;
    create_stream(&client, "mix", 1).await;
    put_faults(
        h.local_addr(),
        json!({"seed": 11, "global": {"internal_failure_rate": 0.3, "service_unavailable_rate": 0.3}}),
    )
    .await;
    let (mut ok, mut e500, mut e503) = (0, 0, 0);
    for i in 0..100 {
        match client
            .put_record()
            .stream_name("mix")
            .partition_key("k")
            .data(blob(format!("{i}")))
            .send()
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => match e.raw_response().map(|r| r.status().as_u16()) {
                Some(500) => e500 += 1,
                Some(503) => e503 += 1,
                other => panic!("{other:?}: {}", describe_err(&e)),
            },
        }
    }
    assert!(
        ok > 15 && e500 > 10 && e503 > 10,
        "ok {ok}, 500 {e500}, 503 {e503}"
    );
    let answer = get_faults(h.local_addr()).await;
    assert_eq!(count(&answer, "requests", "InternalFailure"), e500);
    assert_eq!(count(&answer, "requests", "ServiceUnavailable"), e503);
}

// ---- latency and GetRecords failures ---------------------------------------------------

#[tokio::test]
async fn latency_delays_data_plane_calls_by_at_least_the_minimum() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "slow", 1).await;

    put_faults(addr, json!({"global": {"latency_ms": [300, 300]}})).await;
    let started = Instant::now();
    put_one(&client, "slow", "a").await.expect("PutRecord");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    let delayed_before = get_faults(addr).await["counts"]["delayed"]
        .as_u64()
        .unwrap();
    assert!(delayed_before >= 1);
    put_faults(
        addr,
        json!({"seed": 5, "global": {"latency_ms": [200, 400]}}),
    )
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        put_one(&client, "slow", "b").await.expect("PutRecord");
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }
    let delayed = get_faults(addr).await["counts"]["delayed"]
        .as_u64()
        .unwrap();
    assert_eq!(delayed - delayed_before, 3, "each delayed call is counted");
}

#[tokio::test]
async fn get_records_failures_refuse_reads_only() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "gr", 1).await;
    put_faults(addr, json!({"global": {"get_records_failure_rate": 1.0}})).await;

    // Writes and iterators are not affected.
    put_one(&client, "gr", "kept").await.expect("PutRecord");
    let it = iterator(&client, "gr", SHARD0, ShardIteratorType::TrimHorizon).await;
    for _ in 0..3 {
        let read = client.get_records().shard_iterator(&it).send().await;
        assert_failed(&read, "ProvisionedThroughputExceededException", 400, None);
    }
    let answer = get_faults(addr).await;
    assert_eq!(total(&answer, "requests"), 3, "{answer}");

    // Half the reads fail with a seed: a consumer that retries gets everything.
    put_faults(
        addr,
        json!({"seed": 2, "global": {"get_records_failure_rate": 0.5}}),
    )
    .await;
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..40 {
        match client.get_records().shard_iterator(&it).send().await {
            Ok(out) => {
                ok += 1;
                assert_eq!(out.records().len(), 1);
                assert_eq!(data(&out.records()[0]), b"kept");
            }
            Err(e) => {
                assert_eq!(e.code(), Some("ProvisionedThroughputExceededException"));
                refused += 1;
            }
        }
    }
    assert!(ok >= 5 && refused >= 5, "ok {ok}, refused {refused}");
}

// ---- per stream, seeds, start-up configuration -----------------------------------------

#[tokio::test]
async fn per_stream_rules_replace_the_global_ones() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    for s in ["calm", "noisy", "other"] {
        create_stream(&client, s, 1).await;
    }
    put_faults(
        addr,
        json!({
            "global": {"internal_failure_rate": 1.0},
            "streams": {"calm": {}, "noisy": {"service_unavailable_rate": 1.0}}
        }),
    )
    .await;
    put_one(&client, "calm", "x")
        .await
        .expect("an empty rule set overrides the global rules");
    let noisy = client
        .put_record()
        .stream_name("noisy")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await;
    assert_failed(&noisy, "ServiceUnavailable", 503, None);
    let other = client
        .put_record()
        .stream_name("other")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await;
    assert_failed(&other, "InternalFailure", 500, None);

    // A stream named by ARN gets its stream's rules too.
    let by_arn = client
        .put_record()
        .stream_arn(stream_arn("noisy"))
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await;
    assert_failed(&by_arn, "ServiceUnavailable", 503, None);
}

/// Positions failed by a PutRecords of 100 records right after faults are (re)configured.
async fn failed_positions(client: &Client, stream: &str, tag: &str) -> BTreeSet<usize> {
    put_n(client, stream, 100, tag)
        .await
        .0
        .into_iter()
        .map(|(i, _, _)| i)
        .collect()
}

#[tokio::test]
async fn the_same_seed_fails_the_same_record_positions() {
    let config = json!({"seed": 42, "global": {"record_failure_rate": 0.3}});
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "seeded", 1).await;

    put_faults(addr, config.clone()).await;
    let first = failed_positions(&client, "seeded", "a").await;
    assert!(!first.is_empty() && first.len() < 100, "{first:?}");
    // PUT restarts the sequence from the seed.
    put_faults(addr, config.clone()).await;
    assert_eq!(failed_positions(&client, "seeded", "b").await, first);
    put_faults(
        addr,
        json!({"seed": 43, "global": {"record_failure_rate": 0.3}}),
    )
    .await;
    assert_ne!(
        failed_positions(&client, "seeded", "c").await,
        first,
        "another seed, other positions"
    );

    // A broker started with the same configuration (Config.faults, as --faults sets it)
    // fails the same positions of its first request.
    let (client2, _h2, _d2) = start(|c| {
        c.faults = serde_json::from_value(config.clone()).expect("fault config");
    })
    .await;
    let faults_at_start = get_faults(_h2.local_addr()).await;
    assert_eq!(
        faults_at_start["config"],
        put_faults(addr, config.clone()).await["config"]
    );
    // Creating the stream is control plane: no draw from the sequence.
    create_stream(&client2, "seeded", 1).await;
    assert_eq!(failed_positions(&client2, "seeded", "d").await, first);
}

#[tokio::test]
async fn faults_configured_at_start_apply_from_the_first_request() {
    let (client, h, _d) = start(|c| {
        c.faults = serde_json::from_value(json!({"global": {"service_unavailable_rate": 1.0}}))
            .expect("fault config");
    })
    .await;
    create_stream(&client, "boot", 1).await;
    let result = client
        .put_record()
        .stream_name("boot")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await;
    assert_failed(&result, "ServiceUnavailable", 503, None);
    // DELETE turns them off.
    let (status, answer) = admin(h.local_addr(), "DELETE", "/_broker/faults", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["config"],
        serde_json::to_value(FaultConfig::default()).unwrap()
    );
    put_one(&client, "boot", "x").await.expect("faults are off");
}

#[test]
fn the_faults_flag_reads_json_inline_or_from_a_file() {
    let json = r#"{"seed": 9, "global": {"record_failure_rate": 0.25}, "streams": {"orders": {"latency_ms": [10, 20]}}}"#;
    let expected: FaultConfig = serde_json::from_str(json).unwrap();

    let args = kinesis_broker::config::Args::try_parse_from(["kinesis-broker", "--faults", json])
        .expect("args");
    assert_eq!(args.to_config().expect("config").faults, expected);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults.json");
    std::fs::write(&file, json).unwrap();
    let at_file = format!("@{}", file.display());
    let args =
        kinesis_broker::config::Args::try_parse_from(["kinesis-broker", "--faults", &at_file])
            .expect("args");
    assert_eq!(args.to_config().expect("config").faults, expected);

    for bad in [
        "{not json",
        r#"{"global": {"bogus": 1}}"#,
        "@/nonexistent/faults.json",
    ] {
        let args =
            kinesis_broker::config::Args::try_parse_from(["kinesis-broker", "--faults", bad])
                .expect("args");
        assert!(args.to_config().is_err(), "--faults {bad} must be refused");
    }
}

#[tokio::test]
async fn a_broker_refuses_to_start_with_invalid_faults() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    config.faults =
        serde_json::from_value(json!({"global": {"record_failure_rate": 2.0}})).unwrap();
    match kinesis_broker::Server::start(config).await {
        Err(kinesis_broker::StartError::Config(e)) => {
            assert!(e.to_string().contains("record_failure_rate"), "{e}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

// ---- refused configurations and counts -------------------------------------------------

#[tokio::test]
async fn bad_fault_configurations_get_400_with_a_message_and_change_nothing() {
    let (_client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    let good = json!({"seed": 1, "global": {"record_failure_rate": 0.1}});
    let before = put_faults(addr, good).await["config"].clone();

    let cases: &[(&str, &str)] = &[
        (
            r#"{"global": {"record_failure_rate": 1.5}}"#,
            "record_failure_rate must be between 0 and 1, got 1.5",
        ),
        (
            r#"{"global": {"get_records_failure_rate": -0.1}}"#,
            "get_records_failure_rate must be between 0 and 1, got -0.1",
        ),
        (
            r#"{"global": {"internal_failure_rate": 0.6, "service_unavailable_rate": 0.6}}"#,
            "internal_failure_rate + service_unavailable_rate must not exceed 1",
        ),
        (
            r#"{"global": {"latency_ms": [10, 5]}}"#,
            "latency_ms range [10, 5] is reversed",
        ),
        (
            r#"{"streams": {"orders": {"service_unavailable_rate": 3}}}"#,
            "stream orders: service_unavailable_rate must be between 0 and 1, got 3",
        ),
        (
            r#"{"global": {"record_failure": "Bogus"}}"#,
            "not a fault configuration: ",
        ),
        (r#"{"globl": {}}"#, "not a fault configuration: "),
        (
            r#"{"global": {"record_failure_rat": 0.5}}"#,
            "not a fault configuration: ",
        ),
        ("{not json", "not a fault configuration: "),
        ("", "not a fault configuration: "),
    ];
    for (body, message) in cases {
        let (status, answer) = admin(addr, "PUT", "/_broker/faults", body).await;
        assert_eq!(status, 400, "PUT {body}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(
            error.starts_with(message),
            "PUT {body}: error {error:?} does not start with {message:?}"
        );
    }
    // Unknown fields are named.
    let (_, answer) = admin(addr, "PUT", "/_broker/faults", r#"{"globl": {}}"#).await;
    assert!(
        answer["error"].as_str().unwrap().contains("globl"),
        "{answer}"
    );

    assert_eq!(
        get_faults(addr).await["config"],
        before,
        "a refused PUT changes nothing"
    );
}

#[tokio::test]
async fn latency_may_be_a_fixed_value() {
    let (_client, h, _d) = start(|_| {}).await;
    put_faults(h.local_addr(), json!({"global": {"latency_ms": 250}})).await;
}

#[tokio::test]
async fn counts_are_keyed_by_the_error_codes_clients_see() {
    let (client, h, _d) = start(|_| {}).await;
    create_stream(&client, "keys", 1).await;
    put_faults(
        h.local_addr(),
        json!({"global": {"record_failure_rate": 1.0}}),
    )
    .await;
    put_n(&client, "keys", 3, "k").await;
    let answer = get_faults(h.local_addr()).await;
    assert_eq!(
        count(&answer, "records", "ProvisionedThroughputExceededException"),
        3,
        "{answer}"
    );
}

#[tokio::test]
async fn get_reports_every_kind_of_injected_fault() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    for s in ["r", "i", "u", "g", "l"] {
        create_stream(&client, s, 1).await;
    }
    let answer = get_faults(addr).await;
    assert_eq!(answer["counts"]["delayed"], json!(0), "{answer}");
    assert_eq!(total(&answer, "records") + total(&answer, "requests"), 0);

    put_faults(
        addr,
        json!({"streams": {
            "r": {"record_failure_rate": 1.0, "record_failure": "InternalFailure"},
            "i": {"internal_failure_rate": 1.0},
            "u": {"service_unavailable_rate": 1.0},
            "g": {"get_records_failure_rate": 1.0},
            "l": {"latency_ms": [1, 1]}
        }}),
    )
    .await;
    put_n(&client, "r", 4, "r").await;
    let _ = put_one(&client, "i", "x").await.expect_err("500");
    let _ = put_one(&client, "u", "x").await.expect_err("503");
    let _ = put_one(&client, "u", "x").await.expect_err("503");
    let it = iterator(&client, "g", SHARD0, ShardIteratorType::Latest).await;
    let _ = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect_err("refused");
    put_one(&client, "l", "x").await.expect("delayed only");

    let answer = get_faults(addr).await;
    assert_eq!(count(&answer, "records", "InternalFailure"), 4, "{answer}");
    assert_eq!(count(&answer, "requests", "InternalFailure"), 1, "{answer}");
    assert_eq!(
        count(&answer, "requests", "ServiceUnavailable"),
        2,
        "{answer}"
    );
    assert_eq!(
        total(&answer, "requests"),
        4,
        "one more: the refused GetRecords; {answer}"
    );
    assert_eq!(answer["counts"]["delayed"], json!(1), "{answer}");
    assert_eq!(
        answer["config"]["streams"]["l"]["latency_ms"],
        json!([1, 1])
    );
}

// ---- the clock -------------------------------------------------------------------------

#[tokio::test]
async fn advancing_the_clock_expires_an_iterator_without_waiting() {
    let (client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    create_stream(&client, "clock", 1).await;
    put_one(&client, "clock", "r").await.expect("PutRecord");
    let it = iterator(&client, "clock", SHARD0, ShardIteratorType::TrimHorizon).await;
    client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect("a fresh iterator reads");

    let (status, before) = admin(addr, "GET", "/_broker/clock", "").await;
    assert_eq!(status, 200);
    assert_eq!(before["offset_ms"], json!(0));
    // Just past AWS's 300,000 ms tolerance.
    let (status, after) = admin(addr, "POST", "/_broker/clock", r#"{"advance_ms": 301000}"#).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["offset_ms"], json!(301_000));
    let moved = after["now_ms"].as_i64().unwrap() - before["now_ms"].as_i64().unwrap();
    assert!(moved >= 301_000, "now_ms moved by {moved}");
    assert_eq!(
        h.broker().clock().offset_ms(),
        301_000,
        "the handle sees the same clock"
    );

    let expired = client.get_records().shard_iterator(&it).send().await;
    let err = expired.as_ref().expect_err("expired");
    assert_eq!(err.code(), Some("ExpiredIteratorException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let msg = err.message().unwrap_or_default();
    assert!(
        msg.starts_with("Iterator expired. The iterator was created at time ")
            && msg.ends_with(
                "which is further in the future than the tolerated delay of 300000 milliseconds."
            ),
        "{msg}"
    );

    // A new iterator, issued on the moved clock, reads the record.
    let it = iterator(&client, "clock", SHARD0, ShardIteratorType::TrimHorizon).await;
    let out = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect("fresh");
    assert_eq!(out.records().len(), 1);
}

#[tokio::test]
async fn a_clock_offset_at_start_is_reported_and_bad_clock_bodies_are_refused() {
    let (_client, h, _d) = start(|c| c.clock_offset_ms = -5_000).await;
    let addr = h.local_addr();
    let (status, clock) = admin(addr, "GET", "/_broker/clock", "").await;
    assert_eq!(status, 200);
    assert_eq!(clock["offset_ms"], json!(-5_000));
    for body in [
        "",
        "{}",
        r#"{"advance_ms": "soon"}"#,
        r#"{"advance_ms": 1, "x": 2}"#,
    ] {
        let (status, answer) = admin(addr, "POST", "/_broker/clock", body).await;
        assert_eq!(status, 400, "POST {body}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("expected {\"advance_ms\": N}"),
            "{answer}"
        );
    }
    let (_, clock) = admin(addr, "GET", "/_broker/clock", "").await;
    assert_eq!(
        clock["offset_ms"],
        json!(-5_000),
        "refused bodies move nothing"
    );
}

#[tokio::test]
async fn an_injected_get_records_refusal_reads_like_a_real_one() {
    let (client, h, _d) = start(|_| {}).await;
    create_stream(&client, "words", 1).await;
    let it = iterator(&client, "words", SHARD0, ShardIteratorType::Latest).await;
    put_faults(
        h.local_addr(),
        json!({"global": {"get_records_failure_rate": 1.0}}),
    )
    .await;
    let read = client.get_records().shard_iterator(&it).send().await;
    assert_failed(
        &read,
        "ProvisionedThroughputExceededException",
        400,
        Some(&format!(
            "Rate exceeded for shard {SHARD0} in stream words under account {DEFAULT_ACCOUNT}."
        )),
    );
}

#[tokio::test]
async fn a_clock_move_out_of_range_is_refused() {
    let (_client, h, _d) = start(|_| {}).await;
    let addr = h.local_addr();
    let (status, answer) = admin(
        addr,
        "POST",
        "/_broker/clock",
        &json!({"advance_ms": i64::MAX}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, clock) = admin(addr, "GET", "/_broker/clock", "").await;
    assert_eq!((status, &clock["offset_ms"]), (200, &json!(0)), "{clock}");
}

#[tokio::test]
async fn every_fault_kind_works_from_the_start_configuration() {
    // One broker started with Config.faults (what --faults sets), a stream per fault kind.
    let config = json!({"seed": 4, "streams": {
        "rt": {"record_failure_rate": 1.0},
        "ri": {"record_failure_rate": 1.0, "record_failure": "InternalFailure"},
        "e500": {"internal_failure_rate": 1.0},
        "e503": {"service_unavailable_rate": 1.0},
        "lat": {"latency_ms": [250, 250]},
        "gr": {"get_records_failure_rate": 1.0}
    }});
    let (client, h, _d) = start(|c| {
        c.faults = serde_json::from_value(config.clone()).expect("fault config");
    })
    .await;
    for s in ["rt", "ri", "e500", "e503", "lat", "gr"] {
        create_stream(&client, s, 1).await;
    }

    let (failed, _) = put_n(&client, "rt", 5, "rt").await;
    assert_eq!(failed.len(), 5);
    assert!(
        failed
            .iter()
            .all(|(_, c, _)| c == "ProvisionedThroughputExceededException")
    );
    let (failed, _) = put_n(&client, "ri", 5, "ri").await;
    assert_eq!(failed.len(), 5);
    assert!(failed.iter().all(|(_, c, _)| c == "InternalFailure"));
    let e500 = client
        .put_records()
        .stream_name("e500")
        .set_records(Some(entries(2, "x")))
        .send()
        .await;
    assert_failed(&e500, "InternalFailure", 500, None);
    let e503 = client
        .put_records()
        .stream_name("e503")
        .set_records(Some(entries(2, "x")))
        .send()
        .await;
    assert_failed(&e503, "ServiceUnavailable", 503, None);
    let started = Instant::now();
    put_one(&client, "lat", "x")
        .await
        .expect("delayed, not failed");
    assert!(started.elapsed() >= Duration::from_millis(250));
    let it = iterator(&client, "gr", SHARD0, ShardIteratorType::Latest).await;
    let read = client.get_records().shard_iterator(&it).send().await;
    assert_failed(&read, "ProvisionedThroughputExceededException", 400, None);

    let answer = get_faults(h.local_addr()).await;
    assert_eq!(
        answer["config"],
        serde_json::to_value(serde_json::from_value::<FaultConfig>(config).unwrap()).unwrap()
    );
    assert_eq!(total(&answer, "records"), 10, "{answer}");
    assert_eq!(total(&answer, "requests"), 3, "{answer}");
    assert_eq!(answer["counts"]["delayed"], json!(1), "{answer}");

    // Nothing injected was written.
    admin(h.local_addr(), "DELETE", "/_broker/faults", "").await;
    for s in ["rt", "ri", "e500", "e503"] {
        assert!(shard_data(&client, s).await.is_empty(), "{s}");
    }
    assert_eq!(shard_data(&client, "lat").await, ["x"]);
}

#[tokio::test]
async fn a_latency_range_that_cannot_be_drawn_is_refused() {
    let (client, h, _d) = start(|_| {}).await;
    create_stream(&client, "wide", 1).await;
    let body = json!({"global": {"latency_ms": [0u64, u64::MAX]}}).to_string();
    let (status, answer) = admin(h.local_addr(), "PUT", "/_broker/faults", &body).await;
    if status == 200 {
        // Accepted: then a call must at least not fail because of it (it would be delayed).
        let result =
            tokio::time::timeout(Duration::from_secs(2), put_one(&client, "wide", "x")).await;
        if let Ok(Err(e)) = result {
            panic!("latency [0, u64::MAX] accepted, then PutRecord failed: {e}");
        }
    } else {
        assert_eq!(status, 400, "{answer}");
    }
}
