//! Semantic errors of the record operations, with AWS's exact types and messages
//! (compat-tests/AWS_BEHAVIOUR.md sections 9–12).

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::common::*;

const TWO_POW_128: &str = "340282366920938463463374607431768211456";

fn entry(pk: &str, data: &[u8]) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(pk)
        .data(blob(data))
        .build()
        .unwrap()
}

async fn seq_in_shard(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: usize,
    shards: u32,
) -> String {
    let hash = expected_ranges(shards)[shard].0;
    let out = client
        .put_record()
        .stream_name(stream)
        .partition_key("x")
        .explicit_hash_key(hash.to_string())
        .data(blob("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.shard_id(), shard_id(shard));
    out.sequence_number().to_owned()
}

#[tokio::test]
async fn writes_to_an_unknown_stream_are_resource_not_found() {
    let (client, _h, _d) = start_server().await;
    assert_error(
        client
            .put_record()
            .stream_name("ghost")
            .partition_key("a")
            .data(blob("x"))
            .send()
            .await,
        "ResourceNotFoundException",
        "Stream ghost under account 000000000000 not found.",
    );
    assert_error(
        client
            .put_records()
            .stream_name("ghost")
            .records(entry("a", b"x"))
            .send()
            .await,
        "ResourceNotFoundException",
        "Stream ghost under account 000000000000 not found.",
    );
}

#[tokio::test]
async fn explicit_hash_key_of_2_pow_128_is_rejected_and_nothing_is_written() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "range", 2).await;
    let msg = format!(
        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {TWO_POW_128}"
    );
    assert_error(
        client
            .put_record()
            .stream_name("range")
            .partition_key("a")
            .explicit_hash_key(TWO_POW_128)
            .data(blob("x"))
            .send()
            .await,
        "InvalidArgumentException",
        &msg,
    );
    // In PutRecords one bad entry fails the whole request (AWS_BEHAVIOUR.md section 10).
    let bad = PutRecordsRequestEntry::builder()
        .partition_key("a")
        .data(blob("x"))
        .explicit_hash_key(TWO_POW_128)
        .build()
        .unwrap();
    assert_error(
        client
            .put_records()
            .stream_name("range")
            .records(entry("ok", b"ok"))
            .records(bad)
            .send()
            .await,
        "InvalidArgumentException",
        &msg,
    );
    for shard in 0..2 {
        assert!(
            read_shard(&client, "range", &shard_id(shard))
                .await
                .is_empty(),
            "shard {shard} got a record"
        );
    }
}

#[tokio::test]
async fn a_non_decimal_explicit_hash_key_is_a_validation_error() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "ehkfmt", 1).await;
    assert_error_prefix(
        client
            .put_record()
            .stream_name("ehkfmt")
            .partition_key("a")
            .explicit_hash_key("12abc")
            .data(blob("x"))
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value '12abc' at 'explicitHashKey' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: ",
    );
}

#[tokio::test]
async fn partition_key_longer_than_256_is_a_validation_error() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "pklen", 1).await;
    let pk = "k".repeat(257);
    assert_error(
        client
            .put_record()
            .stream_name("pklen")
            .partition_key(&pk)
            .data(blob("x"))
            .send()
            .await,
        "ValidationException",
        &format!(
            "1 validation error detected: Value '{pk}' at 'partitionKey' failed to satisfy constraint: \
             Member must have length less than or equal to 256"
        ),
    );
    // 256 is fine.
    client
        .put_record()
        .stream_name("pklen")
        .partition_key("k".repeat(256))
        .data(blob("x"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn put_records_with_501_entries_is_a_validation_error() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "many", 1).await;
    let entries: Vec<_> = (0..501).map(|i| entry(&format!("k{i}"), b"x")).collect();
    let res = client
        .put_records()
        .stream_name("many")
        .set_records(Some(entries))
        .send()
        .await;
    let err = res.expect_err("501 records must be rejected");
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    assert_eq!(
        err.code(),
        Some("ValidationException"),
        "{:?}",
        err.message()
    );
    let msg = err.message().unwrap_or_default();
    assert!(
        msg.starts_with("1 validation error detected: Value '"),
        "{msg}"
    );
    assert!(
        msg.ends_with("' at 'records' failed to satisfy constraint: Member must have length less than or equal to 500"),
        "{msg}"
    );
    let ok: Vec<_> = (0..500).map(|i| entry(&format!("k{i}"), b"x")).collect();
    let out = client
        .put_records()
        .stream_name("many")
        .set_records(Some(ok))
        .send()
        .await
        .unwrap();
    assert_eq!(out.records().len(), 500);
}

#[tokio::test]
async fn a_record_over_one_mib_is_rejected_and_one_of_exactly_one_mib_is_accepted() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "big", 1).await;
    // The limit covers data plus partition key (1 MiB by default, MaxRecordSizeInKiB).
    let pk = "p";
    let fits = vec![7u8; 1024 * 1024 - pk.len()];
    client
        .put_record()
        .stream_name("big")
        .partition_key(pk)
        .data(blob(fits.clone()))
        .send()
        .await
        .unwrap();
    let too_big = vec![7u8; 1024 * 1024 - pk.len() + 1];
    let res = client
        .put_record()
        .stream_name("big")
        .partition_key(pk)
        .data(blob(too_big.clone()))
        .send()
        .await;
    let code = code_of(&res);
    assert!(
        code == "ValidationException" || code == "InvalidArgumentException",
        "a record of 1 MiB + 1 byte got {code}"
    );
    let res = client
        .put_records()
        .stream_name("big")
        .records(entry(pk, &too_big))
        .send()
        .await;
    let code = code_of(&res);
    assert!(
        code == "ValidationException" || code == "InvalidArgumentException",
        "a PutRecords entry of 1 MiB + 1 byte got {code}"
    );
    let recs = read_shard(&client, "big", "shardId-000000000000").await;
    assert_eq!(recs.len(), 1, "only the record that fits was stored");
    assert_eq!(data(&recs[0]).len(), fits.len());
}

#[tokio::test]
async fn put_records_over_the_request_size_limit_is_invalid_argument() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "huge", 1).await;
    // 11 records of just under 1 MiB: each fits, together they exceed 10 MiB.
    let one = vec![1u8; 1024 * 1024 - 8];
    let entries: Vec<_> = (0..11).map(|i| entry(&format!("k{i}"), &one)).collect();
    assert_error_prefix(
        client
            .put_records()
            .stream_name("huge")
            .set_records(Some(entries))
            .send()
            .await,
        "InvalidArgumentException",
        "Records size exceeds ",
    );
    assert!(
        read_shard(&client, "huge", "shardId-000000000000")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn get_shard_iterator_errors_name_the_canonical_shard_and_stream() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "gsi", 2).await;
    let get = |stream: &str, shard: &str, kind: ShardIteratorType| {
        client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .send()
    };
    assert_error(
        get(
            "nostream",
            "shardId-000000000000",
            ShardIteratorType::TrimHorizon,
        )
        .await,
        "ResourceNotFoundException",
        "Shard shardId-000000000000 in stream nostream under account 000000000000 does not exist",
    );
    assert_error(
        get(
            "gsi",
            "shardId-000000000009",
            ShardIteratorType::TrimHorizon,
        )
        .await,
        "ResourceNotFoundException",
        "Shard shardId-000000000009 in stream gsi under account 000000000000 does not exist",
    );
    assert_error(
        get("gsi", "shardId-9", ShardIteratorType::Latest).await,
        "ResourceNotFoundException",
        "Shard shardId-000000000009 in stream gsi under account 000000000000 does not exist",
    );
    assert_error(
        get("gsi", "ABKLFD8", ShardIteratorType::Latest).await,
        "ResourceNotFoundException",
        "Could not find shard ABKLFD8 in stream gsi under account 000000000000.",
    );
}

#[tokio::test]
async fn shard_ids_aws_cannot_parse_are_could_not_find_shard() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "parse", 1).await;
    for bad in ["2147483648", "shardId-002147483648", "2.14E4", "ABKLFD8"] {
        for stream in ["parse", "nostream"] {
            assert_error(
                client
                    .get_shard_iterator()
                    .stream_name(stream)
                    .shard_id(bad)
                    .shard_iterator_type(ShardIteratorType::Latest)
                    .send()
                    .await,
                "ResourceNotFoundException",
                &format!(
                    "Could not find shard {bad} in stream {stream} under account 000000000000."
                ),
            );
        }
    }
    // Any "<prefix>-<index>" names shard <index>, printed canonically.
    for loose in ["x-5", "a-00000000005", "shardId-5"] {
        assert_error(
            client
                .get_shard_iterator()
                .stream_name("nostream")
                .shard_id(loose)
                .shard_iterator_type(ShardIteratorType::Latest)
                .send()
                .await,
            "ResourceNotFoundException",
            "Shard shardId-000000000005 in stream nostream under account 000000000000 does not exist",
        );
    }
}

#[tokio::test]
async fn sequence_number_for_ordering_orders_after_it_and_must_be_valid() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "sfo", 1).await;
    let first = client
        .put_record()
        .stream_name("sfo")
        .partition_key("a")
        .data(blob("1"))
        .send()
        .await
        .unwrap();
    let second = client
        .put_record()
        .stream_name("sfo")
        .partition_key("a")
        .data(blob("2"))
        .sequence_number_for_ordering(first.sequence_number())
        .send()
        .await
        .unwrap();
    assert!(seq(second.sequence_number()) > seq(first.sequence_number()));
    let huge = "9".repeat(60);
    assert_error(
        client
            .put_record()
            .stream_name("sfo")
            .partition_key("a")
            .data(blob("3"))
            .sequence_number_for_ordering(&huge)
            .send()
            .await,
        "InvalidArgumentException",
        &format!(
            "ExclusiveMinimumSequenceNumber {huge} used in PutRecord on stream sfo under account 000000000000 is invalid."
        ),
    );
    assert_eq!(
        read_shard(&client, "sfo", "shardId-000000000000")
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn iterator_type_and_starting_sequence_number_must_agree() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "combo", 1).await;
    let seq0 = seq_in_shard(&client, "combo", 0, 1).await;
    let base = || {
        client
            .get_shard_iterator()
            .stream_name("combo")
            .shard_id("shardId-000000000000")
    };
    let both = "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or \
                (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. ";
    for (kind, name) in [
        (ShardIteratorType::AtSequenceNumber, "AT_SEQUENCE_NUMBER"),
        (
            ShardIteratorType::AfterSequenceNumber,
            "AFTER_SEQUENCE_NUMBER",
        ),
    ] {
        assert_error(
            base().shard_iterator_type(kind).send().await,
            "InvalidArgumentException",
            &format!("{both}Request specified {name} and no StartingSequenceNumber."),
        );
    }
    for (kind, name) in [
        (ShardIteratorType::TrimHorizon, "TRIM_HORIZON"),
        (ShardIteratorType::Latest, "LATEST"),
    ] {
        assert_error(
            base()
                .shard_iterator_type(kind)
                .starting_sequence_number(&seq0)
                .send()
                .await,
            "InvalidArgumentException",
            &format!("{both}Request specified {name} and also a StartingSequenceNumber."),
        );
    }
    assert_error(
        base()
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .send()
            .await,
        "InvalidArgumentException",
        "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. \
         Current request has no timestamp parameter.",
    );
}

#[tokio::test]
async fn at_timestamp_in_the_future_is_invalid_argument() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "future", 1).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let future = now + 3_600_000;
    let res = client
        .get_shard_iterator()
        .stream_name("future")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(future))
        .send()
        .await;
    let prefix = format!(
        "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. \
         timestampInMillis: {future}, currentTimestampInMillis: "
    );
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    let err = res.expect_err("a future AT_TIMESTAMP must be rejected");
    assert_eq!(
        err.code(),
        Some("InvalidArgumentException"),
        "{:?}",
        err.message()
    );
    let msg = err.message().unwrap_or_default();
    let current = msg
        .strip_prefix(prefix.as_str())
        .unwrap_or_else(|| panic!("{msg:?} lacks {prefix:?}"));
    let current: i64 = current
        .parse()
        .unwrap_or_else(|_| panic!("currentTimestampInMillis {current:?}"));
    assert!(
        now - 600_000 <= current && current < future,
        "currentTimestampInMillis {current} is not now"
    );
}

#[tokio::test]
async fn a_sequence_number_from_another_shard_is_rejected_naming_both_shards() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "cross", 2).await;
    let seq1 = seq_in_shard(&client, "cross", 1, 2).await;
    for kind in [
        ShardIteratorType::AtSequenceNumber,
        ShardIteratorType::AfterSequenceNumber,
    ] {
        assert_error(
            client
                .get_shard_iterator()
                .stream_name("cross")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(kind)
                .starting_sequence_number(&seq1)
                .send()
                .await,
            "InvalidArgumentException",
            "Invalid StartingSequenceNumber. It encodes shardId-000000000001, \
             while it was used in a call to a shard with shardId-000000000000",
        );
    }
}

#[tokio::test]
async fn a_sequence_number_that_does_not_decode_is_invalid() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "malformed", 1).await;
    // 60 digits: matches the model's pattern, but is larger than any sequence number.
    let huge = "9".repeat(60);
    assert_error(
        client
            .get_shard_iterator()
            .stream_name("malformed")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&huge)
            .send()
            .await,
        "InvalidArgumentException",
        &format!(
            "StartingSequenceNumber {huge} used in GetShardIterator on shard shardId-000000000000 \
             in stream malformed under account 000000000000 is invalid."
        ),
    );
    // Not a number at all: the model's pattern fails first.
    assert_error_prefix(
        client
            .get_shard_iterator()
            .stream_name("malformed")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number("12x")
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value '12x' at 'startingSequenceNumber' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: ",
    );
}

#[tokio::test]
async fn a_sequence_number_of_a_previous_incarnation_of_the_stream_is_rejected() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "reborn", 1).await;
    let old = seq_in_shard(&client, "reborn", 0, 1).await;
    client
        .delete_stream()
        .stream_name("reborn")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "reborn").await;
    // AWS's sequence numbers carry the shard's creation time to the second: on AWS a
    // stream is never deleted and created again within one second, so let the second turn.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    tokio::time::sleep(std::time::Duration::from_millis(1000 - now_ms % 1000 + 5)).await;
    create_stream(&client, "reborn", 1).await;
    let res = client
        .get_shard_iterator()
        .stream_name("reborn")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&old)
        .send()
        .await;
    // AWS: "... is invalid because it did not come from this stream." when it can tell; a
    // number from before the stream existed may also be answered with plain "is invalid.".
    let base = format!(
        "StartingSequenceNumber {old} used in GetShardIterator on shard shardId-000000000000 \
         in stream reborn under account 000000000000 is invalid"
    );
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    let e = res.expect_err("a sequence number of the deleted stream must be rejected");
    assert_eq!(
        e.code(),
        Some("InvalidArgumentException"),
        "{:?}",
        e.message()
    );
    let msg = e.message().unwrap_or_default();
    assert!(
        msg == format!("{base}.")
            || msg == format!("{base} because it did not come from this stream."),
        "{msg}"
    );
}

#[tokio::test]
async fn a_forged_or_altered_shard_iterator_is_invalid() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "forge", 1).await;
    assert_error(
        client
            .get_records()
            .shard_iterator("not-an-iterator")
            .send()
            .await,
        "InvalidArgumentException",
        "Invalid ShardIterator.",
    );
    assert_error(
        client
            .get_records()
            .shard_iterator("AAAAAAAAAAE=")
            .send()
            .await,
        "InvalidArgumentException",
        "Invalid ShardIterator.",
    );
    let it = iterator(
        &client,
        "forge",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    // Change one base64 character in the middle (keeping it valid base64).
    let mut bytes = it.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(bytes).unwrap();
    assert_ne!(altered, it);
    assert_error(
        client.get_records().shard_iterator(&altered).send().await,
        "InvalidArgumentException",
        "Invalid ShardIterator.",
    );
}

#[tokio::test]
async fn an_iterator_of_a_deleted_stream_is_resource_not_found() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "doomed", 2).await;
    let it0 = iterator(
        &client,
        "doomed",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let it1 = iterator(
        &client,
        "doomed",
        "shardId-000000000001",
        ShardIteratorType::Latest,
    )
    .await;
    client
        .delete_stream()
        .stream_name("doomed")
        .send()
        .await
        .unwrap();
    wait_deleted(&client, "doomed").await;
    assert_error(
        client.get_records().shard_iterator(&it0).send().await,
        "ResourceNotFoundException",
        "Shard shardId-000000000000 in stream doomed under account 000000000000 does not exist",
    );
    assert_error(
        client.get_records().shard_iterator(&it1).send().await,
        "ResourceNotFoundException",
        "Shard shardId-000000000001 in stream doomed under account 000000000000 does not exist",
    );

    // Re-created under the same name: issue 3 requires the old iterator to be rejected
    // (AWS_BEHAVIOUR.md section 12 says which answers are acceptable).
    create_stream(&client, "doomed", 2).await;
    client
        .put_record()
        .stream_name("doomed")
        .partition_key("a")
        .explicit_hash_key("0")
        .data(blob("new"))
        .send()
        .await
        .unwrap();
    let res = client.get_records().shard_iterator(&it0).send().await;
    match res {
        Ok(out) => panic!("iterator of the deleted stream was accepted: {out:?}"),
        Err(e) => {
            use aws_sdk_kinesis::error::ProvideErrorMetadata;
            let got = (
                e.code().unwrap_or_default().to_owned(),
                e.message().unwrap_or_default().to_owned(),
            );
            let ok = [
                ("InvalidArgumentException".to_owned(), "Invalid ShardIterator.".to_owned()),
                (
                    "ResourceNotFoundException".to_owned(),
                    "Shard shardId-000000000000 in stream doomed under account 000000000000 does not exist".to_owned(),
                ),
            ];
            assert!(ok.contains(&got), "old iterator answered {got:?}");
        }
    }
}

#[tokio::test]
async fn get_records_limit_over_10000_is_a_validation_error() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "lim", 1).await;
    let it = iterator(
        &client,
        "lim",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    assert_error(
        client
            .get_records()
            .shard_iterator(&it)
            .limit(10001)
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10000",
    );
    assert_error(
        client
            .get_records()
            .shard_iterator(&it)
            .limit(0)
            .send()
            .await,
        "ValidationException",
        "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: \
         Member must have value greater than or equal to 1",
    );
    let long = "a".repeat(513);
    assert_error(
        client.get_records().shard_iterator(&long).send().await,
        "ValidationException",
        &format!(
            "1 validation error detected: Value '{long}' at 'shardIterator' failed to satisfy constraint: \
             Member must have length less than or equal to 512"
        ),
    );
}

#[tokio::test]
async fn list_shards_without_stream_or_next_token_is_invalid_argument() {
    let (client, _h, _d) = start_server().await;
    assert_error(
        client.list_shards().send().await,
        "InvalidArgumentException",
        "Either NextToken or StreamName should be provided.",
    );
}

/// "Thu Jan 22 01:22:02 UTC 2015": Java's `Date.toString()` in UTC, as AWS prints it.
fn is_java_utc_date(s: &str) -> bool {
    let p: Vec<&str> = s.split(' ').collect();
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let time_ok = |t: &str| {
        t.len() == 8
            && t.split(':').count() == 3
            && t.split(':')
                .all(|x| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit()))
    };
    p.len() == 6
        && days.contains(&p[0])
        && months.contains(&p[1])
        && p[2].len() == 2
        && p[2].bytes().all(|b| b.is_ascii_digit())
        && time_ok(p[3])
        && p[4] == "UTC"
        && p[5].len() == 4
        && p[5].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn a_shard_iterator_expires_after_five_minutes_with_aws_message() {
    let (client, h, _d) = start_server().await;
    create_stream(&client, "expiry", 1).await;
    client
        .put_record()
        .stream_name("expiry")
        .partition_key("a")
        .data(blob("one"))
        .send()
        .await
        .unwrap();
    let it = iterator(
        &client,
        "expiry",
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
    )
    .await;

    // Time moves on the broker's clock, not in the test: nothing sleeps.
    let clock = h.broker().clock();
    clock.advance_ms(290_000).unwrap();
    let out = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.records().len(),
        1,
        "a 290 s old iterator is still valid"
    );
    let next = out.next_shard_iterator().unwrap().to_owned();

    clock.advance_ms(20_000).unwrap();
    let res = client.get_records().shard_iterator(&it).send().await;
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    let err = res.expect_err("a 310 s old iterator must be expired");
    assert_eq!(
        err.code(),
        Some("ExpiredIteratorException"),
        "{:?}",
        err.message()
    );
    let msg = err.message().unwrap_or_default();
    let rest = msg
        .strip_prefix("Iterator expired. The iterator was created at time ")
        .unwrap_or_else(|| panic!("{msg}"));
    let (created, rest) = rest
        .split_once(" while right now it is ")
        .unwrap_or_else(|| panic!("{msg}"));
    let now = rest
        .strip_suffix(
            " which is further in the future than the tolerated delay of 300000 milliseconds.",
        )
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(is_java_utc_date(created) && is_java_utc_date(now), "{msg}");
    assert_ne!(created, now);

    // The NextShardIterator issued 20 s ago is still good.
    let out = client
        .get_records()
        .shard_iterator(&next)
        .send()
        .await
        .unwrap();
    assert!(out.records().is_empty());
}

// ---- AWS's SerializationException texts, sent through the real SDK --------------------
//
// The SDK never sends a member of the wrong JSON type, so these tests let it build and
// send a request as usual and swap the body just before it is signed (an interceptor): the
// request is signed, routed and answered exactly as a real one, and the SDK must read the
// capital-M `Message` AWS puts these texts under. Texts: kinesalite `test/helpers.js`
// `assertType` (recorded against the live service); compat-tests/AWS_BEHAVIOUR.md §1.

use aws_sdk_kinesis::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_kinesis::config::{ConfigBag, Intercept, RuntimeComponents};

/// Replaces the request body with `.0` before signing.
#[derive(Debug)]
struct ReplaceBody(String);

impl Intercept for ReplaceBody {
    fn name(&self) -> &'static str {
        "ReplaceBody"
    }
    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_kinesis::error::BoxError> {
        let request = context.request_mut();
        *request.body_mut() = self.0.clone().into_bytes().into();
        request
            .headers_mut()
            .insert("content-length", self.0.len().to_string());
        Ok(())
    }
}

fn body(json: &str) -> aws_sdk_kinesis::config::Builder {
    aws_sdk_kinesis::Config::builder().interceptor(ReplaceBody(json.to_owned()))
}

const TRUNCATING_BIG_NUMBER: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";

#[tokio::test]
async fn a_number_where_a_string_blob_or_boolean_belongs_is_a_truncating_big_number() {
    let (client, _h, _d) = start_server().await;
    for number in ["23", "-2147483648", "2147483648", "34.56"] {
        assert_error(
            client
                .describe_stream_summary()
                .stream_name("x")
                .customize()
                .config_override(body(&format!(r#"{{"StreamName":{number}}}"#)))
                .send()
                .await,
            "SerializationException",
            &format!("{TRUNCATING_BIG_NUMBER} can not be converted to an String"),
        );
        assert_error(
            client
                .put_record()
                .stream_name("x")
                .partition_key("a")
                .data(blob("x"))
                .customize()
                .config_override(body(&format!(
                    r#"{{"StreamName":"x","PartitionKey":"a","Data":{number}}}"#
                )))
                .send()
                .await,
            "SerializationException",
            &format!("{TRUNCATING_BIG_NUMBER} can not be converted to a Blob"),
        );
    }
    for number in ["23", "-2147483648", "2147483648"] {
        assert_error(
            client
                .delete_stream()
                .stream_name("x")
                .customize()
                .config_override(body(&format!(
                    r#"{{"StreamName":"x","EnforceConsumerDeletion":{number}}}"#
                )))
                .send()
                .await,
            "SerializationException",
            &format!("{TRUNCATING_BIG_NUMBER} can not be converted to an Boolean"),
        );
    }
}

#[tokio::test]
async fn a_timestamp_given_as_a_string_or_boolean_is_not_milliseconds_since_epoch() {
    let (client, _h, _d) = start_server().await;
    for (value, class) in [
        ("\"23\"", "java.lang.String"),
        ("true", "java.lang.Boolean"),
    ] {
        assert_error(
            client
                .get_shard_iterator()
                .stream_name("x")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .customize()
                .config_override(body(&format!(
                    r#"{{"StreamName":"x","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":{value}}}"#
                )))
                .send()
                .await,
            "SerializationException",
            &format!("class {class} can not be converted to milliseconds since epoch"),
        );
    }
}

#[tokio::test]
async fn blob_text_that_is_not_base64_is_refused_in_aws_words() {
    let (client, _h, _d) = start_server().await;
    for (data, reason) in [
        (
            "23456",
            "Base64 encoded length is expected a multiple of 4 bytes but found: 5",
        ),
        ("=+/=", "Invalid Base64 character: '='"),
        ("ab;d", "Invalid Base64 character: ';'"),
        ("+/+=", "Invalid last non-pad Base64 character dectected"),
    ] {
        assert_error(
            client
                .put_records()
                .stream_name("x")
                .records(entry("a", b"x"))
                .customize()
                .config_override(body(&format!(
                    r#"{{"StreamName":"x","Records":[{{"PartitionKey":"a","Data":"{data}"}}]}}"#
                )))
                .send()
                .await,
            "SerializationException",
            &format!("'{data}' can not be converted to a Blob: {reason}"),
        );
    }
}

#[tokio::test]
async fn a_scalar_where_a_structure_belongs_is_refused_in_aws_words() {
    // A list where a structure belongs (`[[]]`) is not here: serde reads a structure from an
    // array of at most its member count, a known leniency (src/protocol/json.rs).
    let (client, _h, _d) = start_server().await;
    for (records, message) in [
        ("[23]", "Expected null"),
        ("{}", "Start of structure or map found where not expected."),
        ("true", "Expected list or null"),
    ] {
        assert_error(
            client
                .put_records()
                .stream_name("x")
                .records(entry("a", b"x"))
                .customize()
                .config_override(body(&format!(
                    r#"{{"StreamName":"x","Records":{records}}}"#
                )))
                .send()
                .await,
            "SerializationException",
            message,
        );
    }
}

/// kinesalite `test/addTagsToStream.js` / `test/removeTagsFromStream.js` (AWS's texts, its
/// odd list included); `:` is accepted (mhart/kinesalite#107).
#[tokio::test]
async fn tag_characters_are_refused_in_aws_words() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "tagged", 1).await;
    let invalid = "Some tags contain invalid characters. Valid characters: Unicode letters, digits, white space, _ . / = + - % @.";
    let percent = |verb: &str| {
        format!(
            "Failed to {verb} stream tagged under account 000000000000 because some tags contained illegal characters. The allowed characters are Unicode letters, white-spaces, '_',',','/','=','+','-','@'."
        )
    };
    for text in ["abc;def", "abc\tdef", "abc\ndef", "abc,def"] {
        assert_error(
            client
                .add_tags_to_stream()
                .stream_name("tagged")
                .tags(text, "1")
                .send()
                .await,
            "InvalidArgumentException",
            invalid,
        );
        assert_error(
            client
                .add_tags_to_stream()
                .stream_name("tagged")
                .tags("a", text)
                .send()
                .await,
            "InvalidArgumentException",
            invalid,
        );
        assert_error(
            client
                .remove_tags_from_stream()
                .stream_name("tagged")
                .tag_keys(text)
                .send()
                .await,
            "InvalidArgumentException",
            invalid,
        );
    }
    assert_error(
        client
            .add_tags_to_stream()
            .stream_name("tagged")
            .tags("abc%def", "1")
            .send()
            .await,
        "InvalidArgumentException",
        &percent("add tags to"),
    );
    assert_error(
        client
            .remove_tags_from_stream()
            .stream_name("tagged")
            .tag_keys("abc%def")
            .send()
            .await,
        "InvalidArgumentException",
        &percent("remove tags from"),
    );
    client
        .add_tags_to_stream()
        .stream_name("tagged")
        .tags("ü0 _.", "a")
        .tags("/=+-@:", "ü0 _./=+-@:")
        .send()
        .await
        .unwrap();
}

/// Decimal of a hex string (kinesalite's tests write sequence numbers in hex).
fn hex_to_decimal(hex: &str) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian decimal digits
    for c in hex.chars() {
        let mut carry = c.to_digit(16).unwrap();
        for d in digits.iter_mut() {
            let v = *d as u32 * 16 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| (b'0' + d) as char).collect()
}

/// Sequence numbers AWS rejects or accepts, as kinesalite's tests (pinned against AWS)
/// give them: GetShardIterator (test/getShardIterator.js) and PutRecord's
/// SequenceNumberForOrdering (test/putRecord.js).
#[tokio::test]
async fn sequence_numbers_are_validated_as_aws_validates_them() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "awsseq", 1).await;
    let get = |seq: String| {
        client
            .get_shard_iterator()
            .stream_name("awsseq")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(seq)
            .send()
    };
    let invalid = |seq: &str| {
        format!(
            "StartingSequenceNumber {seq} used in GetShardIterator on shard shardId-000000000000 \
             in stream awsseq under account 000000000000 is invalid."
        )
    };
    // A small number is AWS's version 0: "5" encodes shard 5.
    assert_error(
        get("5".into()).await,
        "InvalidArgumentException",
        "Invalid StartingSequenceNumber. It encodes shardId-000000000005, \
         while it was used in a call to a shard with shardId-000000000000",
    );
    // ... and "0" (version 0, right shard) is a bare InternalFailure.
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    let e = get("0".into()).await.expect_err("0 is refused");
    assert_eq!(e.code(), Some("InternalFailure"), "{e:?}");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500));
    // An 8 near the end: a negative shard index.
    assert_error(
        get(hex_to_decimal(
            "20000000000000000000000000000000000000800000002",
        ))
        .await,
        "InvalidArgumentException",
        "Invalid StartingSequenceNumber. It encodes shardId--02147483648, \
         while it was used in a call to a shard with shardId-000000000000",
    );
    for hex in [
        "13bb2cc3d80000000000000000000000", // date too large
        "20000000000800000000000000000000000000000000002", // 8 in the counter
    ] {
        let seq = hex_to_decimal(hex);
        assert_error(
            get(seq.clone()).await,
            "InvalidArgumentException",
            &invalid(&seq),
        );
    }
    assert_eq!(
        hex_to_decimal("13bb2cc3d80000000000000000000000"),
        "26227199374822427428162556223570313216"
    );
    // The old 39-digit form of this broker (arrival ms << 86 | shard << 64 | offset).
    let old = ((1_764_000_000_123u128 << 86) | 7).to_string();
    let e = get(old.clone()).await.expect_err("the old form is refused");
    assert!(
        e.code() == Some("InvalidArgumentException") || e.code() == Some("InternalFailure"),
        "{e:?}"
    );
    // A number of this shard but another creation time: "did not come from this stream".
    let real = seq_in_shard(&client, "awsseq", 0, 1).await;
    let hex = {
        // The creation second (hex digits 1..10) moved back by one.
        let h = decimal_to_hex(&real);
        let created = u64::from_str_radix(&h[1..10], 16).unwrap() - 1;
        format!("{}{created:09x}{}", &h[..1], &h[10..])
    };
    let other = hex_to_decimal(&hex);
    assert_error(
        get(other.clone()).await,
        "InvalidArgumentException",
        &format!(
            "StartingSequenceNumber {other} used in GetShardIterator on shard shardId-000000000000 \
             in stream awsseq under account 000000000000 is invalid because it did not come from this stream."
        ),
    );

    // PutRecord's SequenceNumberForOrdering.
    let put = |seq: String| {
        client
            .put_record()
            .stream_name("awsseq")
            .partition_key("a")
            .data(blob(""))
            .sequence_number_for_ordering(seq)
            .send()
    };
    for hex in [
        "20000000000000000000000000000000000000000000000", // version 0 at 2^185
        "20000000000000000000000000000000000000000000003", // version 3
        "20000000000000000000000000000000000000000000004", // version 4
        "30000000000000000000000000000000000000000000001", // initial 3
        "1ffffffffff7fffffffffffffff000000000007fffffff2", // initial 1
        "20000000000800000000000000000000000000000000002", // 8 in the counter
        "13bb2cc3d80000000000000000000000",                // date too large
        "2ffffffffff7fffffffffffffff000000000007fffffff2", // all f
    ] {
        let seq = hex_to_decimal(hex);
        assert_error(
            put(seq.clone()).await,
            "InvalidArgumentException",
            &format!(
                "ExclusiveMinimumSequenceNumber {seq} used in PutRecord on stream awsseq \
                 under account 000000000000 is invalid."
            ),
        );
    }
    // From the future: an arrival second an hour ahead.
    let future = {
        let h = decimal_to_hex(&real);
        let t = u64::from_str_radix(&h[29..38], 16).unwrap() + 3600;
        hex_to_decimal(&format!("{}{t:09x}{}", &h[..29], &h[38..]))
    };
    assert_error(
        put(future.clone()).await,
        "InvalidArgumentException",
        &format!(
            "ExclusiveMinimumSequenceNumber {future} used in PutRecord on stream awsseq \
             under account 000000000000 is invalid."
        ),
    );
    for hex in [
        "20000000000000000000000000000000000000000000002", // all 0
        "20000000000000000000000000000000000000000000001", // all 0, version 1
        "20000000000000000000000000000000000000800000002", // 8 near the end
    ] {
        let out = put(hex_to_decimal(hex)).await.expect(hex);
        seq(out.sequence_number());
    }
}

/// Hex of a decimal string.
fn decimal_to_hex(decimal: &str) -> String {
    let mut nibbles: Vec<u8> = vec![0]; // little-endian hex digits
    for c in decimal.chars() {
        let mut carry = c.to_digit(10).unwrap();
        for d in nibbles.iter_mut() {
            let v = *d as u32 * 10 + carry;
            *d = (v % 16) as u8;
            carry = v / 16;
        }
        while carry > 0 {
            nibbles.push((carry % 16) as u8);
            carry /= 16;
        }
    }
    while nibbles.len() > 1 && nibbles.last() == Some(&0) {
        nibbles.pop();
    }
    nibbles
        .iter()
        .rev()
        .map(|d| std::char::from_digit(*d as u32, 16).unwrap())
        .collect()
}

#[tokio::test]
async fn sequence_numbers_and_iterators_have_aws_shape() {
    let (client, _h, _d) = start_server().await;
    create_stream(&client, "shape", 2).await;
    let s = seq_in_shard(&client, "shape", 1, 2).await;
    let hex = decimal_to_hex(&s);
    // kinesalite test/helpers.js assertSequenceNumber (pinned against AWS).
    assert_eq!(hex.len(), 47, "{hex}");
    assert!(hex.starts_with("20") && hex.ends_with("00000012"), "{hex}");
    assert_eq!(&hex[10..11], "1");
    assert_eq!(&hex[27..30], "000");
    let it = iterator(
        &client,
        "shape",
        "shardId-000000000001",
        ShardIteratorType::TrimHorizon,
    )
    .await;
    assert_eq!(it.len(), 204);
    // AFTER the shard's starting sequence number is its first record.
    let shards = client
        .list_shards()
        .stream_name("shape")
        .send()
        .await
        .unwrap();
    let start = shards.shards()[1]
        .sequence_number_range()
        .unwrap()
        .starting_sequence_number()
        .to_owned();
    assert!(seq(&start) < seq(&s));
    let it = client
        .get_shard_iterator()
        .stream_name("shape")
        .shard_id("shardId-000000000001")
        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
        .starting_sequence_number(&start)
        .send()
        .await
        .unwrap();
    let recs = read_to_tip(&client, it.shard_iterator().unwrap().to_owned(), None).await;
    assert_eq!(recs.first().map(|r| r.sequence_number()), Some(s.as_str()));
}
