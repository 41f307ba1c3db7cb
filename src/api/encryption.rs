//! StartStreamEncryption and StopStreamEncryption. There is no KMS here: the setting is
//! stored and reported (the stream goes UPDATING, then ACTIVE, and records written while
//! it is on report `EncryptionType: KMS`), but data on disk is not encrypted by it.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    EncryptionType, StartStreamEncryptionInput, StopStreamEncryptionInput,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;

fn require_kms(t: Option<&EncryptionType>) -> Result<(), ApiError> {
    match t {
        Some(EncryptionType::Kms) => Ok(()),
        other => Err(api_error!(
            InvalidArgumentException,
            "Encryption type {} is not supported. The only supported encryption type is KMS.",
            other.map(|t| t.as_str()).unwrap_or("null")
        )),
    }
}

/// StartStreamEncryption.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn start(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: StartStreamEncryptionInput,
) -> Result<(), ApiError> {
    require_kms(input.encryption_type.as_ref())?;
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    let key_id = input.key_id.unwrap_or_default();
    let clock = broker.clock().clone();
    broker
        .update_stream_in_background(&stream, move |st| {
            if st.extras.encryption_key_id.is_none() {
                st.extras
                    .encryption_periods
                    .push((switch_time(st, &clock), None));
            }
            st.extras.encryption_key_id = Some(key_id);
            Ok(())
        })
        .await?;
    Ok(())
}

/// StopStreamEncryption.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn stop(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: StopStreamEncryptionInput,
) -> Result<(), ApiError> {
    require_kms(input.encryption_type.as_ref())?;
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    let clock = broker.clock().clone();
    broker
        .update_stream_in_background(&stream, move |st| {
            st.extras.encryption_key_id = None;
            let at = switch_time(st, &clock);
            if let Some(last) = st.extras.encryption_periods.last_mut()
                && last.1.is_none()
            {
                last.1 = Some(at);
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// The arrival time from which a switch counts: after every record already appended
/// (their PutRecord answers may already be out, and must stay true), and no earlier than
/// now. Records are judged by arrival time, by PutRecord and GetRecords alike.
fn switch_time(st: &crate::broker::stream::StreamState, clock: &crate::broker::Clock) -> i64 {
    let newest = st
        .shards
        .iter()
        .filter_map(|s| s.log.bounds().last_arrival_ms)
        .max()
        .unwrap_or(i64::MIN);
    clock.now_ms().max(newest.saturating_add(1))
}

/// The `EncryptionType` to report for a stream now (`KMS` or `NONE`).
pub fn current(key_id: &Option<String>) -> EncryptionType {
    if key_id.is_some() {
        EncryptionType::Kms
    } else {
        EncryptionType::None
    }
}

/// `KMS` when any record with one of these sequence numbers arrived while encryption was
/// on — decided exactly as GetRecords decides it, so the two always agree.
pub fn written_encrypted<'a>(
    stream: &crate::broker::stream::Stream,
    sequence_numbers: impl Iterator<Item = &'a str>,
) -> Option<EncryptionType> {
    let st = stream.state();
    if st.extras.encryption_periods.is_empty() {
        return None;
    }
    // A sequence number carries its arrival time to the second only (AWS's layout); the
    // record in the log has the millisecond GetRecords decides by.
    let arrival_ms = |seq: crate::broker::sequence::SequenceNumber| {
        let offset = seq.offset?;
        let shard = st.shards.get(seq.shard_index as usize)?;
        let batch = shard.log.read(offset, 1, usize::MAX).ok()?;
        let arrival = batch
            .iter()
            .filter_map(|r| r.ok())
            .find(|r| r.offset == offset)
            .map(|r| r.arrival_ms);
        Some(arrival.unwrap_or(seq.arrival_ms as i64))
    };
    sequence_numbers
        .filter_map(crate::broker::sequence::SequenceNumber::decode)
        .filter_map(arrival_ms)
        .any(|ms| st.extras.encrypted_at(ms))
        .then_some(EncryptionType::Kms)
}
