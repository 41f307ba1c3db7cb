//! Server configuration: everything `Server::start` needs, with documented defaults, and the
//! command line that fills it in ([`Args`], flags and `KINESIS_BROKER_*` environment
//! variables).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How an append is acknowledged. Mirrors `storage::Durability`, chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityMode {
    /// Acknowledge once the records are on disk (group commit). Survives process crash and
    /// power loss, at the price of an `fdatasync` in every request's latency.
    Flush,
    /// Acknowledge once the records are in the OS page cache; flushed every `flush_interval`.
    /// Survives a crash of the broker (even `kill -9`), not a power loss. The default.
    //
    // The default because, as for Kafka, a process crash is the failure a single broker
    // must never lose an acknowledged record to, while an `fdatasync` per request caps
    // single-record producers at the disk's flush rate (a third of the rate here,
    // `benches/RESULTS.md`).
    PageCache,
}

impl std::fmt::Display for DurabilityMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Flush => "flush",
            Self::PageCache => "page-cache",
        })
    }
}

/// A stream to create at start-up if it does not exist yet (`--create-stream NAME[:SHARDS]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name.
    pub name: String,
    /// Number of shards (default 1).
    pub shard_count: u32,
}

/// Longest stream name AWS accepts (service model `StreamName`: length 1..=128).
const MAX_STREAM_NAME_LEN: usize = 128;

impl FromStr for StreamSpec {
    type Err = ConfigError;

    /// `NAME` or `NAME:SHARDS`; the name must fit AWS's `[a-zA-Z0-9_.-]+`, 1 to 128
    /// characters, and the shard count must be at least 1.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| ConfigError::StreamSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (name, shards) = match s.trim().split_once(':') {
            Some((name, shards)) => (name, Some(shards)),
            None => (s.trim(), None),
        };
        if name.is_empty() || name.len() > MAX_STREAM_NAME_LEN {
            return Err(bad("the name must be 1 to 128 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(bad(
                "the name may only hold letters, digits, '_', '.' and '-'",
            ));
        }
        let shard_count = match shards {
            None => 1,
            Some(n) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(bad("the shard count must be a whole number of at least 1")),
            },
        };
        Ok(Self {
            name: name.to_string(),
            shard_count,
        })
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--create-stream` value that does not parse.
    #[error("invalid stream '{spec}': {reason}")]
    StreamSpec {
        /// The value given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same stream asked for twice with different shard counts.
    #[error("stream '{0}' is listed twice in --create-stream with different shard counts")]
    DuplicateStream(String),
    /// `--host` that resolves to no address.
    #[error("cannot resolve listen address '{host}:{port}': {reason}")]
    Listen {
        /// Host given.
        host: String,
        /// Port given.
        port: u16,
        /// Why it failed.
        reason: String,
    },
    /// A value out of its allowed range.
    #[error("{0}")]
    Invalid(String),
}

/// Smallest segment file accepted: 64 KiB. Tests may go this low to force segment rolls;
/// below it, a segment could not hold even a few small records.
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;
/// Largest segment file accepted: 4 GiB, so positions within a segment fit in 32 bits.
pub const MAX_SEGMENT_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Longest lifecycle delay accepted (CREATING → ACTIVE and the like): 10 minutes, beyond
/// which SDK waiters give up anyway.
pub const MAX_LIFECYCLE_DELAY: Duration = Duration::from_secs(600);
/// Longest page-cache flush interval accepted: 60 s.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Everything the broker is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// A second listener serving the same endpoints (meant for `/metrics`, `/health` and
    /// `/ready`), e.g. to keep Prometheus on a port clients do not use. Default none.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of the embedded on-disk store. Default `./kinesis-data`.
    pub data_dir: PathBuf,
    /// Default `Flush`: never loses an acknowledged record.
    pub durability: DurabilityMode,
    /// Background flush period in `PageCache` mode. Default 200 ms. Minimum 1 ms, maximum
    /// [`MAX_FLUSH_INTERVAL`].
    pub flush_interval: Duration,
    /// Streams created at start-up if absent.
    pub create_streams: Vec<StreamSpec>,
    /// CREATING → ACTIVE delay. Default 500 ms (AWS takes seconds); 0 in tests.
    pub create_stream_delay: Duration,
    /// DELETING → gone delay. Default 500 ms; 0 in tests.
    pub delete_stream_delay: Duration,
    /// UPDATING → ACTIVE delay for resharding and mode changes. Default 500 ms.
    pub update_stream_delay: Duration,
    /// Registered consumer CREATING → ACTIVE delay. Default 500 ms; 0 in tests.
    pub register_consumer_delay: Duration,
    /// Deregistered consumer DELETING → gone delay. Default 500 ms; 0 in tests.
    pub deregister_consumer_delay: Duration,
    /// How long an event-source mapping stays in Lambda's transitional states (Creating,
    /// Enabling, Disabling, Updating, Deleting). Default 500 ms; 0 in tests.
    pub event_source_mapping_delay: Duration,
    /// Segment file size for shard logs. Default 64 MiB. Minimum [`MIN_SEGMENT_BYTES`],
    /// maximum [`MAX_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// Per-shard throughput limits (AWS's rates): on by default; off for benchmarks.
    pub throughput_limits: bool,
    /// Multiplies every throughput limit. Default 1.0; must be positive.
    pub throughput_multiplier: f64,
    /// Open shards an account may have per region. Default 500 (AWS's default quota in its
    /// largest regions).
    pub shard_limit: u32,
    /// On-demand streams an account may have per region. Default 50 (AWS's default).
    pub on_demand_stream_limit: u32,
    /// Fault injection at start (also settable at run time through `/_broker/faults`).
    pub faults: crate::broker::faults::FaultConfig,
    /// How often the on-demand autoscaler looks at write demand (also its measuring
    /// window). Default 60 s; tests use milliseconds.
    pub on_demand_scale_interval: Duration,
    /// Shifts the broker's clock (ms; may be negative). Lets a test or an operator see
    /// retention and iterator expiry without waiting; also adjustable through
    /// `/_broker/clock`.
    pub clock_offset_ms: i64,
    /// How long a SubscribeToShard subscription lasts before it ends cleanly and the client
    /// subscribes again. Default 5 minutes, as on AWS; tests shorten it.
    pub subscription_lifetime: Duration,
    /// Functions event-source mappings deliver to (`--function NAME=runtime://HOST:PORT`).
    pub functions: Vec<FunctionSpec>,
    /// HTTPS on the main listener, and where its certificate comes from. Default none
    /// (plain HTTP).
    pub tls: Option<crate::http::tls::TlsSource>,
    /// Whether signatures are checked. Default `Open` (any well-formed credential, the
    /// account from a 12-digit key id), for local development.
    pub auth: AuthMode,
    /// The keys, secrets and accounts of `AuthMode::Verify` (see `http::credentials`).
    pub credentials_file: Option<PathBuf>,
    /// Client connections served at once on the main port; at the cap the longest-idle
    /// keep-alive connection is closed for a new client. Default
    /// [`crate::http::connections::DEFAULT_MAX_CONNECTIONS`]; the binary lowers it to what
    /// the open-files limit holds.
    pub max_connections: usize,
    /// Longest silence within a request body before it is answered with 408
    /// `RequestTimeoutException`. Default [`crate::http::BODY_READ_TIMEOUT`]; tests shorten it.
    pub body_read_timeout: Duration,
    /// The S3-compatible endpoint channels deliver to (`--s3-endpoint`); credentials come
    /// from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`. Default none: channels end
    /// CREATING as FAILED, saying so.
    pub s3_endpoint: Option<String>,
    /// Bytes of records (before compression) at which a channel writes an object without
    /// waiting for `DataFreshnessInSeconds`. Default 5 MiB (Firehose's default buffer).
    pub channel_buffer_bytes: u64,
}

/// `--auth`: how requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthMode {
    /// Only the credential's shape is checked; anyone reaching the port is trusted.
    #[default]
    Open,
    /// SigV4 signatures are verified against `--credentials-file`; the account is the key's.
    Verify,
}

/// Lambda's default function timeout.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(3);
/// Lambda's longest function timeout: 900 s.
pub const MAX_FUNCTION_TIMEOUT_S: u64 = 900;
/// How many runtime processes the broker starts at most for one function, unless told.
pub const DEFAULT_FUNCTION_CONCURRENCY: u32 = 10;
/// The most runtime processes one function may be given.
pub const MAX_FUNCTION_CONCURRENCY: u32 = 1000;
/// The path the Runtime Interface Emulator serves whatever its function is called: it
/// routes `function` always, and `AWS_LAMBDA_FUNCTION_NAME` as well when that is set.
pub const RIE_INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

/// A function declared to the broker:
///
/// - `NAME=runtime://127.0.0.1:PORT`: the broker serves the Lambda Runtime API for it on
///   that port (port 0 picks one, for runtimes the broker starts itself);
/// - `NAME=http://HOST:PORT[/path]`: the broker POSTs each event to an Invoke endpoint
///   (the Runtime Interface Emulator's `/2015-03-31/functions/function/invocations` when
///   no path is given).
///
/// Both take `?timeout=SECONDS` (1 to 900, default 3, as Lambda's function timeout); a
/// Runtime API function takes `&concurrency=N` too (most runtime processes the broker
/// starts for it, default 10), and a `command` (from `--function-command`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The function's name (what a mapping's FunctionName resolves to).
    pub name: String,
    /// How the broker reaches the function.
    pub target: FunctionTarget,
    /// The function's timeout: an invocation not answered by then is a function error.
    pub timeout: Duration,
    /// Most runtime processes the broker starts for this function.
    pub concurrency: u32,
    /// A command (run by `/bin/sh -c`) starting one runtime interface client, which the
    /// broker runs itself as invocations need; only for a Runtime API function.
    pub command: Option<String>,
}

/// How the broker reaches a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionTarget {
    /// The broker serves the Lambda Runtime API on this address.
    Runtime(SocketAddr),
    /// The broker POSTs events to this Invoke URL (`http://HOST:PORT/path`).
    InvokeUrl(String),
}

impl FunctionSpec {
    /// A Runtime API function on `addr` with Lambda's defaults.
    pub fn runtime(name: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            name: name.into(),
            target: FunctionTarget::Runtime(addr),
            timeout: DEFAULT_FUNCTION_TIMEOUT,
            concurrency: DEFAULT_FUNCTION_CONCURRENCY,
            command: None,
        }
    }

    /// The URL this spec is written as (with its settings), without the name.
    pub fn url(&self) -> String {
        let mut url = match &self.target {
            FunctionTarget::Runtime(addr) => format!("runtime://{addr}"),
            FunctionTarget::InvokeUrl(url) => url.clone(),
        };
        url.push_str(&format!("?timeout={}", self.timeout.as_secs()));
        if matches!(self.target, FunctionTarget::Runtime(_)) {
            url.push_str(&format!("&concurrency={}", self.concurrency));
        }
        url
    }

    /// The spec `url` describes for the function `name` (no command).
    pub fn parse_url(name: &str, url: &str) -> Result<Self, String> {
        check_function_name(name)?;
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut spec = if let Some(addr) = base.strip_prefix("runtime://") {
            let addr = addr.trim_end_matches('/');
            let addr: SocketAddr = addr
                .parse()
                .map_err(|e| format!("{addr:?}: not an IP:PORT address ({e})"))?;
            FunctionSpec::runtime(name, addr)
        } else if let Some(rest) = base.strip_prefix("http://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let port_ok = authority
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(format!(
                    "{url:?}: an Invoke URL is http://HOST:PORT[/path], with its port"
                ));
            }
            let path = if path.is_empty() || path == "/" {
                RIE_INVOKE_PATH
            } else {
                path
            };
            let full = format!("http://{authority}{path}");
            full.parse::<hyper::Uri>()
                .map_err(|e| format!("{url:?}: not a URL ({e})"))?;
            FunctionSpec {
                target: FunctionTarget::InvokeUrl(full),
                ..FunctionSpec::runtime(name, SocketAddr::from(([127, 0, 0, 1], 0)))
            }
        } else {
            return Err(format!(
                "{url:?}: a function is runtime://IP:PORT (the broker serves the Lambda Runtime API) or http://HOST:PORT (an Invoke endpoint, such as the Runtime Interface Emulator's)"
            ));
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "timeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        format!("timeout={value:?}: a whole number of seconds, 1 to {MAX_FUNCTION_TIMEOUT_S}")
                    })?;
                    if !(1..=MAX_FUNCTION_TIMEOUT_S).contains(&secs) {
                        return Err(format!(
                            "timeout={secs}: Lambda's function timeout is 1 to {MAX_FUNCTION_TIMEOUT_S} seconds"
                        ));
                    }
                    spec.timeout = Duration::from_secs(secs);
                }
                "concurrency" => {
                    if !matches!(spec.target, FunctionTarget::Runtime(_)) {
                        return Err(format!(
                            "concurrency={value}: only a runtime:// function has runtime processes the broker starts"
                        ));
                    }
                    let n: u32 = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_FUNCTION_CONCURRENCY).contains(n))
                        .ok_or_else(|| {
                            format!("concurrency={value:?}: a number of processes, 1 to {MAX_FUNCTION_CONCURRENCY}")
                        })?;
                    spec.concurrency = n;
                }
                other => {
                    return Err(format!(
                        "{other:?}: unknown function setting (known: timeout, concurrency)"
                    ));
                }
            }
        }
        Ok(spec)
    }

    /// Refuses a spec that cannot work: a command on an Invoke URL, a Runtime API on port 0
    /// that nobody starts a runtime for.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.target, &self.command) {
            (FunctionTarget::InvokeUrl(_), Some(_)) => Err(format!(
                "function {}: a command starts a runtime interface client, which needs a runtime:// function",
                self.name
            )),
            (FunctionTarget::Runtime(addr), None) if addr.port() == 0 => Err(format!(
                "function {}: runtime://{addr} picks a port no runtime could find; give a port or a command",
                self.name
            )),
            (_, Some(c)) if c.trim().is_empty() => {
                Err(format!("function {}: the command is empty", self.name))
            }
            _ => Ok(()),
        }
    }
}

fn check_function_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?}: a function name is 1 to 64 of [a-zA-Z0-9-_]"
        ))
    }
}

impl std::str::FromStr for FunctionSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, url) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: expected NAME=runtime://IP:PORT or NAME=http://HOST:PORT")
        })?;
        FunctionSpec::parse_url(name, url)
    }
}

/// `--function-command NAME=COMMAND`: the broker runs COMMAND (with `/bin/sh -c`) to start
/// runtime interface clients for NAME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCommand {
    /// The function.
    pub name: String,
    /// The shell command.
    pub command: String,
}

impl std::str::FromStr for FunctionCommand {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, command) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected NAME=COMMAND"))?;
        check_function_name(name)?;
        if command.trim().is_empty() {
            return Err(format!("{s:?}: the command is empty"));
        }
        Ok(Self {
            name: name.to_string(),
            command: command.to_string(),
        })
    }
}

/// The functions `--function` and `--function-command` declare together: a command names
/// a declared runtime:// function, or declares one on a port the broker picks.
pub fn merge_function_commands(
    mut specs: Vec<FunctionSpec>,
    commands: &[FunctionCommand],
) -> Result<Vec<FunctionSpec>, String> {
    for c in commands {
        match specs.iter_mut().find(|s| s.name == c.name) {
            Some(spec) if spec.command.is_some() => {
                return Err(format!("function {}: more than one command", c.name));
            }
            Some(spec) => spec.command = Some(c.command.clone()),
            None => {
                let mut spec =
                    FunctionSpec::runtime(c.name.clone(), SocketAddr::from(([127, 0, 0, 1], 0)));
                spec.command = Some(c.command.clone());
                specs.push(spec);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for spec in &specs {
        if !seen.insert(spec.name.as_str()) {
            return Err(format!("function {} is declared twice", spec.name));
        }
        spec.validate()?;
    }
    Ok(specs)
}

impl Config {
    /// Defaults for a local run: 127.0.0.1:4567, `./kinesis-data`, `PageCache`.
    pub fn new() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4567)),
            metrics_listen: None,
            data_dir: PathBuf::from("./kinesis-data"),
            durability: DurabilityMode::PageCache,
            flush_interval: Duration::from_millis(200),
            create_streams: Vec::new(),
            create_stream_delay: Duration::from_millis(500),
            delete_stream_delay: Duration::from_millis(500),
            update_stream_delay: Duration::from_millis(500),
            register_consumer_delay: Duration::from_millis(500),
            deregister_consumer_delay: Duration::from_millis(500),
            event_source_mapping_delay: Duration::from_millis(500),
            segment_bytes: 64 * 1024 * 1024,
            throughput_limits: true,
            throughput_multiplier: 1.0,
            shard_limit: crate::broker::DEFAULT_SHARD_LIMIT,
            on_demand_stream_limit: crate::broker::DEFAULT_ON_DEMAND_STREAM_LIMIT,
            faults: Default::default(),
            on_demand_scale_interval: Duration::from_secs(60),
            clock_offset_ms: 0,
            subscription_lifetime: Duration::from_secs(300),
            functions: Vec::new(),
            tls: None,
            auth: AuthMode::Open,
            credentials_file: None,
            max_connections: crate::http::connections::DEFAULT_MAX_CONNECTIONS,
            body_read_timeout: crate::http::BODY_READ_TIMEOUT,
            s3_endpoint: None,
            channel_buffer_bytes: 5 * 1024 * 1024,
        }
    }

    /// What the HTTP layer takes from this configuration.
    pub fn connection_limits(&self) -> crate::http::connections::ConnectionLimits {
        crate::http::connections::ConnectionLimits {
            max_connections: self.max_connections,
            body_read_timeout: self.body_read_timeout,
        }
    }

    /// Defaults for tests: an ephemeral port on 127.0.0.1, the given data directory, no
    /// lifecycle delays and no throughput limits (a test of throttling turns them on).
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            create_stream_delay: Duration::ZERO,
            delete_stream_delay: Duration::ZERO,
            update_stream_delay: Duration::ZERO,
            register_consumer_delay: Duration::ZERO,
            deregister_consumer_delay: Duration::ZERO,
            event_source_mapping_delay: Duration::ZERO,
            throughput_limits: false,
            ..Self::new()
        }
    }

    /// Checks the settings agree with each other (raft-engine `Config::sanitize`): errors
    /// for what cannot work, a warning and a clamp for what is merely out of range.
    /// `Server::start` calls it first.
    pub fn sanitize(&mut self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "the data directory must not be empty".into(),
            ));
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(ConfigError::Invalid(format!(
                "segment size {} bytes is outside {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.durability == DurabilityMode::PageCache && self.flush_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "page-cache durability needs a flush interval of at least 1 ms".into(),
            ));
        }
        if self.flush_interval > MAX_FLUSH_INTERVAL {
            tracing::warn!(
                requested_ms = self.flush_interval.as_millis() as u64,
                max_ms = MAX_FLUSH_INTERVAL.as_millis() as u64,
                "flush interval clamped"
            );
            self.flush_interval = MAX_FLUSH_INTERVAL;
        }
        for (what, delay) in [
            ("create-stream", &mut self.create_stream_delay),
            ("delete-stream", &mut self.delete_stream_delay),
            ("update-stream", &mut self.update_stream_delay),
            ("register-consumer", &mut self.register_consumer_delay),
            ("deregister-consumer", &mut self.deregister_consumer_delay),
            ("event-source-mapping", &mut self.event_source_mapping_delay),
        ] {
            if *delay > MAX_LIFECYCLE_DELAY {
                tracing::warn!(
                    delay = what,
                    requested_ms = delay.as_millis() as u64,
                    max_ms = MAX_LIFECYCLE_DELAY.as_millis() as u64,
                    "lifecycle delay clamped"
                );
                *delay = MAX_LIFECYCLE_DELAY;
            }
        }
        if !(self.throughput_multiplier.is_finite() && self.throughput_multiplier > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "the throughput multiplier must be a positive number, got {}",
                self.throughput_multiplier
            )));
        }
        if self.auth == AuthMode::Verify && self.credentials_file.is_none() {
            return Err(ConfigError::Invalid(
                "--auth verify needs --credentials-file: the keys to verify signatures with".into(),
            ));
        }
        if self.auth == AuthMode::Open && self.credentials_file.is_some() {
            tracing::warn!("--credentials-file is ignored: --auth is open");
        }
        self.faults
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("faults: {e}")))?;
        // The same stream twice is fine if it agrees with itself (a flag and an env var
        // both naming it); with two shard counts there is no right answer.
        let mut seen: Vec<StreamSpec> = Vec::with_capacity(self.create_streams.len());
        for spec in &self.create_streams {
            match seen.iter().find(|s| s.name == spec.name) {
                Some(s) if s.shard_count != spec.shard_count => {
                    return Err(ConfigError::DuplicateStream(spec.name.clone()));
                }
                Some(_) => {}
                None => seen.push(spec.clone()),
            }
        }
        self.create_streams = seen;
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// The command line. Every flag can also come from the environment variable named beside
/// it; a flag given on the command line wins.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kinesis-broker",
    version,
    about = "A Kinesis Data Streams compatible broker: point the AWS SDKs and CLI at \
             http://127.0.0.1:4567 (e.g. AWS_ENDPOINT_URL_KINESIS) and keep your streams on local disk."
)]
pub struct Args {
    /// Address to listen on; 0.0.0.0 to accept connections from other machines.
    #[arg(long, env = "KINESIS_BROKER_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on; 0 picks a free one (the start-up log line says which).
    #[arg(long, env = "KINESIS_BROKER_PORT", default_value_t = 4567)]
    pub port: u16,

    /// A second port, on the same host, for Prometheus and probes (/metrics, /health,
    /// /ready). They are always on the main port too.
    #[arg(long, env = "KINESIS_BROKER_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// Directory holding every stream's data; created if missing, reopened on restart.
    #[arg(
        long,
        env = "KINESIS_BROKER_DATA_DIR",
        default_value = "./kinesis-data"
    )]
    pub data_dir: PathBuf,

    /// When a write is acknowledged: `page-cache` once the OS has the records (survives a
    /// crash of this process, not of the machine; flushed every --flush-interval-ms),
    /// `flush` once they are on disk (survives power loss too; slower).
    #[arg(long, env = "KINESIS_BROKER_DURABILITY", value_enum, default_value_t = DurabilityMode::PageCache)]
    pub durability: DurabilityMode,

    /// How often page-cache durability flushes to disk, in milliseconds.
    #[arg(long, env = "KINESIS_BROKER_FLUSH_INTERVAL_MS", default_value_t = 200)]
    pub flush_interval_ms: u64,

    /// Stream to create at start-up if it does not exist, as NAME or NAME:SHARDS (1 shard by
    /// default); repeat the flag for several, or separate them with commas.
    #[arg(
        long = "create-stream",
        env = "KINESIS_BROKER_CREATE_STREAM",
        value_name = "NAME[:SHARDS]",
        value_delimiter = ','
    )]
    pub create_stream: Vec<StreamSpec>,

    /// How long a new stream stays CREATING before it becomes ACTIVE, in milliseconds (0 for tests).
    #[arg(
        long,
        env = "KINESIS_BROKER_CREATE_STREAM_DELAY_MS",
        default_value_t = 500
    )]
    pub create_stream_delay_ms: u64,

    /// How long a deleted stream stays DELETING before it is gone, in milliseconds.
    #[arg(
        long,
        env = "KINESIS_BROKER_DELETE_STREAM_DELAY_MS",
        default_value_t = 500
    )]
    pub delete_stream_delay_ms: u64,

    /// How long a stream stays UPDATING while resharding or changing mode, in milliseconds.
    #[arg(
        long,
        env = "KINESIS_BROKER_UPDATE_STREAM_DELAY_MS",
        default_value_t = 500
    )]
    pub update_stream_delay_ms: u64,

    /// How long a registered stream consumer stays CREATING before it becomes ACTIVE, in
    /// milliseconds.
    #[arg(
        long,
        env = "KINESIS_BROKER_REGISTER_CONSUMER_DELAY_MS",
        default_value_t = 500
    )]
    pub register_consumer_delay_ms: u64,

    /// How long a deregistered stream consumer stays DELETING before it is gone, in
    /// milliseconds.
    #[arg(
        long,
        env = "KINESIS_BROKER_DEREGISTER_CONSUMER_DELAY_MS",
        default_value_t = 500
    )]
    pub deregister_consumer_delay_ms: u64,

    /// How long an event-source mapping stays Creating, Enabling, Disabling, Updating or
    /// Deleting before it settles, in milliseconds (Lambda takes seconds).
    #[arg(
        long,
        env = "KINESIS_BROKER_EVENT_SOURCE_MAPPING_DELAY_MS",
        default_value_t = 500
    )]
    pub event_source_mapping_delay_ms: u64,

    /// Size of each shard's segment files in bytes; larger means fewer files, smaller means
    /// retention frees space in finer steps.
    #[arg(long, env = "KINESIS_BROKER_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub segment_bytes: u64,

    /// Log filter, e.g. `info`, `debug` or `kinesis_broker=debug,storage=info` (RUST_LOG
    /// syntax); when not given, RUST_LOG is used, else `info`.
    #[arg(long, env = "KINESIS_BROKER_LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Log lines as `text` for people or `json` (one object per line) for log shippers.
    #[arg(long, env = "KINESIS_BROKER_LOG_FORMAT", value_enum, default_value_t = crate::cli::LogFormat::Text)]
    pub log_format: crate::cli::LogFormat,

    /// Per-shard throughput limits as AWS enforces them (1 MiB/s and 1,000 records/s of
    /// writes, 2 MiB/s and 5 GetRecords calls/s of reads): `on` or `off`.
    #[arg(long, env = "KINESIS_BROKER_THROUGHPUT_LIMITS", value_enum, default_value_t = OnOff::On)]
    pub throughput_limits: OnOff,

    /// Multiplies every throughput limit (e.g. 0.1 to provoke throttling sooner).
    #[arg(
        long,
        env = "KINESIS_BROKER_THROUGHPUT_MULTIPLIER",
        default_value_t = 1.0
    )]
    pub throughput_multiplier: f64,

    /// Open shards an account may have per region (DescribeLimits' ShardLimit).
    #[arg(long, env = "KINESIS_BROKER_SHARD_LIMIT", default_value_t = crate::broker::DEFAULT_SHARD_LIMIT)]
    pub shard_limit: u32,

    /// On-demand streams an account may have per region.
    #[arg(long, env = "KINESIS_BROKER_ON_DEMAND_STREAM_LIMIT", default_value_t = crate::broker::DEFAULT_ON_DEMAND_STREAM_LIMIT)]
    pub on_demand_stream_limit: u32,

    /// Fault injection, as JSON or @FILE, e.g. '{"seed":1,"global":{"record_failure_rate":0.1}}'
    /// (see README "Testing your producer"); changeable at run time via /_broker/faults.
    #[arg(long, env = "KINESIS_BROKER_FAULTS")]
    pub faults: Option<String>,

    /// How often (ms) the on-demand autoscaler measures write demand and splits hot shards.
    #[arg(
        long,
        env = "KINESIS_BROKER_ON_DEMAND_SCALE_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub on_demand_scale_interval_ms: u64,

    /// Shifts the broker's clock by this many ms (see retention and iterator expiry without
    /// waiting); changeable at run time via /_broker/clock.
    #[arg(
        long,
        env = "KINESIS_BROKER_CLOCK_OFFSET_MS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub clock_offset_ms: i64,

    /// How long a SubscribeToShard subscription lasts, in ms (AWS: 5 minutes); the client
    /// then subscribes again from its continuation sequence number.
    #[arg(
        long,
        env = "KINESIS_BROKER_SUBSCRIPTION_LIFETIME_MS",
        default_value_t = 300_000
    )]
    pub subscription_lifetime_ms: u64,

    /// A function event-source mappings deliver to (repeatable): NAME=runtime://127.0.0.1:PORT
    /// serves the Lambda Runtime API for it on that port; NAME=http://HOST:PORT POSTs events
    /// to an Invoke endpoint (the Runtime Interface Emulator's). Settings after `?`:
    /// `timeout=SECONDS` (1-900, default 3), `concurrency=N` (runtime processes the broker
    /// starts, default 10).
    #[arg(
        long = "function",
        env = "KINESIS_BROKER_FUNCTIONS",
        value_delimiter = ','
    )]
    pub function: Vec<FunctionSpec>,

    /// NAME=COMMAND: the broker starts runtime interface clients for NAME itself, with
    /// `/bin/sh -c COMMAND` and AWS_LAMBDA_RUNTIME_API set, as many as concurrent invocations
    /// need (repeatable; one per line in the variable, since a command may hold `,` or `;`).
    /// NAME without `--function` gets a Runtime API on a port the broker picks.
    #[arg(
        long = "function-command",
        env = "KINESIS_BROKER_FUNCTION_COMMANDS",
        value_delimiter = '\n'
    )]
    pub function_command: Vec<FunctionCommand>,

    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on --port with this PEM certificate chain,
    /// leaf first; needs --tls-key.
    #[arg(
        long,
        env = "KINESIS_BROKER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        env = "KINESIS_BROKER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a certificate for localhost and 127.0.0.1 generated at start (kept
    /// in the data dir and reused while valid); the log says where, for clients to trust.
    #[arg(
        long,
        env = "KINESIS_BROKER_TLS_SELF_SIGNED",
        conflicts_with = "tls_cert",
        default_value_t = false
    )]
    pub tls_self_signed: bool,

    /// Where --tls-self-signed keeps its certificate and key (default: the data dir).
    #[arg(
        long,
        env = "KINESIS_BROKER_TLS_SELF_SIGNED_DIR",
        value_name = "DIR",
        requires = "tls_self_signed"
    )]
    pub tls_self_signed_dir: Option<PathBuf>,
    /// `open` (default): any well-formed SigV4 credential is accepted. `verify`: signatures are
    /// checked against --credentials-file and the account is the key's (see README
    /// "Authentication").
    #[arg(long, env = "KINESIS_BROKER_AUTH", value_enum, default_value_t = AuthMode::Open)]
    pub auth: AuthMode,

    /// INI file of the keys --auth verify accepts: one [section] per key with
    /// aws_access_key_id, aws_secret_access_key and account_id.
    #[arg(long, env = "KINESIS_BROKER_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,

    /// Client connections served at once; at the cap the longest-idle keep-alive connection
    /// is closed for each new client. Lowered, with a warning, to what the open-files limit
    /// holds (the soft limit is raised to the hard one at start).
    #[arg(
        long,
        env = "KINESIS_BROKER_MAX_CONNECTIONS",
        default_value_t = crate::http::connections::DEFAULT_MAX_CONNECTIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,
    /// S3-compatible endpoint channels deliver to (e.g. http://127.0.0.1:9000), with the
    /// credentials of AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Without it channels fail.
    #[arg(long, env = "KINESIS_BROKER_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Bytes of records at which a channel writes an object before DataFreshnessInSeconds.
    #[arg(long, env = "KINESIS_BROKER_CHANNEL_BUFFER_BYTES", default_value_t = 5 * 1024 * 1024)]
    pub channel_buffer_bytes: u64,
}

impl Args {
    /// The configuration these arguments describe (not yet sanitized).
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let listen = resolve(&self.host, self.port)?;
        Ok(Config {
            listen,
            metrics_listen: self
                .metrics_port
                .map(|port| resolve(&self.host, port))
                .transpose()?,
            data_dir: self.data_dir.clone(),
            durability: self.durability,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            create_streams: self.create_stream.clone(),
            create_stream_delay: Duration::from_millis(self.create_stream_delay_ms),
            delete_stream_delay: Duration::from_millis(self.delete_stream_delay_ms),
            update_stream_delay: Duration::from_millis(self.update_stream_delay_ms),
            register_consumer_delay: Duration::from_millis(self.register_consumer_delay_ms),
            deregister_consumer_delay: Duration::from_millis(self.deregister_consumer_delay_ms),
            event_source_mapping_delay: Duration::from_millis(self.event_source_mapping_delay_ms),
            segment_bytes: self.segment_bytes,
            throughput_limits: self.throughput_limits == OnOff::On,
            throughput_multiplier: self.throughput_multiplier,
            shard_limit: self.shard_limit,
            on_demand_stream_limit: self.on_demand_stream_limit,
            faults: match &self.faults {
                None => Default::default(),
                Some(spec) => parse_faults(spec)?,
            },
            on_demand_scale_interval: Duration::from_millis(
                self.on_demand_scale_interval_ms.max(1),
            ),
            clock_offset_ms: self.clock_offset_ms,
            subscription_lifetime: Duration::from_millis(self.subscription_lifetime_ms.max(1)),
            functions: merge_function_commands(self.function.clone(), &self.function_command)
                .map_err(ConfigError::Invalid)?,
            tls: self.tls_source(),
            auth: self.auth,
            credentials_file: self.credentials_file.clone(),
            max_connections: self.max_connections as usize,
            body_read_timeout: crate::http::BODY_READ_TIMEOUT,
            s3_endpoint: self.s3_endpoint.clone(),
            channel_buffer_bytes: self.channel_buffer_bytes.max(1),
        })
    }
}

impl Args {
    fn tls_source(&self) -> Option<crate::http::tls::TlsSource> {
        use crate::http::tls::TlsSource;
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ if self.tls_self_signed => Some(TlsSource::SelfSigned {
                dir: self.tls_self_signed_dir.clone(),
            }),
            _ => None,
        }
    }
}

/// `on` / `off` for switches on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// `--faults`: inline JSON, or `@path` to a JSON file.
fn parse_faults(spec: &str) -> Result<crate::broker::faults::FaultConfig, ConfigError> {
    let text = match spec.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid(format!("cannot read faults file {path}: {e}")))?,
        None => spec.to_string(),
    };
    serde_json::from_str(&text)
        .map_err(|e| ConfigError::Invalid(format!("--faults is not valid: {e}")))
}

/// `host:port` → a socket address; an IP literal needs no lookup.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let err = |reason: String| ConfigError::Listen {
        host: host.to_string(),
        port,
        reason,
    };
    let host_trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host_trimmed.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn stream_spec_parses_name_and_shards() {
        assert_eq!(
            "orders".parse::<StreamSpec>().unwrap(),
            StreamSpec {
                name: "orders".into(),
                shard_count: 1
            }
        );
        assert_eq!(
            "a.b-c_d:4".parse::<StreamSpec>().unwrap(),
            StreamSpec {
                name: "a.b-c_d".into(),
                shard_count: 4
            }
        );
    }

    #[test]
    fn stream_spec_rejects_bad_names_and_counts() {
        for bad in [
            "",
            ":3",
            "a b",
            "a:0",
            "a:-1",
            "a:x",
            "a/b",
            &"x".repeat(129),
        ] {
            assert!(bad.parse::<StreamSpec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_match_the_documentation() {
        let args = Args::try_parse_from(["kinesis-broker"]).unwrap();
        let mut config = args.to_config().unwrap();
        config.sanitize().unwrap();
        assert_eq!(config.listen, "127.0.0.1:4567".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("./kinesis-data"));
        assert_eq!(config.durability, DurabilityMode::PageCache);
        assert_eq!(config.create_stream_delay, Duration::from_millis(500));
        assert_eq!(config.register_consumer_delay, Duration::from_millis(500));
        assert_eq!(config.deregister_consumer_delay, Duration::from_millis(500));
        assert_eq!(config.segment_bytes, 64 * 1024 * 1024);
        assert_eq!(args.log_level, None);
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from([
            "kinesis-broker",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--durability",
            "page-cache",
            "--create-stream",
            "a:2",
            "--create-stream",
            "b,c:3",
            "--create-stream-delay-ms",
            "0",
            "--segment-bytes",
            "65536",
        ])
        .unwrap();
        let config = args.to_config().unwrap();
        assert_eq!(config.listen, "0.0.0.0:0".parse().unwrap());
        assert_eq!(config.durability, DurabilityMode::PageCache);
        let names: Vec<_> = config
            .create_streams
            .iter()
            .map(|s| (s.name.as_str(), s.shard_count))
            .collect();
        assert_eq!(names, [("a", 2), ("b", 1), ("c", 3)]);
        assert_eq!(config.create_stream_delay, Duration::ZERO);
    }

    #[test]
    fn consumer_delay_flags_parse() {
        let args = Args::try_parse_from([
            "kinesis-broker",
            "--register-consumer-delay-ms",
            "0",
            "--deregister-consumer-delay-ms",
            "1500",
        ])
        .unwrap();
        let config = args.to_config().unwrap();
        assert_eq!(config.register_consumer_delay, Duration::ZERO);
        assert_eq!(
            config.deregister_consumer_delay,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn bad_stream_flag_is_a_parse_error() {
        assert!(Args::try_parse_from(["kinesis-broker", "--create-stream", "a:0"]).is_err());
        assert!(Args::try_parse_from(["kinesis-broker", "--durability", "sometimes"]).is_err());
    }

    #[test]
    fn sanitize_rejects_contradictions() {
        let mut c = Config::new();
        c.segment_bytes = 10;
        assert!(c.sanitize().is_err());

        let mut c = Config::new();
        c.durability = DurabilityMode::PageCache;
        c.flush_interval = Duration::ZERO;
        assert!(c.sanitize().is_err());

        let mut c = Config::new();
        c.create_streams = vec!["a:1".parse().unwrap(), "a:2".parse().unwrap()];
        assert!(matches!(c.sanitize(), Err(ConfigError::DuplicateStream(_))));
    }

    #[test]
    fn sanitize_merges_identical_duplicates_and_clamps() {
        let mut c = Config::new();
        c.create_streams = vec!["a:2".parse().unwrap(), "a:2".parse().unwrap()];
        c.create_stream_delay = Duration::from_secs(3600);
        c.sanitize().unwrap();
        assert_eq!(c.create_streams.len(), 1);
        assert_eq!(c.create_stream_delay, MAX_LIFECYCLE_DELAY);
    }

    #[test]
    fn ipv6_host_is_accepted() {
        assert_eq!(resolve("::1", 5).unwrap(), "[::1]:5".parse().unwrap());
        assert_eq!(resolve("[::1]", 5).unwrap(), "[::1]:5".parse().unwrap());
    }

    #[test]
    fn function_specs_parse_runtime_and_invoke_urls_and_refuse_the_rest() {
        let f: FunctionSpec = "fn-1=runtime://127.0.0.1:9001".parse().unwrap();
        assert_eq!(f.name, "fn-1");
        assert_eq!(
            f.target,
            FunctionTarget::Runtime("127.0.0.1:9001".parse().unwrap())
        );
        assert_eq!(f.timeout, Duration::from_secs(3));
        assert_eq!(f.concurrency, DEFAULT_FUNCTION_CONCURRENCY);
        let rie: FunctionSpec = "fn=http://localhost:9000".parse().unwrap();
        assert_eq!(
            rie.target,
            FunctionTarget::InvokeUrl(
                "http://localhost:9000/2015-03-31/functions/function/invocations".into()
            )
        );
        let own_path: FunctionSpec = "fn=http://127.0.0.1:9000/2015-03-31/functions/fn/invocations"
            .parse()
            .unwrap();
        assert_eq!(
            own_path.target,
            FunctionTarget::InvokeUrl(
                "http://127.0.0.1:9000/2015-03-31/functions/fn/invocations".into()
            )
        );
        assert!("fn=https://127.0.0.1:9001".parse::<FunctionSpec>().is_err());
        assert!("fn=http://127.0.0.1".parse::<FunctionSpec>().is_err());
        assert!("=runtime://127.0.0.1:9001".parse::<FunctionSpec>().is_err());
        assert!("fn".parse::<FunctionSpec>().is_err());
        assert!("fn=runtime://localhost".parse::<FunctionSpec>().is_err());
    }

    #[test]
    fn function_timeouts_are_lambdas_1_to_900_seconds() {
        let f: FunctionSpec = "fn=runtime://127.0.0.1:9001?timeout=30".parse().unwrap();
        assert_eq!(f.timeout, Duration::from_secs(30));
        let f: FunctionSpec = "fn=http://127.0.0.1:9000?timeout=900".parse().unwrap();
        assert_eq!(f.timeout, Duration::from_secs(900));
        for bad in ["0", "901", "1.5", "", "-1", "abc"] {
            let e = format!("fn=runtime://127.0.0.1:9001?timeout={bad}")
                .parse::<FunctionSpec>()
                .unwrap_err();
            assert!(e.contains("timeout"), "{bad}: {e}");
        }
        let e = "fn=runtime://127.0.0.1:9001?tiemout=3"
            .parse::<FunctionSpec>()
            .unwrap_err();
        assert!(e.contains("unknown function setting"), "{e}");
        let f: FunctionSpec = "fn=runtime://127.0.0.1:9001?timeout=5&concurrency=2"
            .parse()
            .unwrap();
        assert_eq!((f.timeout.as_secs(), f.concurrency), (5, 2));
        assert_eq!(f.url(), "runtime://127.0.0.1:9001?timeout=5&concurrency=2");
        assert_eq!(
            f,
            FunctionSpec::parse_url("fn", &f.url()).unwrap(),
            "url() reads back"
        );
        assert!(
            "fn=http://127.0.0.1:9000?concurrency=2"
                .parse::<FunctionSpec>()
                .is_err()
        );
        assert!(
            "fn=runtime://127.0.0.1:9001?concurrency=0"
                .parse::<FunctionSpec>()
                .is_err()
        );
    }

    #[test]
    fn function_commands_attach_to_runtime_functions_or_declare_one() {
        let specs = vec!["a=runtime://127.0.0.1:9001".parse().unwrap()];
        let commands: Vec<FunctionCommand> = vec![
            "a=python -m awslambdaric app.handler".parse().unwrap(),
            "b=./bootstrap --x=1".parse().unwrap(),
        ];
        let merged = merge_function_commands(specs, &commands).unwrap();
        assert_eq!(
            merged[0].command.as_deref(),
            Some("python -m awslambdaric app.handler")
        );
        assert_eq!(merged[1].name, "b");
        assert_eq!(merged[1].command.as_deref(), Some("./bootstrap --x=1"));
        assert_eq!(
            merged[1].target,
            FunctionTarget::Runtime("127.0.0.1:0".parse().unwrap())
        );
        let invoke = vec!["a=http://127.0.0.1:9000".parse().unwrap()];
        assert!(merge_function_commands(invoke, &commands[..1]).is_err());
        let port0 = vec!["a=runtime://127.0.0.1:0".parse().unwrap()];
        assert!(merge_function_commands(port0, &[]).is_err());
        let twice = vec![
            "a=runtime://127.0.0.1:1".parse().unwrap(),
            "a=runtime://127.0.0.1:2".parse().unwrap(),
        ];
        assert!(merge_function_commands(twice, &[]).is_err());
        assert!("a=  ".parse::<FunctionCommand>().is_err());
        assert!("a b=x".parse::<FunctionCommand>().is_err());
    }

    #[test]
    fn function_flags_reach_the_config() {
        use clap::Parser;
        let args = Args::try_parse_from([
            "kinesis-broker",
            "--function",
            "f=runtime://127.0.0.1:9001?timeout=30",
            "--function-command",
            "f=cd /srv/app; exec python -m awslambdaric app.handler",
        ])
        .unwrap();
        let config = args.to_config().unwrap();
        assert_eq!(config.functions.len(), 1);
        assert_eq!(
            config.functions[0].command.as_deref(),
            Some("cd /srv/app; exec python -m awslambdaric app.handler"),
            "a command's ; and , are its own"
        );
        assert_eq!(config.functions[0].timeout, Duration::from_secs(30));
        assert!(config.functions[0].command.is_some());
        let bad = Args::try_parse_from([
            "kinesis-broker",
            "--function",
            "f=http://127.0.0.1:9000",
            "--function-command",
            "f=python x",
        ])
        .unwrap();
        assert!(bad.to_config().is_err());
    }

    #[test]
    fn tls_flags() {
        use crate::http::tls::TlsSource;
        let parse = |args: &[&str]| {
            Args::try_parse_from(std::iter::once("kinesis-broker").chain(args.iter().copied()))
        };
        assert_eq!(parse(&[]).unwrap().to_config().unwrap().tls, None);
        let files = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(
            files.to_config().unwrap().tls,
            Some(TlsSource::Files {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        let own = parse(&["--tls-self-signed"]).unwrap();
        assert_eq!(
            own.to_config().unwrap().tls,
            Some(TlsSource::SelfSigned { dir: None })
        );
        let elsewhere = parse(&["--tls-self-signed", "--tls-self-signed-dir", "/certs"]).unwrap();
        assert_eq!(
            elsewhere.to_config().unwrap().tls,
            Some(TlsSource::SelfSigned {
                dir: Some("/certs".into())
            })
        );
        // A certificate without its key, a key alone, both sources at once, a directory
        // for a certificate not generated: refused by the parser.
        assert!(parse(&["--tls-cert", "c.pem"]).is_err());
        assert!(parse(&["--tls-key", "k.pem"]).is_err());
        assert!(
            parse(&[
                "--tls-self-signed",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ])
            .is_err()
        );
        assert!(parse(&["--tls-self-signed-dir", "/certs"]).is_err());
    }
}
