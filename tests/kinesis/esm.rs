//! Event-source mappings: Lambda's REST API on the broker's port, driven over plain HTTP,
//! and a fake runtime interface client speaking the Lambda Runtime API (GET next, POST
//! response or error), as `awslambdaric` does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_broker::config::FunctionSpec;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Every wait in these tests is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// An answer of the broker's HTTP API (shared by the ESM test modules).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: String,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), signed enough for the
/// broker's credential parsing.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         X-Amz-Date: 20240101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=abc\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        headers: head.to_string(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

pub(crate) fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn with_function(name: &str, addr: SocketAddr) -> impl FnOnce(&mut kinesis_broker::Config) {
    let spec = FunctionSpec::runtime(name, addr);
    move |c| {
        c.functions = vec![spec];
        c.event_source_mapping_delay = Duration::ZERO;
    }
}

/// An invocation as the fake runtime saw it.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    records: Vec<Value>,
    /// The function answered `response` (which may still report item failures).
    succeeded: bool,
    /// The order it was handed out in.
    n: usize,
    /// The whole event.
    event: Value,
}

impl Invocation {
    fn seqs(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| r["kinesis"]["sequenceNumber"].as_str().unwrap().to_string())
            .collect()
    }

    fn data(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| {
                let b64 = r["kinesis"]["data"].as_str().unwrap();
                String::from_utf8(base64_decode(b64)).unwrap()
            })
            .collect()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = T.iter().position(|&t| t == c).unwrap() as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

pub(crate) type Seen = Arc<Mutex<Vec<Invocation>>>;

/// What the fake function answers.
enum Reply {
    /// POST `response` with this body.
    Response(Value),
    /// POST `error`.
    Error,
}

type Responder = Arc<dyn Fn(&Invocation, usize) -> Reply + Send + Sync>;

/// A runtime interface client: polls `next`, asks `succeed` whether to answer `response`
/// or `error`, records every invocation. Runs until aborted.
pub(crate) fn fake_runtime(
    addr: SocketAddr,
    succeed: impl Fn(&[String], usize) -> bool + Send + Sync + 'static,
) -> (Seen, tokio::task::JoinHandle<()>) {
    let (seen, mut tasks, _) = fake_runtimes(
        addr,
        1,
        Duration::ZERO,
        Arc::new(move |inv: &Invocation, n| {
            if succeed(&inv.data(), n) {
                Reply::Response(Value::Null)
            } else {
                Reply::Error
            }
        }),
    );
    (seen, tasks.remove(0))
}

/// `workers` runtime interface clients sharing one record of invocations (numbered in the
/// order they were handed out), each holding its invocation `delay` before answering what
/// `respond` says. Also returns the most invocations seen in flight at once.
fn fake_runtimes(
    addr: SocketAddr,
    workers: usize,
    delay: Duration,
    respond: Responder,
) -> (Seen, Vec<tokio::task::JoinHandle<()>>, Arc<AtomicUsize>) {
    let seen: Seen = Default::default();
    let counter = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let tasks = (0..workers)
        .map(|_| {
            let (out, counter, respond) = (seen.clone(), counter.clone(), respond.clone());
            let (in_flight, max_in_flight) = (in_flight.clone(), max_in_flight.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(mut stream) = TcpStream::connect(addr).await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let req = format!(
                        "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                    );
                    stream.write_all(req.as_bytes()).await.unwrap();
                    let mut raw = Vec::new();
                    if stream.read_to_end(&mut raw).await.is_err() {
                        continue;
                    }
                    let text = String::from_utf8_lossy(&raw).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let answer = Answer {
                        status: 200,
                        headers: head.to_string(),
                        body: serde_json::from_str(body).unwrap(),
                    };
                    assert_eq!(
                        answer.header("content-type").as_deref(),
                        Some("application/json")
                    );
                    assert!(answer.header("lambda-runtime-deadline-ms").is_some());
                    assert!(
                        answer
                            .header("lambda-runtime-invoked-function-arn")
                            .is_some()
                    );
                    assert!(answer.header("lambda-runtime-trace-id").is_some());
                    let id = answer.header("lambda-runtime-aws-request-id").unwrap();
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let mut inv = Invocation {
                        records: answer.body["Records"].as_array().unwrap().clone(),
                        succeeded: false,
                        n,
                        event: answer.body.clone(),
                    };
                    let reply = respond(&inv, n);
                    tokio::time::sleep(delay).await;
                    let (kind, body) = match reply {
                        Reply::Response(v) => {
                            inv.succeeded = true;
                            ("response", v.to_string())
                        }
                        Reply::Error => (
                            "error",
                            json!({"errorMessage": "boom", "errorType": "Exception", "stackTrace": []})
                                .to_string(),
                        ),
                    };
                    // Recorded before the answer: once the broker has it, the next
                    // invocation may be handed out.
                    out.lock().unwrap().push(inv);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let post = format!(
                        "POST /2018-06-01/runtime/invocation/{id}/{kind} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let mut stream = TcpStream::connect(addr).await.unwrap();
                    stream.write_all(post.as_bytes()).await.unwrap();
                    let mut raw = Vec::new();
                    stream.read_to_end(&mut raw).await.unwrap();
                    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 202"));
                }
            })
        })
        .collect();
    (seen, tasks, max_in_flight)
}

/// Waits until `done` holds for what the runtime saw.
async fn wait_for(seen: &Seen, done: impl Fn(&[Invocation]) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if done(&seen.lock().unwrap()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; saw {:?}",
            seen.lock()
                .unwrap()
                .iter()
                .map(|i| i.data())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn delivered(seen: &[Invocation]) -> Vec<String> {
    seen.iter()
        .filter(|i| i.succeeded)
        .flat_map(|i| i.data())
        .collect()
}

async fn put(client: &aws_sdk_kinesis::Client, stream: &str, items: &[String]) {
    for chunk in items.chunks(500) {
        let entries = chunk
            .iter()
            .map(|d| {
                PutRecordsRequestEntry::builder()
                    .partition_key("same-key")
                    .data(blob(d.clone()))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
    }
}

async fn create_mapping(addr: SocketAddr, body: Value) -> Value {
    let a = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert_eq!(a.body["State"], "Creating");
    a.body
}

#[tokio::test]
async fn every_record_is_delivered_in_order_in_batches_and_children_after_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-order", 1).await;
    let first: Vec<String> = (0..250).map(|i| format!("a{i:04}")).collect();
    put(&client, "esm-order", &first).await;
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-order"), "StartingPosition": "TRIM_HORIZON", "BatchSize": 100}),
    )
    .await;
    assert_eq!(m["BatchSize"], 100);
    let function_arn = m["FunctionArn"].as_str().unwrap();
    assert!(
        function_arn.starts_with("arn:aws:lambda:us-east-1:")
            && function_arn.ends_with(":function:fn"),
        "{function_arn}"
    );
    wait_for(&seen, |s| delivered(s).len() >= 250).await;
    assert_eq!(delivered(&seen.lock().unwrap()), first);
    let sizes: Vec<usize> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.records.len())
        .collect();
    assert!(
        sizes.len() >= 3 && sizes.iter().all(|&n| n <= 100),
        "{sizes:?}"
    );
    {
        let s = seen.lock().unwrap();
        let r = &s[0].records[0];
        assert_eq!(r["eventSource"], "aws:kinesis");
        assert_eq!(r["eventName"], "aws:kinesis:record");
        assert_eq!(r["eventVersion"], "1.0");
        assert_eq!(r["kinesis"]["kinesisSchemaVersion"], "1.0");
        assert_eq!(r["kinesis"]["partitionKey"], "same-key");
        assert_eq!(r["eventSourceARN"], stream_arn("esm-order"));
        assert_eq!(r["awsRegion"], "us-east-1");
        let seq = r["kinesis"]["sequenceNumber"].as_str().unwrap();
        assert_eq!(r["eventID"], format!("shardId-000000000000:{seq}"));
        assert!(
            r["kinesis"]["approximateArrivalTimestamp"]
                .as_f64()
                .unwrap()
                > 1.0e9
        );
    }

    // Split the shard: what is written next goes to the children, delivered after the
    // parent's last record.
    client
        .split_shard()
        .stream_name("esm-order")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&client, "esm-order").await;
    let second: Vec<String> = (0..100).map(|i| format!("b{i:04}")).collect();
    put(&client, "esm-order", &second).await;
    wait_for(&seen, |s| delivered(s).len() >= 350).await;
    let all = delivered(&seen.lock().unwrap());
    assert_eq!(all.len(), 350);
    assert_eq!(&all[..250], &first[..]);
    // One partition key: every later record landed in one child, in order.
    assert_eq!(&all[250..], &second[..]);
    let child_ids: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .skip_while(|i| i.data()[0].starts_with('a'))
        .map(|i| {
            i.records[0]["eventID"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        child_ids.iter().all(|id| id != &shard_id(0)),
        "{child_ids:?}"
    );
    task.abort();
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_batch_is_retried_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("retry", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-retry", 1).await;
    let items: Vec<String> = (0..5).map(|i| format!("r{i}")).collect();
    put(&client, "esm-retry", &items).await;
    // The first three invocations fail.
    let (seen, task) = fake_runtime(runtime, |_, n| n >= 3);
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "arn:aws:lambda:us-east-1:000000000000:function:retry", "EventSourceArn": stream_arn("esm-retry"), "StartingPosition": "TRIM_HORIZON"}),
    )
    .await;
    wait_for(&seen, |s| !delivered(s).is_empty()).await;
    let s = seen.lock().unwrap().clone();
    assert_eq!(s.len(), 4, "three failures then a success");
    for inv in &s {
        assert_eq!(inv.data(), items, "the same batch each time");
    }
    assert_eq!(delivered(&s), items);
    let uuid = m["UUID"].as_str().unwrap();
    let got = http(
        h.local_addr(),
        "GET",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["State"], "Enabled");
    assert_eq!(got.body["LastProcessingResult"], "OK");
    task.abort();
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn maximum_retry_attempts_skips_a_poison_batch() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("poison", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-poison", 1).await;
    let items: Vec<String> = ["ok0", "poison", "ok1"].map(String::from).to_vec();
    put(&client, "esm-poison", &items).await;
    let (seen, task) = fake_runtime(runtime, |data, _| !data.iter().any(|d| d == "poison"));
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "poison", "EventSourceArn": stream_arn("esm-poison"), "StartingPosition": "TRIM_HORIZON", "BatchSize": 1, "MaximumRetryAttempts": 2}),
    )
    .await;
    assert_eq!(m["MaximumRetryAttempts"], 2);
    wait_for(&seen, |s| delivered(s).len() >= 2).await;
    let s = seen.lock().unwrap().clone();
    let poison_calls = s.iter().filter(|i| i.data() == ["poison"]).count();
    assert_eq!(poison_calls, 3, "the first call and two retries");
    assert_eq!(delivered(&s), ["ok0", "ok1"]);
    let uuid = m["UUID"].as_str().unwrap();
    let got = http(
        h.local_addr(),
        "GET",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        None,
    )
    .await;
    let result = got.body["LastProcessingResult"]
        .as_str()
        .unwrap()
        .to_string();
    // ok1 succeeded after the discard; the discard was reported before it.
    assert!(result == "OK" || result.contains("discarded"), "{result}");
    task.abort();
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_management_api_refuses_what_it_does_not_support_and_answers_like_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), with_function("fn", free_port())).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-api", 1).await;
    let addr = h.local_addr();
    let base = json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-api"), "StartingPosition": "LATEST"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let mut windowed_in_lanes = with("TumblingWindowInSeconds", json!(60));
    windowed_in_lanes["ParallelizationFactor"] = json!(2);
    for (name, body) in [
        ("TumblingWindowInSeconds with lanes", windowed_in_lanes),
        (
            "KMSKeyArn",
            with(
                "KMSKeyArn",
                json!(
                    "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                ),
            ),
        ),
    ] {
        let a = http(
            addr,
            "POST",
            "/2015-03-31/event-source-mappings",
            Some(&body),
        )
        .await;
        assert_eq!(a.status, 400, "{name}");
        assert_eq!(
            a.header("x-amzn-errortype").as_deref(),
            Some("InvalidParameterValueException")
        );
        assert_eq!(a.body["Type"], "User");
        let msg = a.body["message"].as_str().unwrap();
        assert!(
            msg.contains("not supported by kinesis-broker yet"),
            "{name}: {msg}"
        );
    }
    for (body, needle) in [
        (with("FunctionName", json!("undeclared")), "--function"),
        (with("BatchSize", json!(0)), "batchSize"),
        (with("BatchSize", json!(10_001)), "batchSize"),
        (
            with("MaximumBatchingWindowInSeconds", json!(301)),
            "maximumBatchingWindowInSeconds",
        ),
        (
            with("MaximumRetryAttempts", json!(-2)),
            "maximumRetryAttempts",
        ),
        (
            with("MaximumRecordAgeInSeconds", json!(59)),
            "maximumRecordAgeInSeconds",
        ),
        (with("StartingPosition", Value::Null), "StartingPosition"),
        (
            with("EventSourceArn", json!(stream_arn("absent"))),
            "Stream not found",
        ),
        (
            with("ParallelizationFactor", json!(11)),
            "parallelizationFactor",
        ),
        (
            with("TumblingWindowInSeconds", json!(901)),
            "tumblingWindowInSeconds",
        ),
        (
            with("ParallelizationFactor", json!(0)),
            "parallelizationFactor",
        ),
        (
            with("FunctionResponseTypes", json!(["ReportBatchItemFailure"])),
            "Member must satisfy enum value set: [ReportBatchItemFailures]",
        ),
        (
            with("FunctionResponseTypes", json!("ReportBatchItemFailures")),
            "FunctionResponseTypes",
        ),
        (
            with(
                "DestinationConfig",
                json!({"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}}),
            ),
            "only Kinesis streams of this broker",
        ),
        (
            with(
                "DestinationConfig",
                json!({"OnFailure": {"Destination": "arn:aws:sns:us-east-1:000000000000:t"}}),
            ),
            "only Kinesis streams of this broker",
        ),
        (
            with(
                "DestinationConfig",
                json!({"OnFailure": {"Destination": "arn:aws:s3:::bucket"}}),
            ),
            "only Kinesis streams of this broker",
        ),
        (
            with(
                "DestinationConfig",
                json!({"OnSuccess": {"Destination": stream_arn("esm-api")}}),
            ),
            "OnSuccess",
        ),
        (
            with(
                "DestinationConfig",
                json!({"OnFailure": {"Destination": stream_arn("absent-dlq")}}),
            ),
            "not a stream of this broker",
        ),
    ] {
        let a = http(
            addr,
            "POST",
            "/2015-03-31/event-source-mappings",
            Some(&body),
        )
        .await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(
            a.header("x-amzn-errortype").as_deref(),
            Some("InvalidParameterValueException")
        );
        assert!(
            a.body["message"].as_str().unwrap().contains(needle),
            "{:?}",
            a.body
        );
    }
    let m = create_mapping(addr, base.clone()).await;
    assert_eq!(m["BatchSize"], 100);
    assert_eq!(m["MaximumBatchingWindowInSeconds"], 0);
    assert_eq!(m["MaximumRetryAttempts"], -1);
    assert_eq!(m["MaximumRecordAgeInSeconds"], -1);
    assert_eq!(m["StartingPosition"], "LATEST");
    assert_eq!(m["ParallelizationFactor"], 1);
    assert_eq!(m["BisectBatchOnFunctionError"], false);
    assert_eq!(m["FunctionResponseTypes"], json!([]));
    assert_eq!(m["DestinationConfig"], json!({"OnFailure": {}}));
    let uuid = m["UUID"].as_str().unwrap().to_string();
    let dup = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(&base),
    )
    .await;
    assert_eq!(dup.status, 409);
    assert_eq!(
        dup.header("x-amzn-errortype").as_deref(),
        Some("ResourceConflictException")
    );

    let list = http(
        addr,
        "GET",
        "/2015-03-31/event-source-mappings?FunctionName=fn",
        None,
    )
    .await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.body["EventSourceMappings"].as_array().unwrap().len(),
        1
    );
    let arn = stream_arn("esm-api")
        .replace(':', "%3A")
        .replace('/', "%2F");
    let list = http(
        addr,
        "GET",
        &format!("/2015-03-31/event-source-mappings?EventSourceArn={arn}&MaxItems=1"),
        None,
    )
    .await;
    assert_eq!(list.body["EventSourceMappings"][0]["UUID"], uuid.as_str());
    let list = http(
        addr,
        "GET",
        "/2015-03-31/event-source-mappings?FunctionName=other",
        None,
    )
    .await;
    assert_eq!(
        list.body["EventSourceMappings"].as_array().unwrap().len(),
        0
    );

    let path = format!("/2015-03-31/event-source-mappings/{uuid}");
    let upd = http(
        addr,
        "PUT",
        &path,
        Some(&json!({"BatchSize": 7, "Enabled": false})),
    )
    .await;
    assert_eq!(upd.status, 202, "{:?}", upd.body);
    // Lambda answers an update with the settings still in force; GET shows the new ones.
    assert_eq!(upd.body["BatchSize"], 100);
    assert_eq!(upd.body["State"], "Disabling");
    let bad = http(
        addr,
        "PUT",
        &path,
        Some(&json!({"FilterCriteria": {"Filters": [{"Pattern": "{}"}]}})),
    )
    .await;
    assert_eq!(bad.status, 400);
    let destination = stream_arn("esm-api");
    let upd = http(
        addr,
        "PUT",
        &path,
        Some(&json!({
            "ParallelizationFactor": 10,
            "BisectBatchOnFunctionError": true,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "DestinationConfig": {"OnFailure": {"Destination": destination}},
        })),
    )
    .await;
    assert_eq!(upd.status, 202, "{:?}", upd.body);
    let got = http(addr, "GET", &path, None).await;
    assert_eq!(got.body["State"], "Disabled");
    assert_eq!(got.body["BatchSize"], 7);
    assert_eq!(got.body["ParallelizationFactor"], 10);
    assert_eq!(got.body["BisectBatchOnFunctionError"], true);
    assert_eq!(
        got.body["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(
        got.body["DestinationConfig"],
        json!({"OnFailure": {"Destination": destination}})
    );
    let upd = http(
        addr,
        "PUT",
        &path,
        Some(&json!({"FunctionResponseTypes": [], "DestinationConfig": {"OnFailure": {}}})),
    )
    .await;
    assert_eq!(upd.status, 202);
    // The answer shows the settings in force; the new ones once the update settles.
    let got = http(addr, "GET", &path, None).await;
    assert_eq!(got.body["FunctionResponseTypes"], json!([]));
    assert_eq!(got.body["DestinationConfig"], json!({"OnFailure": {}}));
    assert_eq!(got.body["ParallelizationFactor"], 10);
    let del = http(addr, "DELETE", &path, None).await;
    assert_eq!(del.status, 202);
    assert_eq!(del.body["State"], "Deleting");
    let gone = http(addr, "GET", &path, None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        gone.header("x-amzn-errortype").as_deref(),
        Some("ResourceNotFoundException")
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restart_resumes_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-restart", 1).await;
    let first: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    put(&client, "esm-restart", &first).await;
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-restart"), "StartingPosition": "TRIM_HORIZON", "BatchSize": 4}),
    )
    .await;
    wait_for(&seen, |s| delivered(s).len() >= 10).await;
    task.abort();
    h.shutdown().await.unwrap();
    assert_eq!(delivered(&seen.lock().unwrap()), first);

    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let client = client_for(h.local_addr());
    let uuid = m["UUID"].as_str().unwrap();
    let got = http(
        h.local_addr(),
        "GET",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        None,
    )
    .await;
    assert_eq!(got.status, 200, "the mapping survived the restart");
    let second: Vec<String> = (0..3).map(|i| format!("y{i}")).collect();
    put(&client, "esm-restart", &second).await;
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    wait_for(&seen, |s| delivered(s).len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        delivered(&seen.lock().unwrap()),
        second,
        "nothing checkpointed was delivered again"
    );
    task.abort();
    h.shutdown().await.unwrap();
}

async fn put_keyed(client: &aws_sdk_kinesis::Client, stream: &str, items: &[(String, String)]) {
    for chunk in items.chunks(500) {
        let entries = chunk
            .iter()
            .map(|(k, d)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(k)
                    .data(blob(d.clone()))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
    }
}

async fn get_mapping(addr: SocketAddr, uuid: &str) -> Value {
    let got = http(
        addr,
        "GET",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    got.body
}

fn strings(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn item_failures(ids: &[Value]) -> Reply {
    Reply::Response(json!({
        "batchItemFailures": ids.iter().map(|id| json!({"itemIdentifier": id})).collect::<Vec<_>>()
    }))
}

#[tokio::test]
async fn report_batch_item_failures_retry_from_the_lowest_reported_record_and_bad_identifiers_fail_the_batch()
 {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("rbif", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-rbif", 1).await;
    let items = strings("r", 10);
    put(&client, "esm-rbif", &items).await;
    let (seen, tasks, _) = fake_runtimes(
        runtime,
        1,
        Duration::ZERO,
        Arc::new(|inv: &Invocation, n| {
            let seqs = inv.seqs();
            match n {
                // r7 and r4 failed: the checkpoint is the lowest, r4.
                0 => item_failures(&[json!(seqs[7]), json!(seqs[4])]),
                1 => item_failures(&[Value::Null]),
                2 => item_failures(&[json!("")]),
                3 => item_failures(&[json!(
                    "49000000000000000000000000000000000000000000000000000000"
                )]),
                4 => Reply::Response(json!({"batchItemFailures": [{"itemIdentifer": seqs[0]}]})),
                5 => Reply::Response(json!({"batchItemFailures": []})),
                6 => Reply::Response(json!({"batchItemFailures": null})),
                7 => Reply::Response(json!({})),
                _ => Reply::Response(Value::Null),
            }
        }),
    );
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "rbif", "EventSourceArn": stream_arn("esm-rbif"), "StartingPosition": "TRIM_HORIZON",
               "BatchSize": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"]}),
    )
    .await;
    assert_eq!(
        m["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    wait_for(&seen, |s| s.len() >= 6).await;
    // Each answer after the 6th is a success of its own batch.
    put(&client, "esm-rbif", &strings("s", 1)).await;
    wait_for(&seen, |s| s.len() >= 7).await;
    put(&client, "esm-rbif", &strings("t", 1)).await;
    wait_for(&seen, |s| s.len() >= 8).await;
    put(&client, "esm-rbif", &strings("u", 1)).await;
    wait_for(&seen, |s| s.len() >= 9).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = seen.lock().unwrap().clone();
    let calls: Vec<Vec<String>> = s.iter().map(Invocation::data).collect();
    let tail = items[4..].to_vec();
    assert_eq!(
        calls,
        vec![
            items.clone(),
            tail.clone(),
            tail.clone(),
            tail.clone(),
            tail.clone(),
            tail,
            strings("s", 1),
            strings("t", 1),
            strings("u", 1),
        ],
        "null, empty, unknown and misspelt itemIdentifiers fail the whole batch; an empty or null list or an empty response is a success"
    );
    let got = get_mapping(h.local_addr(), m["UUID"].as_str().unwrap()).await;
    assert_eq!(got["LastProcessingResult"], "OK");
    for t in tasks {
        t.abort();
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_partial_failure_checkpoint_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-rbif-restart", 1).await;
    let items = strings("r", 8);
    put(&client, "esm-rbif-restart", &items).await;
    let (seen, tasks, _) = fake_runtimes(
        runtime,
        1,
        Duration::ZERO,
        Arc::new(|inv: &Invocation, n| match n {
            0 => item_failures(&[json!(inv.seqs()[5])]),
            _ => Reply::Error,
        }),
    );
    create_mapping(
        h.local_addr(),
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-rbif-restart"), "StartingPosition": "TRIM_HORIZON",
               "BatchSize": 8, "FunctionResponseTypes": ["ReportBatchItemFailures"]}),
    )
    .await;
    wait_for(&seen, |s| s.len() >= 3).await;
    for t in tasks {
        t.abort();
    }
    h.shutdown().await.unwrap();
    assert!(
        seen.lock().unwrap()[1..]
            .iter()
            .all(|i| i.data() == items[5..])
    );

    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    wait_for(&seen, |s| !delivered(s).is_empty()).await;
    assert_eq!(
        delivered(&seen.lock().unwrap()),
        items[5..],
        "the checkpoint was the reported record"
    );
    task.abort();
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn bisect_isolates_a_poison_record_and_its_on_failure_record_lands_in_the_destination_stream()
{
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("bisect", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-bisect", 1).await;
    create_stream(&client, "esm-dlq", 1).await;
    let mut items = strings("p", 8);
    items[5] = "poison".into();
    put(&client, "esm-bisect", &items).await;
    let (seen, task) = fake_runtime(runtime, |data, _| !data.iter().any(|d| d == "poison"));
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "bisect", "EventSourceArn": stream_arn("esm-bisect"), "StartingPosition": "TRIM_HORIZON",
               "BatchSize": 8, "BisectBatchOnFunctionError": true, "MaximumRetryAttempts": 1,
               "DestinationConfig": {"OnFailure": {"Destination": stream_arn("esm-dlq")}}}),
    )
    .await;
    assert_eq!(m["BisectBatchOnFunctionError"], true);
    wait_for(&seen, |s| delivered(s).len() >= 7).await;
    let s = seen.lock().unwrap().clone();
    let calls: Vec<Vec<String>> = s.iter().map(Invocation::data).collect();
    let v = |r: std::ops::Range<usize>| items[r].to_vec();
    assert_eq!(
        calls,
        vec![
            v(0..8),
            v(0..4),
            v(4..8),
            v(4..6),
            v(4..5),
            v(5..6),
            // Splits used no retry: the single poison record gets its one retry.
            v(5..6),
            v(6..8),
        ]
    );
    assert_eq!(delivered(&s), [v(0..5), v(6..8)].concat());
    let poison_seq = s[5].seqs()[0].clone();

    let dlq = read_shard(&client, "esm-dlq", &shard_id(0)).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(pk(&dlq[0]), shard_id(0));
    let record: Value = serde_json::from_slice(data(&dlq[0])).unwrap();
    assert_eq!(record["version"], "1.0");
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(record["requestContext"]["functionArn"], m["FunctionArn"]);
    assert_eq!(
        record["requestContext"]["requestId"]
            .as_str()
            .unwrap()
            .len(),
        36
    );
    assert_eq!(
        record["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
    );
    let info = &record["KinesisBatchInfo"];
    assert_eq!(info["shardId"], shard_id(0));
    assert_eq!(info["startSequenceNumber"], poison_seq.as_str());
    assert_eq!(info["endSequenceNumber"], poison_seq.as_str());
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["streamArn"], stream_arn("esm-bisect"));
    let ts = info["approximateArrivalOfFirstRecord"].as_str().unwrap();
    assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
    assert_eq!(info["approximateArrivalOfLastRecord"], ts);
    assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));
    task.abort();
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn parallelization_runs_batches_of_a_shard_at_once_and_keeps_each_key_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("par", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-par", 1).await;
    let keys = strings("key", 12);
    let items: Vec<(String, String)> = (0..20)
        .flat_map(|i| keys.iter().map(move |k| (k.clone(), format!("{k}-{i:02}"))))
        .collect();
    put_keyed(&client, "esm-par", &items).await;
    // Every 5th invocation fails: retries must not reorder a key.
    let (seen, tasks, max_in_flight) = fake_runtimes(
        runtime,
        6,
        Duration::from_millis(30),
        Arc::new(|_: &Invocation, n| {
            if n % 5 == 2 {
                Reply::Error
            } else {
                Reply::Response(Value::Null)
            }
        }),
    );
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "par", "EventSourceArn": stream_arn("esm-par"), "StartingPosition": "TRIM_HORIZON",
               "BatchSize": 10, "ParallelizationFactor": 4}),
    )
    .await;
    assert_eq!(m["ParallelizationFactor"], 4);
    wait_for(&seen, |s| delivered(s).len() >= items.len()).await;
    let mut s = seen.lock().unwrap().clone();
    s.sort_by_key(|i| i.n);
    for k in &keys {
        let got: Vec<String> = s
            .iter()
            .filter(|i| i.succeeded)
            .flat_map(|i| i.data())
            .filter(|d| d.starts_with(&format!("{k}-")))
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("{k}-{i:02}")).collect();
        assert_eq!(got, expected, "{k} in order, each record once");
    }
    for inv in &s {
        assert!(inv.records.len() <= 10);
    }
    assert!(
        max_in_flight.load(Ordering::SeqCst) >= 2,
        "batches of one shard ran at once"
    );
    for t in tasks {
        t.abort();
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_parallelization_the_checkpoint_never_passes_an_undelivered_record() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-par-cp", 1).await;
    let keys = strings("k", 8);
    let items: Vec<(String, String)> = (0..6)
        .flat_map(|i| keys.iter().map(move |k| (k.clone(), format!("{k}-{i}"))))
        .collect();
    put_keyed(&client, "esm-par-cp", &items).await;
    // One record fails until the restart; its lane is stuck, the other lanes go on.
    let (seen, tasks, _) = fake_runtimes(
        runtime,
        4,
        Duration::ZERO,
        Arc::new(|inv: &Invocation, _| {
            if inv.data().iter().any(|d| d == "k0-0") {
                Reply::Error
            } else {
                Reply::Response(Value::Null)
            }
        }),
    );
    create_mapping(
        h.local_addr(),
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-par-cp"), "StartingPosition": "TRIM_HORIZON",
               "BatchSize": 2, "ParallelizationFactor": 5}),
    )
    .await;
    wait_for(&seen, |s| {
        s.iter()
            .filter(|i| i.data().iter().any(|d| d == "k0-0"))
            .count()
            >= 4
    })
    .await;
    for t in tasks {
        t.abort();
    }
    h.shutdown().await.unwrap();
    let before: std::collections::HashSet<String> =
        delivered(&seen.lock().unwrap()).into_iter().collect();
    assert!(!before.contains("k0-0"));

    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let (seen, tasks, _) = fake_runtimes(
        runtime,
        4,
        Duration::ZERO,
        Arc::new(|_: &Invocation, _| Reply::Response(Value::Null)),
    );
    let missing: Vec<String> = items
        .iter()
        .map(|(_, d)| d.clone())
        .filter(|d| !before.contains(d))
        .collect();
    wait_for(&seen, |s| {
        let after: std::collections::HashSet<String> = delivered(s).into_iter().collect();
        missing.iter().all(|d| after.contains(d))
    })
    .await;
    let after = delivered(&seen.lock().unwrap());
    assert!(after.contains(&"k0-0".to_string()));
    // Per key, what came after the restart is still in order.
    for k in &keys {
        let got: Vec<&String> = after
            .iter()
            .filter(|d| d.starts_with(&format!("{k}-")))
            .collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted, "{k}");
    }
    for t in tasks {
        t.abort();
    }
    h.shutdown().await.unwrap();
}

fn window_sum(inv: &Invocation) -> i64 {
    inv.event["state"]["sum"].as_i64().unwrap_or(0)
        + inv
            .data()
            .iter()
            .map(|d| d.parse::<i64>().unwrap())
            .sum::<i64>()
}

#[tokio::test]
async fn tumbling_windows_carry_state_and_end_with_a_final_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("win", runtime)).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "esm-win", 1).await;
    let (seen, tasks, _) = fake_runtimes(
        runtime,
        1,
        Duration::ZERO,
        Arc::new(|inv: &Invocation, n| match n {
            // A windowed response without `state` is a failed invocation.
            0 => Reply::Response(json!({"batchItemFailures": []})),
            // Over 1 MB: the window ends early, then goes on with a fresh state.
            1 => Reply::Response(
                json!({"state": {"sum": window_sum(inv), "pad": "x".repeat(1_100_000)}}),
            ),
            _ => Reply::Response(json!({"state": {"sum": window_sum(inv)}})),
        }),
    );
    let m = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "win", "EventSourceArn": stream_arn("esm-win"), "StartingPosition": "TRIM_HORIZON",
               "BatchSize": 3, "TumblingWindowInSeconds": 1}),
    )
    .await;
    assert_eq!(m["TumblingWindowInSeconds"], 1);
    let values: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    put(&client, "esm-win", &values[..5]).await;
    // Later records land in a later window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&client, "esm-win", &values[5..]).await;
    let finals = |s: &[Invocation]| -> Vec<Invocation> {
        s.iter()
            .filter(|i| i.event["isFinalInvokeForWindow"] == true)
            .cloned()
            .collect()
    };
    wait_for(&seen, |s| {
        s.last()
            .is_some_and(|l| l.event["isFinalInvokeForWindow"] == true)
            && delivered(s).len() >= 10
            && finals(s).len() >= 3
    })
    .await;
    // Let any last window close.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let s = seen.lock().unwrap().clone();
    assert_eq!(
        s[0].data(),
        s[1].data(),
        "a response without state is retried"
    );
    let early = &s[2];
    assert_eq!(
        early.event["isWindowTerminatedEarly"], true,
        "{:?}",
        early.event
    );
    assert_eq!(early.event["isFinalInvokeForWindow"], true);
    assert!(early.records.is_empty());
    assert_eq!(
        s[3].event["window"], early.event["window"],
        "the same window goes on"
    );
    assert_eq!(s[3].event["state"], json!({}), "with a fresh state");
    for inv in &s {
        let w = &inv.event["window"];
        let (start, end) = (w["start"].as_str().unwrap(), w["end"].as_str().unwrap());
        assert!(
            start.len() == 20 && start.ends_with('Z') && end > start,
            "{w}"
        );
        assert_eq!(inv.event["shardId"], shard_id(0));
        assert_eq!(inv.event["eventSourceARN"], stream_arn("esm-win"));
        if inv.event["isFinalInvokeForWindow"] == true {
            assert!(inv.records.is_empty());
        }
        // A one-second window holds the records that arrived in its second.
        for r in &inv.records {
            let t = r["kinesis"]["approximateArrivalTimestamp"]
                .as_f64()
                .unwrap() as i64;
            assert_eq!(format!("{:02}", t % 60), start[17..19], "{w}");
        }
    }
    // Every record is counted once in the final states: the early end reported its sum so
    // far, the rest of that window and the later one theirs.
    let early_sum = early.event["state"]["sum"].as_i64().unwrap();
    let rest: i64 = finals(&s)
        .iter()
        .filter(|i| i.event["isWindowTerminatedEarly"] == false)
        .map(|i| i.event["state"]["sum"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(early_sum + rest, 55);
    assert!(
        finals(&s)
            .iter()
            .filter(|i| i.event["isWindowTerminatedEarly"] == false)
            .count()
            >= 2,
        "one final invocation per window"
    );
    for t in tasks {
        t.abort();
    }
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn records_past_maximum_record_age_are_discarded_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("aged", runtime)).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "esm-aged", 1).await;
    create_stream(&client, "esm-aged-dlq", 1).await;
    put(&client, "esm-aged", &strings("old", 3)).await;
    let (seen, task) = fake_runtime(runtime, |data, _| data.iter().all(|d| d == "fresh"));
    let m = create_mapping(
        addr,
        json!({"FunctionName": "aged", "EventSourceArn": stream_arn("esm-aged"), "StartingPosition": "TRIM_HORIZON",
               "MaximumRecordAgeInSeconds": 60,
               "DestinationConfig": {"OnFailure": {"Destination": stream_arn("esm-aged-dlq")}}}),
    )
    .await;
    assert_eq!(m["MaximumRecordAgeInSeconds"], 60);
    wait_for(&seen, |s| s.len() >= 2).await;
    // The broker's clock moves past the records' maximum age.
    let moved = http(
        addr,
        "POST",
        "/_broker/clock",
        Some(&json!({"advance_ms": 61_000})),
    )
    .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    put(&client, "esm-aged", &["fresh".to_string()]).await;
    wait_for(&seen, |s| !delivered(s).is_empty()).await;
    let got = seen.lock().unwrap().clone();
    assert_eq!(delivered(&got), ["fresh"]);
    let failed_calls = got.iter().filter(|i| !i.succeeded).count();
    let dlq = read_shard(&client, "esm-aged-dlq", &shard_id(0)).await;
    assert_eq!(dlq.len(), 1);
    let record: Value = serde_json::from_slice(data(&dlq[0])).unwrap();
    assert_eq!(record["requestContext"]["condition"], "RecordAgeExceeded");
    assert_eq!(
        record["requestContext"]["approximateInvokeCount"],
        failed_calls
    );
    assert_eq!(record["KinesisBatchInfo"]["batchSize"], 3);
    let last = get_mapping(addr, m["UUID"].as_str().unwrap()).await;
    assert_eq!(last["LastProcessingResult"], "OK");
    task.abort();
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn filter_criteria_deliver_only_matching_records_and_move_the_checkpoint_past_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "esm-filter", 1).await;

    let refused = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(&json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-filter"), "StartingPosition": "TRIM_HORIZON",
            "FilterCriteria": {"Filters": [{"Pattern": "{\"data\": {\"kind\": [{\"bogus\": 1}]}}"}]}})),
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body["message"],
        "Invalid filter pattern definition."
    );

    // Keep: kind "keep", or a numeric n above 100; everything else (and non-JSON) is skipped.
    let mut items = Vec::new();
    for i in 0..60 {
        items.push(match i % 4 {
            0 => json!({"kind": "keep", "i": i}).to_string(),
            1 => json!({"kind": "drop", "i": i}).to_string(),
            2 => json!({"kind": "other", "n": 100 + i, "i": i}).to_string(),
            _ => format!("not json {i}"),
        });
    }
    put(&client, "esm-filter", &items).await;
    let expected: Vec<String> = items
        .iter()
        .filter(|d| {
            let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
            v["kind"] == "keep" || v["n"].as_i64().is_some_and(|n| n > 100)
        })
        .cloned()
        .collect();
    let criteria = json!({"Filters": [
        {"Pattern": json!({"data": {"kind": ["keep"]}}).to_string()},
        {"Pattern": json!({"data": {"n": [{"numeric": [">", 100]}]}}).to_string()},
    ]});
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    let m = create_mapping(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-filter"), "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 7, "FilterCriteria": criteria}),
    )
    .await;
    let uuid = m["UUID"].as_str().unwrap().to_string();
    wait_for(&seen, |s| delivered(s).len() >= expected.len()).await;
    // A tail of filtered-out records only: the checkpoint still moves past them.
    put(
        &client,
        "esm-filter",
        &["not json".to_string(), json!({"kind": "drop"}).to_string()],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivered(&seen.lock().unwrap()), expected);
    let got = get_mapping(addr, &uuid).await;
    assert_eq!(got["FilterCriteria"], criteria);
    task.abort();
    h.shutdown().await.unwrap();

    // After a restart nothing filtered or delivered comes back; a new match does.
    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let client = client_for(h.local_addr());
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    let last = json!({"kind": "keep", "i": "last"}).to_string();
    put(&client, "esm-filter", std::slice::from_ref(&last)).await;
    wait_for(&seen, |s| !delivered(s).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(delivered(&seen.lock().unwrap()), vec![last]);

    // An update with an empty FilterCriteria removes the filters.
    let upd = http(
        h.local_addr(),
        "PUT",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        Some(&json!({"FilterCriteria": {}})),
    )
    .await;
    assert_eq!(upd.status, 202, "{:?}", upd.body);
    let got = get_mapping(h.local_addr(), &uuid).await;
    assert!(got.get("FilterCriteria").is_none(), "{got:?}");
    task.abort();
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn mapping_stats_count_invocations_errors_retries_and_show_the_iterator_age() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with_function("fn", runtime)).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "esm-stats", 1).await;
    let items = strings("s", 5);
    put(&client, "esm-stats", &items).await;
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    let (seen, task) = fake_runtime(runtime, move |_, _| {
        flag.load(std::sync::atomic::Ordering::SeqCst)
    });
    let m = create_mapping(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("esm-stats"), "StartingPosition": "TRIM_HORIZON"}),
    )
    .await;
    let path = format!(
        "/_broker/event-source-mappings/{}",
        m["UUID"].as_str().unwrap()
    );
    wait_for(&seen, |s| s.len() >= 2).await;
    // Stuck on a failing batch while the stream's records age by two minutes.
    let advanced = http(
        addr,
        "POST",
        "/_broker/clock",
        Some(&json!({"advance_ms": 120_000})),
    )
    .await;
    assert_eq!(advanced.status, 200);
    let stuck = http(addr, "GET", &path, None).await;
    assert_eq!(stuck.status, 200, "{:?}", stuck.body);
    assert!(
        stuck.body["IteratorAgeMilliseconds"].as_i64().unwrap() >= 120_000,
        "{:?}",
        stuck.body
    );
    assert!(stuck.body["Errors"].as_u64().unwrap() >= 2);
    assert!(stuck.body["Retries"].as_u64().unwrap() >= 1);
    assert_eq!(stuck.body["DeliveredRecords"], 0);
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_for(&seen, |s| !delivered(s).is_empty()).await;
    let mut done = Value::Null;
    for _ in 0..100 {
        done = http(addr, "GET", &path, None).await.body;
        if done["DeliveredRecords"] == 5 && done["IteratorAgeMilliseconds"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done["DeliveredRecords"], 5, "{done:?}");
    assert_eq!(done["IteratorAgeMilliseconds"], 0, "caught up: {done:?}");
    let invocations = seen.lock().unwrap().len() as u64;
    assert_eq!(done["Invocations"], invocations);
    assert_eq!(done["Errors"].as_u64().unwrap(), invocations - 1);
    assert_eq!(done["State"], "Enabled");
    let all = http(addr, "GET", "/_broker/event-source-mappings", None).await;
    assert_eq!(all.body["EventSourceMappings"][0]["UUID"], m["UUID"]);
    let unknown = http(addr, "GET", "/_broker/event-source-mappings/nope", None).await;
    assert_eq!(unknown.status, 404);
    task.abort();
    h.shutdown().await.unwrap();
}
