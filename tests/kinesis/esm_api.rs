//! Lambda's event-source-mapping API as a state machine: Creating → Enabled/Disabled,
//! Enabling, Disabling, Updating and Deleting, each asynchronous and persisted across a
//! restart; ResourceInUseException during a transition; and a deleted stream stopping its
//! mappings without leaving old checkpoints behind for a stream re-created under its name.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_broker::config::FunctionSpec;
use serde_json::{Value, json};

use crate::common::*;

/// Every wait in these tests is bounded by this.
const MAPPINGS: &str = "/2015-03-31/event-source-mappings";

use crate::esm::{Answer, Seen, WAIT, delivered, fake_runtime, free_port, http};

async fn get(addr: SocketAddr, uuid: &str) -> Answer {
    http(addr, "GET", &format!("{MAPPINGS}/{uuid}"), None).await
}

async fn update(addr: SocketAddr, uuid: &str, body: Value) -> Answer {
    http(addr, "PUT", &format!("{MAPPINGS}/{uuid}"), Some(&body)).await
}

async fn delete(addr: SocketAddr, uuid: &str) -> Answer {
    http(addr, "DELETE", &format!("{MAPPINGS}/{uuid}"), None).await
}

async fn create(addr: SocketAddr, body: Value) -> Value {
    let a = http(addr, "POST", MAPPINGS, Some(&body)).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    a.body
}

/// Polls GET until the mapping is in `state` (bounded by [`WAIT`]); returns it.
async fn wait_state(addr: SocketAddr, uuid: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = get(addr, uuid).await;
        if a.body["State"] == state {
            return a.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {state}: {:?}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_gone(addr: SocketAddr, uuid: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let a = get(addr, uuid).await;
        if a.status == 404 {
            assert_eq!(
                a.header("x-amzn-errortype").as_deref(),
                Some("ResourceNotFoundException")
            );
            assert!(a.body["Message"].is_string(), "{:?}", a.body);
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never gone: {:?}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_in_use(a: &Answer, verb: &str) {
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(
        a.header("x-amzn-errortype").as_deref(),
        Some("ResourceInUseException")
    );
    assert_eq!(a.body["Type"], "User");
    // Lambda's model names this member `Message` (InvalidParameterValueException's is
    // `message`).
    assert_eq!(
        a.body["Message"],
        format!("Cannot {verb} the event source mapping because it is in use.")
    );
}

fn with(runtime: SocketAddr, delay: Duration) -> impl FnOnce(&mut kinesis_broker::Config) {
    move |c| {
        c.functions = vec![FunctionSpec::runtime("fn", runtime)];
        c.event_source_mapping_delay = delay;
    }
}

async fn wait_delivered(seen: &Seen, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while delivered(&seen.lock().unwrap()).len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; saw {:?}",
            delivered(&seen.lock().unwrap())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn put(client: &aws_sdk_kinesis::Client, stream: &str, items: &[&str]) {
    let entries = items
        .iter()
        .map(|d| {
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(blob(d.as_bytes().to_vec()))
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

#[tokio::test]
async fn every_transition_is_asynchronous_and_refuses_changes_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), with(free_port(), Duration::from_millis(300))).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "states", 1).await;
    let m = create(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("states"), "StartingPosition": "LATEST"}),
    )
    .await;
    assert_eq!(m["State"], "Creating");
    assert_eq!(m["StateTransitionReason"], "User action");
    assert_eq!(m["LastProcessingResult"], "No records processed");
    let uuid = m["UUID"].as_str().unwrap().to_string();
    assert_eq!(get(addr, &uuid).await.body["State"], "Creating");
    assert_in_use(
        &update(addr, &uuid, json!({"BatchSize": 5})).await,
        "update",
    );
    assert_in_use(&delete(addr, &uuid).await, "delete");
    let enabled = wait_state(addr, &uuid, "Enabled").await;
    // Only the create answer carries milliseconds; Lambda keeps the minute.
    let created = m["LastModified"].as_f64().unwrap();
    let kept = enabled["LastModified"].as_f64().unwrap();
    assert_eq!(kept % 60.0, 0.0, "{kept}");
    assert_eq!(kept, created - created % 60.0);

    // An update answers with the settings in force; the new ones show once applied.
    let a = update(addr, &uuid, json!({"BatchSize": 5})).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert_eq!(a.body["State"], "Updating");
    assert_eq!(a.body["BatchSize"], 100);
    assert_in_use(
        &update(addr, &uuid, json!({"BatchSize": 6})).await,
        "update",
    );
    let settled = wait_state(addr, &uuid, "Enabled").await;
    assert_eq!(settled["BatchSize"], 5);
    assert_eq!(settled["StateTransitionReason"], "User action");

    let a = update(addr, &uuid, json!({"Enabled": false})).await;
    assert_eq!(a.body["State"], "Disabling");
    assert_in_use(&delete(addr, &uuid).await, "delete");
    wait_state(addr, &uuid, "Disabled").await;
    let a = update(addr, &uuid, json!({"Enabled": true})).await;
    assert_eq!(a.body["State"], "Enabling");
    wait_state(addr, &uuid, "Enabled").await;

    // A refused update changes nothing.
    let bad = update(addr, &uuid, json!({"BatchSize": 0})).await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.header("x-amzn-errortype").as_deref(),
        Some("InvalidParameterValueException")
    );
    assert_eq!(get(addr, &uuid).await.body["State"], "Enabled");

    let a = delete(addr, &uuid).await;
    assert_eq!(a.status, 202);
    assert_eq!(a.body["State"], "Deleting");
    assert_eq!(get(addr, &uuid).await.body["State"], "Deleting");
    assert_in_use(&delete(addr, &uuid).await, "delete");
    wait_gone(addr, &uuid).await;

    let off = create(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("states"), "StartingPosition": "LATEST", "Enabled": false}),
    )
    .await;
    assert_eq!(off["State"], "Creating");
    wait_state(addr, off["UUID"].as_str().unwrap(), "Disabled").await;
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restart_finishes_the_transitions_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with(runtime, Duration::ZERO)).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "restart-a", 1).await;
    create_stream(&client, "restart-b", 1).await;
    let doomed = create(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("restart-a"), "StartingPosition": "LATEST"}),
    )
    .await;
    let updated = create(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("restart-b"), "StartingPosition": "LATEST"}),
    )
    .await;
    let doomed = doomed["UUID"].as_str().unwrap().to_string();
    let updated = updated["UUID"].as_str().unwrap().to_string();
    wait_state(addr, &doomed, "Enabled").await;
    wait_state(addr, &updated, "Enabled").await;
    h.shutdown().await.unwrap();

    // Transitions that cannot end before the broker stops.
    let h = start_server_in(dir.path(), with(runtime, Duration::from_secs(600))).await;
    let addr = h.local_addr();
    assert_eq!(delete(addr, &doomed).await.body["State"], "Deleting");
    let a = update(addr, &updated, json!({"BatchSize": 9, "Enabled": false})).await;
    assert_eq!(a.body["State"], "Disabling");
    h.shutdown().await.unwrap();

    let h = start_server_in(dir.path(), with(runtime, Duration::ZERO)).await;
    let addr = h.local_addr();
    wait_gone(addr, &doomed).await;
    let settled = wait_state(addr, &updated, "Disabled").await;
    assert_eq!(settled["BatchSize"], 9);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_deleted_stream_stops_its_mappings_and_a_recreated_one_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = free_port();
    let h = start_server_in(dir.path(), with(runtime, Duration::ZERO)).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "going", 1).await;
    let (seen, task) = fake_runtime(runtime, |_, _| true);
    let m = create(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("going"), "StartingPosition": "TRIM_HORIZON"}),
    )
    .await;
    let uuid = m["UUID"].as_str().unwrap().to_string();
    put(&client, "going", &["a0", "a1", "a2", "a3", "a4"]).await;
    wait_delivered(&seen, 5).await;

    client
        .delete_stream()
        .stream_name("going")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "going").await;
    let got = get(addr, &uuid).await.body;
    assert_eq!(got["State"], "Disabled");
    assert_eq!(got["StateTransitionReason"], "Lambda initiated");
    let result = got["LastProcessingResult"].as_str().unwrap();
    assert!(result.starts_with("PROBLEM: "), "{result}");
    assert!(result.contains(&stream_arn("going")), "{result}");

    let refused = update(addr, &uuid, json!({"Enabled": true})).await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.header("x-amzn-errortype").as_deref(),
        Some("InvalidParameterValueException")
    );
    assert_eq!(get(addr, &uuid).await.body["State"], "Disabled");

    // Same name, same ARN, new shards: nothing is read until the mapping is enabled, and
    // then from TRIM_HORIZON of the new stream, not from the old stream's offsets (5).
    create_stream(&client, "going", 1).await;
    put(&client, "going", &["b0", "b1", "b2"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        delivered(&seen.lock().unwrap()).len(),
        5,
        "a disabled mapping delivered"
    );
    let a = update(addr, &uuid, json!({"Enabled": true})).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    wait_state(addr, &uuid, "Enabled").await;
    wait_delivered(&seen, 8).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        delivered(&seen.lock().unwrap()),
        ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]
    );
    task.abort();
    h.shutdown().await.unwrap();
}
