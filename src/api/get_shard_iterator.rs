//! GetShardIterator: a signed position in a shard to read from with GetRecords.

use std::sync::Arc;

use crate::api::Timestamp;
use crate::api::common::stream_key;
use crate::api::generated::{GetShardIteratorInput, GetShardIteratorOutput, ShardIteratorType};
use crate::api::{ApiError, ErrorCode, RequestContext};
use crate::api_error;
use crate::broker::sequence::{AwsSequence, SequenceNumber, VERSION, encoded_shard_id};
use crate::broker::stream::{Shard, StreamKey, parse_shard_id, shard_id};
use crate::broker::{Broker, Position};

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref(), shard = input.shard_id.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    broker.inject(&key.name, false).await?;
    let requested_shard = input.shard_id.as_deref().unwrap_or_default();
    let Some(index) = parse_shard_id(requested_shard) else {
        return Err(api_error!(
            ResourceNotFoundException,
            "Could not find shard {requested_shard} in stream {} under account {}.",
            key.name,
            key.account
        ));
    };
    let stream = broker.stream(&key).map_err(|_| {
        api_error!(
            ResourceNotFoundException,
            "Shard {} in stream {} under account {} does not exist",
            shard_id(index),
            key.name,
            key.account
        )
    })?;
    let shard = broker.readable_shard(&stream, requested_shard)?;
    let iterator_type = input
        .shard_iterator_type
        .clone()
        .unwrap_or(ShardIteratorType::Latest);
    let starting = input.starting_sequence_number.as_deref();
    let type_name = iterator_type.as_str();
    let wrong_combination = |detail: &str| {
        api_error!(
            InvalidArgumentException,
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {type_name} {detail}"
        )
    };
    let position = match iterator_type {
        ShardIteratorType::AtSequenceNumber | ShardIteratorType::AfterSequenceNumber => {
            let Some(starting) = starting else {
                return Err(wrong_combination("and no StartingSequenceNumber."));
            };
            let seq = checked_sequence(broker, &key, &shard, starting, "GetShardIterator")?;
            sequence_position(&seq, iterator_type == ShardIteratorType::AtSequenceNumber)
        }
        ShardIteratorType::TrimHorizon | ShardIteratorType::Latest if starting.is_some() => {
            return Err(wrong_combination("and also a StartingSequenceNumber."));
        }
        ShardIteratorType::TrimHorizon => Position::TrimHorizon,
        ShardIteratorType::Latest => Position::Latest,
        ShardIteratorType::AtTimestamp => {
            Position::AtTimestamp(checked_timestamp(broker, input.timestamp)?)
        }
        // Validation rejects values outside the enum before we get here.
        ShardIteratorType::Unknown(other) => {
            return Err(api_error!(
                InvalidArgumentException,
                "Unknown ShardIteratorType {other}."
            ));
        }
    };
    let iterator = broker.issue_iterator(&stream, &shard, position)?;
    Ok(GetShardIteratorOutput {
        shard_iterator: Some(iterator),
    })
}

/// A starting sequence number checked as AWS checks it in `operation` (GetShardIterator,
/// SubscribeToShard), in AWS's order (kinesalite `getShardIterator`, whose tests were pinned
/// against AWS): it parses (else "is invalid."), is not from the future (else "is
/// invalid."), encodes this shard (else "It encodes …"), is of AWS's current version and
/// this shard's creation time (else "… did not come from this stream.", or a bare
/// InternalFailure for AWS's old version-0 numbers, as AWS answers), and is one this broker
/// can have written (else "is invalid.").
pub(crate) fn checked_sequence(
    broker: &Broker,
    key: &StreamKey,
    shard: &Shard,
    sequence: &str,
    operation: &str,
) -> Result<SequenceNumber, ApiError> {
    let invalid = || {
        api_error!(
            InvalidArgumentException,
            "StartingSequenceNumber {sequence} used in {operation} on shard {} in stream {} under account {} is invalid.",
            shard.id,
            key.name,
            key.account
        )
    };
    let parsed = AwsSequence::parse(sequence).ok_or_else(invalid)?;
    // Not past the later clock reading nor the shard's newest arrival: a number the shard
    // handed out is never "from the future", however the wall clock stepped since.
    let newest = shard.log.bounds().last_arrival_ms.unwrap_or(i64::MIN);
    let now = broker.clock().latest_now_ms().max(newest);
    if parsed
        .arrival_s
        .is_some_and(|s| (s as i64).saturating_mul(1000) > now)
    {
        return Err(invalid());
    }
    if parsed.shard_index != shard.index as i64 {
        return Err(api_error!(
            InvalidArgumentException,
            "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
            encoded_shard_id(parsed.shard_index),
            shard.id
        ));
    }
    if parsed.version != VERSION || parsed.shard_created_s != shard.created_s() {
        if parsed.version == 0 {
            // AWS answers a version-0 number of the right shard with a bare 500.
            return Err(ApiError::new(ErrorCode::InternalFailure, ""));
        }
        return Err(api_error!(
            InvalidArgumentException,
            "StartingSequenceNumber {sequence} used in {operation} on shard {} in stream {} under account {} is invalid because it did not come from this stream.",
            shard.id,
            key.name,
            key.account
        ));
    }
    parsed.ours().ok_or_else(invalid)
}

/// Where AT (`at`) or AFTER a checked sequence number starts reading. A shard's starting
/// number names no record: AT it and AFTER it are both its first record.
pub(crate) fn sequence_position(seq: &SequenceNumber, at: bool) -> Position {
    match seq.offset {
        None => Position::AtOffset(0),
        Some(o) if at => Position::AtOffset(o),
        Some(o) => Position::AfterOffset(o),
    }
}

/// AT_TIMESTAMP's timestamp checked as AWS checks it: present, and not in the future.
pub(crate) fn checked_timestamp(
    broker: &Broker,
    timestamp: Option<Timestamp>,
) -> Result<i64, ApiError> {
    let Some(ts) = timestamp else {
        return Err(api_error!(
            InvalidArgumentException,
            "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter."
        ));
    };
    // The later reading: an arrival time read before the wall clock stepped back is not
    // "in the future".
    let now = broker.clock().latest_now_ms();
    if ts.millis > now {
        return Err(api_error!(
            InvalidArgumentException,
            "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {}, currentTimestampInMillis: {now}",
            ts.millis
        ));
    }
    Ok(ts.millis)
}
