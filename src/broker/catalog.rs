//! The persisted description of every stream and shard (names, hash ranges, lineage,
//! status, settings), kept as one JSON document in a crash-safe `storage::MetaStore`.
//!
//! It changes only on control-plane operations, so rewriting it whole on each change is
//! cheap and keeps recovery trivial: the document on disk is always a complete, valid
//! version (old or new), never a mix. Record data and sequence numbers are not in it:
//! they live in the shard logs, whose offsets survive a restart by themselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hash::HashRange;

/// The version of the catalog document; a broker refuses a newer one it cannot read.
pub const CATALOG_VERSION: u32 = 1;

/// The whole catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    /// Document format version.
    pub version: u32,
    /// Next stream uid to hand out; uids are never reused.
    pub next_stream_uid: u64,
    /// Every stream, in any state.
    pub streams: Vec<StreamMeta>,
    /// Account-level settings, keyed by `account:region`.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountSettings>,
}

/// An account's settings in one region (UpdateAccountSettings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// When the minimum throughput billing commitment was enabled (ms).
    pub commitment_started_ms: Option<i64>,
    /// When it ends or ended (ms), once disabled.
    pub commitment_ended_ms: Option<i64>,
}

/// A stream's lifecycle state, as `StreamStatus` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamStatus {
    /// Being created; becomes ACTIVE after the configured delay.
    Creating,
    /// Usable.
    Active,
    /// Resharding or changing mode; readable and writable.
    Updating,
    /// Being deleted; gone after the configured delay.
    Deleting,
}

impl StreamStatus {
    /// The wire name (`ACTIVE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

/// Capacity mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMode {
    /// A fixed number of shards.
    Provisioned,
    /// Shards managed by the broker (starts with 4).
    OnDemand,
}

impl StreamMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// One stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Unique, never reused; names the stream's directory and goes into iterators.
    pub uid: u64,
    /// The `StreamId` AWS reports (`[a-z0-9]{20}-[a-z0-9]{3}`).
    pub stream_id: String,
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// Stream name.
    pub name: String,
    /// Lifecycle state.
    pub status: StreamStatus,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// Retention period in hours (24..=8760).
    pub retention_hours: u32,
    /// Largest record (data plus partition key) accepted, in KiB.
    pub max_record_size_kib: u32,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Every shard, open and closed, in index order.
    pub shards: Vec<ShardMeta>,
    /// Monitoring, encryption and policy settings (absent in catalogs written before them).
    #[serde(default)]
    pub extras: StreamExtras,
    /// Registered enhanced fan-out consumers (absent in catalogs written before them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<super::fanout::registry::ConsumerMeta>,
}

/// Stream settings that only the control plane reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamExtras {
    /// Enhanced monitoring: the shard-level metrics enabled, in AWS's order.
    pub shard_level_metrics: Vec<String>,
    /// The KMS key id while server-side encryption is on.
    pub encryption_key_id: Option<String>,
    /// When encryption was on: `(from_ms, until_ms)`, `until_ms` open while it still is.
    /// Records report `EncryptionType: KMS` when they arrived inside one of these.
    pub encryption_periods: Vec<(i64, Option<i64>)>,
    /// The resource policy attached to the stream (a JSON document).
    pub policy: Option<String>,
    /// When UpdateShardCount was called (ms), for AWS's calls-per-24-hours limit.
    #[serde(default)]
    pub shard_count_updates: Vec<i64>,
    /// When the capacity mode was switched (ms), for AWS's switches-per-24-hours limit.
    #[serde(default)]
    pub mode_switches: Vec<i64>,
    /// The warm throughput asked for an on-demand stream (UpdateStreamWarmThroughput), MiB/s.
    #[serde(default)]
    pub warm_throughput_mibps: Option<u32>,
    /// The reshard the stream is UPDATING for; applied when the update ends (or when the
    /// broker opens, if it stopped before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_reshard: Vec<super::reshard::Reshard>,
    /// How records are placed on shards (UpdateStreamRecordDistributionStrategy); catalogs
    /// written before the setting existed load with AWS's default.
    #[serde(default)]
    pub record_distribution: RecordDistribution,
}

/// How a stream places records on its shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordDistribution {
    /// By the MD5 of the partition key, or the explicit hash key (AWS's default).
    #[default]
    UserPartitionKey,
    /// Evenly over the open shards, ignoring partition and explicit hash keys.
    Auto,
}

impl RecordDistribution {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordDistribution::UserPartitionKey => "USER_PARTITION_KEY",
            RecordDistribution::Auto => "AUTO",
        }
    }
}

impl StreamExtras {
    /// True when a record that arrived at `arrival_ms` was written encrypted.
    pub fn encrypted_at(&self, arrival_ms: i64) -> bool {
        self.encryption_periods
            .iter()
            .any(|&(from, until)| arrival_ms >= from && until.is_none_or(|u| arrival_ms < u))
    }
}

/// One shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Index: the number in `shardId-000000000007`.
    pub index: u32,
    /// The hash keys it owns.
    pub range: HashRange,
    /// Parent shard index (after a split or merge).
    pub parent: Option<u32>,
    /// The second parent of a merge.
    pub adjacent_parent: Option<u32>,
    /// Creation time, ms since the epoch; the time part of its starting sequence number.
    pub created_ms: i64,
    /// Set when the shard is closed: the offset one past its last record, and when.
    pub closed: Option<ClosedShard>,
}

/// How a closed shard ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ClosedShard {
    /// One past the offset of its last record.
    pub end_offset: u64,
    /// The arrival time of its last record (for the ending sequence number).
    pub last_arrival_ms: i64,
    /// When it was closed.
    pub closed_ms: i64,
}

/// Reads and writes the catalog document.
pub struct CatalogStore {
    store: storage::MetaStore,
}

impl CatalogStore {
    /// Opens (or prepares) the catalog file at `path`.
    pub fn open(path: &std::path::Path) -> Result<Self, super::Error> {
        Ok(Self {
            store: storage::MetaStore::open(path)?,
        })
    }

    /// The stored catalog, or an empty one for a new data directory.
    pub fn load(&self) -> Result<Catalog, super::Error> {
        match self.store.load()? {
            None => Ok(Catalog {
                version: CATALOG_VERSION,
                next_stream_uid: 1,
                streams: Vec::new(),
                accounts: BTreeMap::new(),
            }),
            Some(bytes) => {
                let catalog: Catalog = serde_json::from_slice(&bytes)
                    .map_err(|e| super::Error::Catalog(format!("unreadable catalog: {e}")))?;
                if catalog.version > CATALOG_VERSION {
                    return Err(super::Error::Catalog(format!(
                        "catalog version {} is newer than this broker understands ({CATALOG_VERSION})",
                        catalog.version
                    )));
                }
                Ok(catalog)
            }
        }
    }

    /// Replaces the stored catalog atomically (blocking: fsyncs).
    pub fn save(&self, catalog: &Catalog) -> Result<(), super::Error> {
        let bytes = serde_json::to_vec_pretty(catalog)
            .map_err(|e| super::Error::Catalog(format!("cannot encode catalog: {e}")))?;
        self.store.store(&bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_written_before_the_distribution_strategy_load_as_user_partition_key() {
        let old = r#"{"shard_level_metrics":[],"encryption_key_id":null,"encryption_periods":[],"policy":null}"#;
        let extras: StreamExtras = serde_json::from_str(old).expect("old extras load");
        assert_eq!(
            extras.record_distribution,
            RecordDistribution::UserPartitionKey
        );
        let auto = StreamExtras {
            record_distribution: RecordDistribution::Auto,
            ..StreamExtras::default()
        };
        let back: StreamExtras =
            serde_json::from_str(&serde_json::to_string(&auto).unwrap()).unwrap();
        assert_eq!(back.record_distribution, RecordDistribution::Auto);
    }
}
