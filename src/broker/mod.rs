//! The broker domain: the stream registry, stream and shard state, hash-key routing,
//! sequence numbers and shard iterators, on top of the `storage` crate's logs.
//!
//! Nothing here knows HTTP, JSON or AWS's error wording: operations in `api` call these
//! methods and turn [`Error`] into AWS errors.

pub mod autoscale;
pub mod catalog;
pub mod clock;
mod error;
pub mod faults;
pub mod hash;
pub mod iterator;
pub mod reshard;
pub mod sequence;
pub mod stream;
pub mod throttle;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use catalog::{Catalog, CatalogStore, StreamMeta, StreamMode, StreamStatus};
pub use clock::Clock;
pub use error::{Error, Result};
use iterator::{ITERATOR_TTL_MS, IteratorCodec, ShardIterator};
use stream::{Shard, Stream, StreamKey, StreamState};

use crate::config::{Config, DurabilityMode};

/// Default retention: 24 hours, as on AWS.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// Default largest record (data plus partition key): 1 MiB, as on AWS.
pub const DEFAULT_MAX_RECORD_SIZE_KIB: u32 = 1024;
/// Open shards an account may have in a region: 500, AWS's default quota in its largest
/// regions (200 elsewhere). Configurable in a later issue.
pub const DEFAULT_SHARD_LIMIT: u32 = 500;
/// The smallest segment the broker uses: room for one 10 MiB record (the largest
/// `MaxRecordSizeInKiB` allows) with its frame and key.
pub const MIN_SEGMENT_BYTES: u64 = 11 * 1024 * 1024;
/// Bytes of records between two entries of a segment's sparse index: 32 KiB.
///
/// Index entries are kept in memory (24 bytes each) for every segment that has been read or
/// written since start-up, so this sets the heap cost of data: storage's 4 KiB default is
/// ≈ 6 MB per GB, which let the broker's resident memory grow with the data written (a
/// 10 s PutRecords run wrote 8 GB and its peak anonymous memory doubled). At 32 KiB it is
/// ≈ 0.75 MB per GB, and a seek scans at most 32 KiB of frame headers past an entry.
pub const INDEX_INTERVAL_BYTES: u32 = 32 * 1024;
/// On-demand streams an account may have in a region: 50, AWS's default quota.
pub const DEFAULT_ON_DEMAND_STREAM_LIMIT: u32 = 50;
/// One put request as `append_group` needs it.
#[derive(Clone, Copy)]
struct PutBatch<'a, 'b> {
    entries: &'a [PutEntry<'b>],
    /// Per record: the fault injection decided for it, if any.
    injected: &'a [Option<faults::RecordFault>],
    /// The arrival time to give the records.
    now: i64,
}

/// Record positions of one request grouped by shard index, with the shard.
type ShardGroups = BTreeMap<u32, (Arc<Shard>, Vec<usize>)>;

/// What became of one shard's group of a PutRecords call.
enum GroupAppend {
    /// Written; acknowledged once `next_offset` is durable. `written` are the positions.
    Appended {
        next_offset: u64,
        written: Vec<usize>,
    },
    /// Nothing written; every position's result says why (fault, throttle, write error).
    Failed,
    /// The shard's writer was held by another request (only when not waiting); nothing decided.
    Busy,
    /// The shard was closed by a reshard since routing; nothing decided: route again.
    Closed,
}

/// How many times a PutRecords call routes records again after reshards closed their
/// shards under it; each reshard needs one more, so this is never reached in practice.
const MAX_ROUTING_ATTEMPTS: usize = 8;
/// How often expired segments are deleted. Reads never return expired records whatever
/// this is; it only bounds how long their disk space stays taken.
pub const RETENTION_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Shards of a new on-demand stream, as on AWS.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

/// The settings the broker takes from [`Config`].
#[derive(Debug, Clone)]
struct Settings {
    data_dir: PathBuf,
    create_delay: Duration,
    delete_delay: Duration,
    update_delay: Duration,
    shard_limit: u32,
    on_demand_stream_limit: u32,
    limits: throttle::Limits,
    log_options: storage::LogOptions,
}

/// All streams, by uid and by key.
#[derive(Default)]
struct Registry {
    next_uid: u64,
    streams: HashMap<u64, Arc<Stream>>,
    by_key: BTreeMap<StreamKey, u64>,
    /// Streams deleted while this process runs, so a stale iterator's error can still
    /// name its stream.
    deleted: HashMap<u64, StreamKey>,
}

/// Where a new iterator points, before it is resolved to an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest record.
    Latest,
    /// At this offset.
    AtOffset(u64),
    /// Just after this offset.
    AfterOffset(u64),
    /// The first record that arrived at or after this time (ms).
    AtTimestamp(i64),
}

/// One record of a PutRecord(s) call, already validated and hashed.
#[derive(Debug)]
pub struct PutEntry<'a> {
    /// The hash key that routes it: MD5 of the partition key, or the explicit hash key.
    pub hash_key: u128,
    /// Partition key bytes.
    pub partition_key: &'a [u8],
    /// The explicit hash key as sent, if any.
    pub explicit_hash_key: Option<&'a [u8]>,
    /// The data.
    pub data: &'a [u8],
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The shard id.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
}

/// What a GetRecords call read.
pub struct ReadResult {
    /// The shard read.
    pub shard: Arc<Shard>,
    /// The records (borrowed views into the mapped segments).
    pub batch: storage::ReadBatch,
    /// The next iterator; `None` at the end of a closed shard.
    pub next_iterator: Option<String>,
    /// How far behind the newest record the reader is.
    pub millis_behind_latest: i64,
    /// The children of a closed shard whose end was reached.
    pub child_shards: Vec<Arc<Shard>>,
    /// The stream's settings (records report whether they were written encrypted).
    pub stream_extras: catalog::StreamExtras,
}

/// The broker. Shared as `Arc<Broker>` by every request.
pub struct Broker {
    settings: Settings,
    clock: Clock,
    iterators: IteratorCodec,
    catalog: CatalogStore,
    /// Serialises catalog writes so the file on disk always follows the order of
    /// changes; taken before the registry snapshot is made.
    persist_lock: Mutex<()>,
    /// `std` lock: held only for map look-ups and inserts, never across `.await`.
    registry: RwLock<Registry>,
    /// Serialises stream creations, so a quota check and the insert it guards are atomic.
    create_lock: Mutex<()>,
    /// Fault injection (inert unless configured).
    faults: faults::Faults,
    /// Per-account rates of control-plane operations.
    control_rates: throttle::ControlPlaneRates,
    /// Account-level settings, keyed by `account:region`. Persisted with the catalog.
    accounts: Mutex<BTreeMap<String, catalog::AccountSettings>>,
    /// Tells background tasks (lifecycle timers) to stop.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Which shard group the next PutRecords appends first (see [`Broker::put`]).
    put_rotation: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("data_dir", &self.settings.data_dir)
            .finish()
    }
}

const CATALOG_FILE: &str = "catalog.json";
const SECRET_FILE: &str = "iterator-secret";
const STREAMS_DIR: &str = "streams";

impl Broker {
    /// Opens the data directory: loads the catalog, reopens every shard log (recovering
    /// their tails), finishes lifecycle transitions interrupted by a stop, and creates
    /// the configured start-up streams. Must run inside the tokio runtime.
    pub fn open(config: &Config) -> Result<Arc<Broker>> {
        let clock = Clock::system();
        clock
            .advance_ms(config.clock_offset_ms)
            .map_err(|e| Error::Catalog(format!("--clock-offset-ms: {e}")))?;
        Self::open_with_clock(config, clock)
    }

    /// [`Broker::open`] with a given clock (tests move time forward with it).
    pub fn open_with_clock(config: &Config, clock: Clock) -> Result<Arc<Broker>> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(data_dir.join(STREAMS_DIR)).map_err(|e| {
            Error::Catalog(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let durability = match config.durability {
            DurabilityMode::Flush => storage::Durability::Flush,
            DurabilityMode::PageCache => storage::Durability::PageCache {
                interval: config.flush_interval,
            },
        };
        let log_options = storage::LogOptions {
            // A segment must hold the largest record a stream can accept.
            segment_bytes: config.segment_bytes.max(MIN_SEGMENT_BYTES),
            index_interval_bytes: INDEX_INTERVAL_BYTES,
            durability,
            ..storage::LogOptions::default()
        };
        let settings = Settings {
            data_dir: data_dir.clone(),
            create_delay: config.create_stream_delay,
            delete_delay: config.delete_stream_delay,
            update_delay: config.update_stream_delay,
            shard_limit: config.shard_limit,
            on_demand_stream_limit: config.on_demand_stream_limit,
            limits: throttle::Limits {
                enabled: config.throughput_limits,
                multiplier: config.throughput_multiplier,
            },
            log_options,
        };
        let iterators = IteratorCodec::new(load_or_create_secret(&data_dir)?);
        let catalog = CatalogStore::open(&data_dir.join(CATALOG_FILE))?;
        let stored = catalog.load()?;
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let broker = Arc::new(Broker {
            settings,
            clock,
            iterators,
            catalog,
            persist_lock: Mutex::new(()),
            accounts: Mutex::new(stored.accounts.clone()),
            create_lock: Mutex::new(()),
            faults: faults::Faults::new(config.faults.clone()),
            control_rates: throttle::ControlPlaneRates::default(),
            registry: RwLock::new(Registry {
                next_uid: stored.next_stream_uid.max(1),
                ..Default::default()
            }),
            shutdown,
            put_rotation: Default::default(),
        });
        broker.restore(stored)?;
        broker.start_retention_sweeper();
        broker.start_autoscaler(config.on_demand_scale_interval);
        for spec in &config.create_streams {
            let key = StreamKey {
                account: crate::api::RequestContext::DEFAULT_ACCOUNT_ID.to_string(),
                region: crate::api::RequestContext::DEFAULT_REGION.to_string(),
                name: spec.name.clone(),
            };
            if broker.stream(&key).is_err() {
                broker.create_stream_now(
                    key,
                    spec.shard_count,
                    StreamMode::Provisioned,
                    BTreeMap::new(),
                )?;
            }
        }
        Ok(broker)
    }

    /// Reopens the streams of a stored catalog.
    fn restore(self: &Arc<Self>, stored: Catalog) -> Result<()> {
        let mut pending_deletes = Vec::new();
        let dirs: Vec<PathBuf> = stored
            .streams
            .iter()
            .flat_map(|m| m.shards.iter().map(|s| self.shard_dir(m.uid, s.index)))
            .collect();
        let mut logs = open_logs(&dirs, &self.settings.log_options)?.into_iter();
        for meta in stored.streams {
            let key = StreamKey {
                account: meta.account.clone(),
                region: meta.region.clone(),
                name: meta.name.clone(),
            };
            let status = match meta.status {
                // The creation delay has certainly passed while the broker was down.
                StreamStatus::Creating => StreamStatus::Active,
                // A pending reshard is finished below; any other update is over.
                StreamStatus::Updating if meta.extras.pending_reshard.is_empty() => {
                    StreamStatus::Active
                }
                other => other,
            };
            let mut shards = Vec::with_capacity(meta.shards.len());
            for sm in &meta.shards {
                let log = logs
                    .next()
                    .ok_or_else(|| Error::Catalog("fewer shard logs opened than listed".into()))?;
                shards.push(Arc::new(Shard {
                    index: sm.index,
                    id: stream::shard_id(sm.index),
                    range: sm.range,
                    parent: sm.parent,
                    adjacent_parent: sm.adjacent_parent,
                    created_ms: sm.created_ms,
                    closed: RwLock::new(sm.closed),
                    log: Arc::new(log),
                    throttle: Default::default(),
                    demand: Default::default(),
                }));
            }
            let mut state = StreamState {
                status,
                mode: meta.mode,
                retention_hours: meta.retention_hours,
                max_record_size_kib: meta.max_record_size_kib,
                tags: meta.tags.clone(),
                shards,
                open: Vec::new(),
                extras: meta.extras.clone(),
            };
            state.reindex();
            let stream = Arc::new(Stream::new(
                meta.uid,
                key.clone(),
                meta.stream_id.clone(),
                meta.created_ms,
                state,
            ));
            if status == StreamStatus::Deleting {
                pending_deletes.push(meta.uid);
            }
            let mut reg = self.registry_mut();
            reg.next_uid = reg.next_uid.max(meta.uid + 1);
            reg.by_key.insert(key, meta.uid);
            reg.streams.insert(meta.uid, stream);
        }
        for uid in pending_deletes {
            self.finish_delete(uid)?;
        }
        let updating: Vec<u64> = self
            .registry()
            .streams
            .values()
            .filter(|s| s.state().status == StreamStatus::Updating)
            .map(|s| s.uid)
            .collect();
        for uid in updating {
            if let Err(e) = self.finish_reshard(uid) {
                tracing::error!(error = %e, "an interrupted reshard could not be finished");
            }
        }
        self.persist()
    }

    /// The broker's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }

    fn shard_dir(&self, uid: u64, index: u32) -> PathBuf {
        self.settings
            .data_dir
            .join(STREAMS_DIR)
            .join(format!("{uid:020}"))
            .join(stream::shard_id(index))
    }

    fn stream_dir(&self, uid: u64) -> PathBuf {
        self.settings
            .data_dir
            .join(STREAMS_DIR)
            .join(format!("{uid:020}"))
    }

    /// Writes the catalog as it is now (blocking: fsync). The persist lock is taken
    /// before the snapshot so concurrent changes reach the disk in order.
    fn persist(&self) -> Result<()> {
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.persist_locked()
    }

    /// [`Broker::persist`] for a caller that holds the persist lock.
    fn persist_locked(&self) -> Result<()> {
        let catalog = {
            let reg = self.registry();
            let mut streams: Vec<StreamMeta> = reg.streams.values().map(|s| s.meta()).collect();
            streams.sort_by_key(|s| s.uid);
            Catalog {
                version: catalog::CATALOG_VERSION,
                next_stream_uid: reg.next_uid,
                streams,
                accounts: self
                    .accounts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            }
        };
        self.catalog.save(&catalog)
    }

    /// Runs [`Broker::persist`] off the async worker threads.
    async fn persist_async(self: &Arc<Self>) -> Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.persist())
            .await
            .map_err(|e| Error::Catalog(format!("catalog writer failed: {e}")))?
    }

    /// Applies `change` to a stream's state and persists the catalog. `change` either
    /// fails without modifying anything, or succeeds; if the catalog then cannot be written
    /// the state is put back as it was, so memory never runs ahead of the disk.
    pub async fn update_stream<T, F>(self: &Arc<Self>, stream: &Arc<Stream>, change: F) -> Result<T>
    where
        F: FnOnce(&mut StreamState) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let me = self.clone();
        let stream = stream.clone();
        tokio::task::spawn_blocking(move || {
            let _order = me.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
            let (before, out) = {
                let mut st = stream.state_mut();
                let before = st.clone();
                (before, change(&mut st)?)
            };
            if let Err(e) = me.persist_locked() {
                *stream.state_mut() = before;
                return Err(e);
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Catalog(format!("stream update failed: {e}")))?
    }

    /// Applies `change` to an ACTIVE stream as AWS's asynchronous operations do
    /// (encryption, resharding, mode changes): the stream is UPDATING for the configured
    /// delay, then ACTIVE again. A stream in another state gives [`Error::StreamNotActive`].
    pub async fn update_stream_in_background<T, F>(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        change: F,
    ) -> Result<T>
    where
        F: FnOnce(&mut StreamState) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let delay = self.settings.update_delay;
        let key = stream.key.clone();
        let out = self
            .update_stream(stream, move |st| {
                if st.status != StreamStatus::Active {
                    return Err(Error::StreamNotActive {
                        name: key.name,
                        account: key.account,
                        status: st.status,
                    });
                }
                let out = change(st)?;
                if !delay.is_zero() {
                    st.status = StreamStatus::Updating;
                }
                Ok(out)
            })
            .await?;
        if !delay.is_zero() {
            let uid = stream.uid;
            self.after(delay, move |broker| broker.finish_update(uid));
        }
        Ok(out)
    }

    fn finish_update(&self, uid: u64) -> Result<()> {
        let Some(stream) = self.registry().streams.get(&uid).cloned() else {
            return Ok(());
        };
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut st = stream.state_mut();
            if st.status != StreamStatus::Updating {
                return Ok(());
            }
            st.status = StreamStatus::Active;
        }
        self.persist_locked()
    }

    /// The account's open shards and on-demand streams in a region, for DescribeLimits.
    pub fn usage(&self, account: &str, region: &str) -> (usize, usize) {
        let streams = self.list_streams(account, region);
        let open = streams.iter().map(|s| s.state().open.len()).sum();
        let on_demand = streams
            .iter()
            .filter(|s| s.state().mode == StreamMode::OnDemand)
            .count();
        (open, on_demand)
    }

    /// Admits one call of a control-plane `operation` for an account in a region (and
    /// stream, when the operation names one), as AWS limits them
    /// ([`throttle::control_plane_rate`]).
    pub fn admit_control(
        &self,
        account: &str,
        region: &str,
        operation: &str,
        stream: Option<&str>,
    ) -> Result<()> {
        if throttle::control_plane_rate(operation).is_none() || !self.settings.limits.enabled {
            return Ok(());
        }
        let scope = match stream {
            Some(name) if throttle::limited_per_stream(operation) => {
                format!("{account}/{region}/{name}")
            }
            _ => format!("{account}/{region}"),
        };
        if self
            .control_rates
            .admit(self.settings.limits, &scope, operation)
        {
            return Ok(());
        }
        Err(Error::RateExceeded(match stream {
            Some(name) => format!("stream {name} under account {account}"),
            None => format!("account {account}"),
        }))
    }

    /// Applies the request-level faults configured for `stream` (added latency, then
    /// maybe an injected error). A no-op unless fault injection is configured.
    pub async fn inject(&self, stream: &str, is_get_records: bool) -> Result<()> {
        let (fault, delay) = self.faults.on_request(stream, is_get_records);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(f) => Err(Error::Injected(f)),
            None => Ok(()),
        }
    }

    /// The fault injector, for the admin API.
    pub fn faults(&self) -> &faults::Faults {
        &self.faults
    }

    /// An account's settings in a region.
    pub fn account_settings(&self, account: &str, region: &str) -> catalog::AccountSettings {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts
            .get(&format!("{account}:{region}"))
            .copied()
            .unwrap_or_default()
    }

    /// Changes an account's settings in a region and persists them; undone if the
    /// catalog cannot be written.
    pub async fn update_account_settings(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        change: impl FnOnce(&mut catalog::AccountSettings) + Send + 'static,
    ) -> Result<catalog::AccountSettings> {
        let me = self.clone();
        let key = format!("{account}:{region}");
        tokio::task::spawn_blocking(move || {
            let _order = me.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
            let (before, after) = {
                let mut accounts = me.accounts.lock().unwrap_or_else(|e| e.into_inner());
                let entry = accounts.entry(key.clone()).or_default();
                let before = *entry;
                change(entry);
                (before, *entry)
            };
            if let Err(e) = me.persist_locked() {
                me.accounts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, before);
                return Err(e);
            }
            Ok(after)
        })
        .await
        .map_err(|e| Error::Catalog(format!("account settings update failed: {e}")))?
    }

    /// The account's shard limit per region.
    pub fn shard_limit(&self) -> u32 {
        self.settings.shard_limit
    }

    /// The account's on-demand stream limit per region.
    pub fn on_demand_stream_limit(&self) -> u32 {
        self.settings.on_demand_stream_limit
    }

    /// Deletes the segments whose records have all outlived their stream's retention
    /// period. Reads already skip such records; this gives the disk space back.
    pub fn sweep_retention(&self) -> usize {
        let now = self.clock.now_ms();
        let streams: Vec<Arc<Stream>> = self.registry().streams.values().cloned().collect();
        let mut dropped = 0;
        for stream in streams {
            let (retention_hours, shards) = {
                let st = stream.state();
                (st.retention_hours, st.shards.clone())
            };
            let horizon = now - retention_hours as i64 * 3_600_000;
            for shard in shards {
                match shard.log.drop_older_than(horizon) {
                    Ok(n) => dropped += n,
                    Err(e) => {
                        tracing::warn!(shard = %shard.id, stream = %stream.key.name, error = %e, "retention sweep failed")
                    }
                }
            }
        }
        if dropped > 0 {
            tracing::info!(
                segments = dropped,
                "retention sweep deleted expired segments"
            );
        }
        dropped
    }

    /// Runs [`Broker::sweep_retention`] every [`RETENTION_SWEEP_INTERVAL`] until shutdown.
    fn start_retention_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RETENTION_SWEEP_INTERVAL) => {}
                    _ = stop.changed() => return,
                }
                let Some(broker) = weak.upgrade() else { return };
                if tokio::task::spawn_blocking(move || broker.sweep_retention())
                    .await
                    .is_err()
                {
                    tracing::error!("retention sweep panicked");
                }
            }
        });
    }

    /// The stream with this key, in any state.
    pub fn stream(&self, key: &StreamKey) -> Result<Arc<Stream>> {
        let reg = self.registry();
        reg.by_key
            .get(key)
            .and_then(|uid| reg.streams.get(uid))
            .cloned()
            .ok_or_else(|| Error::StreamNotFound {
                name: key.name.clone(),
                account: key.account.clone(),
            })
    }

    /// Every stream of an account and region, sorted by name.
    pub fn list_streams(&self, account: &str, region: &str) -> Vec<Arc<Stream>> {
        let reg = self.registry();
        reg.by_key
            .iter()
            .filter(|(k, _)| k.account == account && k.region == region)
            .filter_map(|(_, uid)| reg.streams.get(uid).cloned())
            .collect()
    }

    /// Fails with [`Error::LimitExceeded`] when creating `additional` shards would take the
    /// account past its shard limit in the stream's region.
    pub fn check_shard_limit(&self, key: &StreamKey, additional: u32) -> Result<()> {
        let (current, _) = self.usage(&key.account, &key.region);
        let limit = self.settings.shard_limit as usize;
        if current + additional as usize > limit {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {current}. Limit: {limit}. Number of additional shards that would have resulted from this request: {additional}. Refer to the AWS Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current limits and how to request higher limits.",
                key.account, key.region
            )));
        }
        Ok(())
    }

    /// Fails with [`Error::LimitExceeded`] when the account already has as many on-demand
    /// streams in the region as its limit allows.
    pub fn check_on_demand_limit(&self, key: &StreamKey) -> Result<()> {
        let (_, on_demand) = self.usage(&key.account, &key.region);
        let limit = self.settings.on_demand_stream_limit as usize;
        if on_demand >= limit {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the on-demand stream count limit for the account {} in {}. Current on-demand stream count for the account: {on_demand}. Limit: {limit}.",
                key.account, key.region
            )));
        }
        Ok(())
    }

    /// Creates a stream in CREATING; it turns ACTIVE after the configured delay.
    pub async fn create_stream(
        self: &Arc<Self>,
        key: StreamKey,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        let delay = self.settings.create_delay;
        let me = self.clone();
        let uid = tokio::task::spawn_blocking(move || {
            let status = if delay.is_zero() {
                StreamStatus::Active
            } else {
                StreamStatus::Creating
            };
            // The limits are checked again under the creation lock, so concurrent creates
            // cannot together pass the account's quotas.
            let _one_at_a_time = me.create_lock.lock().unwrap_or_else(|e| e.into_inner());
            me.check_shard_limit(&key, shard_count)?;
            if mode == StreamMode::OnDemand {
                me.check_on_demand_limit(&key)?;
            }
            me.insert_stream(key, shard_count, mode, tags, status)
        })
        .await
        .map_err(|e| Error::Catalog(format!("stream creation failed: {e}")))??;
        if !delay.is_zero() {
            self.after(delay, move |broker| broker.finish_create(uid));
        }
        Ok(())
    }

    /// Creates an ACTIVE stream right away (start-up streams).
    fn create_stream_now(
        &self,
        key: StreamKey,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
    ) -> Result<u64> {
        self.insert_stream(key, shard_count, mode, tags, StreamStatus::Active)
    }

    /// Opens the shard logs of a new stream and records it (blocking).
    fn insert_stream(
        &self,
        key: StreamKey,
        shard_count: u32,
        mode: StreamMode,
        tags: BTreeMap<String, String>,
        status: StreamStatus,
    ) -> Result<u64> {
        let now = self.clock.now_ms();
        // Reserve the name and a uid first, so two concurrent creates cannot both win.
        let uid = {
            let mut reg = self.registry_mut();
            if reg.by_key.contains_key(&key) {
                return Err(Error::StreamExists {
                    name: key.name,
                    account: key.account,
                });
            }
            let uid = reg.next_uid;
            reg.next_uid += 1;
            reg.by_key.insert(key.clone(), uid);
            uid
        };
        let build = || -> Result<Arc<Stream>> {
            let mut shards = Vec::with_capacity(shard_count as usize);
            for (i, range) in hash::even_split(shard_count).into_iter().enumerate() {
                let index = i as u32;
                let log = storage::Log::open(
                    self.shard_dir(uid, index),
                    self.settings.log_options.clone(),
                )?;
                shards.push(Arc::new(Shard {
                    index,
                    id: stream::shard_id(index),
                    range,
                    parent: None,
                    adjacent_parent: None,
                    created_ms: now,
                    closed: RwLock::new(None),
                    log: Arc::new(log),
                    throttle: Default::default(),
                    demand: Default::default(),
                }));
            }
            let mut state = StreamState {
                status,
                mode,
                retention_hours: DEFAULT_RETENTION_HOURS,
                max_record_size_kib: DEFAULT_MAX_RECORD_SIZE_KIB,
                tags,
                shards,
                open: Vec::new(),
                extras: Default::default(),
            };
            state.reindex();
            Ok(Arc::new(Stream::new(
                uid,
                key.clone(),
                make_stream_id(uid, now),
                now,
                state,
            )))
        };
        match build() {
            Ok(stream) => {
                self.registry_mut().streams.insert(uid, stream);
                if let Err(e) = self.persist() {
                    self.forget_stream(uid);
                    return Err(e);
                }
                tracing::info!(stream = %key.name, account = %key.account, shards = shard_count, "stream created");
                Ok(uid)
            }
            Err(e) => {
                self.forget_stream(uid);
                Err(e)
            }
        }
    }

    /// Removes a stream from the registry and deletes its files.
    fn forget_stream(&self, uid: u64) {
        let removed = {
            let mut reg = self.registry_mut();
            let removed = reg.streams.remove(&uid);
            reg.by_key.retain(|_, v| *v != uid);
            if let Some(s) = &removed {
                reg.deleted.insert(uid, s.key.clone());
            }
            removed
        };
        drop(removed);
        let dir = self.stream_dir(uid);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove a deleted stream's files");
        }
    }

    /// Runs `action` after `delay` unless the broker shuts down first. Lifecycle
    /// transitions interrupted by a shutdown are completed by [`Broker::open`].
    fn after(
        self: &Arc<Self>,
        delay: Duration,
        action: impl FnOnce(&Arc<Broker>) -> Result<()> + Send + 'static,
    ) {
        let weak = Arc::downgrade(self);
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
            if let Some(broker) = weak.upgrade() {
                let result = tokio::task::spawn_blocking(move || action(&broker)).await;
                match result {
                    Ok(Err(e)) => tracing::error!(error = %e, "stream lifecycle transition failed"),
                    Err(e) => tracing::error!(error = %e, "stream lifecycle task panicked"),
                    Ok(Ok(())) => {}
                }
            }
        });
    }

    fn finish_create(&self, uid: u64) -> Result<()> {
        let Some(stream) = self.registry().streams.get(&uid).cloned() else {
            return Ok(());
        };
        {
            let mut st = stream.state_mut();
            if st.status != StreamStatus::Creating {
                return Ok(());
            }
            st.status = StreamStatus::Active;
        }
        self.persist()
    }

    fn finish_delete(&self, uid: u64) -> Result<()> {
        self.forget_stream(uid);
        self.persist()
    }

    /// Deletes a stream: DELETING now, gone after the configured delay.
    pub async fn delete_stream(self: &Arc<Self>, stream: &Arc<Stream>) -> Result<()> {
        {
            let mut st = stream.state_mut();
            // AWS lets a stream be deleted while CREATING, not while UPDATING or DELETING.
            if !matches!(st.status, StreamStatus::Active | StreamStatus::Creating) {
                return Err(Error::StreamNotActive {
                    name: stream.key.name.clone(),
                    account: stream.key.account.clone(),
                    status: st.status,
                });
            }
            st.status = StreamStatus::Deleting;
        }
        let uid = stream.uid;
        let delay = self.settings.delete_delay;
        if delay.is_zero() {
            let me = self.clone();
            tokio::task::spawn_blocking(move || me.finish_delete(uid))
                .await
                .map_err(|e| Error::Catalog(format!("stream deletion failed: {e}")))??;
        } else {
            self.persist_async().await?;
            self.after(delay, move |broker| broker.finish_delete(uid));
        }
        Ok(())
    }

    /// Appends records to the stream's shards: grouped by shard, one append per shard,
    /// then one wait for durability per shard. Results come back in request order.
    ///
    /// A failed append fails only the records of that shard. Records routed to a shard
    /// that a concurrent reshard closed are routed again to its children.
    ///
    /// `not_before_ms` is the earliest arrival time the records may get (PutRecord's
    /// SequenceNumberForOrdering); 0 for none.
    pub async fn put(
        &self,
        stream: &Stream,
        entries: &[PutEntry<'_>],
        not_before_ms: i64,
    ) -> Result<Vec<Result<Written>>> {
        let now = self.clock.now_ms().max(not_before_ms);
        let mut results: Vec<Option<Result<Written>>> = (0..entries.len()).map(|_| None).collect();
        let mut pending = Vec::new();
        // Records failed by fault injection are decided up front (one draw per record, in
        // request order, so a seed reproduces them) and are never written.
        let injected = self.faults.on_records(&stream.key.name, entries.len());
        let mut unrouted: Vec<usize> = (0..entries.len()).collect();
        for _attempt in 0..MAX_ROUTING_ATTEMPTS {
            if unrouted.is_empty() {
                break;
            }
            let mut groups: Vec<_> = self
                .route(stream, entries, &unrouted)?
                .into_values()
                .collect();
            // Concurrent requests spread over the same shards would all append in shard
            // order and queue behind one another on every shard's writer lock, idling a
            // core each time; starting each request at another shard lets them append to
            // different shards at once. (Records of different shards have no order.)
            let first = self
                .put_rotation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let len = groups.len().max(1);
            groups.rotate_left(first % len);
            unrouted.clear();
            let batch = PutBatch {
                entries,
                injected: &injected,
                now,
            };
            // First pass: only shards whose writer is free. A shard another request is
            // appending to is left for the second pass, which waits for it: by then the other
            // append has usually finished, and the worker thread kept busy meanwhile instead of
            // parking (with two workers, a parked worker is half the machine idle).
            let mut busy = Vec::new();
            for wait in [false, true] {
                let todo = if wait {
                    std::mem::take(&mut busy)
                } else {
                    std::mem::take(&mut groups)
                };
                for (shard, positions) in todo {
                    match self.append_group(stream, &shard, &batch, &positions, &mut results, wait)
                    {
                        GroupAppend::Appended {
                            next_offset,
                            written,
                        } => pending.push((shard, written, next_offset)),
                        GroupAppend::Failed => {}
                        GroupAppend::Busy => busy.push((shard, positions)),
                        // Closed by a reshard since routing: route these again.
                        GroupAppend::Closed => unrouted.extend(positions),
                    }
                }
            }
        }
        for (shard, positions, next_offset) in pending {
            if let Err(e) = shard.log.wait_durable(next_offset).await {
                tracing::error!(shard = %shard.id, error = %e, "flush failed; records not acknowledged");
                let msg = e.to_string();
                for &p in positions.iter() {
                    results[p] = Some(Err(Error::Catalog(msg.clone())));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::Catalog(
                        "record could not be routed to an open shard".into(),
                    ))
                })
            })
            .collect())
    }

    /// Groups the records at `positions` by the open shard owning their hash key, keeping
    /// request order inside a group.
    fn route(
        &self,
        stream: &Stream,
        entries: &[PutEntry<'_>],
        positions: &[usize],
    ) -> Result<ShardGroups> {
        let st = stream.state();
        // AWS answers writes to a stream that is not ACTIVE or UPDATING as if it did not
        // exist (pinned by kinesalite's tests against AWS).
        if !matches!(st.status, StreamStatus::Active | StreamStatus::Updating) {
            return Err(Error::StreamNotFound {
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            });
        }
        let mut groups = ShardGroups::new();
        for &p in positions {
            let shard = st.route(entries[p].hash_key).ok_or_else(|| {
                Error::Catalog(format!(
                    "stream {} has no open shard for a hash key",
                    stream.key.name
                ))
            })?;
            groups
                .entry(shard.index)
                .or_insert_with(|| (shard.clone(), Vec::new()))
                .1
                .push(p);
        }
        Ok(groups)
    }

    /// Appends one shard's group under the shard's write gate, holding the shard's writer
    /// from before the throttle's admission to the append. Without `wait`, a writer held by
    /// another request gives [`GroupAppend::Busy`] before anything is decided or written.
    fn append_group(
        &self,
        stream: &Stream,
        shard: &Arc<Shard>,
        batch: &PutBatch<'_, '_>,
        positions: &[usize],
        results: &mut [Option<Result<Written>>],
        wait: bool,
    ) -> GroupAppend {
        let PutBatch {
            entries,
            injected,
            now,
        } = *batch;
        let gate = shard.closed.read().unwrap_or_else(|e| e.into_inner());
        if gate.is_some() {
            return GroupAppend::Closed;
        }
        let mut appender = if wait {
            shard.log.appender()
        } else {
            match shard.log.try_appender() {
                Some(a) => a,
                None => return GroupAppend::Busy,
            }
        };
        let limits = self.settings.limits;
        let demand: usize = positions
            .iter()
            .map(|&p| entries[p].data.len() + entries[p].partition_key.len())
            .sum();
        shard.demand.add(demand as u64, positions.len() as u64);
        // Injected faults first (decided per record up front), then the shard's limits.
        let mut candidates: Vec<usize> = Vec::with_capacity(positions.len());
        for &p in positions {
            match injected[p] {
                Some(fault) => {
                    results[p] = Some(Err(match fault {
                        faults::RecordFault::Throttled => Error::Throttled {
                            shard_id: shard.id.clone(),
                            name: stream.key.name.clone(),
                            account: stream.key.account.clone(),
                        },
                        other => Error::InjectedRecord(other),
                    }));
                }
                None => candidates.push(p),
            }
        }
        let admitted = shard.throttle.admit_writes(
            limits,
            candidates
                .iter()
                .map(|&p| entries[p].data.len() + entries[p].partition_key.len()),
        );
        let positions: Vec<usize> = if admitted.is_empty() {
            candidates
        } else {
            let mut kept = Vec::with_capacity(candidates.len());
            for (&p, ok) in candidates.iter().zip(admitted) {
                if ok {
                    kept.push(p);
                } else {
                    results[p] = Some(Err(Error::Throttled {
                        shard_id: shard.id.clone(),
                        name: stream.key.name.clone(),
                        account: stream.key.account.clone(),
                    }));
                }
            }
            kept
        };
        if positions.is_empty() {
            return GroupAppend::Failed;
        }
        let records: Vec<storage::Record<'_>> = positions
            .iter()
            .map(|&p| storage::Record {
                partition_key: entries[p].partition_key,
                explicit_hash_key: entries[p].explicit_hash_key,
                data: entries[p].data,
            })
            .collect();
        let appended = appender.append(now.max(shard.created_ms), &records);
        drop(appender);
        drop(gate);
        match appended {
            Ok(appended) => {
                for (k, &p) in positions.iter().enumerate() {
                    results[p] = Some(Ok(Written {
                        shard_id: shard.id.clone(),
                        sequence_number: shard
                            .sequence_number(appended.arrival_ms, appended.first_offset + k as u64),
                    }));
                }
                GroupAppend::Appended {
                    next_offset: appended.next_offset,
                    written: positions,
                }
            }
            Err(e) => {
                tracing::error!(shard = %shard.id, stream = %stream.key.name, error = %e, "append failed");
                let msg = e.to_string();
                for &p in &positions {
                    results[p] = Some(Err(Error::Catalog(msg.clone())));
                }
                GroupAppend::Failed
            }
        }
    }

    /// The shard with this id, for GetShardIterator. A stream being created or deleted
    /// has no readable shards, as on AWS.
    pub fn readable_shard(&self, stream: &Stream, shard_id: &str) -> Result<Arc<Shard>> {
        let st = stream.state();
        let readable = !matches!(st.status, StreamStatus::Creating | StreamStatus::Deleting);
        st.shard(shard_id)
            .filter(|_| readable)
            .cloned()
            .ok_or_else(|| Error::ShardNotFound {
                shard_id: stream::parse_shard_id(shard_id)
                    .map(stream::shard_id)
                    .unwrap_or_else(|| shard_id.to_string()),
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            })
    }

    /// The oldest offset a reader may see: the log's first offset, or later when records
    /// before it have outlived the retention period (they are never returned, even before
    /// their segment is deleted).
    fn trim_horizon(&self, stream: &Stream, shard: &Shard) -> Result<u64> {
        let retention_ms = stream.state().retention_hours as i64 * 3_600_000;
        let first = shard.log.bounds().first_offset;
        let by_time = shard
            .log
            .offset_at_time(self.clock.now_ms() - retention_ms)?;
        Ok(first.max(by_time))
    }

    /// The end of a shard for readers: its closing offset, or the log's end.
    fn shard_end(shard: &Shard) -> u64 {
        match shard.closed() {
            Some(c) => c.end_offset,
            None => shard.log.bounds().next_offset,
        }
    }

    /// Issues an iterator for a position in a shard.
    pub fn issue_iterator(
        &self,
        stream: &Stream,
        shard: &Shard,
        position: Position,
    ) -> Result<String> {
        if !shard.throttle.admit_iterator(self.settings.limits) {
            return Err(Error::Throttled {
                shard_id: shard.id.clone(),
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            });
        }
        let end = Self::shard_end(shard);
        let horizon = self.trim_horizon(stream, shard)?;
        let offset = match position {
            Position::TrimHorizon => horizon,
            Position::Latest => end,
            Position::AtOffset(o) => o.max(horizon).min(end),
            Position::AfterOffset(o) => o.saturating_add(1).max(horizon).min(end),
            Position::AtTimestamp(t) => shard.log.offset_at_time(t)?.max(horizon).min(end),
        };
        Ok(self.iterators.encode(&ShardIterator {
            stream_uid: stream.uid,
            shard_index: shard.index,
            offset,
            issued_ms: self.clock.now_ms(),
        }))
    }

    /// [`Broker::get_records`] after the faults configured for the iterator's stream.
    pub async fn read_records(
        &self,
        token: &str,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        if let Some(it) = self.iterators.decode(token) {
            let key = self
                .registry()
                .streams
                .get(&it.stream_uid)
                .map(|s| s.key.clone());
            if let Some(key) = key {
                // An injected read refusal reads like a real one: AWS's message, naming
                // the shard.
                match self.inject(&key.name, true).await {
                    Err(Error::Injected(faults::RequestFault::ReadThrottled)) => {
                        return Err(Error::Throttled {
                            shard_id: stream::shard_id(it.shard_index),
                            name: key.name,
                            account: key.account,
                        });
                    }
                    other => other?,
                }
            }
        }
        self.get_records(token, limit, max_bytes)
    }

    /// Reads records at an iterator: up to `limit` records and `max_bytes` of data.
    pub fn get_records(&self, token: &str, limit: usize, max_bytes: usize) -> Result<ReadResult> {
        let it = self.iterators.decode(token).ok_or(Error::InvalidIterator)?;
        let now = self.clock.now_ms();
        let (stream, gone) = {
            let reg = self.registry();
            (
                reg.streams.get(&it.stream_uid).cloned(),
                reg.deleted.get(&it.stream_uid).cloned(),
            )
        };
        let Some(stream) = stream else {
            return Err(Error::IteratorStreamGone {
                shard_id: stream::shard_id(it.shard_index),
                name: gone.as_ref().map(|k| k.name.clone()),
                account: gone.map(|k| k.account),
            });
        };
        if now - it.issued_ms > ITERATOR_TTL_MS {
            return Err(Error::IteratorExpired {
                issued_ms: it.issued_ms,
                now_ms: now,
            });
        }
        let shard = stream
            .state()
            .shards
            .get(it.shard_index as usize)
            .cloned()
            .ok_or(Error::InvalidIterator)?;
        if !shard.throttle.admit_read(self.settings.limits) {
            return Err(Error::Throttled {
                shard_id: shard.id.clone(),
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            });
        }
        let end = Self::shard_end(&shard);
        let from = it.offset.max(self.trim_horizon(&stream, &shard)?);
        let batch = if from >= end {
            shard.log.read(end, 0, 0)?
        } else {
            let max_records = limit.min((end - from).try_into().unwrap_or(usize::MAX));
            shard.log.read(from, max_records, max_bytes)?
        };
        let read_bytes: usize = batch
            .iter()
            .filter_map(|r| r.ok())
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        shard.throttle.charge_read(self.settings.limits, read_bytes);
        let next_offset = if batch.is_empty() {
            from.min(end)
        } else {
            batch.next_offset()
        };
        let bounds = shard.log.bounds();
        let caught_up = next_offset >= end;
        let millis_behind_latest = if caught_up {
            0
        } else {
            let last_seen = batch
                .iter()
                .filter_map(|r| r.ok())
                .last()
                .map(|r| r.arrival_ms);
            last_seen
                .or(bounds.first_arrival_ms)
                .map(|t| (now - t).max(0))
                .unwrap_or(0)
        };
        let (next_iterator, child_shards) = if shard.closed().is_some() && caught_up {
            let children = stream
                .state()
                .shards
                .iter()
                .filter(|s| s.parent == Some(shard.index) || s.adjacent_parent == Some(shard.index))
                .cloned()
                .collect();
            (None, children)
        } else {
            let next = ShardIterator {
                stream_uid: stream.uid,
                shard_index: shard.index,
                offset: next_offset,
                issued_ms: now,
            };
            (Some(self.iterators.encode(&next)), Vec::new())
        };
        let stream_extras = stream.state().extras.clone();
        Ok(ReadResult {
            stream_extras,
            shard,
            batch,
            next_iterator,
            millis_behind_latest,
            child_shards,
        })
    }

    /// Stops background tasks and flushes every log to disk.
    pub async fn shutdown(self: &Arc<Self>) {
        let _ = self.shutdown.send(true);
        let me = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let streams: Vec<Arc<Stream>> = me.registry().streams.values().cloned().collect();
            for stream in streams {
                let shards = stream.state().shards.clone();
                for shard in shards {
                    if let Err(e) = shard.log.sync() {
                        tracing::error!(shard = %shard.id, stream = %stream.key.name, error = %e, "final flush failed");
                    }
                }
            }
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "final flush task failed");
        }
    }
}

/// The `StreamId` AWS reports (`[a-z0-9]{20}-[a-z0-9]{3}`), derived from the uid and the
/// creation time so it is unique and stable.
fn make_stream_id(uid: u64, created_ms: i64) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(format!("{uid}:{created_ms}").as_bytes());
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::with_capacity(24);
    for (i, b) in digest.iter().cycle().take(23).enumerate() {
        if i == 20 {
            id.push('-');
        }
        id.push(ALPHABET[(*b as usize + i * 7) % 36] as char);
    }
    id
}

/// Opens the logs in `dirs` on a few threads, in order.
///
/// Start-up opens every shard's log (1,000 shards, 1,000 logs), and an open spends most of
/// its time waiting on the file system (directory listing, lock, index and tail reads), so
/// a few threads per core cut the time to serve.
fn open_logs(dirs: &[PathBuf], options: &storage::LogOptions) -> Result<Vec<storage::Log>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .min(16);
    let chunk = dirs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers = dirs
            .chunks(chunk)
            .map(|part| {
                std::thread::Builder::new()
                    .name("open-logs".into())
                    .spawn_scoped(scope, move || {
                        part.iter()
                            .map(|dir| storage::Log::open(dir, options.clone()))
                            .collect::<std::result::Result<Vec<_>, _>>()
                    })
                    .map_err(|e| Error::Catalog(format!("cannot start a thread to open logs: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut logs = Vec::with_capacity(dirs.len());
        for worker in workers {
            let opened = worker
                .join()
                .map_err(|_| Error::Catalog("a thread opening shard logs panicked".into()))?;
            logs.extend(opened?);
        }
        Ok(logs)
    })
}

/// The iterator-signing secret: 32 random bytes kept in the data directory, so iterators
/// survive a restart but cannot be forged.
fn load_or_create_secret(data_dir: &Path) -> Result<[u8; 32]> {
    let store = storage::MetaStore::open(data_dir.join(SECRET_FILE))?;
    if let Some(bytes) = store.load()?
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| Error::Catalog(format!("no randomness for the iterator secret: {e}")))?;
    store.store(&key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut c = Config::new();
        c.data_dir = dir.to_path_buf();
        c.create_stream_delay = Duration::ZERO;
        c.delete_stream_delay = Duration::ZERO;
        c.segment_bytes = MIN_SEGMENT_BYTES;
        c
    }

    fn key(name: &str) -> StreamKey {
        StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: name.into(),
        }
    }

    fn entry(pk: &'static str, data: &'static [u8]) -> PutEntry<'static> {
        PutEntry {
            hash_key: hash::partition_key_hash(pk.as_bytes()),
            partition_key: pk.as_bytes(),
            explicit_hash_key: None,
            data,
        }
    }

    fn read_all(broker: &Broker, stream: &Stream, shard: &Shard) -> Vec<(String, Vec<u8>)> {
        let it = broker
            .issue_iterator(stream, shard, Position::TrimHorizon)
            .unwrap();
        let read = broker.get_records(&it, 10_000, usize::MAX).unwrap();
        read.batch
            .iter()
            .map(|r| r.unwrap())
            .map(|r| {
                (
                    shard.sequence_number(r.arrival_ms, r.offset),
                    r.data.to_vec(),
                )
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn records_over_the_shard_write_limit_fail_alone_and_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.throughput_limits = true;
        let broker = Broker::open(&c).unwrap();
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key("s")).unwrap();
        let entries: Vec<PutEntry<'static>> = (0..1200).map(|_| entry("k", b"x")).collect();
        let results = broker.put(&stream, &entries, 0).await.unwrap();
        let throttled = results
            .iter()
            .filter(|r| matches!(r, Err(Error::Throttled { .. })))
            .count();
        assert_eq!(throttled, 200);
        assert!(
            results[..1000].iter().all(|r| r.is_ok()),
            "the first 1,000 fit the burst"
        );
        let shard = stream.state().shards[0].clone();
        assert_eq!(
            shard.log.bounds().next_offset,
            1000,
            "throttled records are not written"
        );
    }

    #[tokio::test]
    async fn injected_record_failures_are_not_written_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.faults.seed = 9;
        c.faults.global.record_failure_rate = 0.5;
        let broker = Broker::open(&c).unwrap();
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key("s")).unwrap();
        let entries: Vec<PutEntry<'static>> = (0..100).map(|_| entry("k", b"x")).collect();
        let first: Vec<bool> = broker
            .put(&stream, &entries, 0)
            .await
            .unwrap()
            .iter()
            .map(|r| r.is_ok())
            .collect();
        let ok = first.iter().filter(|x| **x).count();
        assert!((20..80).contains(&ok), "{ok}");
        let shard = stream.state().shards[0].clone();
        assert_eq!(shard.log.bounds().next_offset, ok as u64);
        broker.faults().configure(c.faults.clone());
        let again: Vec<bool> = broker
            .put(&stream, &entries, 0)
            .await
            .unwrap()
            .iter()
            .map(|r| r.is_ok())
            .collect();
        assert_eq!(first, again, "the same seed fails the same records");
    }

    #[tokio::test]
    async fn concurrent_creates_cannot_together_pass_the_shard_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.shard_limit = 10;
        let broker = Broker::open(&c).unwrap();
        let mut creates = tokio::task::JoinSet::new();
        for i in 0..8 {
            let broker = broker.clone();
            creates.spawn(async move {
                broker
                    .create_stream(
                        key(&format!("s{i}")),
                        2,
                        StreamMode::Provisioned,
                        BTreeMap::new(),
                    )
                    .await
            });
        }
        let mut created = 0;
        while let Some(r) = creates.join_next().await {
            match r.unwrap() {
                Ok(()) => created += 1,
                Err(e) => assert!(matches!(e, Error::LimitExceeded(_)), "{e}"),
            }
        }
        assert_eq!(created, 5);
        assert_eq!(broker.usage("000000000000", "us-east-1").0, 10);
    }

    #[tokio::test]
    async fn records_and_sequence_numbers_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (seq, stream_uid) = {
            let broker = Broker::open(&config(dir.path())).unwrap();
            broker
                .create_stream(key("s"), 2, StreamMode::Provisioned, BTreeMap::new())
                .await
                .unwrap();
            let stream = broker.stream(&key("s")).unwrap();
            let written = broker
                .put(&stream, &[entry("a", b"one"), entry("a", b"two")], 0)
                .await
                .unwrap();
            let seq: Vec<String> = written
                .into_iter()
                .map(|w| w.unwrap().sequence_number)
                .collect();
            broker.shutdown().await;
            (seq, stream.uid)
        };
        let broker = Broker::open(&config(dir.path())).unwrap();
        let stream = broker.stream(&key("s")).unwrap();
        assert_eq!(stream.uid, stream_uid);
        let shard = stream
            .state()
            .route(hash::partition_key_hash(b"a"))
            .unwrap()
            .clone();
        let records = read_all(&broker, &stream, &shard);
        assert_eq!(
            records,
            vec![
                (seq[0].clone(), b"one".to_vec()),
                (seq[1].clone(), b"two".to_vec())
            ]
        );
        let more = broker
            .put(&stream, &[entry("a", b"three")], 0)
            .await
            .unwrap();
        let next: u128 = more[0].as_ref().unwrap().sequence_number.parse().unwrap();
        assert!(
            next > seq[1].parse::<u128>().unwrap(),
            "sequence numbers keep increasing after a restart"
        );
    }

    #[tokio::test]
    async fn deleted_and_recreated_stream_rejects_old_iterators() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(&config(dir.path())).unwrap();
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let old = broker.stream(&key("s")).unwrap();
        let shard = old.state().shards[0].clone();
        let it = broker
            .issue_iterator(&old, &shard, Position::TrimHorizon)
            .unwrap();
        broker.delete_stream(&old).await.unwrap();
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        assert!(matches!(
            broker.get_records(&it, 10, usize::MAX),
            Err(Error::IteratorStreamGone { .. })
        ));
    }

    #[tokio::test]
    async fn iterator_expires_after_five_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::system();
        let broker = Broker::open_with_clock(&config(dir.path()), clock.clone()).unwrap();
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key("s")).unwrap();
        let shard = stream.state().shards[0].clone();
        let it = broker
            .issue_iterator(&stream, &shard, Position::Latest)
            .unwrap();
        clock.advance_ms(ITERATOR_TTL_MS - 1000).unwrap();
        assert!(broker.get_records(&it, 10, usize::MAX).is_ok());
        clock.advance_ms(2000).unwrap();
        assert!(matches!(
            broker.get_records(&it, 10, usize::MAX),
            Err(Error::IteratorExpired { .. })
        ));
    }

    #[tokio::test]
    async fn creating_stream_takes_no_writes_and_existing_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.create_stream_delay = Duration::from_secs(3600);
        let broker = Broker::open(&c).unwrap();
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key("s")).unwrap();
        assert_eq!(stream.state().status, StreamStatus::Creating);
        assert!(matches!(
            broker.put(&stream, &[entry("a", b"x")], 0).await,
            Err(Error::StreamNotFound { .. })
        ));
        assert!(matches!(
            broker
                .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
                .await,
            Err(Error::StreamExists { .. })
        ));
    }

    #[tokio::test]
    async fn at_and_after_offset_and_latest_position_correctly() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(&config(dir.path())).unwrap();
        broker
            .create_stream(key("s"), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key("s")).unwrap();
        let shard = stream.state().shards[0].clone();
        let latest = broker
            .issue_iterator(&stream, &shard, Position::Latest)
            .unwrap();
        broker
            .put(
                &stream,
                &[entry("a", b"0"), entry("b", b"1"), entry("c", b"2")],
                0,
            )
            .await
            .unwrap();
        let data = |it: &str| -> Vec<Vec<u8>> {
            broker
                .get_records(it, 100, usize::MAX)
                .unwrap()
                .batch
                .iter()
                .map(|r| r.unwrap().data.to_vec())
                .collect()
        };
        assert_eq!(
            data(&latest),
            vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec()]
        );
        let at1 = broker
            .issue_iterator(&stream, &shard, Position::AtOffset(1))
            .unwrap();
        assert_eq!(data(&at1), vec![b"1".to_vec(), b"2".to_vec()]);
        let after1 = broker
            .issue_iterator(&stream, &shard, Position::AfterOffset(1))
            .unwrap();
        assert_eq!(data(&after1), vec![b"2".to_vec()]);
        let end = broker
            .issue_iterator(&stream, &shard, Position::Latest)
            .unwrap();
        let read = broker.get_records(&end, 100, usize::MAX).unwrap();
        assert!(read.batch.is_empty());
        assert_eq!(read.millis_behind_latest, 0);
        assert!(read.next_iterator.is_some());
    }

    #[test]
    fn stream_id_has_aws_shape() {
        let id = make_stream_id(1, 1_764_000_000_000);
        assert_eq!(id.len(), 24);
        assert_eq!(&id[20..21], "-");
        assert!(
            id.bytes()
                .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(id, make_stream_id(2, 1_764_000_000_000));
    }
}
