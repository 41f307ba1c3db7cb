//! The broker domain: the stream registry, stream and shard state, hash-key routing,
//! sequence numbers and shard iterators, on top of the `storage` crate's logs.
//!
//! Nothing here knows HTTP, JSON or AWS's error wording: operations in `api` call these
//! methods and turn [`Error`] into AWS errors.

pub mod autoscale;
pub mod catalog;
pub mod channel;
pub mod clock;
mod error;
pub mod esm;
pub mod fanout;
pub mod faults;
pub mod hash;
pub mod iterator;
mod lifecycle;
pub mod metrics;
pub mod queue;
mod read;
pub mod reshard;
mod resources;
mod retention;
pub mod sequence;
pub mod stream;
pub mod throttle;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use catalog::{Catalog, CatalogStore, StreamMeta, StreamMode, StreamStatus};
pub use clock::Clock;
pub use error::{Error, Result};
use iterator::IteratorCodec;
pub use read::{Position, ReadResult};
pub use retention::RETENTION_SWEEP_INTERVAL;
use stream::{Shard, Stream, StreamKey, StreamState};
pub use write::{PutEntry, Written};

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
/// Shards of a new on-demand stream, as on AWS.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

/// The settings the broker takes from [`Config`].
#[derive(Debug, Clone)]
struct Settings {
    data_dir: PathBuf,
    create_delay: Duration,
    delete_delay: Duration,
    update_delay: Duration,
    register_consumer_delay: Duration,
    deregister_consumer_delay: Duration,
    shard_limit: u32,
    on_demand_stream_limit: u32,
    limits: throttle::Limits,
    log_options: storage::LogOptions,
    /// How long a SubscribeToShard subscription lasts (AWS: 5 minutes).
    subscription_lifetime: Duration,
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

/// The broker. Shared as `Arc<Broker>` by every request.
pub struct Broker {
    /// `<data dir>/LOCK`, flock'ed while the broker lives: keeps a second broker process off
    /// the data directory. Shard logs lock their own directories only while writable, so
    /// without it nothing would keep another process off closed shards (sealed logs hold no
    /// descriptor, see storage's `lock` module) or off a data directory with no stream.
    _data_dir_lock: storage::DirLock,
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
    /// Live fan-out subscriptions and the consumer-change notifier.
    fanout: fanout::FanOut,
    /// Which shard group the next PutRecords appends first (see [`Broker::put`]).
    put_rotation: std::sync::atomic::AtomicUsize,
    /// Event-source mappings and the functions they deliver to.
    esm: esm::Esm,
    /// Queues (issue 18) with their delivery state and journals.
    queues: queue::Queues,
    /// Channels (issue 22): streams delivered to S3.
    channels: channel::Channels,
    /// Readiness, recovery time and the HTTP server's counters (shared with `http`).
    server_metrics: Arc<crate::metrics::ServerMetrics>,
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
        let opening = std::time::Instant::now();
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(data_dir.join(STREAMS_DIR)).map_err(|e| {
            Error::Catalog(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let data_dir_lock = storage::DirLock::acquire(&data_dir).map_err(|e| {
            Error::Catalog(format!(
                "data directory {} is in use by another broker process: {e}",
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
            register_consumer_delay: config.register_consumer_delay,
            deregister_consumer_delay: config.deregister_consumer_delay,
            shard_limit: config.shard_limit,
            on_demand_stream_limit: config.on_demand_stream_limit,
            limits: throttle::Limits {
                enabled: config.throughput_limits,
                multiplier: config.throughput_multiplier,
            },
            log_options,
            subscription_lifetime: config.subscription_lifetime,
        };
        let secret = load_or_create_secret(&data_dir)?;
        let iterators = IteratorCodec::new(secret);
        let catalog = CatalogStore::open(&data_dir.join(CATALOG_FILE))?;
        let stored = catalog.load()?;
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let queues = queue::Queues::open(&config.data_dir, &secret, durability, &clock)?;
        let broker = Arc::new(Broker {
            _data_dir_lock: data_dir_lock,
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
            fanout: Default::default(),
            put_rotation: Default::default(),
            esm: esm::Esm::open(&config.data_dir, &config.functions)?
                .with_transition_delay(config.event_source_mapping_delay),
            queues,
            channels: channel::Channels::open(
                &config.data_dir,
                config.s3_endpoint.as_deref(),
                config.channel_buffer_bytes,
            )?,
            server_metrics: Default::default(),
        });
        broker.restore(stored)?;
        broker.server_metrics.set_recovery(opening.elapsed());
        broker.start_retention_sweeper();
        broker.start_throughput_sampler();
        broker.start_autoscaler(config.on_demand_scale_interval);
        broker.start_mappings();
        broker.start_channels();
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
                let shard = Arc::new(Shard {
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
                    tail: Default::default(),
                    metrics: Default::default(),
                });
                // Data directories from before closed shards were sealed.
                if sm.closed.is_some() && !shard.log.is_sealed() {
                    reshard::seal_closed(&shard);
                }
                shards.push(shard);
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
                // Both consumer delays have certainly passed while the broker was down.
                consumers: fanout::registry::settle_after_restart(&meta.consumers),
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

    /// Readiness, recovery time and request counters, shared with the HTTP server.
    pub fn server_metrics(&self) -> &Arc<crate::metrics::ServerMetrics> {
        &self.server_metrics
    }

    /// The fan-out state: live subscriptions, their shutdown switch.
    pub fn fanout(&self) -> &fanout::FanOut {
        &self.fanout
    }

    /// Stops background tasks and flushes every log to disk.
    pub async fn shutdown(self: &Arc<Self>) {
        let _ = self.shutdown.send(true);
        self.fanout.close();
        self.queues.wake_all();
        self.stop_mappings().await;
        self.stop_functions().await;
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
mod tests;
