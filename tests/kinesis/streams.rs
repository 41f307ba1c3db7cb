//! CreateStream, DeleteStream, DescribeStream, DescribeStreamSummary, ListStreams, ListShards:
//! shapes, identifiers, hash ranges, pagination and their AWS errors.

use std::collections::BTreeSet;

use aws_sdk_kinesis::types::{StreamMode, StreamStatus};

use crate::common::*;

#[tokio::test]
async fn describe_stream_reports_arn_status_shard_ids_and_even_hash_ranges() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "orders", 3).await;

    let out = client
        .describe_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let d = out.stream_description().expect("StreamDescription");
    assert_eq!(d.stream_name(), "orders");
    assert_eq!(d.stream_arn(), stream_arn("orders"));
    assert_eq!(d.stream_status(), &StreamStatus::Active);
    assert!(!d.has_more_shards());
    assert_eq!(d.retention_period_hours(), 24);
    assert_eq!(
        d.stream_mode_details().map(|m| m.stream_mode().clone()),
        Some(StreamMode::Provisioned)
    );

    // The exact strings AWS returns for a 3-shard stream (AWS_BEHAVIOUR.md section 3).
    let expected = [
        (
            "shardId-000000000000",
            "0",
            "113427455640312821154458202477256070484",
        ),
        (
            "shardId-000000000001",
            "113427455640312821154458202477256070485",
            "226854911280625642308916404954512140969",
        ),
        (
            "shardId-000000000002",
            "226854911280625642308916404954512140970",
            "340282366920938463463374607431768211455",
        ),
    ];
    assert_eq!(d.shards().len(), 3);
    for (shard, (id, start, end)) in d.shards().iter().zip(expected) {
        assert_eq!(shard.shard_id(), id);
        let range = shard.hash_key_range().expect("HashKeyRange");
        assert_eq!(
            (range.starting_hash_key(), range.ending_hash_key()),
            (start, end),
            "{id}"
        );
        let seqs = shard.sequence_number_range().expect("SequenceNumberRange");
        seq(seqs.starting_sequence_number());
        assert_eq!(
            seqs.ending_sequence_number(),
            None,
            "{id} of a new stream is open"
        );
        assert_eq!(shard.parent_shard_id(), None);
    }
}

#[tokio::test]
async fn hash_ranges_split_the_key_space_evenly_for_any_shard_count() {
    let (client, _h, _d) = start_server().await;
    for n in [1u32, 2, 4, 5, 7, 16] {
        let name = format!("split-{n}");
        create_stream(&client, &name, n as i32).await;
        let shards = list_all_shards(&client, &name).await;
        let got: Vec<(String, String, String)> = shards
            .iter()
            .map(|s| {
                let r = s.hash_key_range().unwrap();
                (
                    s.shard_id().to_owned(),
                    r.starting_hash_key().to_owned(),
                    r.ending_hash_key().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = expected_ranges(n)
            .into_iter()
            .enumerate()
            .map(|(i, (s, e))| (shard_id(i), s.to_string(), e.to_string()))
            .collect();
        assert_eq!(got, want, "{n} shards");
    }
}

#[tokio::test]
async fn describe_stream_summary_counts_open_shards_and_gives_the_arn() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "summary", 5).await;
    let out = client
        .describe_stream_summary()
        .stream_name("summary")
        .send()
        .await
        .unwrap();
    let s = out.stream_description_summary().unwrap();
    assert_eq!(s.stream_name(), "summary");
    assert_eq!(s.stream_arn(), stream_arn("summary"));
    assert_eq!(s.stream_status(), &StreamStatus::Active);
    assert_eq!(s.open_shard_count(), 5);
    assert_eq!(s.retention_period_hours(), 24);
    assert_eq!(s.consumer_count(), Some(0));
}

#[tokio::test]
async fn on_demand_stream_starts_with_four_shards() {
    let (client, _h, _d) = start_server().await;
    create_on_demand(&client, "ondemand").await;
    let s = client
        .describe_stream_summary()
        .stream_name("ondemand")
        .send()
        .await
        .unwrap();
    let s = s.stream_description_summary().unwrap();
    assert_eq!(s.open_shard_count(), 4);
    assert_eq!(
        s.stream_mode_details().map(|m| m.stream_mode().clone()),
        Some(StreamMode::OnDemand)
    );
    assert_eq!(list_all_shards(&client, "ondemand").await.len(), 4);
}

#[tokio::test]
async fn creating_an_existing_stream_is_resource_in_use() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "dup", 1).await;
    assert_error(
        client
            .create_stream()
            .stream_name("dup")
            .shard_count(2)
            .send()
            .await,
        "ResourceInUseException",
        "Stream dup under account 000000000000 already exists.",
    );
    // The original stream is untouched.
    assert_eq!(list_all_shards(&client, "dup").await.len(), 1);
}

#[tokio::test]
async fn operations_on_an_unknown_stream_are_resource_not_found() {
    let (client, _h, _d) = start_server().await;
    let msg = "Stream nope under account 000000000000 not found.";
    assert_error(
        client.describe_stream().stream_name("nope").send().await,
        "ResourceNotFoundException",
        msg,
    );
    assert_error(
        client
            .describe_stream_summary()
            .stream_name("nope")
            .send()
            .await,
        "ResourceNotFoundException",
        msg,
    );
    assert_error(
        client.delete_stream().stream_name("nope").send().await,
        "ResourceNotFoundException",
        msg,
    );
    assert_error(
        client.list_shards().stream_name("nope").send().await,
        "ResourceNotFoundException",
        msg,
    );
}

#[tokio::test]
async fn deleted_stream_disappears_from_list_and_describe_and_its_name_can_be_reused() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "gone", 2).await;
    create_stream(&client, "kept", 1).await;
    client
        .delete_stream()
        .stream_name("gone")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "gone").await;

    let names = client
        .list_streams()
        .send()
        .await
        .unwrap()
        .stream_names()
        .to_vec();
    assert_eq!(names, vec!["kept".to_owned()]);
    assert_error(
        client.describe_stream().stream_name("gone").send().await,
        "ResourceNotFoundException",
        "Stream gone under account 000000000000 not found.",
    );

    create_stream(&client, "gone", 1).await;
    assert_eq!(
        list_all_shards(&client, "gone").await.len(),
        1,
        "re-created with the new shard count"
    );
}

#[tokio::test]
async fn list_streams_pages_in_name_order_with_limit_exclusive_start_and_next_token() {
    let (client, _h, _d) = start_server().await;
    let names = ["delta", "alpha", "echo", "charlie", "bravo"];
    for n in names {
        create_stream(&client, n, 1).await;
    }
    let sorted: Vec<String> = names
        .iter()
        .map(|s| s.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let all = client.list_streams().send().await.unwrap();
    assert_eq!(all.stream_names(), sorted.as_slice());
    assert!(!all.has_more_streams());
    let summaries: Vec<(String, String)> = all
        .stream_summaries()
        .iter()
        .map(|s| (s.stream_name().to_owned(), s.stream_arn().to_owned()))
        .collect();
    let want: Vec<(String, String)> = sorted.iter().map(|n| (n.clone(), stream_arn(n))).collect();
    assert_eq!(summaries, want);

    // Limit + ExclusiveStartStreamName.
    let mut seen = Vec::new();
    let mut start: Option<String> = None;
    for _ in 0..10 {
        let page = client
            .list_streams()
            .limit(2)
            .set_exclusive_start_stream_name(start.clone())
            .send()
            .await
            .unwrap();
        assert!(
            page.stream_names().len() <= 2,
            "Limit 2 returned {:?}",
            page.stream_names()
        );
        seen.extend(page.stream_names().iter().cloned());
        if !page.has_more_streams() {
            break;
        }
        start = page.stream_names().last().cloned();
    }
    assert_eq!(seen, sorted, "ExclusiveStartStreamName paging");

    // A start name that is not a stream: the names strictly after it.
    let after = client
        .list_streams()
        .exclusive_start_stream_name("bz")
        .send()
        .await
        .unwrap();
    assert_eq!(after.stream_names(), &sorted[2..]);

    // Limit + NextToken.
    let mut seen = Vec::new();
    let mut page = client.list_streams().limit(2).send().await.unwrap();
    for _ in 0..10 {
        seen.extend(page.stream_names().iter().cloned());
        match page.next_token() {
            Some(t) => {
                assert!(
                    page.has_more_streams(),
                    "NextToken given but HasMoreStreams false"
                );
                page = client
                    .list_streams()
                    .next_token(t)
                    .limit(2)
                    .send()
                    .await
                    .unwrap();
            }
            None => break,
        }
    }
    assert_eq!(seen, sorted, "NextToken paging");
}

#[tokio::test]
async fn describe_stream_pages_shards_with_limit_and_exclusive_start_shard_id() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "paged", 5).await;
    let first = client
        .describe_stream()
        .stream_name("paged")
        .limit(2)
        .send()
        .await
        .unwrap();
    let d = first.stream_description().unwrap();
    let ids: Vec<&str> = d.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(ids, vec!["shardId-000000000000", "shardId-000000000001"]);
    assert!(d.has_more_shards());

    let next = client
        .describe_stream()
        .stream_name("paged")
        .limit(2)
        .exclusive_start_shard_id("shardId-000000000001")
        .send()
        .await
        .unwrap();
    let d = next.stream_description().unwrap();
    let ids: Vec<&str> = d.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(ids, vec!["shardId-000000000002", "shardId-000000000003"]);
    assert!(d.has_more_shards());

    let last = client
        .describe_stream()
        .stream_name("paged")
        .exclusive_start_shard_id("shardId-000000000003")
        .send()
        .await
        .unwrap();
    let d = last.stream_description().unwrap();
    let ids: Vec<&str> = d.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(ids, vec!["shardId-000000000004"]);
    assert!(!d.has_more_shards());
}

#[tokio::test]
async fn list_shards_pages_with_max_results_and_next_token_and_skips_exclusive_start() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "ls", 5).await;

    let mut ids = Vec::new();
    let mut out = client
        .list_shards()
        .stream_name("ls")
        .max_results(2)
        .send()
        .await
        .unwrap();
    for _ in 0..10 {
        assert!(out.shards().len() <= 2);
        ids.extend(out.shards().iter().map(|s| s.shard_id().to_owned()));
        match out.next_token() {
            Some(t) => {
                out = client
                    .list_shards()
                    .next_token(t)
                    .max_results(2)
                    .send()
                    .await
                    .unwrap()
            }
            None => break,
        }
    }
    assert_eq!(ids, (0..5).map(shard_id).collect::<Vec<_>>());

    let after = client
        .list_shards()
        .stream_name("ls")
        .exclusive_start_shard_id("shardId-000000000002")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = after.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(ids, vec!["shardId-000000000003", "shardId-000000000004"]);
    assert_eq!(after.next_token(), None);
}

#[tokio::test]
async fn list_shards_next_token_cannot_be_combined_with_stream_or_start_shard() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "tok", 3).await;
    let page = client
        .list_shards()
        .stream_name("tok")
        .max_results(1)
        .send()
        .await
        .unwrap();
    let token = page
        .next_token()
        .expect("NextToken when more shards follow")
        .to_owned();
    assert_error(
        client
            .list_shards()
            .stream_name("tok")
            .next_token(&token)
            .send()
            .await,
        "InvalidArgumentException",
        "NextToken and StreamName cannot be provided together.",
    );
    assert_error(
        client
            .list_shards()
            .stream_arn(stream_arn("tok"))
            .next_token(&token)
            .send()
            .await,
        "InvalidArgumentException",
        "NextToken and StreamARN cannot be provided together.",
    );
    assert_error(
        client
            .list_shards()
            .exclusive_start_shard_id("shardId-000000000000")
            .next_token(&token)
            .send()
            .await,
        "InvalidArgumentException",
        "NextToken and ExclusiveStartShardId cannot be provided together.",
    );
    // The token alone continues the listing.
    let next = client
        .list_shards()
        .next_token(&token)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = next.shards().iter().map(|s| s.shard_id()).collect();
    assert_eq!(ids, vec!["shardId-000000000001", "shardId-000000000002"]);
}

#[tokio::test]
async fn stream_arn_is_accepted_wherever_stream_name_is() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "byarn", 2).await;
    let arn = stream_arn("byarn");

    let s = client
        .describe_stream_summary()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.stream_description_summary().unwrap().stream_name(),
        "byarn"
    );
    let d = client
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.stream_description().unwrap().shards().len(), 2);
    let l = client.list_shards().stream_arn(&arn).send().await.unwrap();
    assert_eq!(l.shards().len(), 2);

    let put = client
        .put_record()
        .stream_arn(&arn)
        .partition_key("k")
        .data(blob("v"))
        .send()
        .await
        .unwrap();
    let it = client
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(put.shard_id())
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let recs = read_to_tip(&client, it.shard_iterator().unwrap().to_owned(), None).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(data(&recs[0]), b"v");

    client
        .delete_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "byarn").await;
}

#[tokio::test]
async fn streams_are_scoped_by_account_and_region() {
    let (client, h, _d) = start_server().await;
    create_stream(&client, "mine", 1).await;

    // A 12-digit access key id is the account id.
    let other_account = client_with(h.local_addr(), "123456789012", REGION);
    let listed = other_account.list_streams().send().await.unwrap();
    assert!(
        listed.stream_names().is_empty(),
        "another account sees {:?}",
        listed.stream_names()
    );
    assert_error(
        other_account
            .describe_stream_summary()
            .stream_name("mine")
            .send()
            .await,
        "ResourceNotFoundException",
        "Stream mine under account 123456789012 not found.",
    );
    create_stream(&other_account, "mine", 2).await;
    let s = other_account
        .describe_stream_summary()
        .stream_name("mine")
        .send()
        .await
        .unwrap();
    let s = s.stream_description_summary().unwrap();
    assert_eq!(
        s.stream_arn(),
        "arn:aws:kinesis:us-east-1:123456789012:stream/mine"
    );
    assert_eq!(s.open_shard_count(), 2);

    let other_region = client_with(h.local_addr(), ACCESS_KEY, "eu-west-1");
    assert!(
        other_region
            .list_streams()
            .send()
            .await
            .unwrap()
            .stream_names()
            .is_empty()
    );
    create_stream(&other_region, "mine", 3).await;
    let s = other_region
        .describe_stream_summary()
        .stream_name("mine")
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.stream_description_summary().unwrap().stream_arn(),
        "arn:aws:kinesis:eu-west-1:000000000000:stream/mine"
    );

    // The first stream is still the default account's one-shard stream.
    assert_eq!(list_all_shards(&client, "mine").await.len(), 1);
}

#[tokio::test]
async fn validation_errors_use_the_aws_message_format() {
    let (client, _h, _d) = start_server().await;
    let long = "a".repeat(129);
    assert_error(
        client
            .create_stream()
            .stream_name(&long)
            .shard_count(1)
            .send()
            .await,
        "ValidationException",
        &format!(
            "1 validation error detected: Value '{long}' at 'streamName' failed to satisfy constraint: \
             Member must have length less than or equal to 128"
        ),
    );
    assert_error(
        client
            .create_stream()
            .stream_name("zero")
            .shard_count(0)
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: \
         Member must have value greater than or equal to 1",
    );
    assert_error(
        client.list_streams().limit(0).send().await,
        "ValidationException",
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
         Member must have value greater than or equal to 1",
    );
    assert_error(
        client.list_streams().limit(10001).send().await,
        "ValidationException",
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10000",
    );
    create_stream(&client, "valid", 1).await;
    assert_error(
        client
            .describe_stream()
            .stream_name("valid")
            .limit(10001)
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10000",
    );
    assert_error(
        client
            .list_shards()
            .stream_name("valid")
            .max_results(0)
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value '0' at 'maxResults' failed to satisfy constraint: \
         Member must have value greater than or equal to 1",
    );
    assert_error(
        client
            .create_stream()
            .stream_name("bad name!")
            .shard_count(1)
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
    );
    // Nothing was created by the rejected requests.
    assert_eq!(
        client.list_streams().send().await.unwrap().stream_names(),
        ["valid".to_owned()]
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    use aws_sdk_kinesis::operation::RequestId;
    let (client, _h, _d) = start_server().await;
    let ok = client.list_streams().send().await.unwrap();
    let id = ok.request_id().expect("x-amzn-RequestId on success");
    assert!(!id.is_empty());
    let err = client
        .describe_stream()
        .stream_name("none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    let err_id = err.request_id().expect("x-amzn-RequestId on an error");
    assert_ne!(id, err_id, "request ids must differ between requests");
}

#[tokio::test]
async fn delete_stream_accepts_enforce_consumer_deletion() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "enforced", 1).await;
    client
        .delete_stream()
        .stream_name("enforced")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "enforced").await;
}
