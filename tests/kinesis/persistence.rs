//! Restart persistence: streams, shards, records, iterators and the next sequence numbers
//! survive a clean shutdown and start on the same data directory.

use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};

use crate::common::*;

#[tokio::test]
async fn records_and_streams_survive_a_restart_and_sequence_numbers_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "durable", 3).await;
    create_stream(&client, "other", 1).await;
    create_stream(&client, "dropped", 1).await;
    client
        .delete_stream()
        .stream_name("dropped")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "dropped").await;

    let entries: Vec<_> = (0..300)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(blob(format!("v{i}")))
                .build()
                .unwrap()
        })
        .collect();
    client
        .put_records()
        .stream_name("durable")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let mut before = Vec::new();
    for s in 0..3 {
        before.push(read_shard(&client, "durable", &shard_id(s)).await);
    }
    let shards_before = list_all_shards(&client, "durable").await;
    let arn_before = client
        .describe_stream_summary()
        .stream_name("durable")
        .send()
        .await
        .unwrap();
    let iter_before = iterator(
        &client,
        "durable",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    assert_eq!(
        client.list_streams().send().await.unwrap().stream_names(),
        ["durable".to_owned(), "other".to_owned()],
        "streams after restart"
    );
    let arn_after = client
        .describe_stream_summary()
        .stream_name("durable")
        .send()
        .await
        .unwrap();
    let (b, a) = (
        arn_before.stream_description_summary().unwrap(),
        arn_after.stream_description_summary().unwrap(),
    );
    assert_eq!(a.stream_status(), &StreamStatus::Active);
    assert_eq!(a.stream_arn(), b.stream_arn());
    assert_eq!(a.stream_creation_timestamp(), b.stream_creation_timestamp());
    assert_eq!(
        list_all_shards(&client, "durable").await,
        shards_before,
        "shards after restart"
    );

    for (s, records) in before.iter().enumerate() {
        let after = read_shard(&client, "durable", &shard_id(s)).await;
        assert_eq!(&after, records, "records of shard {s} after restart");
    }
    // An iterator issued before the restart is still valid (within its 5 minutes).
    let again = read_to_tip(&client, iter_before, None).await;
    assert_eq!(again, before[0]);

    // New writes get larger sequence numbers than anything before the restart.
    for (s, old) in before.iter().enumerate() {
        let hash = expected_ranges(3)[s].0;
        let out = client
            .put_record()
            .stream_name("durable")
            .partition_key("new")
            .explicit_hash_key(hash.to_string())
            .data(blob("after-restart"))
            .send()
            .await
            .unwrap();
        let max_before = old.iter().map(|r| seq(r.sequence_number())).max().unwrap();
        assert!(
            seq(out.sequence_number()) > max_before,
            "shard {s}: new sequence number {} not above {max_before}",
            out.sequence_number()
        );
        let recs = read_shard(&client, "durable", &shard_id(s)).await;
        assert_eq!(recs.len(), old.len() + 1);
        assert_eq!(data(recs.last().unwrap()), b"after-restart");
    }
    h.shutdown().await.expect("clean shutdown");

    // And a second restart keeps all of it.
    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    let total: usize = {
        let mut n = 0;
        for s in 0..3 {
            n += read_shard(&client, "durable", &shard_id(s)).await.len();
        }
        n
    };
    assert_eq!(total, 303);
    assert_error(
        client.describe_stream().stream_name("dropped").send().await,
        "ResourceNotFoundException",
        "Stream dropped under account 000000000000 not found.",
    );
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_stream_created_before_restart_can_be_deleted_and_recreated_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "cycle", 2).await;
    client
        .put_record()
        .stream_name("cycle")
        .partition_key("a")
        .data(blob("old"))
        .send()
        .await
        .unwrap();
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    client
        .delete_stream()
        .stream_name("cycle")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "cycle").await;
    create_stream(&client, "cycle", 1).await;
    assert!(
        read_shard(&client, "cycle", &shard_id(0)).await.is_empty(),
        "old records reappeared"
    );
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    assert_eq!(list_all_shards(&client, "cycle").await.len(), 1);
    assert!(
        read_shard(&client, "cycle", &shard_id(0)).await.is_empty(),
        "old records reappeared after restart"
    );
    h.shutdown().await.expect("clean shutdown");
}
