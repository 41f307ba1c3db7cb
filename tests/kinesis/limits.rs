//! AWS's limits as the broker enforces them: per-shard write throttling (per-entry failures
//! in PutRecords), the account's shard quota, and the 10 MiB cap of one GetRecords call.

use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::common::*;

#[tokio::test]
async fn a_shard_over_its_write_rate_fails_entries_with_aws_error_and_stores_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // A fifth of AWS's rates: 200 records/s per shard, with one second of burst.
    let h = start_server_in(dir.path(), |c| c.throughput_multiplier = 0.2).await;
    let client = client_no_retry(h.local_addr());
    create_stream(&client, "hot", 1).await;
    let entries: Vec<_> = (0..500)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(blob(format!("{i}")))
                .build()
                .unwrap()
        })
        .collect();
    let out = client
        .put_records()
        .stream_name("hot")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let failed: Vec<usize> = out
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code().is_some())
        .map(|(i, _)| i)
        .collect();
    assert!(
        !failed.is_empty(),
        "500 records at once passed a 200 records/s shard"
    );
    assert!(
        failed.len() < 500,
        "nothing got through the burst allowance"
    );
    assert_eq!(out.failed_record_count(), Some(failed.len() as i32));
    for &i in &failed {
        let r = &out.records()[i];
        assert_eq!(
            r.error_code(),
            Some("ProvisionedThroughputExceededException"),
            "entry {i}"
        );
        assert_eq!(
            r.error_message(),
            Some(
                "Rate exceeded for shard shardId-000000000000 in stream hot under account 000000000000."
            ),
            "entry {i}"
        );
        assert_eq!(
            (r.shard_id(), r.sequence_number()),
            (None, None),
            "a failed entry has no sequence number"
        );
    }
    // Exactly the acknowledged entries are stored, in order.
    let acked: Vec<String> = out
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code().is_none())
        .map(|(i, _)| i.to_string())
        .collect();
    let stored: Vec<String> =
        read_shard(&client_for(h.local_addr()), "hot", "shardId-000000000000")
            .await
            .iter()
            .map(|r| String::from_utf8(data(r).to_vec()).unwrap())
            .collect();
    assert_eq!(stored, acked);

    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_put_record_over_the_shard_rate_is_provisioned_throughput_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    create_stream(&client_for(h.local_addr()), "cold", 1).await;
    h.shutdown().await.expect("clean shutdown");
    // Restarted at 0.01 records/s: after at most a burst of one record, the next token is
    // 100 s away, far longer than this test runs. (The multiplier scales the control-plane
    // rates too, hence the restart.)
    let h = start_server_in(dir.path(), |c| c.throughput_multiplier = 0.00001).await;
    let client = client_no_retry(h.local_addr());
    let mut throttled = None;
    for i in 0..3 {
        let res = client
            .put_record()
            .stream_name("cold")
            .partition_key("k")
            .data(blob(format!("x{i}")))
            .send()
            .await;
        if res.is_err() {
            throttled = Some(res);
            break;
        }
    }
    assert_error(
        throttled.expect("three PutRecord calls in a row passed a 0.01 records/s shard"),
        "ProvisionedThroughputExceededException",
        "Rate exceeded for shard shardId-000000000000 in stream cold under account 000000000000.",
    );
    let out = client
        .put_records()
        .stream_name("cold")
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(blob("y"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("PutRecords answers 200 with per-entry failures");
    assert_eq!(out.failed_record_count(), Some(1));
    assert_eq!(
        out.records()[0].error_code(),
        Some("ProvisionedThroughputExceededException")
    );
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn create_stream_over_the_account_shard_limit_is_limit_exceeded_with_aws_message() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |c| c.shard_limit = 5).await;
    let client = client_no_retry(h.local_addr());
    create_stream(&client, "three", 3).await;
    assert_error(
        client
            .create_stream()
            .stream_name("four")
            .shard_count(4)
            .send()
            .await,
        "LimitExceededException",
        "This request would exceed the shard limit for the account 000000000000 in us-east-1. \
         Current shard count for the account: 3. Limit: 5. \
         Number of additional shards that would have resulted from this request: 4. \
         Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) \
         for current limits and how to request higher limits.",
    );
    // Exactly up to the limit is fine.
    create_stream(&client, "two", 2).await;
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn one_get_records_call_returns_at_most_ten_mib() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |c| c.throughput_limits = false).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "wide", 1).await;
    let one_mib = 1024 * 1024 - 1; // plus the 1-byte partition key: exactly 1 MiB
    for i in 0..12u8 {
        client
            .put_record()
            .stream_name("wide")
            .partition_key("k")
            .data(blob(vec![i; one_mib]))
            .send()
            .await
            .unwrap();
    }
    let it = iterator(
        &client,
        "wide",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let first = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap();
    let bytes: usize = first.records().iter().map(|r| data(r).len()).sum();
    assert!(!first.records().is_empty());
    assert!(
        bytes <= 10 * 1024 * 1024,
        "one GetRecords returned {bytes} bytes"
    );
    assert!(
        first.records().len() < 12,
        "all 12 MiB came back in one call"
    );
    let rest = read_to_tip(
        &client,
        first.next_shard_iterator().unwrap().to_owned(),
        None,
    )
    .await;
    let all: Vec<u8> = first
        .records()
        .iter()
        .chain(rest.iter())
        .map(|r| data(r)[0])
        .collect();
    assert_eq!(all, (0..12).collect::<Vec<u8>>());
    h.shutdown().await.expect("clean shutdown");
}
