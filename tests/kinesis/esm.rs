//! Event-source mappings: Lambda's REST API on the broker's port, driven over plain HTTP,
//! and a fake runtime interface client speaking the Lambda Runtime API (GET next, POST
//! response or error), as `awslambdaric` does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_broker::config::FunctionSpec;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

struct Answer {
    status: u16,
    headers: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
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
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Answer {
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

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn with_function(name: &str, addr: SocketAddr) -> impl FnOnce(&mut kinesis_broker::Config) {
    let spec = FunctionSpec::runtime(name, addr);
    move |c| c.functions = vec![spec]
}

/// An invocation as the fake runtime saw it.
#[derive(Debug, Clone)]
struct Invocation {
    records: Vec<Value>,
    succeeded: bool,
}

impl Invocation {
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

type Seen = Arc<Mutex<Vec<Invocation>>>;

/// A runtime interface client: polls `next`, asks `succeed` whether to answer `response`
/// or `error`, records every invocation. Runs until aborted.
fn fake_runtime(
    addr: SocketAddr,
    succeed: impl Fn(&[String], usize) -> bool + Send + 'static,
) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Default::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut n = 0;
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
            let mut inv = Invocation {
                records: answer.body["Records"].as_array().unwrap().clone(),
                succeeded: false,
            };
            inv.succeeded = succeed(&inv.data(), n);
            n += 1;
            let (kind, body) = if inv.succeeded {
                ("response", "null".to_string())
            } else {
                (
                    "error",
                    json!({"errorMessage": "boom", "errorType": "Exception", "stackTrace": []})
                        .to_string(),
                )
            };
            let post = format!(
                "POST /2018-06-01/runtime/invocation/{id}/{kind} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(post.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.unwrap();
            assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 202"));
            out.lock().unwrap().push(inv);
        }
    });
    (seen, task)
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

fn delivered(seen: &[Invocation]) -> Vec<String> {
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
    for (name, value) in [
        ("ParallelizationFactor", json!(2)),
        ("BisectBatchOnFunctionError", json!(true)),
        ("FunctionResponseTypes", json!(["ReportBatchItemFailures"])),
        ("TumblingWindowInSeconds", json!(60)),
        (
            "FilterCriteria",
            json!({"Filters": [{"Pattern": "{\"data\":{\"a\":[1]}}"}]}),
        ),
        (
            "DestinationConfig",
            json!({"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:q"}}),
        ),
    ] {
        let a = http(
            addr,
            "POST",
            "/2015-03-31/event-source-mappings",
            Some(&with(name, value)),
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
    assert_eq!(upd.status, 202);
    assert_eq!(upd.body["BatchSize"], 7);
    let bad = http(
        addr,
        "PUT",
        &path,
        Some(&json!({"BisectBatchOnFunctionError": true})),
    )
    .await;
    assert_eq!(bad.status, 400);
    let got = http(addr, "GET", &path, None).await;
    assert_eq!(got.body["State"], "Disabled");
    assert_eq!(got.body["BatchSize"], 7);
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
