//! Event-source mappings: Lambda's way of consuming a stream. Each enabled mapping runs one
//! task per shard ([`worker`]) that waits on the shard's tail notifier, builds batches
//! ([`event`]), invokes the mapping's function through its Runtime API queue ([`runtime`]),
//! retries as the mapping's settings say, and checkpoints after each batch.
//!
//! Each mapping is one `storage::MetaStore` file (`esm/<UUID>.json`): its settings, its
//! checkpoints (next offset per shard, shards finished), rewritten after every batch, so
//! an acknowledged checkpoint survives a restart, and its place in Lambda's state machine.
//!
//! States as Lambda has them: Creating → Enabled (Disabled with `Enabled: false`);
//! an update is Enabling, Disabling or Updating and applies its settings at the end; a
//! delete is Deleting, then gone. Each transitional state lasts the configured delay and is
//! persisted, so a restart finishes it; update and delete are refused meanwhile
//! (ResourceInUseException). Delivery runs only while Enabled. A stream being deleted
//! turns its mappings Disabled and drops their checkpoints (`Broker::event_source_deleted`).

pub mod access;
pub mod batch;
pub mod destination;
pub mod event;
pub mod filter;
pub mod functions;
pub mod invoke;
pub mod mapping;
pub mod process;
pub mod runtime;
pub mod stats;
pub mod window;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::stream::StreamKey;
use super::{Broker, Error, Result};
use functions::{Function, Functions};
pub use mapping::MappingConfig;
use mapping::StartingPosition;

const ESM_DIR: &str = "esm";

/// A mapping's delivery progress, persisted with its settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Next offset to deliver, per shard index.
    pub positions: BTreeMap<u32, u64>,
    /// Closed shards delivered to their end.
    pub finished: BTreeSet<u32>,
    /// Lambda's `LastProcessingResult`.
    pub last_result: String,
    /// Tumbling windows open, per shard index (with their state).
    #[serde(default)]
    pub windows: BTreeMap<u32, window::OpenWindow>,
}

/// Lambda's `StateTransitionReason` for a change the caller asked for, as AWS answers it for
/// Kinesis mappings (`aws lambda create-event-source-mapping` prints "User action").
pub const USER_ACTION: &str = "User action";
/// `StateTransitionReason` for a change the broker made itself (the stream went away);
/// Lambda's API reference names the two causes "User initiated" and "Lambda initiated".
pub const LAMBDA_INITIATED: &str = "Lambda initiated";
/// `LastProcessingResult` of a new mapping, as AWS answers it.
pub const NO_RECORDS_PROCESSED: &str = "No records processed";

/// Lambda's mapping states: the transitional ones last the configured delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MappingState {
    /// Just created; becomes Enabled or Disabled.
    Creating,
    /// Being turned on by an update.
    Enabling,
    /// Delivering.
    Enabled,
    /// Being turned off by an update.
    Disabling,
    /// Not delivering.
    Disabled,
    /// Settings being changed.
    Updating,
    /// Being deleted; gone afterwards.
    Deleting,
}

impl MappingState {
    /// The name Lambda's `State` member uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Enabling => "Enabling",
            Self::Enabled => "Enabled",
            Self::Disabling => "Disabling",
            Self::Disabled => "Disabled",
            Self::Updating => "Updating",
            Self::Deleting => "Deleting",
        }
    }

    /// Whether a change is under way (update and delete are refused meanwhile).
    pub fn is_transitional(self) -> bool {
        !matches!(self, Self::Enabled | Self::Disabled)
    }

    fn settled(enabled: bool) -> Self {
        if enabled {
            Self::Enabled
        } else {
            Self::Disabled
        }
    }
}

/// Where a mapping is in Lambda's state machine, persisted with it so a restart finishes a
/// transition that was under way.
#[derive(Debug, Clone)]
struct Lifecycle {
    state: MappingState,
    /// The settings an update will apply when its transition ends: Lambda answers an update
    /// with the old settings and applies the new ones asynchronously.
    pending: Option<MappingConfig>,
}

#[derive(Serialize, Deserialize)]
struct Document {
    config: MappingConfig,
    progress: Progress,
    /// Absent in files written before mappings had states: settled from `config.enabled`.
    #[serde(default)]
    state: Option<MappingState>,
    #[serde(default)]
    pending: Option<MappingConfig>,
}

/// One mapping: settings, progress, state, its file and its running tasks.
pub struct Mapping {
    config: Mutex<MappingConfig>,
    progress: Mutex<Progress>,
    lifecycle: Mutex<Lifecycle>,
    store: storage::MetaStore,
    /// Serialises writes of the file (snapshot and store under it).
    persist_lock: Mutex<()>,
    /// A checkpoint is waiting to be written behind the delivery.
    checkpoint_dirty: AtomicBool,
    /// A background checkpoint writer is running.
    checkpoint_writing: AtomicBool,
    /// Deleted: the file is gone and must not come back.
    retired: AtomicBool,
    /// Delivery counters since start.
    stats: stats::MappingStats,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the API shows of a mapping: its settings, state and last result, at one moment.
#[derive(Debug, Clone)]
pub struct MappingView {
    /// The settings in force (an update's new settings show once it has been applied).
    pub config: MappingConfig,
    /// Lambda's `State`.
    pub state: MappingState,
    /// Lambda's `LastProcessingResult`.
    pub last_processing_result: String,
}

impl Mapping {
    fn new(
        config: MappingConfig,
        progress: Progress,
        lifecycle: Lifecycle,
        store: storage::MetaStore,
    ) -> Self {
        Mapping {
            config: Mutex::new(config),
            progress: Mutex::new(progress),
            lifecycle: Mutex::new(lifecycle),
            store,
            persist_lock: Mutex::new(()),
            checkpoint_dirty: AtomicBool::new(false),
            checkpoint_writing: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            stats: stats::MappingStats::default(),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        }
    }

    /// The settings now.
    pub fn config(&self) -> MappingConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lifecycle(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MappingState {
        self.lifecycle().state
    }

    fn persist(&self) -> Result<()> {
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.retired.load(Ordering::Acquire) {
            return Ok(());
        }
        let lifecycle = self.lifecycle().clone();
        let doc = Document {
            config: self.config(),
            progress: self.progress().clone(),
            state: Some(lifecycle.state),
            pending: lifecycle.pending,
        };
        let bytes = serde_json::to_vec(&doc)
            .map_err(|e| Error::Catalog(format!("cannot encode a mapping: {e}")))?;
        self.store.store(&bytes)?;
        Ok(())
    }

    async fn persist_async(self: &Arc<Self>) -> Result<()> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.persist())
            .await
            .map_err(|e| Error::Catalog(format!("mapping writer failed: {e}")))?
    }

    /// Saves the delivery checkpoint without waiting for the disk. Writes are coalesced (at
    /// most one at a time, each of the latest progress), so a busy mapping costs one file
    /// write per write's duration, not two fsyncs per batch on every shard's critical path.
    /// A crash loses at most the checkpoints not yet written: delivery is at-least-once, so
    /// those records are delivered again, never skipped. Stopping a mapping flushes.
    fn checkpoint_behind(self: &Arc<Self>) {
        self.checkpoint_dirty.store(true, Ordering::Release);
        if self.checkpoint_writing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            loop {
                while me.checkpoint_dirty.swap(false, Ordering::AcqRel) {
                    if let Err(e) = me.persist() {
                        tracing::error!(error = %e, "cannot save a mapping's checkpoint");
                    }
                }
                me.checkpoint_writing.store(false, Ordering::Release);
                // A checkpoint marked after the last swap but before the store above found
                // a writer still running: this writer takes it, unless another started.
                if !me.checkpoint_dirty.load(Ordering::Acquire)
                    || me.checkpoint_writing.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }

    /// Writes the file now (the latest progress included) and waits for it.
    async fn flush(self: &Arc<Self>) {
        self.checkpoint_dirty.store(false, Ordering::Release);
        if let Err(e) = self.persist_async().await {
            tracing::error!(error = %e, "cannot save a mapping's checkpoint");
        }
    }

    /// The mapping is deleted: no write, not even one already under way, brings its file back.
    fn retire(&self) {
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.retired.store(true, Ordering::Release);
    }

    /// What the API shows now.
    pub fn view(&self) -> MappingView {
        MappingView {
            config: self.config(),
            state: self.state(),
            last_processing_result: self.progress().last_result.clone(),
        }
    }

    fn is_on(&self, key: &StreamKey) -> bool {
        StreamKey::from_arn(&self.config().event_source_arn).as_ref() == Some(key)
    }
}

/// Why a mapping request is refused, as Lambda names it.
#[derive(Debug)]
pub enum EsmError {
    /// 400 InvalidParameterValueException.
    Invalid(String),
    /// 404 ResourceNotFoundException.
    NotFound(String),
    /// 409 ResourceConflictException.
    Conflict(String),
    /// 400 ResourceInUseException: the mapping is in a transitional state.
    InUse(String),
    /// 500 ServiceException.
    Service(String),
}

impl From<Error> for EsmError {
    fn from(e: Error) -> Self {
        EsmError::Service(e.to_string())
    }
}

/// A new mapping's id: a random version-4 UUID.
pub fn new_uuid() -> std::result::Result<String, EsmError> {
    let mut uuid_bytes = [0u8; 16];
    getrandom::fill(&mut uuid_bytes)
        .map_err(|e| EsmError::Service(format!("no randomness: {e}")))?;
    Ok(runtime::format_uuid(uuid_bytes))
}

/// The broker's mappings and declared functions.
pub struct Esm {
    dir: PathBuf,
    functions: Functions,
    mappings: Mutex<BTreeMap<String, Arc<Mapping>>>,
    /// How long a transitional state lasts.
    transition_delay: Duration,
}

impl std::fmt::Debug for Esm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Esm").field("dir", &self.dir).finish()
    }
}

impl Esm {
    /// Loads the mappings stored in `data_dir` (not started yet).
    pub fn open(data_dir: &Path, functions: &[crate::config::FunctionSpec]) -> Result<Esm> {
        let dir = data_dir.join(ESM_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Catalog(format!("cannot create {}: {e}", dir.display())))?;
        let mut mappings = BTreeMap::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::Catalog(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let store = storage::MetaStore::open(&path)?;
            let Some(bytes) = store.load()? else { continue };
            let doc: Document = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Catalog(format!("mapping file {} is damaged: {e}", path.display()))
            })?;
            let lifecycle = Lifecycle {
                state: doc
                    .state
                    .unwrap_or(MappingState::settled(doc.config.enabled)),
                pending: doc.pending,
            };
            mappings.insert(
                doc.config.uuid.clone(),
                Arc::new(Mapping::new(doc.config, doc.progress, lifecycle, store)),
            );
        }
        let functions = Functions::from_specs(functions).map_err(Error::Catalog)?;
        Ok(Esm {
            dir,
            functions,
            mappings: Mutex::new(mappings),
            transition_delay: Duration::ZERO,
        })
    }

    /// Sets how long the transitional states last.
    pub fn with_transition_delay(mut self, delay: Duration) -> Self {
        self.transition_delay = delay;
        self
    }

    /// The declared functions.
    pub fn functions(&self) -> Vec<Arc<Function>> {
        self.functions.all()
    }

    fn mappings(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Mapping>>> {
        self.mappings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, uuid: &str) -> std::result::Result<Arc<Mapping>, EsmError> {
        self.mappings().get(uuid).cloned().ok_or_else(|| {
            EsmError::NotFound(format!(
                "The resource you requested does not exist. (Service: Lambda, Status Code: 404, Request ID: {uuid})"
            ))
        })
    }
}

/// The function name a FunctionName (name, ARN, partial ARN, with or without qualifier)
/// names.
pub fn function_name_of(name: &str) -> &str {
    match name.split_once("function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => name,
    }
}

impl Broker {
    /// The event-source mappings.
    pub fn esm(&self) -> &Esm {
        &self.esm
    }

    /// Serves the Runtime API of every declared function on its own port (and starts the
    /// runtime processes of those with a command) until the broker shuts down. Binds every
    /// port before returning.
    pub async fn serve_functions(
        self: &Arc<Self>,
    ) -> std::result::Result<(), (std::net::SocketAddr, std::io::Error)> {
        for function in self.esm.functions.all() {
            function.start(self).await?;
        }
        Ok(())
    }

    /// Starts the delivery of every enabled mapping and finishes the transitions a
    /// shutdown interrupted (at start-up).
    pub(super) fn start_mappings(self: &Arc<Self>) {
        let all: Vec<Arc<Mapping>> = self.esm.mappings().values().cloned().collect();
        for m in all {
            let config = m.config();
            let stream_gone = StreamKey::from_arn(&config.event_source_arn)
                .is_none_or(|key| self.stream(&key).is_err());
            if stream_gone && m.state() != MappingState::Deleting {
                // Its stream is gone (possibly deleted before the mapping could hear of
                // it): the mapping is shown as after a deletion.
                Self::forget_source(&m, &config.event_source_arn);
                if let Err(e) = m.persist() {
                    tracing::error!(error = %e, uuid = %config.uuid, "cannot save a mapping");
                }
            }
            match m.state() {
                MappingState::Enabled => self.start_mapping(&m),
                MappingState::Disabled => {}
                _ => self.schedule_transition(config.uuid),
            }
        }
    }

    /// Starts the mapping's delivery if it is enabled. The check and the start happen under
    /// the task lock, as [`Self::stop_mapping`]'s stop does: a mapping disabled (say, its
    /// stream deleted) and then stopped never has a task started in between that nobody
    /// would stop.
    fn start_mapping(self: &Arc<Self>, mapping: &Arc<Mapping>) {
        let mut task = mapping.task.lock().unwrap_or_else(|e| e.into_inner());
        let config = mapping.config();
        if !config.enabled
            || mapping.state() != MappingState::Enabled
            || task.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        let Some(function) = self.esm.functions.get(&config.function_name) else {
            tracing::warn!(uuid = %config.uuid, function = %config.function_name, "mapping not started: its function is not declared (--function or PUT /_broker/functions/NAME)");
            return;
        };
        mapping.stop.send_replace(false);
        *task = Some(tokio::spawn(worker::run_mapping(
            self.clone(),
            mapping.clone(),
            function,
            mapping.stop.subscribe(),
        )));
    }

    /// Stops the mapping's delivery and writes its last checkpoint.
    async fn stop_mapping(mapping: &Arc<Mapping>) {
        let task = {
            let mut task = mapping.task.lock().unwrap_or_else(|e| e.into_inner());
            mapping.stop.send_replace(true);
            task.take()
        };
        if let Some(task) = task {
            let _ = task.await;
            mapping.flush().await;
        }
    }

    /// Stops every mapping's tasks (shutdown).
    pub(super) async fn stop_mappings(&self) {
        let all: Vec<Arc<Mapping>> = self.esm.mappings().values().cloned().collect();
        for m in all {
            Self::stop_mapping(&m).await;
        }
    }

    /// Ends the transition of mapping `uuid` after the configured delay (at once when the
    /// delay is zero), unless the broker shuts down first: the state is persisted, so the
    /// next start finishes it.
    fn schedule_transition(self: &Arc<Self>, uuid: String) {
        let delay = self.esm.transition_delay;
        let weak = Arc::downgrade(self);
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            if let Some(broker) = weak.upgrade() {
                broker.finish_transition(&uuid).await;
            }
        });
    }

    /// Ends a transition just begun by a request: at once when the delay is zero, so
    /// tests without delays see the settled state as soon as the answer arrives.
    async fn end_transition(self: &Arc<Self>, uuid: String) {
        if self.esm.transition_delay.is_zero() {
            self.finish_transition(&uuid).await;
        } else {
            self.schedule_transition(uuid);
        }
    }

    /// Settles a mapping in a transitional state: applies an update's pending settings,
    /// (re)starts or stops its delivery, or removes it when Deleting.
    async fn finish_transition(self: &Arc<Self>, uuid: &str) {
        let Ok(m) = self.esm.get(uuid) else { return };
        let state = m.state();
        if !state.is_transitional() {
            return;
        }
        Self::stop_mapping(&m).await;
        if state == MappingState::Deleting {
            m.retire();
            self.esm.mappings().remove(uuid);
            let path = self.esm.dir.join(format!("{uuid}.json"));
            let removed = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
            if let Ok(Err(e)) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::error!(error = %e, uuid, "cannot remove a deleted mapping's file");
            }
            return;
        }
        let enabled = {
            let mut lifecycle = m.lifecycle();
            let mut config = m.config.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(pending) = lifecycle.pending.take() {
                *config = pending;
            }
            // Lambda keeps a stream mapping's LastModified to the minute: only the answer
            // to CreateEventSourceMapping carries milliseconds (observed: created
            // 13:18:25.225, listed 13:18:00).
            config.last_modified_ms -= config.last_modified_ms.rem_euclid(60_000);
            let enabled = config.enabled;
            drop(config);
            lifecycle.state = MappingState::settled(enabled);
            enabled
        };
        if enabled {
            self.restart_latest_if_reset(&m);
        }
        if let Err(e) = m.persist_async().await {
            tracing::error!(error = %e, uuid, "cannot save a mapping's state");
        }
        if !*self.shutdown.borrow() {
            self.start_mapping(&m);
        }
    }

    /// A LATEST mapping without any checkpoint (its stream was deleted and re-created)
    /// starts at the new stream's end, as a new LATEST mapping would.
    fn restart_latest_if_reset(&self, m: &Mapping) {
        let config = m.config();
        if config.starting_position != StartingPosition::Latest {
            return;
        }
        let Some(stream) =
            StreamKey::from_arn(&config.event_source_arn).and_then(|key| self.stream(&key).ok())
        else {
            return;
        };
        let mut progress = m.progress();
        if progress.positions.is_empty() && progress.finished.is_empty() {
            let latest = Self::latest_progress(&stream);
            progress.positions = latest.positions;
            progress.finished = latest.finished;
        }
    }

    /// Checkpoints at the end of every shard of `stream` now (LATEST).
    fn latest_progress(stream: &super::stream::Stream) -> Progress {
        let mut progress = Progress::default();
        for shard in stream.state().shards.iter() {
            if shard.closed().is_some() {
                progress.finished.insert(shard.index);
            } else {
                progress
                    .positions
                    .insert(shard.index, Self::shard_end(shard));
            }
        }
        progress
    }

    /// Whether `name` (a FunctionName after [`function_name_of`]) is declared.
    pub fn function_declared(&self, name: &str) -> bool {
        self.esm.functions.contains(name)
    }

    /// CreateEventSourceMapping, for settings already parsed: checks the stream and that no
    /// mapping joins the same stream and function, stores the mapping Creating, and settles
    /// it Enabled or Disabled after the transition delay.
    pub async fn create_mapping(
        self: &Arc<Self>,
        mut config: MappingConfig,
    ) -> std::result::Result<MappingView, EsmError> {
        let stream_not_found =
            || EsmError::Invalid(format!("Stream not found: {}", config.event_source_arn));
        let key = StreamKey::from_arn(&config.event_source_arn).ok_or_else(|| {
            EsmError::Invalid(format!(
                "Unsupported or invalid EventSourceArn {}: kinesis-broker serves Kinesis stream ARNs (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME).",
                config.event_source_arn
            ))
        })?;
        let stream = self.stream(&key).map_err(|_| stream_not_found())?;
        if stream.state().status == super::catalog::StreamStatus::Deleting {
            return Err(stream_not_found());
        }
        self.check_destination(&config)?;
        config.state_transition_reason = USER_ACTION.into();
        let uuid = config.uuid.clone();
        let mut progress = if config.starting_position == StartingPosition::Latest {
            Self::latest_progress(&stream)
        } else {
            Progress::default()
        };
        progress.last_result = NO_RECORDS_PROCESSED.into();
        let store = storage::MetaStore::open(self.esm.dir.join(format!("{uuid}.json")))
            .map_err(Error::from)?;
        let lifecycle = Lifecycle {
            state: MappingState::Creating,
            pending: None,
        };
        let mapping = Arc::new(Mapping::new(config, progress, lifecycle, store));
        {
            // Checked and inserted under one lock, so two concurrent creates for the same
            // stream and function cannot both pass.
            let mut existing = self.esm.mappings();
            let c = mapping.config();
            if let Some(other) = existing.values().find(|m| {
                let o = m.config();
                o.function_name == c.function_name && o.event_source_arn == c.event_source_arn
            }) {
                return Err(EsmError::Conflict(format!(
                    "The event source arn ({}) and function ({}) provided mapping already exists. Please update or delete the existing mapping with UUID {}",
                    c.event_source_arn,
                    c.function_name,
                    other.config().uuid
                )));
            }
            existing.insert(uuid.clone(), mapping.clone());
        }
        if let Err(e) = mapping.persist_async().await {
            self.esm.mappings().remove(&uuid);
            return Err(e.into());
        }
        let view = mapping.view();
        self.end_transition(uuid).await;
        Ok(view)
    }

    /// An on-failure destination must be a stream of this broker: one that does not exist
    /// would lose every invocation record sent to it.
    fn check_destination(&self, config: &MappingConfig) -> std::result::Result<(), EsmError> {
        let Some(arn) = &config.on_failure_destination else {
            return Ok(());
        };
        match StreamKey::from_arn(arn).map(|k| self.stream(&k)) {
            Some(Ok(_)) => Ok(()),
            _ => Err(EsmError::Invalid(format!(
                "The on-failure destination {arn} is not a stream of this broker: only local Kinesis streams are served as on-failure destinations; create it first."
            ))),
        }
    }

    /// `GET /_broker/event-source-mappings[/{UUID}]`: each mapping's state, delivery
    /// counters and iterator age; `None` for an unknown UUID.
    pub fn mapping_stats(&self, uuid: Option<&str>) -> Option<Value> {
        let one = |m: &Arc<Mapping>| {
            let config = m.config();
            let mut out = json!({
                "UUID": config.uuid,
                "FunctionName": config.function_name,
                "EventSourceArn": config.event_source_arn,
                "State": m.state().as_str(),
                "LastProcessingResult": m.progress().last_result.clone(),
                "IteratorAgeMilliseconds": self.iterator_age_ms(m),
            });
            if let (Value::Object(out), Value::Object(counts)) = (&mut out, m.stats.to_json()) {
                out.extend(counts);
            }
            out
        };
        match uuid {
            Some(uuid) => self.esm.mappings().get(uuid).map(one),
            None => Some(json!({
                "EventSourceMappings": self.esm.mappings().values().map(one).collect::<Vec<_>>()
            })),
        }
    }

    /// How far behind its stream a mapping is: the age of the oldest record it has not
    /// finished with, over the shards it has not finished (0 when caught up), as Lambda's
    /// IteratorAge metric.
    fn iterator_age_ms(&self, m: &Mapping) -> i64 {
        let Some(stream) =
            StreamKey::from_arn(&m.config().event_source_arn).and_then(|k| self.stream(&k).ok())
        else {
            return 0;
        };
        let (positions, finished) = {
            let p = m.progress();
            (p.positions.clone(), p.finished.clone())
        };
        let mut age = 0;
        for shard in stream.state().shards.iter() {
            if finished.contains(&shard.index) {
                continue;
            }
            let Ok(horizon) = self.trim_horizon(&stream, shard) else {
                continue;
            };
            let at = positions
                .get(&shard.index)
                .copied()
                .unwrap_or(horizon)
                .max(horizon);
            if at >= Self::shard_end(shard) {
                continue;
            }
            let oldest = shard.log.read(at, 1, 1).ok().and_then(|batch| {
                batch
                    .iter()
                    .next()
                    .and_then(|r| r.ok().map(|r| r.arrival_ms))
            });
            if let Some(arrival) = oldest {
                age = age.max(self.clock.age_ms(arrival));
            }
        }
        age.max(0)
    }

    /// GetEventSourceMapping.
    pub fn get_mapping(&self, uuid: &str) -> std::result::Result<MappingView, EsmError> {
        Ok(self.esm.get(uuid)?.view())
    }

    /// ListEventSourceMappings' matches, in UUID order (the caller pages them).
    pub fn list_mappings(
        &self,
        function: Option<&str>,
        source_arn: Option<&str>,
    ) -> Vec<MappingView> {
        let function = function.map(function_name_of);
        self.esm
            .mappings()
            .values()
            .map(|m| m.view())
            .filter(|v| {
                function.is_none_or(|f| f == v.config.function_name)
                    && source_arn.is_none_or(|a| a == v.config.event_source_arn)
            })
            .collect()
    }

    /// UpdateEventSourceMapping: `edit` turns the settings in force into the new ones; the
    /// mapping is Enabling, Disabling or Updating meanwhile and answers with the settings
    /// in force, as Lambda does ("updated settings are applied asynchronously"). Refused
    /// with ResourceInUseException while another transition is under way.
    pub async fn update_mapping(
        self: &Arc<Self>,
        uuid: &str,
        edit: impl FnOnce(&MappingConfig) -> std::result::Result<MappingConfig, EsmError>,
    ) -> std::result::Result<MappingView, EsmError> {
        let m = self.esm.get(uuid)?;
        let view = {
            let mut lifecycle = m.lifecycle();
            if lifecycle.state.is_transitional() {
                return Err(EsmError::InUse(
                    "Cannot update the event source mapping because it is in use.".into(),
                ));
            }
            let current = m.config();
            let mut new = edit(&current)?;
            self.check_destination(&new)?;
            let stream_exists = StreamKey::from_arn(&new.event_source_arn)
                .and_then(|key| self.stream(&key).ok())
                .is_some_and(|s| s.state().status != super::catalog::StreamStatus::Deleting);
            if new.enabled && !current.enabled && !stream_exists {
                // As CreateEventSourceMapping refuses it: a mapping enabled on a deleted
                // stream would read nothing, even once a stream of that name is back.
                return Err(EsmError::Invalid(format!(
                    "Stream not found: {}",
                    new.event_source_arn
                )));
            }
            new.last_modified_ms = self.clock.now_ms();
            new.state_transition_reason = USER_ACTION.into();
            lifecycle.state = match (current.enabled, new.enabled) {
                (false, true) => MappingState::Enabling,
                (true, false) => MappingState::Disabling,
                _ => MappingState::Updating,
            };
            lifecycle.pending = Some(new);
            MappingView {
                config: current,
                state: lifecycle.state,
                last_processing_result: m.progress().last_result.clone(),
            }
        };
        m.persist_async().await?;
        self.end_transition(uuid.to_string()).await;
        Ok(view)
    }

    /// DeleteEventSourceMapping: Deleting now, gone (tasks stopped, file removed) after the
    /// transition delay. Refused with ResourceInUseException while another transition is
    /// under way.
    pub async fn delete_mapping(
        self: &Arc<Self>,
        uuid: &str,
    ) -> std::result::Result<MappingView, EsmError> {
        let m = self.esm.get(uuid)?;
        {
            let mut lifecycle = m.lifecycle();
            if lifecycle.state.is_transitional() {
                return Err(EsmError::InUse(
                    "Cannot delete the event source mapping because it is in use.".into(),
                ));
            }
            lifecycle.state = MappingState::Deleting;
        }
        m.persist_async().await?;
        let view = m.view();
        self.end_transition(uuid.to_string()).await;
        Ok(view)
    }

    /// The stream `key` is being deleted: its mappings stop delivering, turn Disabled
    /// (Lambda initiated) with a PROBLEM result, and drop their checkpoints, which name
    /// shards of a stream that no longer exists; a stream re-created under the same name
    /// (and so the same ARN) is only read again once the mapping is enabled, from its
    /// StartingPosition.
    pub(super) async fn event_source_deleted(self: &Arc<Self>, key: &StreamKey) {
        let affected: Vec<Arc<Mapping>> = self
            .esm
            .mappings()
            .values()
            .filter(|m| m.is_on(key))
            .cloned()
            .collect();
        for m in affected {
            // Disabled first, then stopped: a transition ending meanwhile cannot start it
            // again (see start_mapping).
            Self::forget_source(&m, &key.arn());
            Self::stop_mapping(&m).await;
            if let Err(e) = m.persist_async().await {
                tracing::error!(error = %e, uuid = %m.config().uuid, "cannot save a mapping");
            }
        }
    }

    fn forget_source(m: &Mapping, arn: &str) {
        {
            let mut progress = m.progress();
            progress.positions.clear();
            progress.finished.clear();
            progress.last_result = format!("PROBLEM: Stream not found: {arn}");
        }
        let mut lifecycle = m.lifecycle();
        let disable = |c: &mut MappingConfig| {
            c.enabled = false;
            c.state_transition_reason = LAMBDA_INITIATED.into();
        };
        if let Some(pending) = lifecycle.pending.as_mut() {
            disable(pending);
        }
        disable(&mut m.config.lock().unwrap_or_else(|e| e.into_inner()));
        if lifecycle.state == MappingState::Enabled {
            lifecycle.state = MappingState::Disabled;
        }
    }
}
