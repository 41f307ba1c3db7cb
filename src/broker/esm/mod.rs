//! Event-source mappings: Lambda's way of consuming a stream. Each enabled mapping runs one
//! task per shard ([`worker`]) that waits on the shard's tail notifier, builds batches
//! ([`event`]), invokes the mapping's function through its Runtime API queue ([`runtime`]),
//! retries as the mapping's settings say, and checkpoints after each batch.
//!
//! Each mapping is one `storage::MetaStore` file (`esm/<UUID>.json`): its settings and its
//! checkpoints (next offset per shard, shards finished), rewritten after every batch, so
//! an acknowledged checkpoint survives a restart.

pub mod event;
pub mod functions;
pub mod invoke;
pub mod mapping;
pub mod process;
pub mod runtime;
mod worker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
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
}

#[derive(Serialize, Deserialize)]
struct Document {
    config: MappingConfig,
    progress: Progress,
}

/// One mapping: settings, progress, its file and its running tasks.
pub struct Mapping {
    config: Mutex<MappingConfig>,
    progress: Mutex<Progress>,
    store: storage::MetaStore,
    /// Serialises writes of the file (snapshot and store under it).
    persist_lock: Mutex<()>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Mapping {
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

    fn persist(&self) -> Result<()> {
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        let doc = Document {
            config: self.config(),
            progress: self.progress().clone(),
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

    fn to_json(&self, state: &str) -> Value {
        let result = self.progress().last_result.clone();
        self.config().to_json(state, &result)
    }

    fn state(&self) -> &'static str {
        if self.config().enabled {
            "Enabled"
        } else {
            "Disabled"
        }
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
    /// 500 ServiceException.
    Service(String),
}

impl From<Error> for EsmError {
    fn from(e: Error) -> Self {
        EsmError::Service(e.to_string())
    }
}

/// The broker's mappings and declared functions.
pub struct Esm {
    dir: PathBuf,
    functions: Functions,
    mappings: Mutex<BTreeMap<String, Arc<Mapping>>>,
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
            mappings.insert(
                doc.config.uuid.clone(),
                Arc::new(Mapping {
                    config: Mutex::new(doc.config),
                    progress: Mutex::new(doc.progress),
                    store,
                    persist_lock: Mutex::new(()),
                    stop: watch::Sender::new(false),
                    task: Mutex::new(None),
                }),
            );
        }
        let functions = Functions::from_specs(functions).map_err(Error::Catalog)?;
        Ok(Esm {
            dir,
            functions,
            mappings: Mutex::new(mappings),
        })
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
fn function_name_of(name: &str) -> &str {
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

    /// Starts the delivery of every enabled mapping (at start-up).
    pub(super) fn start_mappings(self: &Arc<Self>) {
        let all: Vec<Arc<Mapping>> = self.esm.mappings().values().cloned().collect();
        for m in all {
            self.start_mapping(&m);
        }
    }

    fn start_mapping(self: &Arc<Self>, mapping: &Arc<Mapping>) {
        let config = mapping.config();
        if !config.enabled {
            return;
        }
        let Some(function) = self.esm.functions.get(&config.function_name) else {
            tracing::warn!(uuid = %config.uuid, function = %config.function_name, "mapping not started: its function is not declared (--function or PUT /_broker/functions/NAME)");
            return;
        };
        mapping.stop.send_replace(false);
        let task = tokio::spawn(worker::run_mapping(
            self.clone(),
            mapping.clone(),
            function,
            mapping.stop.subscribe(),
        ));
        *mapping.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    async fn stop_mapping(mapping: &Mapping) {
        mapping.stop.send_replace(true);
        let task = mapping
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Stops every mapping's tasks (shutdown).
    pub(super) async fn stop_mappings(&self) {
        let all: Vec<Arc<Mapping>> = self.esm.mappings().values().cloned().collect();
        for m in all {
            Self::stop_mapping(&m).await;
        }
    }

    /// CreateEventSourceMapping.
    pub async fn create_mapping(
        self: &Arc<Self>,
        account: &str,
        region: &str,
        body: &Map<String, Value>,
    ) -> std::result::Result<Value, EsmError> {
        let function_arg = match body.get("FunctionName") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(EsmError::Invalid("FunctionName is required.".into())),
        };
        let name = function_name_of(&function_arg).to_string();
        if !self.esm.functions.contains(&name) {
            return Err(EsmError::Invalid(format!(
                "Function {name} is not declared to kinesis-broker: start it with --function {name}=runtime://127.0.0.1:PORT or {name}=http://HOST:PORT (or KINESIS_BROKER_FUNCTIONS), --function-command {name}=COMMAND, or PUT /_broker/functions/{name}."
            )));
        }
        let function_arn = format!("arn:aws:lambda:{region}:{account}:function:{name}");
        let mut uuid_bytes = [0u8; 16];
        getrandom::fill(&mut uuid_bytes)
            .map_err(|e| EsmError::Service(format!("no randomness: {e}")))?;
        let uuid = runtime::format_uuid(uuid_bytes);
        let config =
            mapping::parse_create(body, uuid.clone(), function_arn, name, self.clock.now_ms())
                .map_err(EsmError::Invalid)?;
        let key = StreamKey::from_arn(&config.event_source_arn).ok_or_else(|| {
            EsmError::Invalid(format!(
                "Unsupported or invalid EventSourceArn {}: kinesis-broker serves Kinesis stream ARNs (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME).",
                config.event_source_arn
            ))
        })?;
        let stream = self.stream(&key).map_err(|_| {
            EsmError::Invalid(format!("Stream not found: {}", config.event_source_arn))
        })?;
        {
            let existing = self.esm.mappings();
            if existing.values().any(|m| {
                let c = m.config();
                c.function_name == config.function_name
                    && c.event_source_arn == config.event_source_arn
            }) {
                return Err(EsmError::Conflict(format!(
                    "The event source arn ({}) and function ({}) provided mapping already exists. Please update or delete the existing mapping with UUID {}",
                    config.event_source_arn,
                    config.function_name,
                    existing
                        .values()
                        .find(|m| m.config().event_source_arn == config.event_source_arn
                            && m.config().function_name == config.function_name)
                        .map(|m| m.config().uuid)
                        .unwrap_or_default()
                )));
            }
        }
        let mut progress = Progress {
            last_result: "No records processed".into(),
            ..Default::default()
        };
        if config.starting_position == StartingPosition::Latest {
            for shard in stream.state().shards.iter() {
                if shard.closed().is_some() {
                    progress.finished.insert(shard.index);
                } else {
                    progress
                        .positions
                        .insert(shard.index, Self::shard_end(shard));
                }
            }
        }
        let store = storage::MetaStore::open(self.esm.dir.join(format!("{uuid}.json")))
            .map_err(Error::from)?;
        let mapping = Arc::new(Mapping {
            config: Mutex::new(config),
            progress: Mutex::new(progress),
            store,
            persist_lock: Mutex::new(()),
            stop: watch::Sender::new(false),
            task: Mutex::new(None),
        });
        mapping.persist_async().await?;
        self.esm.mappings().insert(uuid, mapping.clone());
        self.start_mapping(&mapping);
        Ok(mapping.to_json("Creating"))
    }

    /// GetEventSourceMapping.
    pub fn get_mapping(&self, uuid: &str) -> std::result::Result<Value, EsmError> {
        let m = self.esm.get(uuid)?;
        Ok(m.to_json(m.state()))
    }

    /// ListEventSourceMappings, filtered, from `marker` (an index), at most `max` items.
    pub fn list_mappings(
        &self,
        function: Option<&str>,
        source_arn: Option<&str>,
        marker: Option<&str>,
        max: Option<usize>,
    ) -> std::result::Result<Value, EsmError> {
        let function = function.map(function_name_of);
        let all: Vec<Arc<Mapping>> = self
            .esm
            .mappings()
            .values()
            .filter(|m| {
                let c = m.config();
                function.is_none_or(|f| f == c.function_name)
                    && source_arn.is_none_or(|a| a == c.event_source_arn)
            })
            .cloned()
            .collect();
        let start = match marker {
            None | Some("") => 0,
            Some(m) => m
                .parse::<usize>()
                .map_err(|_| EsmError::Invalid(format!("Invalid Marker: {m}")))?,
        };
        let max = max.unwrap_or(100).clamp(1, 100);
        let page: Vec<Value> = all
            .iter()
            .skip(start)
            .take(max)
            .map(|m| m.to_json(m.state()))
            .collect();
        let mut out = json!({ "EventSourceMappings": page });
        if start + max < all.len() {
            out["NextMarker"] = json!((start + max).to_string());
        }
        Ok(out)
    }

    /// UpdateEventSourceMapping: the tasks stop, the settings change, the tasks start again
    /// from their checkpoints.
    pub async fn update_mapping(
        self: &Arc<Self>,
        uuid: &str,
        body: &Map<String, Value>,
    ) -> std::result::Result<Value, EsmError> {
        let m = self.esm.get(uuid)?;
        let mut config = m.config();
        for fixed in [
            "EventSourceArn",
            "StartingPosition",
            "StartingPositionTimestamp",
        ] {
            if body.get(fixed).is_some_and(|v| !v.is_null()) {
                return Err(EsmError::Invalid(format!(
                    "{fixed} cannot be changed on an existing event source mapping."
                )));
            }
        }
        if let Some(Value::String(f)) = body.get("FunctionName") {
            let name = function_name_of(f);
            if name != config.function_name {
                return Err(EsmError::Invalid(format!(
                    "Changing FunctionName is not supported by kinesis-broker yet (mapping {uuid} delivers to {}).",
                    config.function_name
                )));
            }
        }
        mapping::apply_settings(&mut config, body).map_err(EsmError::Invalid)?;
        config.last_modified_ms = self.clock.now_ms();
        config.state_transition_reason = "USER_INITIATED".into();
        Self::stop_mapping(&m).await;
        *m.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
        let saved = m.persist_async().await;
        self.start_mapping(&m);
        saved?;
        Ok(m.to_json("Updating"))
    }

    /// DeleteEventSourceMapping: its tasks stop and its file goes.
    pub async fn delete_mapping(
        self: &Arc<Self>,
        uuid: &str,
    ) -> std::result::Result<Value, EsmError> {
        let m = self.esm.get(uuid)?;
        Self::stop_mapping(&m).await;
        self.esm.mappings().remove(uuid);
        let path = self.esm.dir.join(format!("{uuid}.json"));
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        Ok(m.to_json("Deleting"))
    }
}
