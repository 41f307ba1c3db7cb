//! Queues (issue 18): lifecycle, receive/acknowledge/visibility, long polling, dead
//! letters and restart durability. The Rust SDK in Cargo.toml (aws-sdk-kinesis 1.130) has
//! no queue operations, so these are driven over raw HTTP JSON; streams and records go
//! through the SDK as elsewhere.

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails};
use serde_json::{Value, json};

use crate::common::*;

async fn put(client: &aws_sdk_kinesis::Client, stream: &str, n: usize, prefix: &str) {
    for i in 0..n {
        client
            .put_record()
            .stream_name(stream)
            .partition_key(format!("{prefix}-{i}"))
            .data(blob(format!("{prefix}-{i}")))
            .send()
            .await
            .unwrap();
    }
}

async fn create_queue(addr: SocketAddr, name: &str, stream: &str, extra: Value) -> String {
    let mut body = json!({
        "QueueName": name,
        "StreamConfigurationList": [{"StreamARN": stream_arn(stream), "StartingPosition": {"Type": "TRIM_HORIZON"}}],
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let v = ok(addr, "CreateQueue", body).await;
    v["QueueDescription"]["QueueARN"]
        .as_str()
        .expect("QueueARN")
        .to_string()
}

async fn receive(addr: SocketAddr, arn: &str, extra: Value) -> Vec<Value> {
    let mut body = json!({"QueueARN": arn, "WaitTimeSeconds": 1});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let v = ok(addr, "ReceiveQueueRecords", body).await;
    v["QueueRecords"].as_array().cloned().unwrap_or_default()
}

fn handles(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"]}))
        .collect()
}

fn data_of(r: &Value) -> String {
    use base64_simd::STANDARD;
    let b = STANDARD.decode_to_vec(r["Data"].as_str().unwrap()).unwrap();
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn queue_lifecycle_follows_the_model() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_stream(&client, "provisioned", 1).await;
    create_on_demand(&client, "od").await;

    // Queues exist on on-demand streams only.
    fails(
        addr,
        "CreateQueue",
        json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn("provisioned")}]}),
        "InvalidArgumentException",
    )
    .await;
    fails(
        addr,
        "CreateQueue",
        json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn("absent")}]}),
        "ResourceNotFoundException",
    )
    .await;
    // Timestamp only and always with AT_TIMESTAMP; BUILT_IN needs MaxReceiveCount; one stream.
    for bad in [
        json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn("od"), "StartingPosition": {"Type": "LATEST", "Timestamp": 1}}]}),
        json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn("od"), "StartingPosition": {"Type": "AT_TIMESTAMP"}}]}),
        json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn("od")}], "QueueAttributes": {"DeadLetterConfiguration": {"TargetType": "BUILT_IN"}}}),
        json!({"QueueName": "q", "StreamConfigurationList": [{"StreamARN": stream_arn("od")}, {"StreamARN": stream_arn("od")}]}),
    ] {
        fails(addr, "CreateQueue", bad, "ValidationException").await;
    }

    // Defaults: LATEST, 30 s visibility, BUILT_IN with MaxReceiveCount 6.
    let v = ok(
        addr,
        "CreateQueue",
        json!({"QueueName": "orders", "StreamConfigurationList": [{"StreamARN": stream_arn("od")}]}),
    )
    .await;
    let d = &v["QueueDescription"];
    let arn = d["QueueARN"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with(&format!(
            "arn:aws:kinesis:{REGION}:{DEFAULT_ACCOUNT}:queue/"
        )),
        "{arn}"
    );
    assert!(
        !arn.contains("orders"),
        "the ARN's id is not derived from the name: {arn}"
    );
    assert_eq!(d["QueueStatus"], "ACTIVE");
    assert_eq!(
        d["StreamConfigurationList"][0]["StreamARN"],
        stream_arn("od")
    );
    assert_eq!(
        d["StreamConfigurationList"][0]["StartingPosition"]["Type"],
        "LATEST"
    );
    assert!(d["StreamConfigurationList"][0]["StartingPosition"]["Timestamp"].is_number());
    assert_eq!(d["QueueAttributes"]["VisibilityTimeoutSeconds"], 30);
    assert_eq!(
        d["QueueAttributes"]["DeadLetterConfiguration"],
        json!({"TargetType": "BUILT_IN", "MaxReceiveCount": 6})
    );
    let described = ok(addr, "DescribeQueue", json!({"QueueARN": arn})).await;
    assert_eq!(described["QueueDescription"], *d);
    fails(
        addr,
        "CreateQueue",
        json!({"QueueName": "orders", "StreamConfigurationList": [{"StreamARN": stream_arn("od")}]}),
        "ResourceInUseException",
    )
    .await;

    // UpdateQueue leaves unspecified attributes alone.
    let v = ok(
        addr,
        "UpdateQueue",
        json!({"QueueARN": arn, "QueueAttributes": {"VisibilityTimeoutSeconds": 5}}),
    )
    .await;
    assert_eq!(
        v["QueueDescription"]["QueueAttributes"]["VisibilityTimeoutSeconds"],
        5
    );
    assert_eq!(
        v["QueueDescription"]["QueueAttributes"]["DeadLetterConfiguration"]["MaxReceiveCount"],
        6
    );
    let v = ok(
        addr,
        "UpdateQueue",
        json!({"QueueARN": arn, "QueueAttributes": {"DeadLetterConfiguration": {"TargetType": "NONE"}}}),
    )
    .await;
    assert_eq!(
        v["QueueDescription"]["QueueAttributes"]["DeadLetterConfiguration"],
        json!({"TargetType": "NONE"})
    );

    // Queues are taggable resources.
    ok(
        addr,
        "TagResource",
        json!({"ResourceARN": arn, "Tags": {"team": "payments", "tier": "1"}}),
    )
    .await;
    ok(
        addr,
        "UntagResource",
        json!({"ResourceARN": arn, "TagKeys": ["tier"]}),
    )
    .await;
    let tags = ok(addr, "ListTagsForResource", json!({"ResourceARN": arn})).await;
    assert_eq!(tags["Tags"], json!([{"Key": "team", "Value": "payments"}]));

    // ListQueues: StreamFilter and pagination.
    create_queue(addr, "billing", "od", json!({})).await;
    let page1 = ok(addr, "ListQueues", json!({"MaxResults": 1})).await;
    assert_eq!(page1["QueueSummaries"].as_array().unwrap().len(), 1);
    assert_eq!(page1["QueueSummaries"][0]["QueueName"], "billing");
    assert_eq!(
        page1["QueueSummaries"][0]["Streams"][0]["StreamARN"],
        stream_arn("od")
    );
    let token = page1["NextToken"]
        .as_str()
        .expect("a second page")
        .to_string();
    let page2 = ok(
        addr,
        "ListQueues",
        json!({"MaxResults": 1, "NextToken": token}),
    )
    .await;
    assert_eq!(page2["QueueSummaries"][0]["QueueName"], "orders");
    assert!(page2.get("NextToken").is_none(), "{page2}");
    let filtered = ok(
        addr,
        "ListQueues",
        json!({"StreamFilter": [{"StreamARN": stream_arn("provisioned")}]}),
    )
    .await;
    assert_eq!(filtered["QueueSummaries"], json!([]));
    fails(
        addr,
        "ListQueues",
        json!({"NextToken": "bm90IGEgdG9rZW4="}),
        "InvalidArgumentException",
    )
    .await;

    // A stream with queues can be neither deleted nor switched to PROVISIONED.
    let e = client
        .delete_stream()
        .stream_name("od")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.into_service_error().meta().code(),
        Some("ResourceInUseException")
    );
    let e = client
        .update_stream_mode()
        .stream_arn(stream_arn("od"))
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.into_service_error().meta().code(),
        Some("ResourceInUseException")
    );

    // DeleteQueue: gone (zero delay), and then the stream can go.
    for q in ok(addr, "ListQueues", json!({})).await["QueueSummaries"]
        .as_array()
        .unwrap()
    {
        ok(addr, "DeleteQueue", json!({"QueueARN": q["QueueARN"]})).await;
    }
    fails(
        addr,
        "DescribeQueue",
        json!({"QueueARN": arn}),
        "ResourceNotFoundException",
    )
    .await;
    fails(
        addr,
        "ReceiveQueueRecords",
        json!({"QueueARN": arn, "WaitTimeSeconds": 1}),
        "ResourceNotFoundException",
    )
    .await;
    client
        .delete_stream()
        .stream_name("od")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn queues_share_the_registered_consumer_limit_with_fan_out() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    client
        .register_stream_consumer()
        .stream_arn(stream_arn("od"))
        .consumer_name("efo")
        .send()
        .await
        .unwrap();
    for i in 0..19 {
        create_queue(addr, &format!("q{i}"), "od", json!({})).await;
    }
    fails(
        addr,
        "CreateQueue",
        json!({"QueueName": "one-too-many", "StreamConfigurationList": [{"StreamARN": stream_arn("od")}]}),
        "LimitExceededException",
    )
    .await;
    let e = client
        .register_stream_consumer()
        .stream_arn(stream_arn("od"))
        .consumer_name("efo2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.into_service_error().meta().code(),
        Some("LimitExceededException")
    );
}

/// CreateQueue racing DeleteStream (or the switch to PROVISIONED): either the queue exists and
/// the stream refused, or the stream went and the queue was refused; never a queue on a
/// deleted or provisioned stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_created_while_its_stream_is_deleted_or_switched_never_outlives_the_refusal() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    for round in 0..40 {
        let stream = format!("race-{round}");
        create_on_demand(&client, &stream).await;
        let create = call(
            addr,
            "CreateQueue",
            json!({"QueueName": format!("q-{round}"), "StreamConfigurationList": [{"StreamARN": stream_arn(&stream)}]}),
        );
        let (queue, other) = if round % 2 == 0 {
            tokio::join!(
                create,
                call(addr, "DeleteStream", json!({"StreamName": stream}))
            )
        } else {
            tokio::join!(
                create,
                call(
                    addr,
                    "UpdateStreamMode",
                    json!({"StreamARN": stream_arn(&stream), "StreamModeDetails": {"StreamMode": "PROVISIONED"}})
                )
            )
        };
        assert!(
            !(queue.0 == 200 && other.0 == 200),
            "round {round}: both the queue ({}) and the stream change ({}) succeeded",
            queue.1,
            other.1
        );
        let listed = ok(addr, "ListQueues", json!({"MaxResults": 100})).await;
        let name = format!("q-{round}");
        let on_stream = listed["QueueSummaries"]
            .as_array()
            .map(|qs| {
                qs.iter()
                    .filter(|q| q["QueueName"] == name.as_str())
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(
            on_stream,
            usize::from(queue.0 == 200),
            "round {round}: {listed}"
        );
    }
}

#[tokio::test]
async fn received_records_are_acknowledged_once_and_handles_are_single_use() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    put(&client, "od", 25, "r").await;
    let arn = create_queue(addr, "work", "od", json!({})).await;
    let other = create_queue(addr, "audit", "od", json!({})).await;

    let mut seen = std::collections::BTreeMap::new();
    loop {
        let batch = receive(addr, &arn, json!({"Limit": 10})).await;
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 10);
        for r in &batch {
            assert_eq!(r["ReceiveCount"], 1);
            assert!(r["FirstReceiveTimestamp"].is_number());
            assert!(r["ApproximateArrivalTimestamp"].is_number());
            assert_eq!(r["PartitionKey"].as_str().unwrap(), data_of(r));
            assert!(
                seen.insert(data_of(r), r.clone()).is_none(),
                "delivered twice: {r}"
            );
        }
        let v = ok(
            addr,
            "AcknowledgeQueueRecords",
            json!({"QueueARN": arn, "Entries": handles(&batch)}),
        )
        .await;
        assert_eq!(
            v["Successful"].as_array().unwrap().len(),
            batch.len(),
            "{v}"
        );
        assert_eq!(v["Failed"], json!([]));
        // Acknowledged once: the same handles now fail, entry by entry.
        let again = ok(
            addr,
            "AcknowledgeQueueRecords",
            json!({"QueueARN": arn, "Entries": handles(&batch)}),
        )
        .await;
        assert_eq!(again["Successful"], json!([]));
        assert_eq!(again["Failed"].as_array().unwrap().len(), batch.len());
        assert_eq!(again["Failed"][0]["ErrorCode"], "ResourceNotFoundException");
    }
    assert_eq!(seen.len(), 25);

    // RecordId is the same in every queue of the stream; handles are not interchangeable.
    let audit = receive(addr, &other, json!({"Limit": 10})).await;
    let first = &audit[0];
    assert_eq!(seen[&data_of(first)]["RecordId"], first["RecordId"]);
    let foreign = ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": arn, "Entries": [{"ReceiptHandle": first["ReceiptHandle"]}]}),
    )
    .await;
    assert_eq!(
        foreign["Failed"][0]["ErrorCode"],
        "InvalidArgumentException"
    );
    // A forged or malformed handle is a per-entry failure, next to a good entry.
    let mut forged = first["ReceiptHandle"].as_str().unwrap().to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let mixed = ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": other, "Entries": [
            {"ReceiptHandle": forged},
            {"ReceiptHandle": "not a handle"},
            {"ReceiptHandle": first["ReceiptHandle"]},
        ]}),
    )
    .await;
    assert_eq!(
        mixed["Successful"],
        json!([{"ReceiptHandle": first["ReceiptHandle"]}])
    );
    let failed = mixed["Failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert!(
        failed
            .iter()
            .all(|f| f["ErrorCode"] == "InvalidArgumentException")
    );
}

#[tokio::test]
async fn visibility_timeout_hides_a_record_and_zero_makes_it_visible_with_a_new_handle() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    put(&client, "od", 1, "v").await;
    let arn = create_queue(addr, "work", "od", json!({})).await;
    let first = receive(addr, &arn, json!({})).await;
    assert_eq!(first.len(), 1);
    // In flight for 30 s: a second receive waits its 1 s and gets nothing.
    assert!(receive(addr, &arn, json!({})).await.is_empty());
    let v = ok(
        addr,
        "UpdateQueueRecordsVisibility",
        json!({"QueueARN": arn, "Entries": [{"ReceiptHandle": first[0]["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}]}),
    )
    .await;
    assert_eq!(v["Successful"].as_array().unwrap().len(), 1, "{v}");
    let second = receive(addr, &arn, json!({"VisibilityTimeoutSeconds": 0})).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["ReceiveCount"], 2);
    assert_eq!(second[0]["RecordId"], first[0]["RecordId"]);
    assert_eq!(
        second[0]["FirstReceiveTimestamp"],
        first[0]["FirstReceiveTimestamp"]
    );
    assert_ne!(second[0]["ReceiptHandle"], first[0]["ReceiptHandle"]);
    // The old handle stopped working when the record was delivered again.
    let stale = ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(&first)}),
    )
    .await;
    assert_eq!(stale["Failed"].as_array().unwrap().len(), 1);
    let fresh = ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(&second)}),
    )
    .await;
    assert_eq!(fresh["Successful"].as_array().unwrap().len(), 1);
    assert!(receive(addr, &arn, json!({})).await.is_empty());
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_record_is_written() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    let arn = create_queue(addr, "work", "od", json!({})).await;
    let waiting = tokio::spawn({
        let arn = arn.clone();
        async move {
            let started = std::time::Instant::now();
            let records = receive(addr, &arn, json!({"WaitTimeSeconds": 20})).await;
            (records, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    put(&client, "od", 1, "late").await;
    let (records, elapsed) = tokio::time::timeout(Duration::from_secs(25), waiting)
        .await
        .expect("the receive answers")
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(data_of(&records[0]), "late-0");
    // Woken by the write, not by the end of its 20 s wait.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn record_received_max_times_becomes_a_dead_letter_and_restore_brings_it_back() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    put(&client, "od", 1, "poison").await;
    let arn = create_queue(
        addr,
        "work",
        "od",
        json!({"QueueAttributes": {"DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 2}}}),
    )
    .await;
    for n in 1..=2 {
        let r = receive(addr, &arn, json!({"VisibilityTimeoutSeconds": 0})).await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["ReceiveCount"], n);
    }
    // Received MaxReceiveCount times: off the normal path.
    assert!(receive(addr, &arn, json!({})).await.is_empty());
    let dead = ok(
        addr,
        "ReceiveDeadLetterQueueRecords",
        json!({"QueueARN": arn, "WaitTimeSeconds": 1}),
    )
    .await["QueueRecords"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(data_of(&dead[0]), "poison-0");
    assert_eq!(dead[0]["ReceiveCount"], 2);
    // A dead-letter handle is refused by the normal operations.
    let wrong = ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(&dead)}),
    )
    .await;
    assert_eq!(wrong["Failed"][0]["ErrorCode"], "InvalidArgumentException");
    let v = ok(
        addr,
        "UpdateDeadLetterQueueRecordsVisibility",
        json!({"QueueARN": arn, "Entries": [{"ReceiptHandle": dead[0]["ReceiptHandle"], "VisibilityTimeoutSeconds": 60}]}),
    )
    .await;
    assert_eq!(v["Successful"].as_array().unwrap().len(), 1);
    let v = ok(
        addr,
        "RestoreDeadLetterQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(&dead)}),
    )
    .await;
    assert_eq!(v["Successful"].as_array().unwrap().len(), 1, "{v}");
    // Back on the normal path with its receive count reset.
    let back = receive(addr, &arn, json!({"VisibilityTimeoutSeconds": 0})).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0]["ReceiveCount"], 1);
    assert_eq!(back[0]["RecordId"], dead[0]["RecordId"]);
    // And a dead letter can be discarded for good.
    let r = receive(addr, &arn, json!({"VisibilityTimeoutSeconds": 0})).await;
    assert_eq!(r[0]["ReceiveCount"], 2);
    let dead = ok(
        addr,
        "ReceiveDeadLetterQueueRecords",
        json!({"QueueARN": arn, "WaitTimeSeconds": 1}),
    )
    .await["QueueRecords"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(dead.len(), 1);
    let v = ok(
        addr,
        "AcknowledgeDeadLetterQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(&dead)}),
    )
    .await;
    assert_eq!(v["Successful"].as_array().unwrap().len(), 1);
    assert!(
        ok(
            addr,
            "ReceiveDeadLetterQueueRecords",
            json!({"QueueARN": arn, "WaitTimeSeconds": 1})
        )
        .await["QueueRecords"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(receive(addr, &arn, json!({})).await.is_empty());
}

#[tokio::test]
async fn without_dead_letter_handling_a_record_is_redelivered_past_six_receives() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    put(&client, "od", 1, "p").await;
    let arn = create_queue(
        addr,
        "work",
        "od",
        json!({"QueueAttributes": {"DeadLetterConfiguration": {"TargetType": "NONE"}}}),
    )
    .await;
    for n in 1..=8 {
        let r = receive(addr, &arn, json!({"VisibilityTimeoutSeconds": 0})).await;
        assert_eq!(r.len(), 1, "receive {n}");
        assert_eq!(r[0]["ReceiveCount"], n);
    }
}

#[tokio::test]
async fn queue_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_on_demand(&client, "od").await;
    put(&client, "od", 12, "d").await;
    let arn = create_queue(addr, "work", "od", json!({})).await;
    let batch = receive(addr, &arn, json!({"Limit": 10})).await;
    assert_eq!(batch.len(), 10);
    let (acked, kept) = batch.split_at(6);
    ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(acked)}),
    )
    .await;
    // The unacknowledged four become visible at once (and so do the two never received).
    let entries: Vec<Value> = kept
        .iter()
        .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"], "VisibilityTimeoutSeconds": 0}))
        .collect();
    ok(
        addr,
        "UpdateQueueRecordsVisibility",
        json!({"QueueARN": arn, "Entries": entries}),
    )
    .await;
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), |_| {}).await;
    let addr = h.local_addr();
    let d = ok(addr, "DescribeQueue", json!({"QueueARN": arn})).await;
    assert_eq!(d["QueueDescription"]["QueueName"], "work");
    let mut after = Vec::new();
    loop {
        let b = receive(addr, &arn, json!({"Limit": 10})).await;
        if b.is_empty() {
            break;
        }
        after.extend(b);
    }
    let acked: std::collections::BTreeSet<String> = acked.iter().map(data_of).collect();
    let got: std::collections::BTreeSet<String> = after.iter().map(data_of).collect();
    assert!(
        acked.is_disjoint(&got),
        "acknowledged records came back: {got:?}"
    );
    assert_eq!(got.len(), 6, "4 in flight + 2 never received: {got:?}");
    for r in &after {
        let expected = if kept.iter().any(|k| k["RecordId"] == r["RecordId"]) {
            2
        } else {
            1
        };
        assert_eq!(r["ReceiveCount"], expected, "{r}");
    }
    // Every redelivered record can still be acknowledged.
    let v = ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(&after)}),
    )
    .await;
    assert_eq!(v["Successful"].as_array().unwrap().len(), 6);
}

/// Waits (bounded) until DescribeQueue shows `status`.
async fn wait_queue_status(addr: SocketAddr, arn: &str, status: &str) {
    for _ in 0..MAX_POLLS {
        let v = ok(addr, "DescribeQueue", json!({"QueueARN": arn})).await;
        if v["QueueDescription"]["QueueStatus"] == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("queue {arn} never reached {status}");
}

#[tokio::test]
async fn lifecycle_transitions_take_the_stream_delays_and_updating_still_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_millis(400);
    let h = start_server_in(dir.path(), |c| {
        c.create_stream_delay = delay;
        c.update_stream_delay = delay;
        c.delete_stream_delay = delay;
    })
    .await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_on_demand(&client, "od").await;
    put(&client, "od", 3, "x").await;
    let v = ok(
        addr,
        "CreateQueue",
        json!({"QueueName": "slow", "StreamConfigurationList": [{"StreamARN": stream_arn("od"), "StartingPosition": {"Type": "TRIM_HORIZON"}}]}),
    )
    .await;
    let d = &v["QueueDescription"];
    assert_eq!(d["QueueStatus"], "CREATING");
    // While CREATING, TRIM_HORIZON's effective position is not determined yet.
    assert!(
        d["StreamConfigurationList"][0]["StartingPosition"]
            .get("Timestamp")
            .is_none(),
        "{d}"
    );
    let arn = d["QueueARN"].as_str().unwrap().to_string();
    fails(
        addr,
        "ReceiveQueueRecords",
        json!({"QueueARN": arn, "WaitTimeSeconds": 1}),
        "InvalidArgumentException",
    )
    .await;
    wait_queue_status(addr, &arn, "ACTIVE").await;
    let d = ok(addr, "DescribeQueue", json!({"QueueARN": arn})).await;
    assert!(
        d["QueueDescription"]["StreamConfigurationList"][0]["StartingPosition"]["Timestamp"]
            .is_number()
    );

    let v = ok(
        addr,
        "UpdateQueue",
        json!({"QueueARN": arn, "QueueAttributes": {"VisibilityTimeoutSeconds": 0}}),
    )
    .await;
    assert_eq!(v["QueueDescription"]["QueueStatus"], "UPDATING");
    assert_eq!(
        v["QueueDescription"]["QueueAttributes"]["VisibilityTimeoutSeconds"],
        0
    );
    fails(
        addr,
        "UpdateQueue",
        json!({"QueueARN": arn, "QueueAttributes": {"VisibilityTimeoutSeconds": 1}}),
        "ResourceInUseException",
    )
    .await;
    // Receiving and acknowledging work while UPDATING.
    let r = receive(addr, &arn, json!({"Limit": 1})).await;
    assert_eq!(r.len(), 1);
    let a = ok(
        addr,
        "AcknowledgeQueueRecords",
        json!({"QueueARN": arn, "Entries": handles(&r)}),
    )
    .await;
    assert_eq!(a["Successful"].as_array().unwrap().len(), 1);
    wait_queue_status(addr, &arn, "ACTIVE").await;

    ok(addr, "DeleteQueue", json!({"QueueARN": arn})).await;
    let d = ok(addr, "DescribeQueue", json!({"QueueARN": arn})).await;
    assert_eq!(d["QueueDescription"]["QueueStatus"], "DELETING");
    // A queue being deleted delivers nothing.
    fails(
        addr,
        "ReceiveQueueRecords",
        json!({"QueueARN": arn, "WaitTimeSeconds": 1}),
        "ResourceNotFoundException",
    )
    .await;
    for _ in 0..MAX_POLLS {
        let (status, _) = call(addr, "DescribeQueue", json!({"QueueARN": arn})).await;
        if status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    fails(
        addr,
        "DescribeQueue",
        json!({"QueueARN": arn}),
        "ResourceNotFoundException",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_queue_ends_its_long_polls_without_records() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    let arn = create_queue(addr, "work", "od", json!({})).await;
    let waiting = tokio::spawn({
        let arn = arn.clone();
        async move {
            call(
                addr,
                "ReceiveQueueRecords",
                json!({"QueueARN": arn, "WaitTimeSeconds": 20}),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(addr, "DeleteQueue", json!({"QueueARN": arn})).await;
    put(&client, "od", 1, "after").await;
    let (status, v) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the long poll ends")
        .unwrap();
    assert_ne!(status, 200, "{v}");
    assert!(
        v["__type"]
            .as_str()
            .unwrap()
            .ends_with("ResourceNotFoundException"),
        "{v}"
    );
}

/// Records written before the kill test starts consuming.
const CRASH_RECORDS: usize = 2_000;
/// Acknowledgements answered 200 after which the broker is killed.
const KILL_AFTER_ACKED: usize = 600;
const CRASH_WORKERS: usize = 4;

type Seen = std::sync::Arc<std::sync::Mutex<CrashLog>>;

#[derive(Default)]
struct CrashLog {
    /// Data of records whose acknowledgement was answered 200 (with the record in Successful).
    acked: std::collections::BTreeSet<String>,
    /// Data of records received after the restart.
    received_after: Vec<String>,
    restarted: bool,
    /// Calls that failed after the restart.
    errors: Vec<String>,
    /// Data of records in an acknowledgement that got no answer (the kill came first): the
    /// broker may have made it durable, so they may rightly never come back.
    unanswered: std::collections::BTreeSet<String>,
}

/// Receives and acknowledges until `stop`. Before the kill (`retry_errors` false) a failed
/// call ends the worker (the broker is gone); after the restart a failed call is noted in
/// the log and retried, so the test's verdict names any error instead of a timeout.
async fn crash_worker(
    addr: SocketAddr,
    arn: String,
    seen: Seen,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    retry_errors: bool,
) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let v = match try_call(
            addr,
            "ReceiveQueueRecords",
            json!({"QueueARN": arn, "Limit": 10, "WaitTimeSeconds": 1, "VisibilityTimeoutSeconds": 2}),
        )
        .await
        {
            Ok((200, v)) => v,
            other if retry_errors => {
                seen.lock().unwrap().errors.push(format!("receive: {other:?}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            _ => return,
        };
        let records = v["QueueRecords"].as_array().cloned().unwrap_or_default();
        {
            let mut log = seen.lock().unwrap();
            if log.restarted {
                log.received_after.extend(records.iter().map(data_of));
            }
        }
        if records.is_empty() {
            continue;
        }
        let v = match try_call(
            addr,
            "AcknowledgeQueueRecords",
            json!({"QueueARN": arn, "Entries": handles(&records)}),
        )
        .await
        {
            Ok((200, v)) => v,
            other if retry_errors => {
                seen.lock()
                    .unwrap()
                    .errors
                    .push(format!("acknowledge: {other:?}"));
                continue;
            }
            _ => {
                seen.lock()
                    .unwrap()
                    .unanswered
                    .extend(records.iter().map(data_of));
                return;
            }
        };
        let ok: std::collections::HashSet<&str> = v["Successful"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["ReceiptHandle"].as_str())
            .collect();
        let mut log = seen.lock().unwrap();
        for r in &records {
            if ok.contains(r["ReceiptHandle"].as_str().unwrap()) {
                log.acked.insert(data_of(r));
            }
        }
    }
}

async fn spawn_binary(
    data_dir: &std::path::Path,
    log_dir: &std::path::Path,
    run: usize,
) -> crate::crash::Broker {
    let port = crate::crash::free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kinesis-broker"));
    cmd.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--data-dir",
    ])
    .arg(data_dir)
    .args(["--durability", "flush"])
    .args([
        "--create-stream-delay-ms",
        "0",
        "--delete-stream-delay-ms",
        "0",
        "--update-stream-delay-ms",
        "0",
    ]);
    crate::crash::start(cmd, port, &log_dir.join(format!("queue-broker-{run}.log"))).await
}

#[tokio::test]
async fn no_record_is_lost_and_no_acknowledgement_forgotten_across_kill_9() {
    use std::sync::atomic::AtomicBool;
    let data_dir = tempfile::tempdir().unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let mut broker = spawn_binary(data_dir.path(), log_dir.path(), 1).await;
    let client = client_for(broker.addr);
    create_on_demand(&client, "crash").await;
    for chunk in 0..CRASH_RECORDS / 500 {
        let entries = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{n}"))
                    .data(blob(format!("rec-{n}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name("crash")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
    }
    // MaxReceiveCount high enough that no record dead-letters in this test.
    let arn = create_queue(
        broker.addr,
        "crash-q",
        "crash",
        json!({"QueueAttributes": {"DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 1000}}}),
    )
    .await;
    let seen: Seen = Default::default();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CRASH_WORKERS)
        .map(|_| {
            tokio::spawn(crash_worker(
                broker.addr,
                arn.clone(),
                seen.clone(),
                stop.clone(),
                false,
            ))
        })
        .collect();
    for _ in 0..100_000 {
        if seen.lock().unwrap().acked.len() >= KILL_AFTER_ACKED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        seen.lock().unwrap().acked.len() >= KILL_AFTER_ACKED,
        "workers stalled"
    );
    // SIGKILL with receives and acknowledgements in flight. An acknowledgement the kill
    // interrupted may or may not have been made durable: its records are settled either
    // way ("every record is eventually acknowledged"), but one answered 200 must hold.
    broker.child.kill().expect("SIGKILL the broker");
    assert!(!broker.child.wait().unwrap().success());
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .unwrap()
            .unwrap();
    }
    let acked_before = seen.lock().unwrap().acked.clone();
    drop(broker);

    let broker = spawn_binary(data_dir.path(), log_dir.path(), 2).await;
    seen.lock().unwrap().restarted = true;
    let workers: Vec<_> = (0..CRASH_WORKERS)
        .map(|_| {
            tokio::spawn(crash_worker(
                broker.addr,
                arn.clone(),
                seen.clone(),
                stop.clone(),
                true,
            ))
        })
        .collect();
    // Records in flight at the kill come back once their 2 s visibility ends.
    for _ in 0..3_000 {
        let done = {
            let log = seen.lock().unwrap();
            (0..CRASH_RECORDS).all(|n| {
                let d = format!("rec-{n}");
                log.acked.contains(&d) || log.unanswered.contains(&d)
            })
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .unwrap()
            .unwrap();
    }
    let log = seen.lock().unwrap();
    let settled = |d: &String| log.acked.contains(d) || log.unanswered.contains(d);
    assert_eq!(
        (0..CRASH_RECORDS)
            .map(|n| format!("rec-{n}"))
            .filter(|d| settled(d))
            .count(),
        CRASH_RECORDS,
        "every record is eventually acknowledged; missing e.g. {:?}; errors after the restart: {:?}",
        (0..CRASH_RECORDS)
            .map(|n| format!("rec-{n}"))
            .filter(|d| !settled(d))
            .take(5)
            .collect::<Vec<_>>(),
        &log.errors[..log.errors.len().min(5)]
    );
    let again: Vec<&String> = log
        .received_after
        .iter()
        .filter(|d| acked_before.contains(*d))
        .collect();
    assert!(
        again.is_empty(),
        "{} records acknowledged (200) before the kill were delivered again, e.g. {:?}",
        again.len(),
        &again[..again.len().min(5)]
    );
}

#[tokio::test]
async fn parent_shard_is_delivered_before_its_children() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_stream(&client, "resharded", 1).await;
    put(&client, "resharded", 15, "parent").await;
    client
        .split_shard()
        .stream_name("resharded")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    wait_active(&client, "resharded").await;
    put(&client, "resharded", 15, "child").await;
    client
        .update_stream_mode()
        .stream_arn(stream_arn("resharded"))
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_active(&client, "resharded").await;
    let arn = create_queue(addr, "work", "resharded", json!({})).await;
    let mut order = Vec::new();
    loop {
        let batch = receive(addr, &arn, json!({"Limit": 10})).await;
        if batch.is_empty() {
            break;
        }
        order.extend(batch.iter().map(data_of));
        ok(
            addr,
            "AcknowledgeQueueRecords",
            json!({"QueueARN": arn, "Entries": handles(&batch)}),
        )
        .await;
    }
    assert_eq!(order.len(), 30, "{order:?}");
    assert!(
        order[..15].iter().all(|d| d.starts_with("parent-")),
        "children started before their parent was finished: {order:?}"
    );
}

#[tokio::test]
async fn records_past_the_retention_period_are_not_delivered() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    put(&client, "od", 4, "old").await;
    let arn = create_queue(addr, "work", "od", json!({})).await;
    // Two received (in flight, then visible again), two never received.
    let first = receive(
        addr,
        &arn,
        json!({"Limit": 2, "VisibilityTimeoutSeconds": 0}),
    )
    .await;
    assert_eq!(first.len(), 2);
    // 24 hours and a minute later the stream's retention has dropped all four.
    h.broker()
        .clock()
        .advance_ms(24 * 3_600_000 + 60_000)
        .unwrap();
    assert!(receive(addr, &arn, json!({"Limit": 10})).await.is_empty());
    assert_eq!(h.broker().queues().get(&arn).unwrap().tracked_records(), 0);
    // Newer records are delivered as usual.
    put(&client, "od", 1, "new").await;
    let r = receive(addr, &arn, json!({})).await;
    assert_eq!(r.iter().map(data_of).collect::<Vec<_>>(), ["new-0"]);
}

#[tokio::test]
async fn a_busy_shard_does_not_starve_the_others() {
    let (client, h, _dir) = start_server().await;
    let addr = h.local_addr();
    create_on_demand(&client, "od").await;
    for i in 0..40 {
        client
            .put_record()
            .stream_name("od")
            .partition_key(format!("busy-{i}"))
            .explicit_hash_key("0")
            .data(blob(format!("busy-{i}")))
            .send()
            .await
            .unwrap();
    }
    client
        .put_record()
        .stream_name("od")
        .partition_key("quiet")
        .explicit_hash_key(u128::MAX.to_string())
        .data(blob("quiet"))
        .send()
        .await
        .unwrap();
    let arn = create_queue(addr, "work", "od", json!({})).await;
    let mut first_twenty = Vec::new();
    for _ in 0..2 {
        first_twenty.extend(
            receive(addr, &arn, json!({"Limit": 10}))
                .await
                .iter()
                .map(data_of),
        );
    }
    assert!(
        first_twenty.iter().any(|d| d == "quiet"),
        "the quiet shard waited behind the busy one: {first_twenty:?}"
    );
}
