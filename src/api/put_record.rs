//! PutRecord: one record, routed by the MD5 of its partition key (or its explicit hash
//! key), acknowledged once durable.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{PutRecordInput, PutRecordOutput};
use crate::api::put_records::{RecordLimits, check_record, hash_key};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::sequence::AwsSequence;
use crate::broker::{Broker, PutEntry};

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: PutRecordInput,
) -> Result<PutRecordOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    broker.inject(&key.name, false).await?;
    let started = std::time::Instant::now();
    let stream = broker.stream(&key)?;
    let mut put_bytes = None;
    let result = put(broker, &key, &stream, &input, &mut put_bytes).await;
    stream.metrics.put_record(started.elapsed(), put_bytes);
    result
}

/// Validates, writes and answers; `put_bytes` gets the record's size once it is written.
async fn put(
    broker: &Arc<Broker>,
    key: &crate::broker::stream::StreamKey,
    stream: &Arc<crate::broker::stream::Stream>,
    input: &PutRecordInput,
    put_bytes: &mut Option<u64>,
) -> Result<PutRecordOutput, ApiError> {
    let data = input
        .data
        .as_ref()
        .map(|d| d.as_slice())
        .unwrap_or_default();
    let limits = RecordLimits::of(stream);
    let partition_key = check_record(limits, None, input.partition_key.as_deref(), data)?;
    let hash_key = hash_key(limits, partition_key, input.explicit_hash_key.as_deref())?;
    // AWS's guide ("Producer API behavior with service-managed distribution"): with AUTO
    // there is no ordering to keep, and a PutRecord carrying SequenceNumberForOrdering is
    // refused with InvalidArgumentException (the message is ours: AWS's is not published).
    if limits.auto_distribution && input.sequence_number_for_ordering.is_some() {
        return Err(api_error!(
            InvalidArgumentException,
            "SequenceNumberForOrdering cannot be used in PutRecord on stream {} under account {}: the stream uses the AUTO record distribution strategy.",
            key.name,
            key.account
        ));
    }
    // SequenceNumberForOrdering, checked as AWS checks it (kinesalite `putRecord`): it must
    // parse as one of AWS's versions and not come from the future, else "is invalid.". The
    // new record sorts after it without waiting: inside a shard numbers grow with the log
    // offset, and a child shard's numbers are above its parents' (see broker::sequence).
    if let Some(ordering) = input.sequence_number_for_ordering.as_deref() {
        // The later clock reading or the stream's newest arrival, whichever is later: a
        // number the stream handed out is never "from the future", however the wall clock
        // stepped since.
        let newest = stream
            .state()
            .shards
            .iter()
            .filter_map(|s| s.log.bounds().last_arrival_ms)
            .max()
            .unwrap_or(i64::MIN);
        let now = broker.clock().latest_now_ms().max(newest);
        let valid = AwsSequence::parse(ordering).is_some_and(|seq| {
            seq.arrival_s
                .is_none_or(|s| (s as i64).saturating_mul(1000) <= now)
        });
        if !valid {
            return Err(api_error!(
                InvalidArgumentException,
                "ExclusiveMinimumSequenceNumber {ordering} used in PutRecord on stream {} under account {} is invalid.",
                key.name,
                key.account
            ));
        }
    }
    let not_before_ms = 0;
    let entry = PutEntry {
        hash_key,
        partition_key: partition_key.as_bytes(),
        explicit_hash_key: input.explicit_hash_key.as_deref().map(str::as_bytes),
        data,
    };
    let mut written = broker
        .put(stream, std::slice::from_ref(&entry), not_before_ms)
        .await?;
    let written = written
        .pop()
        .ok_or_else(|| api_error!(InternalFailure, "Internal service failure."))??;
    *put_bytes = Some((data.len() + partition_key.len()) as u64);
    // Reported as GetRecords will report the record: from its arrival time (in its
    // sequence number) against the stream's encryption history.
    let encryption_type = super::encryption::written_encrypted(
        stream,
        std::iter::once(written.sequence_number.as_str()),
    );
    Ok(PutRecordOutput {
        shard_id: written.shard_id,
        sequence_number: written.sequence_number,
        encryption_type,
    })
}
