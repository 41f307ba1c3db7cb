//! The functions mappings deliver to: declared at start-up (`--function`,
//! `--function-command`) or at run time (`PUT /_broker/functions/{name}`), each reached
//! either through a Runtime API the broker serves ([`super::runtime`], with runtime
//! processes the broker may start itself, [`super::process`]) or through an Invoke endpoint
//! ([`super::invoke`]). The worker only calls [`Function::invoke`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::invoke::InvokeUrl;
use super::process::{self, Launch};
use super::runtime::{self, Outcome, RuntimeApi};
use crate::broker::Broker;
use crate::config::{FunctionSpec, FunctionTarget};

enum Target {
    Runtime(Arc<RuntimeApi>),
    Invoke(Box<InvokeUrl>),
}

/// One declared function.
pub struct Function {
    /// The declared name.
    pub name: String,
    spec: FunctionSpec,
    target: Target,
    /// The Runtime API's address once bound (the real port when 0 was asked for).
    bound: Mutex<Option<SocketAddr>>,
    /// Stops the runtime processes; then `stop_api` closes the Runtime API, so that a
    /// runtime sees SIGTERM rather than its server gone.
    stop_processes: watch::Sender<bool>,
    stop_api: watch::Sender<bool>,
    processes: Mutex<Option<JoinHandle<()>>>,
    api_server: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("url", &self.spec.url())
            .finish()
    }
}

impl Function {
    /// The function `spec` declares (not serving yet: see [`Function::start`]).
    pub fn new(spec: FunctionSpec) -> Result<Self, String> {
        spec.validate()?;
        let target = match &spec.target {
            FunctionTarget::Runtime(_) => {
                Target::Runtime(Arc::new(RuntimeApi::new(spec.name.clone(), spec.timeout)))
            }
            FunctionTarget::InvokeUrl(url) => {
                Target::Invoke(Box::new(InvokeUrl::new(url, spec.timeout)?))
            }
        };
        Ok(Self {
            name: spec.name.clone(),
            spec,
            target,
            bound: Mutex::new(None),
            stop_processes: watch::Sender::new(false),
            stop_api: watch::Sender::new(false),
            processes: Mutex::new(None),
            api_server: Mutex::new(None),
        })
    }

    /// Invokes the function with `payload`: its response, or a function error (the
    /// function's own, its timeout passed, its runtime gone, its endpoint unreachable).
    /// Cancel-safe.
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        match &self.target {
            Target::Runtime(api) => api.invoke(payload).await,
            Target::Invoke(endpoint) => endpoint.invoke(payload).await,
        }
    }

    /// What the function was declared with.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// Where its Runtime API is served, once it is.
    pub fn runtime_addr(&self) -> Option<SocketAddr> {
        *self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How it appears in `GET /_broker/functions`.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "name": self.name,
            "url": self.spec.url(),
            "timeout_s": self.spec.timeout.as_secs(),
        });
        match &self.target {
            Target::Runtime(api) => {
                let load = api.load();
                out["kind"] = json!("runtime");
                out["concurrency"] = json!(self.spec.concurrency);
                out["runtime_api"] = json!(self.runtime_addr().map(|a| a.to_string()));
                out["idle_runtimes"] = json!(load.idle);
                out["waiting"] = json!(load.waiting);
                out["in_flight"] = json!(load.in_flight);
            }
            Target::Invoke(_) => out["kind"] = json!("invoke"),
        }
        if let Some(c) = &self.spec.command {
            out["command"] = json!(c);
        }
        out
    }

    /// Serves its Runtime API (and starts its runtime processes when it has a command).
    /// Binds before returning. Nothing to do for an Invoke endpoint.
    pub(super) async fn start(
        self: &Arc<Self>,
        broker: &Arc<Broker>,
    ) -> Result<(), (SocketAddr, std::io::Error)> {
        let Target::Runtime(api) = &self.target else {
            return Ok(());
        };
        let FunctionTarget::Runtime(addr) = self.spec.target else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| (addr, e))?;
        let local = listener.local_addr().map_err(|e| (addr, e))?;
        *self.bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(local);
        let region = crate::api::RequestContext::DEFAULT_REGION;
        let arn = format!(
            "arn:aws:lambda:{region}:{}:function:{}",
            crate::api::RequestContext::DEFAULT_ACCOUNT_ID,
            self.name
        );
        let clock = broker.clock.clone();
        tracing::info!(function = %self.name, "Lambda Runtime API on http://{local}");
        *self.api_server.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(tokio::spawn(runtime::serve(
                listener,
                api.clone(),
                arn,
                move || clock.now_ms(),
                self.stop_api.subscribe(),
            )));
        if let Some(command) = &self.spec.command {
            let pool = tokio::spawn(process::run(
                api.clone(),
                Launch {
                    name: self.name.clone(),
                    command: command.clone(),
                    runtime_api: local,
                    region: region.to_string(),
                    concurrency: self.spec.concurrency as usize,
                },
                self.stop_processes.subscribe(),
            ));
            *self.processes.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool);
        }
        Ok(())
    }

    /// Stops serving and stops its runtime processes (SIGTERM, SIGKILL after a grace),
    /// waiting for them.
    pub(super) async fn stop(&self) {
        self.stop_processes.send_replace(true);
        let pool = self
            .processes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(pool) = pool {
            let _ = pool.await;
        }
        self.stop_api.send_replace(true);
        let server = self
            .api_server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }
}

/// The declared functions by name.
#[derive(Default)]
pub struct Functions {
    by_name: Mutex<BTreeMap<String, Arc<Function>>>,
}

impl Functions {
    /// The functions `specs` declare (not serving yet).
    pub fn from_specs(specs: &[FunctionSpec]) -> Result<Self, String> {
        let mut by_name = BTreeMap::new();
        for spec in specs {
            by_name.insert(spec.name.clone(), Arc::new(Function::new(spec.clone())?));
        }
        Ok(Self {
            by_name: Mutex::new(by_name),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Function>>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The function called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Function>> {
        self.map().get(name).cloned()
    }

    /// Whether `name` is declared.
    pub fn contains(&self, name: &str) -> bool {
        self.map().contains_key(name)
    }

    /// Every declared function, by name.
    pub fn all(&self) -> Vec<Arc<Function>> {
        self.map().values().cloned().collect()
    }
}

/// Why a function request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FunctionAdminError {
    /// Bad spec (400).
    Invalid(String),
    /// No such function (404).
    NotFound(String),
    /// A mapping delivers to it (409).
    InUse(String),
}

/// The body of `PUT /_broker/functions/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    url: String,
    #[serde(default)]
    command: Option<String>,
}

impl Broker {
    /// `GET /_broker/functions`.
    pub fn list_functions(&self) -> Value {
        let all: Vec<Value> = self
            .esm
            .functions
            .all()
            .iter()
            .map(|f| f.to_json())
            .collect();
        json!({ "functions": all })
    }

    /// `PUT /_broker/functions/{name}`: declares `name` from a JSON body
    /// `{"url": "runtime://127.0.0.1:PORT?timeout=30", "command": "..."}` (the `--function`
    /// URL and the `--function-command` command). A function already declared is replaced;
    /// the mappings delivering to it stop and start again on the new one.
    pub async fn put_function(
        self: &Arc<Self>,
        name: &str,
        body: &[u8],
    ) -> Result<Value, FunctionAdminError> {
        let body: PutBody = serde_json::from_slice(body).map_err(|e| {
            FunctionAdminError::Invalid(format!(
                "expected {{\"url\": \"runtime://127.0.0.1:PORT\" or \"http://HOST:PORT\", \"command\": optional}}: {e}"
            ))
        })?;
        let mut spec =
            FunctionSpec::parse_url(name, &body.url).map_err(FunctionAdminError::Invalid)?;
        spec.command = body.command;
        let function = Arc::new(Function::new(spec).map_err(FunctionAdminError::Invalid)?);
        let old = self.esm.functions.get(name);
        let users = self.mappings_using(name);
        for m in &users {
            Self::stop_mapping(m).await;
        }
        // The old one lets go of its port first: the new one may want the same.
        if let Some(old) = &old {
            old.stop().await;
        }
        let started = function.start(self).await;
        if let Err((addr, e)) = started {
            if let Some(old) = old {
                tracing::warn!(function = %name, "the replacement did not start; the mappings stay stopped");
                self.esm.functions.map().remove(&old.name);
            }
            return Err(FunctionAdminError::Invalid(format!(
                "cannot serve the Runtime API of {name} on {addr}: {e}"
            )));
        }
        self.esm
            .functions
            .map()
            .insert(name.to_string(), function.clone());
        for m in &users {
            self.start_mapping(m);
        }
        tracing::info!(function = %name, url = %function.spec.url(), "function declared");
        Ok(function.to_json())
    }

    /// `DELETE /_broker/functions/{name}`: refused while a mapping delivers to it.
    pub async fn delete_function(&self, name: &str) -> Result<Value, FunctionAdminError> {
        let function = self
            .esm
            .functions
            .get(name)
            .ok_or_else(|| FunctionAdminError::NotFound(format!("no function {name}")))?;
        let users = self.mappings_using(name);
        if !users.is_empty() {
            let uuids: Vec<String> = users.iter().map(|m| m.config().uuid).collect();
            return Err(FunctionAdminError::InUse(format!(
                "function {name} is used by event-source mapping(s) {}: delete them first",
                uuids.join(", ")
            )));
        }
        self.esm.functions.map().remove(name);
        function.stop().await;
        tracing::info!(function = %name, "function removed");
        Ok(function.to_json())
    }

    /// Stops every function's Runtime API and runtime processes (shutdown).
    pub async fn stop_functions(&self) {
        for f in self.esm.functions.all() {
            f.stop().await;
        }
    }

    fn mappings_using(&self, name: &str) -> Vec<Arc<super::Mapping>> {
        self.esm
            .mappings()
            .values()
            .filter(|m| m.config().function_name == name)
            .cloned()
            .collect()
    }
}
