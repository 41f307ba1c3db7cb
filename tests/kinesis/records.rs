//! PutRecord, PutRecords, GetShardIterator (every type) and GetRecords: routing, ordering,
//! positions and pagination.

use std::time::Duration;

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::common::*;

fn entry(pk: &str, data: &[u8]) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(pk)
        .data(blob(data))
        .build()
        .unwrap()
}

fn entry_with_hash(pk: &str, data: &[u8], hash: &str) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(pk)
        .data(blob(data))
        .explicit_hash_key(hash)
        .build()
        .unwrap()
}

#[tokio::test]
async fn put_record_goes_to_the_shard_whose_range_holds_md5_of_the_partition_key() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "route", 4).await;
    for i in 0..64 {
        let pk = format!("key-{i}");
        let out = client
            .put_record()
            .stream_name("route")
            .partition_key(&pk)
            .data(blob(pk.clone()))
            .send()
            .await
            .unwrap();
        let want = shard_id(expected_shard_for(md5_hash_key(&pk), 4));
        assert_eq!(
            out.shard_id(),
            want,
            "partition key {pk} (md5 {:032x})",
            md5_hash_key(&pk)
        );
        seq(out.sequence_number());
    }
    // The keys AWS's own answers pin for 3 shards (AWS_BEHAVIOUR.md section 3).
    create_stream(&client, "route3", 3).await;
    for (pk, shard) in [("a", 0), ("b", 1), ("e", 2), ("f", 1)] {
        let out = client
            .put_record()
            .stream_name("route3")
            .partition_key(pk)
            .data(blob(""))
            .send()
            .await
            .unwrap();
        assert_eq!(out.shard_id(), shard_id(shard), "partition key {pk}");
    }
}

#[tokio::test]
async fn put_records_routes_every_entry_and_answers_in_request_order() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "batch", 4).await;
    let keys: Vec<String> = (0..200).map(|i| format!("pk{i}")).collect();
    let entries: Vec<_> = keys.iter().map(|k| entry(k, k.as_bytes())).collect();
    let out = client
        .put_records()
        .stream_name("batch")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
    assert_eq!(out.records().len(), keys.len());
    for (k, r) in keys.iter().zip(out.records()) {
        assert_eq!(r.error_code(), None);
        assert_eq!(
            r.shard_id(),
            Some(shard_id(expected_shard_for(md5_hash_key(k), 4)).as_str()),
            "{k}"
        );
        seq(r.sequence_number().unwrap());
    }
    // Reading back: each record where PutRecords said, with the acknowledged sequence number.
    for shard in 0..4 {
        let recs = read_shard(&client, "batch", &shard_id(shard)).await;
        let want: Vec<(String, String)> = keys
            .iter()
            .zip(out.records())
            .filter(|(_, r)| r.shard_id() == Some(shard_id(shard).as_str()))
            .map(|(k, r)| (k.clone(), r.sequence_number().unwrap().to_owned()))
            .collect();
        let got: Vec<(String, String)> = recs
            .iter()
            .map(|r| (pk(r).to_owned(), r.sequence_number().to_owned()))
            .collect();
        assert_eq!(got, want, "shard {shard}");
        for r in &recs {
            assert_eq!(data(r), pk(r).as_bytes());
        }
    }
}

#[tokio::test]
async fn explicit_hash_key_overrides_the_partition_key_at_range_boundaries() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "ehk", 3).await;
    let ranges = expected_ranges(3);
    let cases = [
        (0u128, 0usize),
        (ranges[0].1, 0),
        (ranges[1].0, 1),
        (ranges[1].1, 1),
        (ranges[2].0, 2),
        (u128::MAX, 2),
    ];
    for (hash, shard) in cases {
        // Partition key "a" alone would go to shard 0.
        let out = client
            .put_record()
            .stream_name("ehk")
            .partition_key("a")
            .explicit_hash_key(hash.to_string())
            .data(blob("x"))
            .send()
            .await
            .unwrap();
        assert_eq!(out.shard_id(), shard_id(shard), "ExplicitHashKey {hash}");
    }
    let entries = cases
        .iter()
        .map(|(h, _)| entry_with_hash("a", b"y", &h.to_string()))
        .collect();
    let out = client
        .put_records()
        .stream_name("ehk")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let got: Vec<&str> = out
        .records()
        .iter()
        .map(|r| r.shard_id().unwrap())
        .collect();
    let want: Vec<String> = cases.iter().map(|(_, s)| shard_id(*s)).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn sequence_numbers_increase_strictly_within_a_shard_across_calls_and_batches() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "order", 2).await;
    let mut last: [Option<Seq>; 2] = [None, None];
    for round in 0..20 {
        let out = client
            .put_record()
            .stream_name("order")
            .partition_key(format!("r{round}"))
            .data(blob(vec![round as u8]))
            .send()
            .await
            .unwrap();
        let shard: usize = if out.shard_id() == shard_id(0) { 0 } else { 1 };
        let s = seq(out.sequence_number());
        if let Some(prev) = &last[shard] {
            assert!(&s > prev, "PutRecord {round}: {s} not above {prev}");
        }
        last[shard] = Some(s);

        let entries = (0..10)
            .map(|i| entry(&format!("r{round}-{i}"), b"z"))
            .collect();
        let out = client
            .put_records()
            .stream_name("order")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        for r in out.records() {
            let shard: usize = if r.shard_id() == Some(shard_id(0).as_str()) {
                0
            } else {
                1
            };
            let s = seq(r.sequence_number().unwrap());
            if let Some(prev) = &last[shard] {
                assert!(&s > prev, "PutRecords round {round}: {s} not above {prev}");
            }
            last[shard] = Some(s);
        }
    }
    // Sequence numbers are unique in the stream.
    let mut all = Vec::new();
    for shard in 0..2 {
        all.extend(
            read_shard(&client, "order", &shard_id(shard))
                .await
                .iter()
                .map(|r| seq(r.sequence_number())),
        );
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "duplicate sequence numbers across shards");
    assert_eq!(n, 20 * 11);
}

#[tokio::test]
async fn same_partition_key_records_are_read_back_in_write_order() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "fifo", 3).await;
    for i in 0..30u32 {
        client
            .put_record()
            .stream_name("fifo")
            .partition_key("user-7")
            .data(blob(i.to_be_bytes()))
            .send()
            .await
            .unwrap();
    }
    let entries = (30..60u32)
        .map(|i| entry("user-7", &i.to_be_bytes()))
        .collect();
    client
        .put_records()
        .stream_name("fifo")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();

    let shard = shard_id(expected_shard_for(md5_hash_key("user-7"), 3));
    let recs = read_shard(&client, "fifo", &shard).await;
    let got: Vec<u32> = recs
        .iter()
        .map(|r| u32::from_be_bytes(data(r).try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
}

#[tokio::test]
async fn get_records_returns_data_key_sequence_number_and_arrival_time() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "fields", 1).await;
    let before = std::time::SystemTime::now();
    let payload: Vec<u8> = (0..=255u8).collect();
    let put = client
        .put_record()
        .stream_name("fields")
        .partition_key("pk")
        .data(blob(payload.clone()))
        .send()
        .await
        .unwrap();
    let empty = client
        .put_record()
        .stream_name("fields")
        .partition_key("pk2")
        .data(blob(Vec::new()))
        .send()
        .await
        .unwrap();
    let after = std::time::SystemTime::now();

    let recs = read_shard(&client, "fields", "shardId-000000000000").await;
    assert_eq!(recs.len(), 2);
    assert_eq!(
        data(&recs[0]),
        payload.as_slice(),
        "binary data round-trips through base64"
    );
    assert_eq!(pk(&recs[0]), "pk");
    assert_eq!(recs[0].sequence_number(), put.sequence_number());
    assert_eq!(data(&recs[1]), b"", "empty data is a valid record");
    assert_eq!(recs[1].sequence_number(), empty.sequence_number());
    for r in &recs {
        let ms = arrival_ms(r);
        let lo = before
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 1000;
        let hi = after
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + 1000;
        assert!(
            lo <= ms && ms <= hi,
            "arrival {ms} outside the time of the test [{lo}, {hi}]"
        );
    }
}

#[tokio::test]
async fn trim_horizon_reads_from_the_first_record_and_latest_only_what_follows() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "pos", 1).await;
    let shard = "shardId-000000000000";
    let empty_start = iterator(&client, "pos", shard, ShardIteratorType::TrimHorizon).await;
    let out = client
        .get_records()
        .shard_iterator(&empty_start)
        .send()
        .await
        .unwrap();
    assert!(out.records().is_empty());
    assert_eq!(out.millis_behind_latest(), Some(0));
    let continue_from = out
        .next_shard_iterator()
        .expect("NextShardIterator on an open shard")
        .to_owned();

    for i in 0..3 {
        client
            .put_record()
            .stream_name("pos")
            .partition_key("k")
            .data(blob(format!("old{i}")))
            .send()
            .await
            .unwrap();
    }
    let latest = iterator(&client, "pos", shard, ShardIteratorType::Latest).await;
    assert!(
        client
            .get_records()
            .shard_iterator(&latest)
            .send()
            .await
            .unwrap()
            .records()
            .is_empty(),
        "LATEST must not return records written before it"
    );
    for i in 0..2 {
        client
            .put_record()
            .stream_name("pos")
            .partition_key("k")
            .data(blob(format!("new{i}")))
            .send()
            .await
            .unwrap();
    }
    let got: Vec<Vec<u8>> = read_to_tip(&client, latest, None)
        .await
        .iter()
        .map(|r| data(r).to_vec())
        .collect();
    assert_eq!(got, vec![b"new0".to_vec(), b"new1".to_vec()]);

    let all = read_shard(&client, "pos", shard).await;
    let got: Vec<&[u8]> = all.iter().map(data).collect();
    assert_eq!(got, vec![&b"old0"[..], b"old1", b"old2", b"new0", b"new1"]);

    // The NextShardIterator of the empty read continues from where that read stopped.
    let got = read_to_tip(&client, continue_from, None).await;
    assert_eq!(got.len(), 5);
}

#[tokio::test]
async fn at_and_after_sequence_number_start_at_and_just_after_the_record() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "seqpos", 2).await;
    let shard = shard_id(expected_shard_for(md5_hash_key("same"), 2));
    let mut seqs = Vec::new();
    for i in 0..6 {
        let out = client
            .put_record()
            .stream_name("seqpos")
            .partition_key("same")
            .data(blob(format!("r{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(out.shard_id(), shard);
        seqs.push(out.sequence_number().to_owned());
    }
    for k in 0..6 {
        let at = client
            .get_shard_iterator()
            .stream_name("seqpos")
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&seqs[k])
            .send()
            .await
            .unwrap();
        let recs = read_to_tip(&client, at.shard_iterator().unwrap().to_owned(), None).await;
        let got: Vec<&str> = recs.iter().map(|r| r.sequence_number()).collect();
        assert_eq!(
            got,
            seqs[k..].iter().map(String::as_str).collect::<Vec<_>>(),
            "AT_SEQUENCE_NUMBER {k}"
        );

        let after = client
            .get_shard_iterator()
            .stream_name("seqpos")
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(&seqs[k])
            .send()
            .await
            .unwrap();
        let recs = read_to_tip(&client, after.shard_iterator().unwrap().to_owned(), None).await;
        let got: Vec<&str> = recs.iter().map(|r| r.sequence_number()).collect();
        assert_eq!(
            got,
            seqs[k + 1..].iter().map(String::as_str).collect::<Vec<_>>(),
            "AFTER_SEQUENCE_NUMBER {k}"
        );
    }
}

#[tokio::test]
async fn at_timestamp_starts_at_the_first_record_that_arrived_at_or_after_it() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "ts", 1).await;
    let shard = "shardId-000000000000";
    for i in 0..5 {
        client
            .put_record()
            .stream_name("ts")
            .partition_key("k")
            .data(blob(format!("a{i}")))
            .send()
            .await
            .unwrap();
        // Spread arrival times so that several distinct timestamps exist (not asserted on).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = read_shard(&client, "ts", shard).await;
    let arrivals: Vec<i64> = all.iter().map(arrival_ms).collect();

    let at = |ms: i64| {
        let client = client.clone();
        async move {
            let it = client
                .get_shard_iterator()
                .stream_name("ts")
                .shard_id(shard)
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(ms))
                .send()
                .await
                .unwrap();
            read_to_tip(&client, it.shard_iterator().unwrap().to_owned(), None).await
        }
    };
    for (k, &ts) in arrivals.iter().enumerate() {
        let first = arrivals.iter().position(|&a| a >= ts).unwrap();
        let got: Vec<String> = at(ts)
            .await
            .iter()
            .map(|r| r.sequence_number().to_owned())
            .collect();
        let want: Vec<String> = all[first..]
            .iter()
            .map(|r| r.sequence_number().to_owned())
            .collect();
        assert_eq!(got, want, "AT_TIMESTAMP of record {k} ({ts} ms)");
    }
    // Before every record: everything.
    assert_eq!(at(arrivals[0] - 60_000).await.len(), all.len());
    // After every record (but not in the future): nothing yet, then what is written next.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let last = *arrivals.last().unwrap();
    if now_ms > last {
        let it = client
            .get_shard_iterator()
            .stream_name("ts")
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from_millis(last + 1))
            .send()
            .await
            .unwrap();
        let it = it.shard_iterator().unwrap().to_owned();
        client
            .put_record()
            .stream_name("ts")
            .partition_key("k")
            .data(blob("late"))
            .send()
            .await
            .unwrap();
        let got = read_to_tip(&client, it, None).await;
        assert_eq!(got.iter().map(data).collect::<Vec<_>>(), vec![&b"late"[..]]);
    }
}

#[tokio::test]
async fn get_records_limit_pages_and_an_iterator_can_be_reused() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "limit", 1).await;
    let entries = (0..25u8).map(|i| entry("k", &[i])).collect();
    client
        .put_records()
        .stream_name("limit")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();

    let it = iterator(
        &client,
        "limit",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let first = client
        .get_records()
        .shard_iterator(&it)
        .limit(10)
        .send()
        .await
        .unwrap();
    assert_eq!(
        first
            .records()
            .iter()
            .map(|r| data(r)[0])
            .collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(first.millis_behind_latest().is_some());
    let next = first.next_shard_iterator().unwrap().to_owned();

    // An iterator is a position: reading it again gives the same records.
    let again = client
        .get_records()
        .shard_iterator(&it)
        .limit(3)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again
            .records()
            .iter()
            .map(|r| data(r)[0])
            .collect::<Vec<_>>(),
        vec![0, 1, 2]
    );

    let rest = read_to_tip(&client, next, Some(7)).await;
    assert_eq!(
        rest.iter().map(|r| data(r)[0]).collect::<Vec<_>>(),
        (10..25).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_loose_shard_id_names_the_same_shard_as_aws_resolves_it() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "loose", 2).await;
    client
        .put_record()
        .stream_name("loose")
        .partition_key("p")
        .explicit_hash_key(u128::MAX.to_string())
        .data(blob("in-1"))
        .send()
        .await
        .unwrap();
    // AWS resolves "shardId-1" to shardId-000000000001 (AWS_BEHAVIOUR.md section 3).
    let it = iterator(
        &client,
        "loose",
        "shardId-1",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let recs = read_to_tip(&client, it, None).await;
    assert_eq!(
        recs.iter().map(data).collect::<Vec<_>>(),
        vec![&b"in-1"[..]]
    );
}

#[tokio::test]
async fn shard_iterators_fit_the_512_character_limit_of_the_model() {
    let (client, _h, _d) = start_server().await;
    let name = "n".repeat(128);
    create_stream(&client, &name, 1).await;
    let it = iterator(
        &client,
        &name,
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    assert!(
        !it.is_empty() && it.len() <= 512,
        "iterator of {} chars",
        it.len()
    );
    let out = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap();
    let next = out.next_shard_iterator().unwrap();
    assert!(
        next.len() <= 512,
        "NextShardIterator of {} chars",
        next.len()
    );
}

#[tokio::test]
async fn millis_behind_latest_is_positive_until_the_reader_catches_up() {
    let (client, h, _d) = start_server().await;
    create_stream(&client, "lag", 1).await;
    client
        .put_record()
        .stream_name("lag")
        .partition_key("a")
        .data(blob("old"))
        .send()
        .await
        .unwrap();
    // Ten seconds pass on the broker's clock (no sleeping) before the next write.
    h.broker().clock().advance_ms(10_000).unwrap();
    client
        .put_record()
        .stream_name("lag")
        .partition_key("a")
        .data(blob("new"))
        .send()
        .await
        .unwrap();

    let it = iterator(
        &client,
        "lag",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let first = client
        .get_records()
        .shard_iterator(&it)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        first.records().iter().map(data).collect::<Vec<_>>(),
        vec![&b"old"[..]]
    );
    let behind = first.millis_behind_latest().expect("MillisBehindLatest");
    assert!(
        behind > 0,
        "a reader with a record 10 s newer still to read is {behind} ms behind"
    );

    let second = client
        .get_records()
        .shard_iterator(first.next_shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.records().iter().map(data).collect::<Vec<_>>(),
        vec![&b"new"[..]]
    );
    assert_eq!(second.millis_behind_latest(), Some(0), "caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_to_one_shard_get_unique_increasing_sequence_numbers() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "busy", 1).await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..25 {
                    let out = client
                        .put_record()
                        .stream_name("busy")
                        .partition_key(format!("w{w}"))
                        .data(blob(format!("w{w}-{i}")))
                        .send()
                        .await
                        .unwrap();
                    acked.push((format!("w{w}-{i}"), out.sequence_number().to_owned()));
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for w in writers {
        let mine = w.await.unwrap();
        // Each writer waited for its acknowledgement before sending the next record.
        for pair in mine.windows(2) {
            assert!(seq(&pair[0].1) < seq(&pair[1].1), "{pair:?}");
        }
        acked.extend(mine);
    }
    let recs = read_shard(&client, "busy", "shardId-000000000000").await;
    let got: Vec<(String, String)> = recs
        .iter()
        .map(|r| {
            (
                String::from_utf8(data(r).to_vec()).unwrap(),
                r.sequence_number().to_owned(),
            )
        })
        .collect();
    acked.sort_by_key(|(_, s)| seq(s));
    assert_eq!(
        got, acked,
        "the shard holds exactly the acknowledged records in sequence-number order"
    );
}
