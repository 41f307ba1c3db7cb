//! Stream lifecycle: CREATING and DELETING states and what AWS answers while a stream is in
//! them. The broker is started with hour-long delays so the state cannot change during the
//! test: nothing depends on timing.

use std::time::Duration;

use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};

use crate::common::*;

/// Longer than any test runs (and the broker's maximum lifecycle delay, 10 minutes).
const LONG: Duration = Duration::from_secs(600);

#[tokio::test]
async fn a_creating_stream_is_described_but_rejects_reads_and_writes_as_aws_does() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |c| c.create_stream_delay = LONG).await;
    let client = client_for(h.local_addr());
    client
        .create_stream()
        .stream_name("slow")
        .shard_count(2)
        .send()
        .await
        .unwrap();

    let d = client
        .describe_stream()
        .stream_name("slow")
        .send()
        .await
        .unwrap();
    let d = d.stream_description().unwrap();
    assert_eq!(d.stream_status(), &StreamStatus::Creating);
    assert_eq!(d.stream_arn(), stream_arn("slow"));
    // AWS lists no shards until the stream is ACTIVE (AWS_BEHAVIOUR.md section 4).
    assert!(
        d.shards().is_empty(),
        "CREATING stream lists shards: {:?}",
        d.shards()
    );
    assert!(!d.has_more_shards());
    let s = client
        .describe_stream_summary()
        .stream_name("slow")
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.stream_description_summary().unwrap().stream_status(),
        &StreamStatus::Creating
    );
    assert_eq!(
        client.list_streams().send().await.unwrap().stream_names(),
        ["slow".to_owned()]
    );

    // AWS answers writes to a CREATING stream as if it did not exist (AWS_BEHAVIOUR.md section 4).
    assert_error(
        client
            .put_record()
            .stream_name("slow")
            .partition_key("a")
            .data(blob("x"))
            .send()
            .await,
        "ResourceNotFoundException",
        "Stream slow under account 000000000000 not found.",
    );
    let entry = aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
        .partition_key("a")
        .data(blob("x"))
        .build()
        .unwrap();
    assert_error(
        client
            .put_records()
            .stream_name("slow")
            .records(entry)
            .send()
            .await,
        "ResourceNotFoundException",
        "Stream slow under account 000000000000 not found.",
    );
    assert_error(
        client
            .get_shard_iterator()
            .stream_name("slow")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await,
        "ResourceNotFoundException",
        "Shard shardId-000000000000 in stream slow under account 000000000000 does not exist",
    );
    assert_error(
        client
            .create_stream()
            .stream_name("slow")
            .shard_count(1)
            .send()
            .await,
        "ResourceInUseException",
        "Stream slow under account 000000000000 already exists.",
    );
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_creating_stream_can_be_deleted_and_is_then_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |c| {
        c.create_stream_delay = LONG;
        c.delete_stream_delay = LONG;
    })
    .await;
    let client = client_for(h.local_addr());
    client
        .create_stream()
        .stream_name("brief")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    client
        .delete_stream()
        .stream_name("brief")
        .send()
        .await
        .unwrap();

    let s = client
        .describe_stream_summary()
        .stream_name("brief")
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.stream_description_summary().unwrap().stream_status(),
        &StreamStatus::Deleting
    );
    let d = client
        .describe_stream()
        .stream_name("brief")
        .send()
        .await
        .unwrap();
    let d = d.stream_description().unwrap();
    assert_eq!(d.stream_status(), &StreamStatus::Deleting);
    assert!(
        d.shards().is_empty(),
        "DELETING stream lists shards: {:?}",
        d.shards()
    );
    // AWS "might continue to accept" writes while DELETING (DeleteStream docs); if it
    // refuses, it is as for a missing stream.
    let res = client
        .put_record()
        .stream_name("brief")
        .partition_key("a")
        .data(blob("x"))
        .send()
        .await;
    if let Err(e) = res {
        use aws_sdk_kinesis::error::ProvideErrorMetadata;
        assert_eq!(
            (e.code(), e.message()),
            (
                Some("ResourceNotFoundException"),
                Some("Stream brief under account 000000000000 not found.")
            )
        );
    }
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn with_zero_delays_a_new_stream_is_active_at_once_and_a_deleted_one_is_gone() {
    let (client, h, _d) = start_server().await;
    client
        .create_stream()
        .stream_name("quick")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    wait_active(&client, "quick").await;
    client
        .delete_stream()
        .stream_name("quick")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "quick").await;
    h.shutdown().await.expect("clean shutdown");
}
