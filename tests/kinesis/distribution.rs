//! UpdateStreamRecordDistributionStrategy (issue 18): AUTO spreads records evenly over the
//! open shards whatever keys producers send, USER_PARTITION_KEY routes by key again, the
//! setting exists on on-demand streams only and survives a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, RecordDistributionStrategy, StreamMode, StreamModeDetails,
};

use crate::common::*;

/// POSTs one Kinesis JSON request as bytes; returns the status and the whole answer text.
async fn raw_call(addr: SocketAddr, operation: &str, body: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: Kinesis_20131202.{operation}\r\n\
             Content-Type: application/x-amz-json-1.1\r\nX-Amz-Date: 20261125T000000Z\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("answer within 30 s")
        .expect("HTTP exchange");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {text}"));
    (status, text)
}

async fn create_on_demand(client: &aws_sdk_kinesis::Client, name: &str) {
    client
        .create_stream()
        .stream_name(name)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream {name}: {}", describe_err(&e)));
    wait_active(client, name).await;
}

async fn set_strategy(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    strategy: RecordDistributionStrategy,
) {
    client
        .update_stream_record_distribution_strategy()
        .stream_arn(stream_arn(name))
        .record_distribution_strategy(strategy)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "UpdateStreamRecordDistributionStrategy: {}",
                describe_err(&e)
            )
        });
}

async fn strategy_of(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Option<RecordDistributionStrategy> {
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .record_distribution_strategy()
        .cloned()
}

/// Writes `n` records that all carry the same partition key and an explicit hash key of
/// shard 0; returns how many landed on each shard.
async fn put_same_key(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    n: usize,
) -> BTreeMap<String, usize> {
    let entries = (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .data(blob(format!("r{i}")))
                .partition_key("same-key")
                .explicit_hash_key("0")
                .build()
                .unwrap()
        })
        .collect();
    let mut per_shard = BTreeMap::new();
    for (shard, _) in put_all(client, name, entries).await {
        *per_shard.entry(shard).or_default() += 1;
    }
    per_shard
}

#[tokio::test]
async fn auto_spreads_evenly_ignoring_keys_and_switching_back_routes_by_key() {
    let (client, _h, _dir) = start_server().await;
    create_on_demand(&client, "auto").await;
    assert_eq!(
        strategy_of(&client, "auto").await,
        Some(RecordDistributionStrategy::UserPartitionKey),
        "the default strategy of an on-demand stream"
    );
    set_strategy(&client, "auto", RecordDistributionStrategy::Auto).await;
    assert_eq!(
        strategy_of(&client, "auto").await,
        Some(RecordDistributionStrategy::Auto)
    );

    let spread = put_same_key(&client, "auto", 400).await;
    let expected: BTreeMap<String, usize> = (0..4).map(|i| (shard_id(i), 100)).collect();
    assert_eq!(
        spread, expected,
        "one key, one hash key, four shards evenly"
    );

    // Without a partition key: accepted and spread too.
    let mut keyless = BTreeMap::<String, usize>::new();
    for i in 0..8 {
        let out = client
            .put_record()
            .stream_name("auto")
            .data(blob(format!("keyless{i}")))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRecord without key: {}", describe_err(&e)));
        *keyless.entry(out.shard_id().to_owned()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..4).map(|i| (shard_id(i), 2)).collect();
    assert_eq!(keyless, expected);
    let out = client
        .put_records()
        .stream_name("auto")
        .records(
            PutRecordsRequestEntry::builder()
                .data(blob("no key in a batch"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutRecords without key: {}", describe_err(&e)));
    assert_eq!(out.failed_record_count(), Some(0));
    let keyless_read: Vec<_> = {
        let mut all = Vec::new();
        for i in 0..4 {
            all.extend(read_shard(&client, "auto", &shard_id(i)).await);
        }
        all.into_iter()
            .filter(|r| data(r).starts_with(b"keyless"))
            .collect()
    };
    assert_eq!(keyless_read.len(), 8);
    assert!(keyless_read.iter().all(|r| pk(r).is_empty()));

    // AUTO keeps no per-key order, so PutRecord's ordering parameter is refused.
    let seq = client
        .put_record()
        .stream_name("auto")
        .partition_key("k")
        .data(blob("x"))
        .send()
        .await
        .unwrap()
        .sequence_number()
        .to_owned();
    assert_error_prefix(
        client
            .put_record()
            .stream_name("auto")
            .partition_key("k")
            .data(blob("y"))
            .sequence_number_for_ordering(seq)
            .send()
            .await,
        "InvalidArgumentException",
        "SequenceNumberForOrdering cannot be used",
    );

    // Back to partition keys: one key, one shard; a missing key is refused again.
    set_strategy(
        &client,
        "auto",
        RecordDistributionStrategy::UserPartitionKey,
    )
    .await;
    assert_eq!(
        strategy_of(&client, "auto").await,
        Some(RecordDistributionStrategy::UserPartitionKey)
    );
    let entries = (0..40)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .data(blob(format!("k{i}")))
                .partition_key("same-key")
                .build()
                .unwrap()
        })
        .collect();
    let shards: std::collections::BTreeSet<String> = put_all(&client, "auto", entries)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let owner = shard_id(expected_shard_for(md5_hash_key("same-key"), 4));
    assert_eq!(shards, [owner].into_iter().collect());
    assert_error(
        client
            .put_record()
            .stream_name("auto")
            .data(blob("no key"))
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value null at 'partitionKey' failed to satisfy constraint: Member must not be null",
    );
}

#[tokio::test]
async fn the_strategy_is_an_on_demand_setting_and_its_input_is_validated() {
    let (client, h, _dir) = start_server().await;
    create_stream(&client, "prov", 2).await;
    assert_eq!(
        strategy_of(&client, "prov").await,
        None,
        "only present for on-demand streams"
    );
    for strategy in [
        RecordDistributionStrategy::Auto,
        RecordDistributionStrategy::UserPartitionKey,
    ] {
        assert_error_prefix(
            client
                .update_stream_record_distribution_strategy()
                .stream_arn(stream_arn("prov"))
                .record_distribution_strategy(strategy)
                .send()
                .await,
            "InvalidArgumentException",
            "Stream prov under account 000000000000 is in PROVISIONED mode",
        );
    }

    create_on_demand(&client, "od").await;
    assert_error(
        client
            .update_stream_record_distribution_strategy()
            .stream_arn(stream_arn("od"))
            .record_distribution_strategy(RecordDistributionStrategy::from("SOMETIMES"))
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value 'SOMETIMES' at 'recordDistributionStrategy' failed to satisfy constraint: Member must satisfy enum value set: [AUTO, USER_PARTITION_KEY]",
    );
    // The SDK refuses to send without the ARN, so this one goes over raw HTTP.
    let (status, answer) = raw_call(
        h.local_addr(),
        "UpdateStreamRecordDistributionStrategy",
        r#"{"RecordDistributionStrategy":"AUTO"}"#,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("ValidationException")
            && answer.contains(
                "Value null at 'streamARN' failed to satisfy constraint: Member must not be null"
            ),
        "{answer}"
    );
    assert_error_prefix(
        client
            .update_stream_record_distribution_strategy()
            .stream_arn(stream_arn("missing"))
            .record_distribution_strategy(RecordDistributionStrategy::Auto)
            .send()
            .await,
        "ResourceNotFoundException",
        "Stream missing under account 000000000000 not found",
    );

    // An AUTO stream cannot go PROVISIONED (it would have no strategy there) until set back.
    set_strategy(&client, "od", RecordDistributionStrategy::Auto).await;
    let to_provisioned = || {
        client
            .update_stream_mode()
            .stream_arn(stream_arn("od"))
            .stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::Provisioned)
                    .build()
                    .unwrap(),
            )
            .send()
    };
    assert_error_prefix(
        to_provisioned().await,
        "InvalidArgumentException",
        "Stream od under account 000000000000 uses the AUTO record distribution strategy",
    );
    set_strategy(&client, "od", RecordDistributionStrategy::UserPartitionKey).await;
    to_provisioned()
        .await
        .unwrap_or_else(|e| panic!("UpdateStreamMode: {}", describe_err(&e)));
    wait_active(&client, "od").await;
    assert_eq!(strategy_of(&client, "od").await, None);
}

#[tokio::test]
async fn the_strategy_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    create_on_demand(&client, "kept").await;
    create_on_demand(&client, "default").await;
    set_strategy(&client, "kept", RecordDistributionStrategy::Auto).await;
    h.shutdown().await.expect("clean shutdown");

    let h = start_server_in(dir.path(), |_| {}).await;
    let client = client_for(h.local_addr());
    assert_eq!(
        strategy_of(&client, "kept").await,
        Some(RecordDistributionStrategy::Auto)
    );
    assert_eq!(
        strategy_of(&client, "default").await,
        Some(RecordDistributionStrategy::UserPartitionKey)
    );
    let spread = put_same_key(&client, "kept", 40).await;
    let expected: BTreeMap<String, usize> = (0..4).map(|i| (shard_id(i), 10)).collect();
    assert_eq!(spread, expected, "still AUTO after the restart");
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn create_stream_sets_the_strategy_on_demand_only() {
    let (client, _h, _dir) = start_server().await;
    client
        .create_stream()
        .stream_name("born-auto")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .record_distribution_strategy(RecordDistributionStrategy::Auto)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStream: {}", describe_err(&e)));
    wait_active(&client, "born-auto").await;
    assert_eq!(
        strategy_of(&client, "born-auto").await,
        Some(RecordDistributionStrategy::Auto)
    );
    let spread = put_same_key(&client, "born-auto", 40).await;
    let expected: BTreeMap<String, usize> = (0..4).map(|i| (shard_id(i), 10)).collect();
    assert_eq!(spread, expected);

    assert_error_prefix(
        client
            .create_stream()
            .stream_name("prov-auto")
            .shard_count(2)
            .record_distribution_strategy(RecordDistributionStrategy::Auto)
            .send()
            .await,
        "InvalidArgumentException",
        "Stream prov-auto under account 000000000000 is in PROVISIONED mode",
    );
    assert_error_prefix(
        client
            .describe_stream_summary()
            .stream_name("prov-auto")
            .send()
            .await,
        "ResourceNotFoundException",
        "Stream prov-auto under account 000000000000 not found",
    );
}
