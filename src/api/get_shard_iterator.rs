//! GetShardIterator: a signed position in a shard to read from with GetRecords.

use std::sync::Arc;

use crate::api::Timestamp;
use crate::api::common::stream_key;
use crate::api::generated::{GetShardIteratorInput, GetShardIteratorOutput, ShardIteratorType};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::sequence::SequenceNumber;
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
            if iterator_type == ShardIteratorType::AtSequenceNumber {
                Position::AtOffset(seq.offset)
            } else {
                Position::AfterRecord {
                    offset: seq.offset,
                    arrival_ms: seq.arrival_ms as i64,
                }
            }
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
/// SubscribeToShard): well formed, not from the future, of this shard, and not older than
/// the shard.
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
    let seq = SequenceNumber::decode(sequence).ok_or_else(invalid)?;
    if seq.arrival_ms as i64 > broker.clock().now_ms() {
        return Err(invalid());
    }
    if seq.shard_index != shard.index {
        return Err(api_error!(
            InvalidArgumentException,
            "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
            shard_id(seq.shard_index),
            shard.id
        ));
    }
    if (seq.arrival_ms as i64) < shard.created_ms {
        return Err(api_error!(
            InvalidArgumentException,
            "StartingSequenceNumber {sequence} used in {operation} on shard {} in stream {} under account {} is invalid because it did not come from this stream.",
            shard.id,
            key.name,
            key.account
        ));
    }
    Ok(seq)
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
    let now = broker.clock().now_ms();
    if ts.millis > now {
        return Err(api_error!(
            InvalidArgumentException,
            "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {}, currentTimestampInMillis: {now}",
            ts.millis
        ));
    }
    Ok(ts.millis)
}
