//! A stream and its shards, as held in memory while the broker runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::catalog::{ClosedShard, ShardMeta, StreamExtras, StreamMeta, StreamMode, StreamStatus};
use super::hash::HashRange;
use super::sequence::SequenceNumber;

/// Identifies a stream the way AWS scopes it: by account, region and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// Stream name.
    pub name: String,
}

impl StreamKey {
    /// The stream ARN: `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{}",
            self.region, self.account, self.name
        )
    }

    /// The stream a stream ARN names (any `aws*` partition, a 12-digit account, a valid
    /// stream name): the inverse of [`StreamKey::arn`].
    pub fn from_arn(arn: &str) -> Option<StreamKey> {
        let arn = crate::arn::Arn::parse(arn)?;
        if !arn.in_aws_partition() || arn.service != "kinesis" {
            return None;
        }
        let name = arn.resource.strip_prefix("stream/")?;
        if !valid_name(name) || !crate::arn::is_account_id(arn.account) {
            return None;
        }
        Some(StreamKey {
            account: arn.account.to_string(),
            region: arn.region.to_string(),
            name: name.to_string(),
        })
    }
}

/// A stream or consumer name as AWS allows them: 1 to 128 of `[a-zA-Z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A shard: its place in the hash key space and lineage, and its log.
pub struct Shard {
    /// Index: the number in the shard id.
    pub index: u32,
    /// `shardId-000000000007`.
    pub id: String,
    /// The hash keys it owns.
    pub range: HashRange,
    /// Parent index after a split or merge.
    pub parent: Option<u32>,
    /// Second parent of a merge.
    pub adjacent_parent: Option<u32>,
    /// Creation time (ms); the time part of its starting sequence number.
    pub created_ms: i64,
    /// Set once the shard is closed. Also the write gate: an append holds the read lock
    /// while it checks that the shard is open and writes, and closing takes the write lock,
    /// so no record lands in a shard after its end offset was fixed. `std` lock: held for
    /// a memcpy at most, never across `.await`.
    pub closed: RwLock<Option<ClosedShard>>,
    /// The records. Appends go through the log's single writer; reads never block it.
    pub log: Arc<storage::Log>,
    /// The shard's throughput buckets.
    pub throttle: super::throttle::ShardThrottle,
    /// Write demand since the autoscaler last looked.
    pub demand: super::autoscale::Demand,
    /// Wakes readers waiting at the shard's tail (fan-out sessions) on each append and close.
    pub tail: super::fanout::Tail,
    /// Shard-level counters (exported when enhanced monitoring enables them).
    pub metrics: crate::metrics::ShardMetrics,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .field("range", &self.range)
            .finish()
    }
}

/// The shard id for an index: `shardId-` and twelve digits.
pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// Resolves a shard id as AWS does: the digits after the first `-` (or the whole id when it
/// has none) are the index, so `shardId-000000000007`, `shardId-7` and `7` all name shard 7.
/// (Same rule as kinesalite's `resolveShardId`, which mirrors AWS.)
pub fn parse_shard_id(id: &str) -> Option<u32> {
    let digits = id.split('-').nth(1).unwrap_or(id);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().filter(|&i| i < (1 << 31))
}

impl Shard {
    /// The sequence number of the record at `offset` that arrived at `arrival_ms`.
    pub fn sequence_number(&self, arrival_ms: i64, offset: u64) -> String {
        SequenceNumber::record(self.created_ms, self.index, offset, arrival_ms).encode()
    }

    /// The shard's starting sequence number: below every record's, naming none of them
    /// (AT it and AFTER it both start at the first record).
    pub fn starting_sequence_number(&self) -> String {
        SequenceNumber::start(self.created_ms, self.index).encode()
    }

    /// The shard's creation second, as its sequence numbers carry it.
    pub fn created_s(&self) -> u64 {
        (self.created_ms.max(0) / 1000) as u64
    }

    /// The last sequence number of a closed shard.
    pub fn ending_sequence_number(&self) -> Option<String> {
        self.closed().map(|c| {
            if c.end_offset == 0 {
                // A shard closed before any record: end at its start.
                self.starting_sequence_number()
            } else {
                self.sequence_number(c.last_arrival_ms, c.end_offset - 1)
            }
        })
    }

    /// How the shard ended, once closed.
    pub fn closed(&self) -> Option<ClosedShard> {
        *self.closed.read().unwrap_or_else(|e| e.into_inner())
    }

    /// True while the shard takes writes.
    pub fn is_open(&self) -> bool {
        self.closed().is_none()
    }

    fn meta(&self) -> ShardMeta {
        ShardMeta {
            index: self.index,
            range: self.range,
            parent: self.parent,
            adjacent_parent: self.adjacent_parent,
            created_ms: self.created_ms,
            closed: self.closed(),
        }
    }
}

/// The mutable part of a stream.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// Lifecycle state.
    pub status: StreamStatus,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Retention in hours.
    pub retention_hours: u32,
    /// Largest record accepted, KiB.
    pub max_record_size_kib: u32,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Every shard in index order.
    pub shards: Vec<Arc<Shard>>,
    /// Open shards sorted by starting hash key, for routing by binary search.
    pub open: Vec<Arc<Shard>>,
    /// Monitoring, encryption and policy settings.
    pub extras: StreamExtras,
    /// Registered enhanced fan-out consumers, in registration order.
    pub consumers: Vec<super::fanout::registry::ConsumerMeta>,
}

impl StreamState {
    /// Rebuilds the routing table after the shard list changed.
    pub fn reindex(&mut self) {
        let mut open: Vec<Arc<Shard>> = self
            .shards
            .iter()
            .filter(|s| s.is_open())
            .cloned()
            .collect();
        open.sort_by_key(|s| s.range.start);
        self.open = open;
    }

    /// The open shard owning `hash_key`. Open shards cover the key space exactly, so
    /// there is always one while the stream has shards.
    pub fn route(&self, hash_key: u128) -> Option<&Arc<Shard>> {
        let i = self.open.partition_point(|s| s.range.start <= hash_key);
        let shard = self.open.get(i.checked_sub(1)?)?;
        shard.range.contains(hash_key).then_some(shard)
    }

    /// The shards AWS still lists at `now_ms`: open ones, and closed ones until every
    /// record they hold has outlived the retention period.
    pub fn listed_shards(&self, now_ms: i64) -> impl Iterator<Item = &Arc<Shard>> {
        let horizon = now_ms - self.retention_hours as i64 * 3_600_000;
        self.shards
            .iter()
            .filter(move |s| s.closed().is_none_or(|c| c.closed_ms >= horizon))
    }

    /// The shards a split or merge of shard `index` created (what a reader of a closed shard
    /// goes on to).
    pub fn children_of(&self, index: u32) -> Vec<Arc<Shard>> {
        self.shards
            .iter()
            .filter(|s| s.parent == Some(index) || s.adjacent_parent == Some(index))
            .cloned()
            .collect()
    }

    /// The shard with this id, open or closed.
    pub fn shard(&self, id: &str) -> Option<&Arc<Shard>> {
        let index = parse_shard_id(id)?;
        self.shards.get(index as usize).filter(|s| s.index == index)
    }
}

/// A stream. The identity never changes; the state sits behind a lock.
#[derive(Debug)]
pub struct Stream {
    /// Unique across the broker's life; names its directory, goes into iterators.
    pub uid: u64,
    /// Account, region, name.
    pub key: StreamKey,
    /// The `StreamId` AWS reports.
    pub stream_id: String,
    /// Creation time (ms).
    pub created_ms: i64,
    /// `std::sync::RwLock`, not tokio's: critical sections are short and never span an
    /// `.await`; the write path takes it for reading only, to route records.
    state: RwLock<StreamState>,
    /// How many records the AUTO distribution strategy has placed: the next one goes to the
    /// open shard at this count modulo their number. Relaxed, like the rest of the write
    /// path's counters: concurrent writers may interleave, the spread stays even.
    auto_placements: AtomicU64,
    /// Stream-level counters and the throughput history; gone with the stream.
    pub metrics: crate::metrics::StreamMetrics,
}

impl Stream {
    /// Builds a stream from its parts.
    pub fn new(
        uid: u64,
        key: StreamKey,
        stream_id: String,
        created_ms: i64,
        state: StreamState,
    ) -> Self {
        Self {
            uid,
            key,
            stream_id,
            created_ms,
            state: RwLock::new(state),
            auto_placements: AtomicU64::new(0),
            metrics: Default::default(),
        }
    }

    /// The position among the open shards of the next record placed by the AUTO strategy.
    pub fn next_auto_placement(&self, open_shards: usize) -> usize {
        let n = self.auto_placements.fetch_add(1, Ordering::Relaxed);
        (n % open_shards.max(1) as u64) as usize
    }

    /// Reads the state. A poisoned lock means a panic elsewhere while writing it; the
    /// state is still the last consistent one since every writer assigns whole fields.
    pub fn state(&self) -> RwLockReadGuard<'_, StreamState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the state.
    pub fn state_mut(&self) -> RwLockWriteGuard<'_, StreamState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream ARN.
    pub fn arn(&self) -> String {
        self.key.arn()
    }

    /// The catalog entry for this stream.
    pub fn meta(&self) -> StreamMeta {
        let st = self.state();
        StreamMeta {
            uid: self.uid,
            stream_id: self.stream_id.clone(),
            account: self.key.account.clone(),
            region: self.key.region.clone(),
            name: self.key.name.clone(),
            status: st.status,
            mode: st.mode,
            created_ms: self.created_ms,
            retention_hours: st.retention_hours,
            max_record_size_kib: st.max_record_size_kib,
            tags: st.tags.clone(),
            shards: st.shards.iter().map(|s| s.meta()).collect(),
            extras: st.extras.clone(),
            consumers: st.consumers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_id_round_trips() {
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("shardId-7"), Some(7));
        assert_eq!(parse_shard_id("7"), Some(7));
        assert_eq!(parse_shard_id("shardId-00000000000x"), None);
        assert_eq!(parse_shard_id("shardId-"), None);
    }
}
