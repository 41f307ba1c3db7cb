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

#[tokio::test]
async fn records_spanning_many_small_segments_survive_restart_and_seek_by_position() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest segment the broker accepts, so a few hundred KiB roll many segments.
    let small = |c: &mut kinesis_broker::Config| {
        c.segment_bytes = kinesis_broker::config::MIN_SEGMENT_BYTES
    };
    let h = start_server_in(dir.path(), small).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "rolled", 1).await;
    let mut acked = Vec::new();
    for batch in 0..12 {
        let entries: Vec<_> = (0..50)
            .map(|i| {
                let n = batch * 50 + i;
                PutRecordsRequestEntry::builder()
                    .partition_key("k")
                    .data(blob(vec![(n % 251) as u8; 1000 + n]))
                    .build()
                    .unwrap()
            })
            .collect();
        acked.extend(
            put_all(&client, "rolled", entries)
                .await
                .into_iter()
                .map(|(_, s)| s),
        );
    }
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), small).await;
    let client = client_for(h.local_addr());
    let recs = read_shard(&client, "rolled", &shard_id(0)).await;
    let got: Vec<&str> = recs.iter().map(|r| r.sequence_number()).collect();
    assert_eq!(got, acked.iter().map(String::as_str).collect::<Vec<_>>());
    for (n, r) in recs.iter().enumerate() {
        assert_eq!(
            data(r),
            vec![(n % 251) as u8; 1000 + n].as_slice(),
            "record {n} corrupted"
        );
    }
    // Seeks land in the middle of old segments.
    for k in [1usize, 99, 300, 598] {
        let it = client
            .get_shard_iterator()
            .stream_name("rolled")
            .shard_id(shard_id(0))
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&acked[k])
            .send()
            .await
            .unwrap();
        let out = client
            .get_records()
            .shard_iterator(it.shard_iterator().unwrap())
            .limit(2)
            .send()
            .await
            .unwrap();
        let got: Vec<&str> = out.records().iter().map(|r| r.sequence_number()).collect();
        assert_eq!(
            got,
            vec![acked[k].as_str(), acked[k + 1].as_str()],
            "AT_SEQUENCE_NUMBER {k}"
        );
    }
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn page_cache_durability_keeps_records_across_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let page_cache = |c: &mut kinesis_broker::Config| {
        c.durability = kinesis_broker::config::DurabilityMode::PageCache
    };
    let h = start_server_in(dir.path(), page_cache).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "pc", 2).await;
    let entries: Vec<_> = (0..100)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(blob(format!("v{i}")))
                .build()
                .unwrap()
        })
        .collect();
    put_all(&client, "pc", entries).await;
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), page_cache).await;
    let client = client_for(h.local_addr());
    let mut n = 0;
    for s in 0..2 {
        n += read_shard(&client, "pc", &shard_id(s)).await.len();
    }
    assert_eq!(n, 100);
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn streams_named_in_the_configuration_exist_at_start_and_keep_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let preset = |c: &mut kinesis_broker::Config| {
        c.create_streams = vec![
            kinesis_broker::config::StreamSpec {
                name: "preset".into(),
                shard_count: 3,
            },
            kinesis_broker::config::StreamSpec {
                name: "single".into(),
                shard_count: 1,
            },
        ]
    };
    let h = start_server_in(dir.path(), preset).await;
    let client = client_for(h.local_addr());
    wait_active(&client, "preset").await;
    wait_active(&client, "single").await;
    assert_eq!(list_all_shards(&client, "preset").await.len(), 3);
    client
        .put_record()
        .stream_name("preset")
        .partition_key("a")
        .data(blob("kept"))
        .send()
        .await
        .unwrap();
    h.shutdown().await.expect("clean shutdown");

    // Starting again with the same list neither fails nor recreates (and so empties) them.
    let h = start_server_in(dir.path(), preset).await;
    let client = client_for(h.local_addr());
    wait_active(&client, "preset").await;
    let mut n = 0;
    for s in 0..3 {
        n += read_shard(&client, "preset", &shard_id(s)).await.len();
    }
    assert_eq!(n, 1, "the pre-created stream lost its record on restart");
    h.shutdown().await.expect("clean shutdown");
}
