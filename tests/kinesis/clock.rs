//! Wall-clock steps (issue 21): NTP stepping the clock or a resumed VM moves the wall
//! clock by an hour, forward or back, while monotonic time runs on. The broker's clock has a
//! control for exactly that (`Clock::step_wall_ms`, `{"step_wall_ms": N}` on
//! `/_broker/clock`), beside the offset that makes time pass (`advance_ms`).
//!
//! Rules pinned here: sequence numbers strictly increase and arrival times never decrease
//! within a shard (also across a restart on a clock set back); iterators, visibility
//! timeouts and the resubscription window are deadlines on the steady clock; ages
//! (retention) are measured so that a step never makes a record older than it is.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{ConsumerStatus, ShardIteratorType, StartingPosition};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const HOUR: i64 = 3_600_000;
/// AWS's iterator lifetime.
const ITERATOR_TTL_MS: i64 = 300_000;
/// AWS's NextToken lifetime (ListShards: "valid for 300 seconds").
const NEXT_TOKEN_TTL_MS: i64 = 300_000;
/// Bound on every raw HTTP exchange.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One raw HTTP/1.1 exchange with `Connection: close`; returns (status, JSON body).
async fn exchange(addr: SocketAddr, head: String, body: &[u8]) -> (u16, Value) {
    let talk = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(CALL_TIMEOUT, talk)
        .await
        .expect("an answer within 30 s")
        .expect("exchange");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let mut payload = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    let value = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&payload).unwrap_or_else(|e| panic!("{e}: {payload:?}"))
    };
    (status, value)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < line_end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[(line_end + 4 + size).min(data.len())..];
    }
    out
}

async fn admin_clock(addr: SocketAddr, body: Option<Value>) -> (u16, Value) {
    let (method, body) = match body {
        Some(b) => ("POST", b.to_string()),
        None => ("GET", String::new()),
    };
    let head = format!(
        "{method} /_broker/clock HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    exchange(addr, head, body.as_bytes()).await
}

/// A Kinesis JSON call over raw HTTP (queue operations are not in the Rust SDK).
async fn call(addr: SocketAddr, operation: &str, body: Value) -> Value {
    let body = serde_json::to_vec(&body).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{operation}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261125T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/kinesis/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, v) = exchange(addr, head, &body).await;
    assert_eq!(status, 200, "{operation}: {v}");
    v
}

async fn put(client: &aws_sdk_kinesis::Client, stream: &str, data: &str) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key("pk")
        .data(blob(data.as_bytes()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecord: {}", describe_err(&e)))
        .sequence_number()
        .to_string()
}

/// Sequence numbers strictly increase and arrival times never decrease, in read order.
fn assert_ordered(records: &[aws_sdk_kinesis::types::Record]) {
    for pair in records.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            seq(a.sequence_number()) < seq(b.sequence_number()),
            "{} then {}",
            a.sequence_number(),
            b.sequence_number()
        );
        assert!(
            arrival_ms(a) <= arrival_ms(b),
            "arrival {} then {}",
            arrival_ms(a),
            arrival_ms(b)
        );
    }
}

#[tokio::test]
async fn sequence_numbers_and_arrivals_stay_ordered_through_steps_and_a_restart_set_back() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "steps", 1).await;
    let clock = h.broker().clock().clone();
    let mut written = vec![put(&client, "steps", "before").await];
    clock.step_wall_ms(-HOUR).unwrap();
    written.push(put(&client, "steps", "after a step back").await);
    clock.step_wall_ms(2 * HOUR).unwrap();
    written.push(put(&client, "steps", "after a step forward").await);
    clock.step_wall_ms(-2 * HOUR).unwrap();
    written.push(put(&client, "steps", "after another step back").await);
    let records = read_shard(&client, "steps", &shard_id(0)).await;
    assert_eq!(records.len(), 4);
    assert_ordered(&records);
    let got: Vec<&str> = records.iter().map(|r| r.sequence_number()).collect();
    assert_eq!(got, written, "PutRecord's answers are the stored numbers");
    h.shutdown().await.expect("shutdown");

    // The next run starts with its wall clock an hour behind the newest arrival.
    let h = start_server_in(dir.path(), |c| c.clock_offset_ms = -HOUR).await;
    let client = client_for(h.local_addr());
    put(&client, "steps", "after a restart set back").await;
    let records = read_shard(&client, "steps", &shard_id(0)).await;
    assert_eq!(records.len(), 5);
    assert_ordered(&records);
    // A split on the clock set back: children still number above their parent.
    let parent_last = records.last().unwrap().sequence_number().to_string();
    client
        .split_shard()
        .stream_name("steps")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((u128::MAX / 2).to_string())
        .send()
        .await
        .expect("split");
    wait_active(&client, "steps").await;
    let child = put(&client, "steps", "in a child").await;
    assert!(seq(&child) > seq(&parent_last), "{child} vs {parent_last}");
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn iterators_expire_by_steady_time_not_by_wall_steps() {
    let (client, h, _dir) = start_server().await;
    create_stream(&client, "its", 1).await;
    put(&client, "its", "r").await;
    let clock = h.broker().clock().clone();

    // Forward: an iterator a second old is still fresh after the wall clock gains an hour.
    let it = iterator(&client, "its", &shard_id(0), ShardIteratorType::TrimHorizon).await;
    clock.step_wall_ms(HOUR).unwrap();
    let read = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "a forward step expired a fresh iterator: {}",
                describe_err(&e)
            )
        });
    assert_eq!(read.records().len(), 1);
    // The iterator it returned is as fresh.
    let next = read.next_shard_iterator().unwrap().to_string();
    client
        .get_records()
        .shard_iterator(&next)
        .send()
        .await
        .expect("the next iterator reads");

    // Back: an iterator issued before the wall clock loses two hours expires five minutes
    // later all the same.
    let it = iterator(&client, "its", &shard_id(0), ShardIteratorType::TrimHorizon).await;
    clock.step_wall_ms(-2 * HOUR).unwrap();
    clock.advance_ms(ITERATOR_TTL_MS - 10_000).unwrap();
    client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect("younger than 5 minutes");
    clock.advance_ms(20_000).unwrap();
    let err = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect_err("a backward step lent the iterator an extra hour");
    assert_eq!(err.code(), Some("ExpiredIteratorException"), "{err:?}");
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_iterator_from_before_a_restart_on_a_clock_set_back_expires_within_its_five_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = kinesis_broker::broker::Clock::system();
    let server = ClockServer::start(dir.path(), clock, |_| {}).await;
    create_stream(&server.client, "old", 1).await;
    put(&server.client, "old", "r").await;
    let it = iterator(
        &server.client,
        "old",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    server.stop().await;

    // A new process (a new clock) whose wall clock is an hour behind the last one's.
    let clock = kinesis_broker::broker::Clock::system();
    clock.step_wall_ms(-HOUR).unwrap();
    let server = ClockServer::start(dir.path(), clock.clone(), |_| {}).await;
    let read = server
        .client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect("an iterator seconds old still reads after the restart");
    assert_eq!(read.records().len(), 1);
    clock.advance_ms(ITERATOR_TTL_MS + 1_000).unwrap();
    let err = server
        .client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .expect_err("judged by the wall clock alone it would live another hour");
    assert_eq!(err.code(), Some("ExpiredIteratorException"), "{err:?}");
    server.stop().await;
}

#[tokio::test]
async fn list_shards_tokens_expire_by_steady_time_not_by_wall_steps() {
    let (client, h, _dir) = start_server().await;
    create_stream(&client, "pages", 3).await;
    let clock = h.broker().clock().clone();
    let token = || async {
        client
            .list_shards()
            .stream_name("pages")
            .max_results(1)
            .send()
            .await
            .expect("ListShards")
            .next_token()
            .expect("more shards")
            .to_string()
    };
    let next_page = |token: String| {
        let client = client.clone();
        async move { client.list_shards().next_token(token).send().await }
    };

    // Forward: a token a second old is not 300 s old because the wall clock gained an hour.
    let fresh = token().await;
    clock.step_wall_ms(HOUR).unwrap();
    next_page(fresh).await.unwrap_or_else(|e| {
        panic!(
            "a forward step expired a fresh NextToken: {}",
            describe_err(&e)
        )
    });

    // Back: a token issued before the wall clock loses two hours expires after its 300 s.
    let issued = token().await;
    clock.step_wall_ms(-2 * HOUR).unwrap();
    clock.advance_ms(NEXT_TOKEN_TTL_MS - 10_000).unwrap();
    next_page(issued.clone()).await.expect("younger than 300 s");
    clock.advance_ms(20_000).unwrap();
    let err = next_page(issued)
        .await
        .expect_err("a backward step lent the NextToken an extra hour");
    assert_eq!(err.code(), Some("ExpiredNextTokenException"), "{err:?}");
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn retention_never_trims_early_on_a_forward_step_and_trims_late_by_at_most_a_backward_one() {
    let (client, h, _dir) = start_server().await;
    create_stream(&client, "ret", 1).await;
    put(&client, "ret", "old").await;
    let clock = h.broker().clock().clone();
    let retention = 24 * HOUR;
    // 23.5 hours pass: the record is half an hour from the end of its retention.
    clock.advance_ms(retention - HOUR / 2).unwrap();
    clock.step_wall_ms(HOUR).unwrap();
    assert_eq!(
        read_shard(&client, "ret", &shard_id(0)).await.len(),
        1,
        "a forward step of an hour trimmed a record 23.5 h old"
    );
    h.broker().sweep_retention();
    assert_eq!(read_shard(&client, "ret", &shard_id(0)).await.len(), 1);
    // 31 minutes later it is past 24 h by any clock.
    clock.advance_ms(HOUR / 2 + 60_000).unwrap();
    assert!(read_shard(&client, "ret", &shard_id(0)).await.is_empty());

    // Back: a record written before a step back of an hour goes at most an hour late.
    clock.step_wall_ms(-HOUR).unwrap();
    put(&client, "ret", "new").await;
    clock.step_wall_ms(-HOUR).unwrap();
    clock.advance_ms(retention + 60_000).unwrap();
    assert_eq!(read_shard(&client, "ret", &shard_id(0)).await.len(), 1);
    clock.advance_ms(HOUR).unwrap();
    assert!(
        read_shard(&client, "ret", &shard_id(0)).await.is_empty(),
        "retention stalled past the step"
    );
    assert!(
        h.broker().sweep_retention() > 0,
        "the sweeper deleted nothing"
    );
    h.shutdown().await.expect("shutdown");
}

async fn receive(addr: SocketAddr, arn: &str) -> Vec<Value> {
    let v = call(
        addr,
        "ReceiveQueueRecords",
        json!({"QueueARN": arn, "WaitTimeSeconds": 1}),
    )
    .await;
    v["QueueRecords"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn visibility_timeouts_run_on_steady_time() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "q").await;
    put(&client, "q", "job").await;
    let created = call(
        addr,
        "CreateQueue",
        json!({
            "QueueName": "work",
            "StreamConfigurationList": [{"StreamARN": stream_arn("q"), "StartingPosition": {"Type": "TRIM_HORIZON"}}],
        }),
    )
    .await;
    let arn = created["QueueDescription"]["QueueARN"]
        .as_str()
        .expect("QueueARN")
        .to_string();
    let clock = h.broker().clock().clone();
    let first = receive(addr, &arn).await;
    assert_eq!(first.len(), 1, "the record is received");

    // Forward: the record's 30 s of invisibility did not pass in an instant.
    clock.step_wall_ms(HOUR).unwrap();
    assert!(
        receive(addr, &arn).await.is_empty(),
        "a forward step ended a visibility timeout"
    );
    // The handle is still the current one: changing its visibility works.
    let v = call(
        addr,
        "UpdateQueueRecordsVisibility",
        json!({"QueueARN": arn, "Entries": [{"ReceiptHandle": first[0]["ReceiptHandle"], "VisibilityTimeoutSeconds": 30}]}),
    )
    .await;
    assert_eq!(v["Successful"].as_array().map(Vec::len), Some(1), "{v}");

    // Back: 31 s later the record is visible again, though the wall clock lost two hours.
    clock.step_wall_ms(-2 * HOUR).unwrap();
    clock.advance_ms(31_000).unwrap();
    let again = receive(addr, &arn).await;
    assert_eq!(again.len(), 1, "a backward step hid the record for an hour");
    assert_eq!(again[0]["ReceiveCount"], 2);
    h.shutdown().await.expect("shutdown");
}

async fn create_queue(addr: SocketAddr, stream: &str, name: &str) -> String {
    let created = call(
        addr,
        "CreateQueue",
        json!({
            "QueueName": name,
            "StreamConfigurationList": [{"StreamARN": stream_arn(stream), "StartingPosition": {"Type": "TRIM_HORIZON"}}],
        }),
    )
    .await;
    created["QueueDescription"]["QueueARN"]
        .as_str()
        .expect("QueueARN")
        .to_string()
}

/// The default VisibilityTimeout (s) of a queue, plus a second.
const VISIBILITY_PASSED_MS: i64 = 31_000;

#[tokio::test]
async fn in_flight_records_keep_their_visibility_across_restarts_on_a_stepped_clock() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ClockServer::start(dir.path(), kinesis_broker::broker::Clock::system(), |_| {}).await;
    create_on_demand(&server.client, "rq").await;
    put(&server.client, "rq", "job").await;
    let arn = create_queue(server.addr, "rq", "restarted").await;
    assert_eq!(receive(server.addr, &arn).await.len(), 1);
    server.stop().await;

    // The machine's wall clock gained an hour while the broker was down: the record is
    // seconds into its 30 s of invisibility, not an hour past them.
    let clock = kinesis_broker::broker::Clock::system_stepped(HOUR).unwrap();
    let server = ClockServer::start(dir.path(), clock.clone(), |_| {}).await;
    assert!(
        receive(server.addr, &arn).await.is_empty(),
        "a forward step while down made the in-flight record visible at once"
    );
    clock.advance_ms(VISIBILITY_PASSED_MS).unwrap();
    let again = receive(server.addr, &arn).await;
    assert_eq!(again.len(), 1, "the record never came back");
    assert_eq!(again[0]["ReceiveCount"], 2);
    server.stop().await;

    // Now two hours back: the record received last run is visible 30 s later, not 2 h.
    let clock = kinesis_broker::broker::Clock::system_stepped(-HOUR).unwrap();
    let server = ClockServer::start(dir.path(), clock.clone(), |_| {}).await;
    assert!(
        receive(server.addr, &arn).await.is_empty(),
        "the record reappeared before its visibility timeout ended"
    );
    clock.advance_ms(VISIBILITY_PASSED_MS).unwrap();
    let again = receive(server.addr, &arn).await;
    assert_eq!(again.len(), 1, "a backward step while down hid the record");
    assert_eq!(again[0]["ReceiveCount"], 3);
    server.stop().await;
}

#[tokio::test]
async fn reader_lag_and_millis_behind_latest_neither_jump_nor_go_negative_on_steps() {
    let (client, h, _dir) = start_server().await;
    create_on_demand(&client, "lag").await;
    put(&client, "lag", "a").await;
    put(&client, "lag", "b").await;
    create_queue(h.local_addr(), "lag", "idle").await;
    let clock = h.broker().clock().clone();
    let queue_lag = || {
        h.broker()
            .readers_all(clock.now_ms())
            .into_iter()
            .find(|r| r.name == "idle")
            .and_then(|r| r.lag_ms)
            .expect("the queue's lag")
    };
    let shard = client
        .list_shards()
        .stream_name("lag")
        .send()
        .await
        .unwrap()
        .shards()[0]
        .shard_id()
        .to_string();
    let behind = || async {
        let it = iterator(&client, "lag", &shard, ShardIteratorType::TrimHorizon).await;
        let read = client
            .get_records()
            .shard_iterator(it)
            .limit(1)
            .send()
            .await
            .expect("GetRecords");
        read.millis_behind_latest().expect("MillisBehindLatest")
    };
    for (step, name) in [(HOUR, "forward"), (-2 * HOUR, "back")] {
        clock.step_wall_ms(step).unwrap();
        let lag = queue_lag();
        assert!((0..60_000).contains(&lag), "{name}: queue lag {lag} ms");
        let behind = behind().await;
        assert!(
            (0..60_000).contains(&behind),
            "{name}: MillisBehindLatest {behind} ms"
        );
    }
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_resubscription_window_runs_on_steady_time() {
    let (client, h, _dir) = start_server().await;
    create_stream(&client, "fan", 1).await;
    let consumer = client
        .register_stream_consumer()
        .stream_arn(stream_arn("fan"))
        .consumer_name("c")
        .send()
        .await
        .expect("register")
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_string();
    let mut active = false;
    for _ in 0..MAX_POLLS {
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&consumer)
            .send()
            .await
            .expect("describe consumer");
        if d.consumer_description().unwrap().consumer_status() == &ConsumerStatus::Active {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(active, "consumer never became ACTIVE");
    let subscribe = || {
        client
            .subscribe_to_shard()
            .consumer_arn(&consumer)
            .shard_id(shard_id(0))
            .starting_position(
                StartingPosition::builder()
                    .r#type(ShardIteratorType::Latest)
                    .build()
                    .unwrap(),
            )
            .send()
    };
    let _first = subscribe().await.expect("subscribe");
    let clock = h.broker().clock().clone();
    clock.step_wall_ms(-HOUR).unwrap();
    clock.advance_ms(5_001).unwrap();
    let _second = subscribe().await.unwrap_or_else(|e| {
        panic!(
            "5 s after a subscription, after a backward step: {:?} {:?}",
            e.code(),
            e.message()
        )
    });
    // Forward: a step does not open the window early.
    clock.step_wall_ms(2 * HOUR).unwrap();
    let refused = subscribe()
        .await
        .expect_err("a forward step let a subscription in within 5 s");
    assert_eq!(refused.code(), Some("ResourceInUseException"));
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_admin_endpoint_steps_the_wall_clock_only() {
    let (_client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    let (status, before) = admin_clock(addr, None).await;
    assert_eq!(status, 200, "{before}");
    let (status, after) = admin_clock(addr, Some(json!({"step_wall_ms": -HOUR}))).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["wall_step_ms"], json!(-HOUR));
    assert_eq!(after["offset_ms"], json!(0));
    let wall = after["now_ms"].as_i64().unwrap() - before["now_ms"].as_i64().unwrap();
    let steady = after["steady_ms"].as_i64().unwrap() - before["steady_ms"].as_i64().unwrap();
    assert!((-HOUR..-HOUR + 10_000).contains(&wall), "wall moved {wall}");
    assert!((0..10_000).contains(&steady), "steady moved {steady}");
    // Advancing still moves both.
    let (_, advanced) = admin_clock(addr, Some(json!({"advance_ms": HOUR}))).await;
    let steady = advanced["steady_ms"].as_i64().unwrap() - before["steady_ms"].as_i64().unwrap();
    assert!(
        (HOUR..HOUR + 10_000).contains(&steady),
        "steady moved {steady}"
    );
    for body in [
        json!({}),
        json!({"advance_ms": 1, "step_wall_ms": 1}),
        json!({"step_wall_ms": "soon"}),
        json!({"step_wall_ms": i64::MIN}),
        json!({"advance_ms": i64::MIN}),
    ] {
        let (status, answer) = admin_clock(addr, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (_, now) = admin_clock(addr, None).await;
    assert_eq!(
        (&now["wall_step_ms"], &now["offset_ms"]),
        (&json!(-HOUR), &json!(HOUR))
    );
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn on_demand_scaling_neither_fires_nor_stalls_on_steps() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |c| {
        c.on_demand_scale_interval = Duration::from_millis(50)
    })
    .await;
    let client = client_for(h.local_addr());
    create_on_demand(&client, "auto").await;
    let shards = || async { list_all_shards(&client, "auto").await.len() };
    let initial = shards().await;
    let clock = h.broker().clock().clone();
    clock.step_wall_ms(HOUR).unwrap();
    clock.step_wall_ms(-2 * HOUR).unwrap();
    // Several scaling intervals with no traffic: nothing to split.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shards().await, initial, "a step alone scaled the stream");
    // Nor stalls: traffic over the shards' write limits still scales it.
    let entries: Vec<_> = (0..500)
        .map(|i| {
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(blob(vec![b'x'; 4096]))
                .build()
                .unwrap()
        })
        .collect();
    let mut scaled = false;
    for _ in 0..MAX_POLLS {
        client
            .put_records()
            .stream_name("auto")
            .set_records(Some(entries.clone()))
            .send()
            .await
            .expect("PutRecords");
        if shards().await > initial {
            scaled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(scaled, "hot shards were not split after the steps");
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_forward_step_does_not_age_records_past_maximum_record_age() {
    use crate::esm::{WAIT, delivered, fake_runtime, free_port, http};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let spec = kinesis_broker::config::FunctionSpec::runtime("aged", runtime);
    let h = start_server_in(dir.path(), move |c| {
        c.functions = vec![spec];
        c.event_source_mapping_delay = Duration::ZERO;
    })
    .await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "esm-step", 1).await;
    for i in 0..3 {
        put(&client, "esm-step", &format!("r{i}")).await;
    }
    // The function fails until told otherwise: the records stay pending, retried.
    let healthy = Arc::new(AtomicBool::new(false));
    let answer = healthy.clone();
    let (seen, task) = fake_runtime(runtime, move |_, _| answer.load(Ordering::SeqCst));
    let created = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(
            &json!({"FunctionName": "aged", "EventSourceArn": stream_arn("esm-step"),
                     "StartingPosition": "TRIM_HORIZON", "MaximumRecordAgeInSeconds": 60}),
        ),
    )
    .await;
    assert_eq!(created.status, 202, "{:?}", created.body);
    let calls = || seen.lock().unwrap().len();
    let deadline = tokio::time::Instant::now() + WAIT;
    while calls() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no invocation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The wall clock gains an hour; the records are seconds old all the same, so they are
    // still retried (discarded as older than 60 s they would never be invoked again).
    h.broker().clock().step_wall_ms(HOUR).unwrap();
    let before = calls();
    while calls() < before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the records were discarded after a forward step"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    healthy.store(true, Ordering::SeqCst);
    while delivered(&seen.lock().unwrap()).len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered(&seen.lock().unwrap()), ["r0", "r1", "r2"]);
    task.abort();
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn numbers_and_times_handed_out_before_a_step_back_are_not_from_the_future() {
    let (client, h, _dir) = start_server().await;
    create_stream(&client, "back", 1).await;
    let first = put(&client, "back", "a").await;
    let arrival = arrival_ms(&read_shard(&client, "back", &shard_id(0)).await[0]);
    h.broker().clock().step_wall_ms(-HOUR).unwrap();
    // A checkpoint taken before the step still positions an iterator.
    let after = client
        .get_shard_iterator()
        .stream_name("back")
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
        .starting_sequence_number(&first)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AFTER_SEQUENCE_NUMBER: {}", describe_err(&e)));
    assert!(after.shard_iterator().is_some());
    // So does the arrival time it read.
    client
        .get_shard_iterator()
        .stream_name("back")
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(arrival))
        .send()
        .await
        .unwrap_or_else(|e| panic!("AT_TIMESTAMP: {}", describe_err(&e)));
    // And the number orders the next write.
    let second = client
        .put_record()
        .stream_name("back")
        .partition_key("pk")
        .data(blob(&b"b"[..]))
        .sequence_number_for_ordering(&first)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SequenceNumberForOrdering: {}", describe_err(&e)));
    assert!(seq(second.sequence_number()) > seq(&first));
    // A number written while the wall clock was an hour ahead of the steady one, after
    // it stepped back: ahead of both readings, still not "from the future" for its shard.
    let clock = h.broker().clock().clone();
    clock.step_wall_ms(2 * HOUR).unwrap();
    let ahead = put(&client, "back", "c").await;
    clock.step_wall_ms(-HOUR).unwrap();
    client
        .get_shard_iterator()
        .stream_name("back")
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&ahead)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AT_SEQUENCE_NUMBER ahead: {}", describe_err(&e)));
    client
        .put_record()
        .stream_name("back")
        .partition_key("pk")
        .data(blob(&b"d"[..]))
        .sequence_number_for_ordering(&ahead)
        .send()
        .await
        .unwrap_or_else(|e| panic!("SequenceNumberForOrdering ahead: {}", describe_err(&e)));
    h.shutdown().await.expect("shutdown");
}
