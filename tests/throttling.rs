//! Per-shard throughput limits and per-account control-plane rates (issue 6), driven by the
//! Rust SDK with its retries turned off (one attempt), so every answer a test sees is the
//! broker's first.
//!
//! Time: the buckets refill in real time while a test runs. Paused tokio time does not help
//! here: with the server in the test's runtime, every idle moment (a loopback round trip, an
//! fsync on the flusher thread) auto-advances the paused clock to the next pending timer (a
//! connection's 60 s idle deadline, the retention sweeper), which refills every bucket. So
//! each test asserts exact lower bounds (a bucket starts full, so the first `burst` units
//! always pass) and upper bounds that add what could have refilled while the test's calls ran,
//! computed from the elapsed time the test measured around them: `burst + rate × elapsed`.
//! Counts, never durations, are asserted; a slow machine only widens the upper bound.
//!
//! Expected AWS wording: `compat-tests/AWS_BEHAVIOUR.md` §10 (PutRecord/PutRecords: "Rate
//! exceeded for shard SH in stream S under account A.", mhart/kinesalite#87, real AWS
//! output). GetRecords and GetShardIterator refusals carry the same text on AWS
//! (rclark/kinesis-readable#4 quotes it from a consumer); DescribeStream's
//! LimitExceededException reads "Rate exceeded for stream S under account A."
//! (boto/botocore#821, awslabs/amazon-kinesis-scaling-utils#52, both real AWS bodies).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use common::*;
use kinesis_broker::Config;
use kinesis_broker::config::DurabilityMode;
use tempfile::TempDir;

/// The only shard of a one-shard stream.
const SHARD0: &str = "shardId-000000000000";
/// AWS's PutRecord(s) write limit per shard: records per second (also the burst).
const WRITE_RECORDS_PER_SEC: f64 = 1000.0;
/// AWS's write limit per shard: bytes (data plus partition key) per second.
const WRITE_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
/// AWS's GetRecords and GetShardIterator limits per shard: calls per second.
const SHARD_CALLS_PER_SEC: f64 = 5.0;
/// AWS's DescribeStream limit per account: calls per second.
const DESCRIBE_STREAM_PER_SEC: f64 = 10.0;
/// PutRecords' largest request, in records.
const MAX_PUT_RECORDS: usize = 500;
/// A record of 100 KiB of data plus a 1-byte partition key.
const BIG_RECORD_BYTES: usize = 100 * 1024;

/// An SDK client that makes exactly one attempt per call: no retry hides a throttle.
fn one_attempt_client(addr: std::net::SocketAddr, access_key: &str) -> Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{addr}"))
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            access_key,
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

/// A broker with AWS's limits on (as `Config::new` has them), page-cache durability so that
/// no fsync stretches the time between calls, and then `tweak`; with a one-attempt client.
async fn start(tweak: impl FnOnce(&mut Config)) -> (Client, Handle, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let handle = start_server_in(dir.path(), |c| {
        c.durability = DurabilityMode::PageCache;
        assert!(c.throughput_limits, "Config::new has limits on");
        tweak(c);
    })
    .await;
    let client = one_attempt_client(handle.local_addr(), ACCESS_KEY);
    (client, handle, dir)
}

/// AWS's message for a shard over its limit.
fn rate_exceeded(stream: &str) -> String {
    format!("Rate exceeded for shard {SHARD0} in stream {stream} under account {DEFAULT_ACCOUNT}.")
}

/// Whole units a bucket of `rate` per second could have refilled in `elapsed`, plus one for
/// rounding: the slack an upper bound allows for real time passing.
fn refill(rate: f64, elapsed: Duration) -> usize {
    (rate * elapsed.as_secs_f64()).ceil() as usize + 1
}

fn entry(pk: &str, data: impl Into<Vec<u8>>) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(pk)
        .data(blob(data))
        .build()
        .expect("entry")
}

/// Per entry of a PutRecords answer: `Some(sequence number)` when written, `None` when
/// refused. Checks on the way that each refusal is AWS's throughput refusal of this shard,
/// that a written entry names the shard, and that FailedRecordCount counts the refusals.
fn outcomes(out: &PutRecordsOutput, stream: &str) -> Vec<Option<String>> {
    let mut failed = 0;
    let got = out
        .records()
        .iter()
        .map(|r| match (r.sequence_number(), r.error_code()) {
            (Some(seq), None) => {
                assert_eq!(r.shard_id(), Some(SHARD0));
                Some(seq.to_owned())
            }
            (None, Some(code)) => {
                failed += 1;
                assert_eq!(
                    (code, r.error_message()),
                    (
                        "ProvisionedThroughputExceededException",
                        Some(rate_exceeded(stream).as_str())
                    )
                );
                assert_eq!(r.shard_id(), None, "a refused entry names no shard");
                None
            }
            other => panic!("entry neither written nor refused: {other:?}"),
        })
        .collect();
    assert_eq!(
        out.failed_record_count(),
        Some(failed),
        "FailedRecordCount counts the refused entries"
    );
    got
}

/// Asserts a refused call: this code, HTTP 400, and (when given) this message.
#[track_caller]
fn assert_refused<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: &Result<T, SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>>,
    code: &str,
    message: Option<&str>,
) {
    let err = match result {
        Ok(v) => panic!("expected {code}, got {v:?}"),
        Err(e) => e,
    };
    assert!(
        matches!(err, SdkError::ServiceError(_)),
        "expected a service error {code}, got {err:?}"
    );
    assert_eq!(err.code(), Some(code), "{err:?}");
    if let Some(message) = message {
        assert_eq!(err.message(), Some(message));
    }
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(400),
        "{code} is sent with HTTP 400"
    );
}

/// Sends `batches` PutRecords of 500 small records each, one after the other, as fast as
/// they go. Returns every record's data with its outcome, in order, and the time they took.
async fn put_batches(
    client: &Client,
    stream: &str,
    batches: usize,
) -> (Vec<(String, Option<String>)>, Duration) {
    let mut all = Vec::new();
    let started = Instant::now();
    for b in 0..batches {
        let data: Vec<String> = (0..MAX_PUT_RECORDS)
            .map(|i| format!("r{}", b * MAX_PUT_RECORDS + i))
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(data.iter().map(|d| entry("k", d.as_str())).collect()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRecords: {}", describe_err(&e)));
        assert_eq!(out.records().len(), MAX_PUT_RECORDS);
        all.extend(data.into_iter().zip(outcomes(&out, stream)));
    }
    (all, started.elapsed())
}

/// Reads the whole shard back (backing off when the read limit refuses a call) and asserts
/// it holds exactly the acknowledged records, each once, in acknowledgement order, with the
/// sequence numbers they were acknowledged with.
async fn assert_shard_holds_exactly(client: &Client, stream: &str, acked: &[(String, String)]) {
    let got: Vec<(String, String)> = read_shard(client, stream, SHARD0)
        .await
        .iter()
        .map(|r| {
            (
                String::from_utf8(data(r).to_vec()).expect("utf-8 data"),
                r.sequence_number().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got.len(),
        acked.len(),
        "records in the shard vs acknowledged"
    );
    assert!(
        got == acked,
        "the shard holds other records than those acknowledged"
    );
}

// ---- writes ----------------------------------------------------------------------------

#[tokio::test]
async fn put_records_over_the_record_limit_fails_exactly_the_excess_entries() {
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "burst", 1).await;

    // 3,000 records in 6 requests: a fresh shard holds a burst of 1,000 and refills 1,000/s.
    let (all, elapsed) = put_batches(&client, "burst", 6).await;
    let ok = all.iter().filter(|(_, o)| o.is_some()).count();
    let burst = WRITE_RECORDS_PER_SEC as usize;
    assert!(
        all[..burst].iter().all(|(_, o)| o.is_some()),
        "the first 1,000 records fit the burst and must all be written"
    );
    assert!(
        ok <= burst + refill(WRITE_RECORDS_PER_SEC, elapsed),
        "{ok} written in {elapsed:?}: more than the burst plus what refilled"
    );
    assert!(
        ok < all.len(),
        "3,000 records in {elapsed:?} were never throttled"
    );

    // Only the written records exist, once each, with the sequence numbers acknowledged.
    let acked: Vec<(String, String)> = all
        .into_iter()
        .filter_map(|(d, o)| o.map(|s| (d, s)))
        .collect();
    assert_shard_holds_exactly(&client, "burst", &acked).await;
}

#[tokio::test]
async fn put_record_over_the_limit_is_refused_with_http_400_and_not_written() {
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "single", 1).await;

    // Drain the byte bucket with 11 records of 100 KiB (about 1.1 MB against 1 MiB), then
    // send one record of 1000 KiB: it needs nearly a full second of refill, far more than a
    // loopback round trip. Tried again (at most 5 times) if the machine stalled that long;
    // each attempt's big record starts with its own marker byte.
    let mut refused = None;
    let mut big_acked = Vec::new();
    for attempt in 0..5u8 {
        let drain: Vec<_> = (0..11)
            .map(|_| entry("k", vec![b'd'; BIG_RECORD_BYTES]))
            .collect();
        client
            .put_records()
            .stream_name("single")
            .set_records(Some(drain))
            .send()
            .await
            .expect("PutRecords");
        let mut big = vec![b'x'; 1000 * 1024];
        big[0] = attempt;
        let result = client
            .put_record()
            .stream_name("single")
            .partition_key("k")
            .data(blob(big))
            .send()
            .await;
        if result.is_err() {
            refused = Some((attempt, result));
            break;
        }
        big_acked.push(attempt);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (attempt, refused) = refused.expect("a PutRecord into a drained shard was never refused");
    assert_refused(
        &refused,
        "ProvisionedThroughputExceededException",
        Some(&rate_exceeded("single")),
    );

    // The refused record was not written; the acknowledged big ones were, once each.
    let big_read: Vec<u8> = read_shard(&client, "single", SHARD0)
        .await
        .iter()
        .filter(|r| data(r).len() == 1000 * 1024)
        .map(|r| data(r)[0])
        .collect();
    assert_eq!(big_read, big_acked, "attempt {attempt} was refused");
}

#[tokio::test]
async fn the_byte_limit_admits_one_mebibyte_per_second() {
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "bytes", 1).await;

    // 15 records of 100 KiB + 1-byte key: 10 fit 1 MiB (1,024,010 bytes), the 11th needs
    // another ~98 ms of refill. Far under the 1,000 records/s limit: only bytes bind.
    let started = Instant::now();
    let out = client
        .put_records()
        .stream_name("bytes")
        .set_records(Some(
            (0..15u8)
                .map(|i| entry("k", vec![i; BIG_RECORD_BYTES]))
                .collect(),
        ))
        .send()
        .await
        .expect("PutRecords");
    let elapsed = started.elapsed();
    let got = outcomes(&out, "bytes");
    let ok = got.iter().flatten().count();
    assert!(
        got[..10].iter().all(Option::is_some),
        "the first 10 records fit 1 MiB: {got:?}"
    );
    let per_record = (BIG_RECORD_BYTES + 1) as f64;
    assert!(
        ok <= 10 + refill(WRITE_BYTES_PER_SEC / per_record, elapsed),
        "{ok} of 15 records of 100 KiB written in {elapsed:?}"
    );
    assert!(ok < 15, "1.5 MB was admitted at once by a 1 MiB/s shard");

    let acked: Vec<u8> = got
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_some())
        .map(|(i, _)| i as u8)
        .collect();
    let read: Vec<u8> = read_shard(&client, "bytes", SHARD0)
        .await
        .iter()
        .map(|r| data(r)[0])
        .collect();
    assert_eq!(read, acked, "only the admitted records are in the shard");
}

#[tokio::test]
async fn a_record_count_burst_is_not_confused_with_bytes() {
    // 1,000 records of 1 KiB = 1,000 KiB + keys: under both limits, all admitted.
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "both", 1).await;
    let mut ok = 0;
    for b in 0..2 {
        let out = client
            .put_records()
            .stream_name("both")
            .set_records(Some(
                (0..MAX_PUT_RECORDS)
                    .map(|i| entry("k", format!("{b}-{i:04}-{}", "x".repeat(1000))))
                    .collect(),
            ))
            .send()
            .await
            .expect("PutRecords");
        ok += outcomes(&out, "both").iter().flatten().count();
    }
    assert_eq!(
        ok, 1000,
        "1,000 records of ~1 KiB fit both the record and the byte burst"
    );
}

// ---- reads -----------------------------------------------------------------------------

/// Calls GetRecords `n` times on `it` as fast as it goes; returns which calls passed and the
/// time taken. Each refusal must be AWS's read refusal of this shard.
async fn get_records_burst(
    client: &Client,
    stream: &str,
    it: &str,
    n: usize,
) -> (Vec<bool>, Duration) {
    let started = Instant::now();
    let mut passed = Vec::with_capacity(n);
    for _ in 0..n {
        let result = client.get_records().shard_iterator(it).send().await;
        if result.is_err() {
            assert_refused(
                &result,
                "ProvisionedThroughputExceededException",
                Some(&rate_exceeded(stream)),
            );
        }
        passed.push(result.is_ok());
    }
    (passed, started.elapsed())
}

#[tokio::test]
async fn get_records_is_limited_to_five_calls_per_second_per_shard() {
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "reads", 1).await;
    client
        .put_record()
        .stream_name("reads")
        .partition_key("k")
        .data(blob("one"))
        .send()
        .await
        .expect("PutRecord");
    let it = iterator(&client, "reads", SHARD0, ShardIteratorType::TrimHorizon).await;

    let (passed, elapsed) = get_records_burst(&client, "reads", &it, 40).await;
    let ok = passed.iter().filter(|p| **p).count();
    assert!(
        passed[..5].iter().all(|p| *p),
        "5 calls fit a fresh shard's burst: {passed:?}"
    );
    assert!(
        ok <= 5 + refill(SHARD_CALLS_PER_SEC, elapsed),
        "{ok} of 40 GetRecords passed in {elapsed:?}"
    );
    assert!(ok < 40, "40 GetRecords in {elapsed:?} were never throttled");
}

#[tokio::test]
async fn each_shard_has_its_own_read_budget() {
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "two", 2).await;
    let it0 = iterator(&client, "two", SHARD0, ShardIteratorType::Latest).await;
    let it1 = iterator(&client, "two", &shard_id(1), ShardIteratorType::Latest).await;
    let (passed, _) = get_records_burst(&client, "two", &it0, 12).await;
    assert!(passed.iter().any(|p| !p), "shard 0 was never throttled");
    // Shard 1 is untouched: its first 5 calls pass whatever shard 0 did.
    for _ in 0..5 {
        client
            .get_records()
            .shard_iterator(&it1)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!("shard 1 throttled by shard 0's reads: {}", describe_err(&e))
            });
    }
}

#[tokio::test]
async fn a_large_read_makes_the_following_reads_throttle_until_repaid() {
    // 9 MB written with limits off, then read by a broker with limits on at half AWS's
    // rates: 1 MiB/s of reads, 2.5 calls/s. One GetRecords returns all 9 MB, leaving a debt of
    // ~7.6 MiB, i.e. ~7.6 s of refusals, although the call budget refills within a second.
    let dir = tempfile::tempdir().expect("temp dir");
    let writer = start_server_in(dir.path(), |c| c.throughput_limits = false).await;
    let wc = one_attempt_client(writer.local_addr(), ACCESS_KEY);
    create_stream(&wc, "big", 1).await;
    let out = wc
        .put_records()
        .stream_name("big")
        .set_records(Some(
            (0..9u8).map(|i| entry("k", vec![i; 1_000_000])).collect(),
        ))
        .send()
        .await
        .expect("PutRecords 9 MB");
    assert_eq!(out.failed_record_count(), Some(0));
    writer.shutdown().await.expect("shutdown");

    let reader = start_server_in(dir.path(), |c| {
        c.throughput_multiplier = 0.5;
    })
    .await;
    let client = one_attempt_client(reader.local_addr(), ACCESS_KEY);
    let it = iterator(&client, "big", SHARD0, ShardIteratorType::TrimHorizon).await;
    let first = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect("the first read of a fresh shard passes");
    assert_eq!(first.records().len(), 9, "one call returns all 9 MB");
    let next = first.next_shard_iterator().expect("open shard").to_owned();

    // 1.2 s later the call budget (2.5/s) is full again; the byte debt is not repaid.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = client.get_records().shard_iterator(&next).send().await;
    assert_refused(
        &after,
        "ProvisionedThroughputExceededException",
        Some(&rate_exceeded("big")),
    );

    // Once repaid (about 7.6 s after the big read), reads pass again. Polled once a second.
    let mut refusals = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match client.get_records().shard_iterator(&next).send().await {
            Ok(out) => {
                assert!(out.records().is_empty());
                assert!(refusals >= 1, "the debt should outlast two seconds");
                return;
            }
            Err(e) => {
                assert_eq!(e.code(), Some("ProvisionedThroughputExceededException"));
                refusals += 1;
            }
        }
    }
    panic!("reads never resumed after the debt was repaid");
}

#[tokio::test]
async fn get_shard_iterator_is_limited_to_five_calls_per_second_per_shard() {
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "iters", 1).await;
    let started = Instant::now();
    let mut passed = Vec::new();
    for _ in 0..40 {
        let result = client
            .get_shard_iterator()
            .stream_name("iters")
            .shard_id(SHARD0)
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await;
        if result.is_err() {
            assert_refused(
                &result,
                "ProvisionedThroughputExceededException",
                Some(&rate_exceeded("iters")),
            );
        }
        passed.push(result.is_ok());
    }
    let elapsed = started.elapsed();
    let ok = passed.iter().filter(|p| **p).count();
    assert!(passed[..5].iter().all(|p| *p), "{passed:?}");
    assert!(
        ok <= 5 + refill(SHARD_CALLS_PER_SEC, elapsed),
        "{ok} in {elapsed:?}"
    );
    assert!(
        ok < 40,
        "40 GetShardIterator in {elapsed:?} were never throttled"
    );
}

// ---- control plane ---------------------------------------------------------------------

/// DescribeStream `n` times as fast as it goes: which calls passed, and the time taken.
async fn describe_burst(client: &Client, stream: &str, n: usize) -> (Vec<bool>, Duration) {
    let started = Instant::now();
    let mut passed = Vec::with_capacity(n);
    for _ in 0..n {
        let result = client.describe_stream().stream_name(stream).send().await;
        if result.is_err() {
            assert_refused(&result, "LimitExceededException", None);
        }
        passed.push(result.is_ok());
    }
    (passed, started.elapsed())
}

#[tokio::test]
async fn describe_stream_is_limited_to_ten_calls_per_second_per_account() {
    let (client, h, _d) = start(|_| {}).await;
    create_stream(&client, "desc", 1).await;

    let (passed, elapsed) = describe_burst(&client, "desc", 50).await;
    let ok = passed.iter().filter(|p| **p).count();
    assert!(passed[..10].iter().all(|p| *p), "{passed:?}");
    assert!(
        ok <= 10 + refill(DESCRIBE_STREAM_PER_SEC, elapsed),
        "{ok} of 50 DescribeStream passed in {elapsed:?}"
    );
    assert!(
        ok < 50,
        "50 DescribeStream in {elapsed:?} were never throttled"
    );

    // The data plane of the same account is not held back by it.
    client
        .put_record()
        .stream_name("desc")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await
        .expect("PutRecord is not a control-plane call");

    // Another account (12-digit access key) has a budget of its own.
    let other = one_attempt_client(h.local_addr(), "111122223333");
    other
        .create_stream()
        .stream_name("desc")
        .shard_count(1)
        .send()
        .await
        .expect("CreateStream in the other account");
    other
        .describe_stream()
        .stream_name("desc")
        .send()
        .await
        .expect("the other account's DescribeStream is not throttled");
}

#[tokio::test]
async fn describe_stream_refusal_is_in_aws_words() {
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "words", 1).await;
    for _ in 0..60 {
        let result = client.describe_stream().stream_name("words").send().await;
        if result.is_err() {
            // boto/botocore#821: {"__type":"LimitExceededException","message":"Rate exceeded
            // for stream request_counters_temp under account XXXXXXXX."}
            assert_refused(
                &result,
                "LimitExceededException",
                Some(&format!(
                    "Rate exceeded for stream words under account {DEFAULT_ACCOUNT}."
                )),
            );
            return;
        }
    }
    panic!("60 DescribeStream were never throttled");
}

#[tokio::test]
async fn list_shards_budget_is_per_stream() {
    // At multiplier 0.01 ListShards allows 10 calls/s. Streams are created at start-up (no
    // control-plane call) so the small multiplier cannot block CreateStream.
    let (client, _h, _d) = start(|c| {
        c.throughput_multiplier = 0.01;
        c.create_streams = vec!["a".parse().unwrap(), "b".parse().unwrap()];
    })
    .await;
    let mut throttled = false;
    for _ in 0..30 {
        if client.list_shards().stream_name("a").send().await.is_err() {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "30 ListShards at 10/s were never throttled");
    client
        .list_shards()
        .stream_name("b")
        .send()
        .await
        .expect("stream b has a ListShards budget of its own");
}

// ---- multiplier and switch -------------------------------------------------------------

#[tokio::test]
async fn the_multiplier_scales_the_limits_down() {
    // × 0.2: 200 records/s and 1 GetRecords call/s.
    let (client, _h, _d) = start(|c| c.throughput_multiplier = 0.2).await;
    create_stream(&client, "slow", 1).await;
    let started = Instant::now();
    let out = client
        .put_records()
        .stream_name("slow")
        .set_records(Some(
            (0..300).map(|i| entry("k", format!("r{i}"))).collect(),
        ))
        .send()
        .await
        .expect("PutRecords");
    let elapsed = started.elapsed();
    let got = outcomes(&out, "slow");
    let ok = got.iter().flatten().count();
    assert!(
        got[..200].iter().all(Option::is_some),
        "200 fit the scaled burst"
    );
    assert!(
        ok <= 200 + refill(200.0, elapsed),
        "{ok} of 300 in {elapsed:?}"
    );
    assert!(ok < 300);

    let it = iterator(&client, "slow", SHARD0, ShardIteratorType::Latest).await;
    let (passed, elapsed) = get_records_burst(&client, "slow", &it, 10).await;
    assert!(passed[0], "one call per second: the first passes");
    let ok = passed.iter().filter(|p| **p).count();
    assert!(
        ok <= 1 + refill(1.0, elapsed),
        "{ok} of 10 GetRecords in {elapsed:?}"
    );
}

#[tokio::test]
async fn the_multiplier_scales_the_limits_up() {
    // × 2: a burst of 2,000 records; 4 requests of 500 all pass however long they take.
    let (client, _h, _d) = start(|c| c.throughput_multiplier = 2.0).await;
    create_stream(&client, "fast", 1).await;
    let (all, elapsed) = put_batches(&client, "fast", 8).await;
    assert!(
        all[..2000].iter().all(|(_, o)| o.is_some()),
        "2,000 records fit the doubled burst"
    );
    let ok = all.iter().filter(|(_, o)| o.is_some()).count();
    assert!(
        ok <= 2000 + refill(2.0 * WRITE_RECORDS_PER_SEC, elapsed),
        "{ok} in {elapsed:?}"
    );
    assert!(
        ok < 4000,
        "4,000 records in {elapsed:?} were never throttled at 2,000/s"
    );

    let it = iterator(&client, "fast", SHARD0, ShardIteratorType::Latest).await;
    let (passed, _) = get_records_burst(&client, "fast", &it, 10).await;
    assert!(
        passed.iter().all(|p| *p),
        "10 GetRecords fit a doubled burst: {passed:?}"
    );
}

#[tokio::test]
async fn a_small_multiplier_still_admits_calls() {
    let (client, _h, _d) = start(|c| c.throughput_multiplier = 0.01).await;
    // CreateStream: 5/s × 0.01 = one call per 20 s; the first call must pass.
    client
        .create_stream()
        .stream_name("tiny")
        .shard_count(1)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream: {}", describe_err(&e)));
    let it = client
        .get_shard_iterator()
        .stream_name("tiny")
        .shard_id(SHARD0)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetShardIterator: {}", describe_err(&e)));
    client
        .get_records()
        .shard_iterator(it.shard_iterator().unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetRecords: {}", describe_err(&e)));
}

#[tokio::test]
async fn with_limits_off_nothing_is_throttled() {
    let (client, _h, _d) = start(|c| c.throughput_limits = false).await;
    create_stream(&client, "free", 1).await;

    let (all, _) = put_batches(&client, "free", 6).await;
    assert!(
        all.iter().all(|(_, o)| o.is_some()),
        "3,000 records at once"
    );
    let out = client
        .put_records()
        .stream_name("free")
        .set_records(Some(
            (0..15u8)
                .map(|i| entry("k", vec![i; BIG_RECORD_BYTES]))
                .collect(),
        ))
        .send()
        .await
        .expect("PutRecords 1.5 MB");
    assert_eq!(out.failed_record_count(), Some(0));

    let it = iterator(&client, "free", SHARD0, ShardIteratorType::Latest).await;
    let (passed, _) = get_records_burst(&client, "free", &it, 40).await;
    assert!(passed.iter().all(|p| *p), "40 GetRecords");
    for _ in 0..40 {
        iterator(&client, "free", SHARD0, ShardIteratorType::Latest).await;
    }
    let (passed, _) = describe_burst(&client, "free", 50).await;
    assert!(passed.iter().all(|p| *p), "50 DescribeStream");
}

#[tokio::test]
async fn each_shard_has_its_own_write_budget() {
    // Two shards; records aimed at each by explicit hash key. 1,000 records fill shard 0's
    // burst; shard 1's 500 then pass in full, and shard 0's next 500 mostly do not.
    let (client, _h, _d) = start(|_| {}).await;
    create_stream(&client, "split", 2).await;
    let to_shard = |shard: usize, n: usize, tag: &str| -> Vec<PutRecordsRequestEntry> {
        let hash = expected_ranges(2)[shard].0.to_string();
        (0..n)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key("k")
                    .explicit_hash_key(hash.clone())
                    .data(blob(format!("{tag}-{i}")))
                    .build()
                    .expect("entry")
            })
            .collect()
    };
    let started = Instant::now();
    let mut shard0_ok = 0;
    for b in 0..2 {
        let out = client
            .put_records()
            .stream_name("split")
            .set_records(Some(to_shard(0, MAX_PUT_RECORDS, &format!("a{b}"))))
            .send()
            .await
            .expect("PutRecords");
        shard0_ok += out
            .records()
            .iter()
            .filter(|r| r.error_code().is_none())
            .count();
    }
    assert_eq!(shard0_ok, 1000, "shard 0's burst");
    let out = client
        .put_records()
        .stream_name("split")
        .set_records(Some(to_shard(1, MAX_PUT_RECORDS, "b")))
        .send()
        .await
        .expect("PutRecords");
    assert_eq!(
        out.failed_record_count(),
        Some(0),
        "shard 1 has its own budget"
    );
    let out = client
        .put_records()
        .stream_name("split")
        .set_records(Some(to_shard(0, MAX_PUT_RECORDS, "c")))
        .send()
        .await
        .expect("PutRecords");
    let elapsed = started.elapsed();
    let ok = out
        .records()
        .iter()
        .filter(|r| r.error_code().is_none())
        .count();
    assert!(
        ok <= refill(WRITE_RECORDS_PER_SEC, elapsed),
        "shard 0 admitted {ok} more in {elapsed:?}"
    );
    for r in out.records().iter().filter(|r| r.error_code().is_some()) {
        assert_eq!(
            r.error_message(),
            Some(
                format!(
                    "Rate exceeded for shard {SHARD0} in stream split under account {DEFAULT_ACCOUNT}."
                )
                .as_str()
            ),
            "the refusal names the shard that is over its limit"
        );
    }
}

/// Calls `op` `n` times as fast as it goes; returns which calls passed and the time taken.
/// A refusal must be LimitExceededException with HTTP 400.
async fn control_burst<F, Fut, T, E>(n: usize, mut op: F) -> (Vec<bool>, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<
            Output = Result<T, SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>>,
        >,
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let started = Instant::now();
    let mut passed = Vec::with_capacity(n);
    for i in 0..n {
        let result = op(i).await;
        if result.is_err() {
            assert_refused(&result, "LimitExceededException", None);
        }
        passed.push(result.is_ok());
    }
    (passed, started.elapsed())
}

#[track_caller]
fn assert_rate(what: &str, passed: &[bool], elapsed: Duration, rate: f64) {
    let burst = rate as usize;
    let ok = passed.iter().filter(|p| **p).count();
    assert!(
        passed[..burst].iter().all(|p| *p),
        "{what}: the first {burst} calls fit the burst: {passed:?}"
    );
    assert!(
        ok <= burst + refill(rate, elapsed),
        "{what}: {ok} of {} passed in {elapsed:?}",
        passed.len()
    );
    assert!(ok < passed.len(), "{what}: never throttled in {elapsed:?}");
}

#[tokio::test]
async fn control_plane_operations_have_aws_per_account_rates() {
    // Streams made at start-up: creating them costs no CreateStream budget.
    let (client, _h, _d) = start(|c| {
        c.create_streams = (0..20)
            .map(|i| format!("pre-{i}").parse().unwrap())
            .collect();
    })
    .await;

    let (passed, elapsed) = control_burst(60, |_| {
        client.describe_stream_summary().stream_name("pre-0").send()
    })
    .await;
    assert_rate("DescribeStreamSummary (20/s)", &passed, elapsed, 20.0);

    let (passed, elapsed) = control_burst(20, |_| client.list_streams().send()).await;
    assert_rate("ListStreams (5/s)", &passed, elapsed, 5.0);

    let (passed, elapsed) = control_burst(20, |i| {
        client
            .create_stream()
            .stream_name(format!("new-{i}"))
            .shard_count(1)
            .send()
    })
    .await;
    assert_rate("CreateStream (5/s)", &passed, elapsed, 5.0);

    let (passed, elapsed) = control_burst(20, |i| {
        client
            .delete_stream()
            .stream_name(format!("pre-{i}"))
            .send()
    })
    .await;
    assert_rate("DeleteStream (5/s)", &passed, elapsed, 5.0);
}

#[tokio::test]
async fn control_plane_budgets_are_per_region_too() {
    let (client, h, _d) = start(|_| {}).await;
    create_stream(&client, "east", 1).await;
    let (passed, _) = describe_burst(&client, "east", 30).await;
    assert!(passed.iter().any(|p| !p), "never throttled");
    // Same account, another region: a budget (and streams) of its own.
    let west = client_with(h.local_addr(), ACCESS_KEY, "us-west-2");
    let west = Client::from_conf(
        west.config()
            .to_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    let result = west.describe_stream().stream_name("east").send().await;
    assert_eq!(
        result.as_ref().err().and_then(|e| e.code()),
        Some("ResourceNotFoundException"),
        "admitted, and the stream does not exist in us-west-2: {result:?}"
    );
}

// ---- configuration ---------------------------------------------------------------------

#[test]
fn the_limit_flags_parse() {
    use clap::Parser;
    let args = kinesis_broker::config::Args::try_parse_from([
        "kinesis-broker",
        "--throughput-limits",
        "off",
        "--throughput-multiplier",
        "0.5",
    ])
    .expect("flags");
    let config = args.to_config().expect("config");
    assert!(!config.throughput_limits);
    assert_eq!(config.throughput_multiplier, 0.5);

    let config = kinesis_broker::config::Args::try_parse_from(["kinesis-broker"])
        .expect("no flags")
        .to_config()
        .expect("config");
    assert!(config.throughput_limits, "limits are on by default");
    assert_eq!(config.throughput_multiplier, 1.0);
    assert!(Config::new().throughput_limits, "Config::new mirrors AWS");
    assert!(
        !Config::for_tests("/tmp/unused").throughput_limits,
        "Config::for_tests turns limits off"
    );
    assert!(
        kinesis_broker::config::Args::try_parse_from([
            "kinesis-broker",
            "--throughput-limits",
            "maybe"
        ])
        .is_err()
    );
}

#[tokio::test]
async fn a_multiplier_that_is_not_positive_is_refused_at_start() {
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        config.throughput_multiplier = bad;
        match kinesis_broker::Server::start(config).await {
            Err(kinesis_broker::StartError::Config(e)) => {
                assert!(e.to_string().contains("multiplier"), "{e}")
            }
            other => panic!("multiplier {bad}: expected a configuration error, got {other:?}"),
        }
    }
}
