//! kinesis-broker: an Amazon Kinesis Data Streams compatible broker.
//!
//! Layers, data flowing one way: [`http`] → [`protocol`] (decode) → [`api`] (validate,
//! apply) → [`broker`] (the domain) → `storage` (segment logs). See `ARCHITECTURE.md`.
//!
//! Embedding it (what the integration tests do):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = kinesis_broker::Server::start(kinesis_broker::Config::for_tests("/tmp/kb")).await?;
//! let endpoint = server.endpoint(); // "http://127.0.0.1:<port>"
//! // ... point an SDK at `endpoint` ...
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod arn;
pub mod broker;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod protocol;

#[cfg(test)]
mod fuzzing;

pub use config::Config;
pub use http::{Shutdown, ShutdownTrigger};

use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Starts the broker: see [`Server::start`].
#[derive(Debug)]
pub struct Server;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not hold together.
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The data directory could not be opened.
    #[error("cannot open the broker: {0}")]
    Broker(#[from] broker::Error),
    /// The recovery thread itself failed (a panic while opening the data directory).
    #[error("cannot open the broker: recovery failed: {0}")]
    Recovery(String),
    /// The TLS certificate or key is unusable.
    #[error("cannot serve HTTPS: {0}")]
    Tls(#[from] http::tls::TlsError),
}

/// Why a running server stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The accept loop or the broker's shutdown panicked; see the log.
    #[error("the server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Server {
    /// Sanitizes `config`, binds the listener (port 0 picks a free port), opens the broker
    /// (answering probes with "starting" meanwhile, see [`http::starting`]) and serves in
    /// the background. Returns once the broker serves requests.
    ///
    /// Must be called inside a Tokio runtime (the broker spawns its background tasks there).
    pub async fn start(mut config: Config) -> Result<ServerHandle, StartError> {
        config.sanitize()?;
        // Before binding: a bad certificate fails fast, as a taken port does.
        let tls = match &config.tls {
            Some(source) => Some(http::tls::ServerTls::load(source, &config.data_dir)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Read before anything is bound or opened: a bad file stops the start with its line.
        let credentials = match (config.auth, &config.credentials_file) {
            (config::AuthMode::Verify, Some(path)) => Some(
                http::credentials::Credentials::load(path)
                    .map_err(|e| config::ConfigError::Invalid(e.to_string()))?,
            ),
            _ => None,
        };
        // Bind before opening the data directory: a taken port fails fast and leaves the
        // data untouched.
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        // Recovery runs on a blocking thread while the port answers probes (503 from
        // `/ready` with the reason), so an orchestrator sees "starting", not a refused port.
        let recovery = {
            let config = config.clone();
            async move {
                tokio::task::spawn_blocking(move || broker::Broker::open(&config))
                    .await
                    .map_err(|e| StartError::Recovery(e.to_string()))?
                    .map_err(StartError::from)
            }
        };
        // The start-up answer is plain HTTP: on an HTTPS port it would break the handshake
        // of every client, so there connections wait in the backlog until recovery ends (the
        // plain `--metrics-port`, if any, still answers the probes).
        let mut probed: Vec<&TcpListener> = Vec::new();
        if tls.is_none() {
            probed.push(&listener);
        }
        probed.extend(metrics_listener.as_ref());
        let broker = http::starting::answer_while(&probed, recovery).await?;
        if let Err((addr, source)) = broker.serve_functions().await {
            broker.shutdown().await;
            return Err(StartError::Bind { addr, source });
        }
        let service = api::Service::new(broker.clone());
        let service_broker = broker.clone();
        let verifier = credentials.map(|credentials| {
            tracing::info!(
                keys = credentials.len(),
                accounts = ?credentials.accounts(),
                "SigV4 signatures are verified (--auth verify)"
            );
            std::sync::Arc::new(http::sigv4_verify::Verifier::new(
                credentials,
                broker.clock().clone(),
            ))
        });

        let (trigger, shutdown) = http::shutdown::channel();
        let admin: std::sync::Arc<dyn api::admin::AdminHandler> =
            std::sync::Arc::new(api::admin::BrokerAdmin::new(broker.clone()));
        // Subscriptions (SubscribeToShard) end as soon as the shutdown starts, so that the
        // grace period is spent on requests that can finish, not on 5-minute streams.
        let mut stopping = shutdown.clone();
        let fanout_broker = std::sync::Arc::downgrade(&broker);
        tokio::spawn(async move {
            stopping.recv().await;
            if let Some(broker) = fanout_broker.upgrade() {
                broker
                    .server_metrics()
                    .set_phase(metrics::Phase::ShuttingDown);
                broker.fanout().close();
            }
        });
        if let Some(listener) = metrics_listener {
            // Same endpoints on a second port: Prometheus and probes can be kept apart
            // from client traffic without a second kind of server.
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("metrics and probes also on http://{addr}/metrics");
            }
            tokio::spawn(http::serve_listener(
                listener,
                api::Service::new(broker.clone()),
                Some(admin.clone()),
                None,
                verifier.clone(),
                http::connections::ConnectionLimits {
                    max_connections: http::connections::PROBE_PORT_MAX_CONNECTIONS,
                    ..config.connection_limits()
                },
                shutdown.clone(),
            ));
        }
        broker.server_metrics().set_phase(metrics::Phase::Serving);
        let tls_cert = tls.as_ref().map(|t| t.cert_path.clone());
        if let Some(tls) = &tls {
            if tls.self_signed {
                // Printed as well as logged: the one thing a developer must copy to connect.
                println!(
                    "kinesis-broker: self-signed TLS certificate for localhost and 127.0.0.1: {} \
                     (trust it, e.g. AWS_CA_BUNDLE={0} or boto3 verify=\"{0}\")",
                    tls.cert_path.display()
                );
            }
            tracing::info!(cert = %tls.cert_path.display(), self_signed = tls.self_signed, "serving HTTPS");
        }
        let serve = tokio::spawn(http::serve_listener(
            listener,
            service,
            Some(admin),
            tls,
            verifier,
            config.connection_limits(),
            shutdown,
        ));
        // The task holds a trigger of its own so that dropping the handle, which holds the
        // other, is not mistaken for the shutdown signal.
        let keep_running = trigger.clone();
        let task = tokio::spawn(async move {
            // Whatever became of the accept loop, the broker still flushes.
            let served = serve.await;
            drop(keep_running);
            broker.shutdown().await;
            tracing::info!("kinesis-broker stopped");
            served
        });

        tracing::info!(
            "kinesis-broker listening on {scheme}://{local_addr}, data dir {}, durability {}",
            config.data_dir.display(),
            config.durability
        );
        Ok(ServerHandle {
            local_addr,
            scheme,
            tls_cert,
            broker: service_broker,
            trigger,
            task,
        })
    }
}

/// A running server.
///
/// Dropping the handle leaves the server running until the runtime stops; call
/// [`ServerHandle::shutdown`] to stop it cleanly (in-flight requests finish, data is flushed).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    scheme: &'static str,
    tls_cert: Option<std::path::PathBuf>,
    broker: std::sync::Arc<broker::Broker>,
    trigger: ShutdownTrigger,
    task: JoinHandle<Result<(), tokio::task::JoinError>>,
}

impl ServerHandle {
    /// The broker behind the server, for tests and embedders (e.g. to move its clock).
    pub fn broker(&self) -> &std::sync::Arc<broker::Broker> {
        &self.broker
    }

    /// The address the server listens on, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<local_addr>` (`https://` with TLS), ready for an SDK's endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.local_addr)
    }

    /// With TLS, the certificate file the listener presents (the generated one with
    /// `--tls-self-signed`), for clients to trust.
    pub fn tls_cert_path(&self) -> Option<&std::path::Path> {
        self.tls_cert.as_deref()
    }

    /// A trigger that starts the shutdown from elsewhere (a signal handler), while another
    /// task waits in [`ServerHandle::wait`].
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// Stops accepting connections, lets in-flight requests finish (at most
    /// [`http::SHUTDOWN_GRACE_PERIOD`]), shuts the broker down (every acknowledged record
    /// flushed), then returns.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.trigger.trigger();
        self.wait().await
    }

    /// Waits until the server has stopped, after a shutdown triggered through
    /// [`ServerHandle::shutdown_trigger`], including the broker's final flush.
    pub async fn wait(self) -> Result<(), ServerError> {
        self.task.await??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn start_serves_on_an_ephemeral_port_and_shuts_down() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(Config::for_tests(dir.path())).await.unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        assert_eq!(server.endpoint(), format!("http://{addr}"));
        let answer = get(addr, "/_broker/health").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        server.shutdown().await.unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn shutdown_trigger_ends_wait() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(Config::for_tests(dir.path())).await.unwrap();
        server.shutdown_trigger().trigger();
        server.wait().await.unwrap();
    }

    #[tokio::test]
    async fn taken_port_is_a_bind_error() {
        let dir = tempfile::tempdir().unwrap();
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = Config::for_tests(dir.path());
        config.listen = taken.local_addr().unwrap();
        let err = Server::start(config).await.unwrap_err();
        assert!(matches!(err, StartError::Bind { .. }), "{err}");
    }

    #[tokio::test]
    async fn invalid_config_is_refused_before_binding() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path());
        config.segment_bytes = 1;
        assert!(matches!(
            Server::start(config).await,
            Err(StartError::Config(_))
        ));
    }
}
