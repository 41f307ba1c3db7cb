//! Shared harness for the integration tests: an in-process broker on an ephemeral port, a
//! Rust SDK client pointed at it, and helpers that compute what AWS would answer
//! (hash ranges, MD5 routing) independently of the broker's own code.
//!
//! The expected AWS behaviour the tests pin is written down, with sources, in
//! `compat-tests/AWS_BEHAVIOUR.md`.

#![allow(dead_code)] // Each test module uses a different subset of the helpers.

mod raw_json;
#[allow(unused_imports)] // Only the targets that drive raw JSON use it.
pub use raw_json::*;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, Record, Shard, ShardIteratorType, StreamMode, StreamModeDetails,
    StreamStatus,
};
use kinesis_broker::{Config, Server};
use md5::{Digest, Md5};
use tempfile::TempDir;

/// The handle `Server::start` returns.
pub type Handle = kinesis_broker::ServerHandle;

/// Account id the broker uses for credentials whose access key id is not 12 digits.
pub const DEFAULT_ACCOUNT: &str = "000000000000";
/// Region of the test client.
pub const REGION: &str = "us-east-1";
/// Dummy access key: not 12 digits, so the account is [`DEFAULT_ACCOUNT`].
pub const ACCESS_KEY: &str = "AKIDEXAMPLE";

/// Upper bound on polling loops (stream becoming ACTIVE, reading a shard to its tip).
/// A bound on attempts, never an assertion about elapsed time.
pub const MAX_POLLS: usize = 400;

/// Starts a broker in-process on 127.0.0.1:0 with a fresh temporary data directory and
/// zero lifecycle delays. Returns a client pointed at it, the server handle and the
/// directory (deleted when dropped, so keep it alive for the whole test).
pub async fn start_server() -> (Client, Handle, TempDir) {
    let dir = tempfile::tempdir().expect("create temp data dir");
    let handle = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(handle.local_addr());
    (client, handle, dir)
}

/// Starts a broker on an existing data directory (restart tests), with zero delays and
/// then `tweak` applied to the configuration.
pub async fn start_server_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Handle {
    let mut config = Config::new();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.data_dir = dir.to_path_buf();
    config.create_stream_delay = Duration::ZERO;
    config.delete_stream_delay = Duration::ZERO;
    config.update_stream_delay = Duration::ZERO;
    config.event_source_mapping_delay = Duration::ZERO;
    tweak(&mut config);
    Server::start(config).await.expect("broker starts")
}

/// An SDK client for a broker at `addr`: fixed endpoint, static dummy credentials,
/// plain-HTTP hyper client, and the SDK's standard retry mode as users run it. Only
/// throttling and transient errors are retried (the broker enforces AWS's per-shard and
/// per-account rates, as AWS does), so every other error a test sees is the broker's first
/// answer. Backoff starts at 50 ms instead of 1 s to keep throttled tests quick.
pub fn client_for(addr: SocketAddr) -> Client {
    client_with(addr, ACCESS_KEY, REGION)
}

/// As [`client_for`] but with retries off, for tests that assert on throttling errors
/// themselves (the SDK would otherwise retry them).
pub fn client_no_retry(addr: SocketAddr) -> Client {
    let conf = client_for(addr)
        .config()
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// As [`client_for`], with a chosen access key id and region (account/region scoping).
pub fn client_with(addr: SocketAddr, access_key: &str, region: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            access_key,
            "dummy-secret",
            None,
            None,
            "tests",
        ))
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(10)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(2)),
        )
        // A partition per client: the retry quota is not shared between tests.
        .retry_partition(RetryPartition::new(format!(
            "kinesis-test-{}",
            next_partition()
        )))
        .build();
    Client::from_conf(conf)
}

fn next_partition() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The ARN AWS gives stream `name` of the default test account and region.
pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:stream/{name}")
}

/// The canonical shard id AWS prints for shard index `i`.
pub fn shard_id(i: usize) -> String {
    format!("shardId-{i:012}")
}

/// Creates a provisioned stream and waits (bounded number of polls) until it is ACTIVE.
pub async fn create_stream(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream {name}: {}", describe_err(&e)));
    wait_active(client, name).await;
}

/// Creates an on-demand stream (queues and channels need one) and waits until it is ACTIVE.
pub async fn create_on_demand(client: &Client, name: &str) {
    client
        .create_stream()
        .stream_name(name)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_active(client, name).await;
}

/// Polls DescribeStreamSummary until the stream is ACTIVE; panics after [`MAX_POLLS`].
pub async fn wait_active(client: &Client, name: &str) {
    for _ in 0..MAX_POLLS {
        let out = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeStreamSummary {name}: {}", describe_err(&e)));
        let status = out
            .stream_description_summary()
            .map(|s| s.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("stream {name} never became ACTIVE");
}

/// Polls until DescribeStreamSummary answers ResourceNotFoundException.
pub async fn wait_deleted(client: &Client, name: &str) {
    for _ in 0..MAX_POLLS {
        match client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
        {
            Err(e) if e.code() == Some("ResourceNotFoundException") => return,
            Err(e) => panic!("DescribeStreamSummary {name}: {}", describe_err(&e)),
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("stream {name} never went away");
}

/// All shards of a stream via ListShards (following NextToken).
pub async fn list_all_shards(client: &Client, name: &str) -> Vec<Shard> {
    let mut shards = Vec::new();
    let mut out = client
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .expect("ListShards");
    loop {
        shards.extend(out.shards().iter().cloned());
        match out.next_token() {
            Some(token) => {
                out = client
                    .list_shards()
                    .next_token(token)
                    .send()
                    .await
                    .expect("ListShards page");
            }
            None => return shards,
        }
    }
}

/// `MD5(partition key)` as a big-endian unsigned 128-bit integer: the hash key AWS routes by.
pub fn md5_hash_key(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// The hash ranges AWS gives a new stream of `n` shards: `size = floor(2^128 / n)`, shard i
/// covers `[i*size, (i+1)*size - 1]`, the last one ends at `2^128 - 1`.
pub fn expected_ranges(n: u32) -> Vec<(u128, u128)> {
    // 2^128 / n computed without overflow: (2^128 - 1) / n, corrected when n divides 2^128.
    let n128 = n as u128;
    if n128 == 1 {
        return vec![(0, u128::MAX)];
    }
    let mut size = u128::MAX / n128;
    if u128::MAX % n128 == n128 - 1 {
        size += 1; // n divides 2^128 exactly (a power of two)
    }
    (0..n128)
        .map(|i| {
            let start = i * size;
            let end = if i == n128 - 1 {
                u128::MAX
            } else {
                (i + 1) * size - 1
            };
            (start, end)
        })
        .collect()
}

/// Index of the shard (of a fresh `n`-shard stream) whose range holds `hash_key`.
pub fn expected_shard_for(hash_key: u128, n: u32) -> usize {
    expected_ranges(n)
        .iter()
        .position(|&(s, e)| s <= hash_key && hash_key <= e)
        .expect("ranges cover the key space")
}

/// A sequence number, ordered numerically (canonical decimals: by length, then digits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(usize, String);

/// Checks a sequence number has AWS's shape (a canonical 56-digit decimal, whose hex form
/// starts with 2 and ends with the version digit 2) and makes it comparable (panics with
/// the value if it is not one).
pub fn seq(s: &str) -> Seq {
    assert!(
        s.len() == 56 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0'),
        "sequence number {s:?} is not AWS's 56-digit decimal"
    );
    Seq(s.len(), s.to_string())
}

/// A shard iterator of the given type (no sequence number / timestamp).
pub async fn iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetShardIterator {stream}/{shard}: {}", describe_err(&e)))
        .shard_iterator()
        .expect("ShardIterator present")
        .to_owned()
}

/// Reads a shard from `iter` until a GetRecords call returns no records and
/// MillisBehindLatest is 0 (the tip), or the iterator ends. Bounded by [`MAX_POLLS`] calls.
pub async fn read_to_tip(client: &Client, mut iter: String, limit: Option<i32>) -> Vec<Record> {
    let mut records = Vec::new();
    for _ in 0..MAX_POLLS {
        let out = match client
            .get_records()
            .shard_iterator(&iter)
            .set_limit(limit)
            .send()
            .await
        {
            Ok(out) => out,
            // Over the shard's read limit (5 calls/s on AWS): back off as real consumers do.
            Err(e) if e.code() == Some("ProvisionedThroughputExceededException") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => panic!("GetRecords: {}", describe_err(&e)),
        };
        let got = out.records().len();
        records.extend(out.records().iter().cloned());
        match out.next_shard_iterator() {
            Some(next) => iter = next.to_owned(),
            None => return records,
        }
        if got == 0 && out.millis_behind_latest() == Some(0) {
            return records;
        }
    }
    panic!("shard not read to its tip within {MAX_POLLS} GetRecords calls");
}

/// PutRecords that resends the entries AWS-style throttling rejected (per-record
/// `ProvisionedThroughputExceededException`), as producers do, until all are stored.
/// Returns, for each entry in request order, its (shard id, sequence number).
pub async fn put_all(
    client: &Client,
    stream: &str,
    entries: Vec<PutRecordsRequestEntry>,
) -> Vec<(String, String)> {
    let mut results: Vec<Option<(String, String)>> = vec![None; entries.len()];
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    for _ in 0..MAX_POLLS {
        let batch: Vec<_> = pending.iter().map(|&i| entries[i].clone()).collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(batch))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRecords {stream}: {}", describe_err(&e)));
        assert_eq!(out.records().len(), pending.len(), "one result per entry");
        let mut still = Vec::new();
        for (&i, r) in pending.iter().zip(out.records()) {
            match (r.shard_id(), r.sequence_number(), r.error_code()) {
                (Some(shard), Some(seq), None) => {
                    results[i] = Some((shard.to_owned(), seq.to_owned()))
                }
                (_, _, Some("ProvisionedThroughputExceededException")) => still.push(i),
                other => panic!("PutRecords entry {i}: {other:?} {:?}", r.error_message()),
            }
        }
        let failed = out.failed_record_count().unwrap_or(0) as usize;
        assert_eq!(
            failed,
            still.len(),
            "FailedRecordCount must count the failed entries"
        );
        if still.is_empty() {
            return results
                .into_iter()
                .map(|r| r.expect("every entry stored"))
                .collect();
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("PutRecords kept being throttled");
}

/// Reads a whole shard from TRIM_HORIZON.
pub async fn read_shard(client: &Client, stream: &str, shard: &str) -> Vec<Record> {
    let it = iterator(client, stream, shard, ShardIteratorType::TrimHorizon).await;
    read_to_tip(client, it, None).await
}

/// A record's data as bytes.
pub fn data(r: &Record) -> &[u8] {
    r.data().as_ref()
}

/// A record's ApproximateArrivalTimestamp in epoch milliseconds, rounded to the nearest
/// millisecond: the SDK parses the wire's decimal seconds into a binary float, so
/// `DateTime::to_millis` alone can land 1 ms low (1.760 s read as 1.759999… s).
pub fn arrival_ms(r: &Record) -> i64 {
    let ts = r
        .approximate_arrival_timestamp()
        .expect("ApproximateArrivalTimestamp");
    ts.secs() * 1000 + (i64::from(ts.subsec_nanos()) + 500_000) / 1_000_000
}

/// A record's partition key (optional in the current service model, always set by these tests).
pub fn pk(r: &Record) -> &str {
    r.partition_key().expect("record has a PartitionKey")
}

/// Shorthand for a blob.
pub fn blob(bytes: impl Into<Vec<u8>>) -> Blob {
    Blob::new(bytes.into())
}

/// "Code: message" of an SDK error (or its Debug form when it is not a service error).
pub fn describe_err<E: ProvideErrorMetadata + std::fmt::Debug>(e: &E) -> String {
    match e.code() {
        Some(code) => format!("{code}: {}", e.message().unwrap_or("")),
        None => format!("{e:?}"),
    }
}

/// Asserts that `result` is a service error with exactly this `__type` and message, on HTTP 400.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug, E>(
    result: Result<T, SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>>,
    code: &str,
    message: &str,
) where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let err = match result {
        Ok(v) => panic!("expected {code} \"{message}\", got success: {v:?}"),
        Err(e) => e,
    };
    let status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::ServiceError(_) => {}
        other => panic!("expected service error {code}, got {other:?}"),
    }
    assert_eq!(
        (err.code(), err.message()),
        (Some(code), Some(message)),
        "error type/message differ (HTTP {status:?})"
    );
    assert_eq!(status, Some(400), "{code} must be sent with HTTP 400");
}

/// Like [`assert_error`] for messages AWS does not pin fully: the type must match and the
/// message must start with `prefix`.
#[track_caller]
pub fn assert_error_prefix<T: std::fmt::Debug, E>(
    result: Result<T, SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>>,
    code: &str,
    prefix: &str,
) where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let err = match result {
        Ok(v) => panic!("expected {code} \"{prefix}…\", got success: {v:?}"),
        Err(e) => e,
    };
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(
        err.code(),
        Some(code),
        "error type differs; message {:?}",
        err.message()
    );
    let msg = err.message().unwrap_or_default();
    assert!(
        msg.starts_with(prefix),
        "message {msg:?} does not start with {prefix:?}"
    );
    assert_eq!(status, Some(400), "{code} must be sent with HTTP 400");
}

/// The error code (type) of a failed call, or "success".
pub fn code_of<T, E>(
    result: &Result<T, SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>>,
) -> String
where
    E: ProvideErrorMetadata,
{
    match result {
        Ok(_) => "success".to_owned(),
        Err(e) => e.code().unwrap_or("<no code>").to_owned(),
    }
}

// ---- shared by the control-plane and resharding suites -------------------------------------

/// A broker served over HTTP like `Server::start` does, but opened with a clock the test
/// can move (`ServerHandle` does not expose the broker).
pub struct ClockServer {
    pub addr: std::net::SocketAddr,
    pub client: Client,
    pub clock: kinesis_broker::broker::Clock,
    pub broker: std::sync::Arc<kinesis_broker::broker::Broker>,
    pub trigger: kinesis_broker::ShutdownTrigger,
    pub task: tokio::task::JoinHandle<()>,
}

impl ClockServer {
    pub async fn start(
        dir: &Path,
        clock: kinesis_broker::broker::Clock,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::for_tests(dir);
        tweak(&mut config);
        config.sanitize().expect("valid config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let broker = kinesis_broker::broker::Broker::open_with_clock(&config, clock.clone())
            .expect("broker opens");
        let service = kinesis_broker::api::Service::new(broker.clone());
        let (trigger, shutdown) = kinesis_broker::http::shutdown::channel();
        let task = tokio::spawn(kinesis_broker::http::serve(listener, service, shutdown));
        ClockServer {
            addr,
            client: client_for(addr),
            clock,
            broker,
            trigger,
            task,
        }
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        self.task.await.expect("serve task");
        self.broker.shutdown().await;
    }
}

/// `(code, message, HTTP status)` of a call, or `("success", "", 200)`.
pub fn outcome<T, E: ProvideErrorMetadata>(
    r: Result<T, SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>>,
) -> (String, String, u16) {
    match r {
        Ok(_) => ("success".into(), String::new(), 200),
        Err(e) => (
            e.code().unwrap_or("<no code>").to_owned(),
            e.message().unwrap_or("").to_owned(),
            e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
        ),
    }
}

/// One row: what was sent, what came back, and what AWS answers. `message: None` means the
/// message is NOT PINNED by any source and only the type is asserted.
pub struct Row {
    pub case: &'static str,
    pub got: (String, String, u16),
    pub code: &'static str,
    pub message: Option<String>,
}

pub fn check_rows(rows: Vec<Row>) {
    let mut failures = Vec::new();
    for row in &rows {
        let (code, message, status) = &row.got;
        let ok =
            code == row.code && *status == 400 && row.message.as_ref().is_none_or(|m| m == message);
        if !ok {
            failures.push(format!(
                "{}:\n      got  HTTP {status} {code}: {message}\n      want HTTP 400 {}: {}",
                row.case,
                row.code,
                row.message.as_deref().unwrap_or("<any message>")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n  {}",
        failures.len(),
        rows.len(),
        failures.join("\n  ")
    );
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
