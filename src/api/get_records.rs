//! GetRecords: the records at an iterator, and the iterator to continue from.

use std::sync::Arc;

use crate::api::generated::{ChildShard, GetRecordsInput, GetRecordsOutput, HashKeyRange, Record};
use crate::api::{ApiError, Blob, RequestContext, Timestamp};
use crate::broker::Broker;
use crate::broker::catalog::StreamExtras;
use crate::broker::stream::{Shard, shard_id};

/// Records per call when `Limit` is absent: 10,000, as on AWS.
const DEFAULT_RECORD_LIMIT: usize = 10_000;
/// Data per call: 10 MiB, as on AWS.
const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: GetRecordsInput,
) -> Result<GetRecordsOutput, ApiError> {
    let token = input.shard_iterator.as_deref().unwrap_or_default();
    let limit = input
        .limit
        .map(|l| l.max(1) as usize)
        .unwrap_or(DEFAULT_RECORD_LIMIT);
    let read = broker
        .read_records(token, limit, MAX_GET_RECORDS_BYTES)
        .await?;
    let records = records(&read.batch, &read.shard, &read.stream_extras)?;
    let child_shards = (!read.child_shards.is_empty()).then(|| child_shards(&read.child_shards));
    Ok(GetRecordsOutput {
        records,
        next_shard_iterator: read.next_iterator,
        millis_behind_latest: Some(read.millis_behind_latest),
        child_shards,
    })
}

/// The records of a batch as the API shows them (GetRecords and SubscribeToShard events).
pub(crate) fn records(
    batch: &storage::ReadBatch,
    shard: &Shard,
    extras: &StreamExtras,
) -> Result<Vec<Record>, ApiError> {
    let mut records = Vec::with_capacity(batch.len());
    for item in batch.iter_shared() {
        let (view, data) = item.map_err(crate::broker::Error::from)?;
        records.push(Record {
            sequence_number: shard.sequence_number(view.arrival_ms, view.offset),
            approximate_arrival_timestamp: Some(Timestamp::from_millis(view.arrival_ms)),
            data: Blob::from(data),
            partition_key: Some(String::from_utf8_lossy(view.partition_key).into_owned()),
            encryption_type: extras
                .encrypted_at(view.arrival_ms)
                .then_some(crate::api::generated::EncryptionType::Kms),
        });
    }
    Ok(records)
}

/// The `ChildShards` of a closed shard read to its end.
pub(crate) fn child_shards(children: &[Arc<Shard>]) -> Vec<ChildShard> {
    children
        .iter()
        .map(|c| ChildShard {
            shard_id: c.id.clone(),
            parent_shards: c
                .parent
                .into_iter()
                .chain(c.adjacent_parent)
                .map(shard_id)
                .collect(),
            hash_key_range: HashKeyRange {
                starting_hash_key: c.range.start.to_string(),
                ending_hash_key: c.range.end.to_string(),
            },
        })
        .collect()
}
