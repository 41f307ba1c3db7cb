//! PutRecords: up to 500 records in one call; each is routed alone, records of one shard
//! are appended together, and the results come back in request order.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{PutRecordsInput, PutRecordsOutput, PutRecordsResultEntry};
use crate::api::{ApiError, ErrorCode, RequestContext};
use crate::api_error;
use crate::broker::catalog::RecordDistribution;
use crate::broker::stream::Stream;
use crate::broker::{Broker, PutEntry, hash};
use crate::metrics::PutRecordsOutcome;

/// The most a PutRecords request may carry, data plus partition keys: 10 MiB, as AWS
/// documents for the current service.
pub const MAX_PUT_RECORDS_BYTES: usize = 10 * 1024 * 1024;

/// Checks one record against the stream's limits; returns its partition key.
///
/// `index` is the record's 1-based position in PutRecords (None for PutRecord), used in
/// the member path of validation messages exactly as AWS prints them.
pub fn check_record<'a>(
    limits: RecordLimits,
    index: Option<usize>,
    partition_key: Option<&'a str>,
    data: &[u8],
) -> Result<&'a str, ApiError> {
    let path = |member: &str| match index {
        Some(i) => format!("records.{i}.member.{member}"),
        None => member.to_string(),
    };
    // The model made PartitionKey optional for streams with the AUTO distribution
    // strategy, which ignore it (an absent key is stored as an empty one); with the
    // default USER_PARTITION_KEY strategy AWS still requires it, with the wording of a
    // missing required member.
    let partition_key = match partition_key {
        Some(key) => key,
        None if limits.auto_distribution => "",
        None => {
            return Err(api_error!(
                ValidationException,
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                path("partitionKey")
            ));
        }
    };
    let max = limits.max_record_bytes;
    if data.len() > max {
        // AWS's wording when Data exceeded the 1 MiB model limit (awslabs/kinesis-aggregation#30).
        return Err(api_error!(
            ValidationException,
            "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]' at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
            path("data"),
            n = data.len()
        ));
    }
    if data.len() + partition_key.len() > max {
        return Err(api_error!(
            InvalidArgumentException,
            "The size of the record (data plus partition key) is {} bytes, larger than the stream's maximum record size of {} KiB.",
            data.len() + partition_key.len(),
            max / 1024
        ));
    }
    Ok(partition_key)
}

/// What the stream's settings say about the records written to it, read once per call.
#[derive(Debug, Clone, Copy)]
pub struct RecordLimits {
    /// The largest record (data plus partition key) the stream accepts, in bytes.
    pub max_record_bytes: usize,
    /// The stream's record distribution strategy is AUTO: keys are optional and ignored.
    pub auto_distribution: bool,
}

impl RecordLimits {
    /// The stream's current limits.
    pub fn of(stream: &Stream) -> Self {
        let st = stream.state();
        Self {
            max_record_bytes: st.max_record_size_kib as usize * 1024,
            auto_distribution: st.extras.record_distribution == RecordDistribution::Auto,
        }
    }
}

/// The hash key routing a record: its explicit hash key, or the MD5 of its partition key.
/// Under AUTO both are ignored (the write path places the record), so neither is hashed
/// nor parsed beyond the model's own validation.
pub fn hash_key(
    limits: RecordLimits,
    partition_key: &str,
    explicit_hash_key: Option<&str>,
) -> Result<u128, ApiError> {
    if limits.auto_distribution {
        return Ok(0);
    }
    match explicit_hash_key {
        None => Ok(hash::partition_key_hash(partition_key.as_bytes())),
        Some(ehk) => hash::parse_hash_key(ehk).ok_or_else(|| {
            api_error!(
                InvalidArgumentException,
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {ehk}"
            )
        }),
    }
}

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref(), records = input.records.as_ref().map(Vec::len)))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    broker.inject(&key.name, false).await?;
    let started = std::time::Instant::now();
    let stream = broker.stream(&key)?;
    let mut outcome = PutRecordsOutcome::default();
    let result = put(broker, &stream, &input, &mut outcome).await;
    // Once per call, from figures gathered while answering: PutRecords.* and Incoming*.
    stream.metrics.put_records(started.elapsed(), &outcome);
    result
}

/// Validates, writes and answers; `outcome` gets what happened to the records.
async fn put(
    broker: &Arc<Broker>,
    stream: &Arc<Stream>,
    input: &PutRecordsInput,
    outcome: &mut PutRecordsOutcome,
) -> Result<PutRecordsOutput, ApiError> {
    let limits = RecordLimits::of(stream);
    let records = input.records.as_deref().unwrap_or_default();
    let mut total = 0usize;
    let mut entries = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let data = record
            .data
            .as_ref()
            .map(|d| d.as_slice())
            .unwrap_or_default();
        let partition_key =
            check_record(limits, Some(i + 1), record.partition_key.as_deref(), data)?;
        total += data.len() + partition_key.len();
        entries.push(PutEntry {
            hash_key: hash_key(limits, partition_key, record.explicit_hash_key.as_deref())?,
            partition_key: partition_key.as_bytes(),
            explicit_hash_key: record.explicit_hash_key.as_deref().map(str::as_bytes),
            data,
        });
    }
    if total > MAX_PUT_RECORDS_BYTES {
        // AWS said "Records size exceeds 5 MB limit" while the limit was 5 MiB.
        return Err(api_error!(
            InvalidArgumentException,
            "Records size exceeds 10 MB limit"
        ));
    }
    let results = broker.put(stream, &entries, 0).await?;
    let mut failed = 0;
    outcome.total = entries.len() as u64;
    let records: Vec<PutRecordsResultEntry> = results
        .into_iter()
        .zip(&entries)
        .map(|(r, entry)| match r {
            Ok(w) => {
                outcome.successful += 1;
                outcome.successful_bytes += (entry.data.len() + entry.partition_key.len()) as u64;
                PutRecordsResultEntry {
                    sequence_number: Some(w.sequence_number),
                    shard_id: Some(w.shard_id),
                    error_code: None,
                    error_message: None,
                }
            }
            Err(e) => {
                failed += 1;
                let e = ApiError::from(e);
                if e.code == ErrorCode::ProvisionedThroughputExceededException {
                    outcome.throttled += 1;
                } else {
                    outcome.failed += 1;
                }
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some(e.code.as_str().to_string()),
                    error_message: Some(e.message),
                }
            }
        })
        .collect();
    // Reported as GetRecords will report the records: from their arrival times (in their
    // sequence numbers) against the stream's encryption history.
    let encryption_type = super::encryption::written_encrypted(
        stream,
        records.iter().filter_map(|r| r.sequence_number.as_deref()),
    );
    Ok(PutRecordsOutput {
        failed_record_count: Some(failed),
        records,
        encryption_type,
    })
}
