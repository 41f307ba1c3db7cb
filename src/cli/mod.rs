//! The `kinesis-broker` command line: `serve` (the default, the broker itself) and the
//! client commands `tail`, `put` and `streams`, which talk to a running broker (or to AWS)
//! over the Kinesis API with [`crate::client`].

pub mod put;
pub mod streams;
pub mod tail;

use crate::client::credentials::{Overrides, resolve_from_environment};
use crate::client::{ClientError, KinesisClient};
use crate::config::Args;
use std::process::ExitCode;

/// `--log-format`: how the server writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The whole command line. Without a command it serves, with every flag of [`Args`], so
/// that `kinesis-broker --port 4567` keeps working.
#[derive(Debug, clap::Parser)]
#[command(
    name = "kinesis-broker",
    version,
    about = "A Kinesis Data Streams compatible broker: point the AWS SDKs and CLI at \
             http://127.0.0.1:4567 (e.g. AWS_ENDPOINT_URL_KINESIS) and keep your streams on local disk.",
    // Server flags before a command would be silently ignored: refuse them instead.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The server's flags, when no command is given.
    #[command(flatten)]
    pub serve: Args,
}

/// The commands.
// Parsed once at start: the size of the serve flags costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the broker (what `kinesis-broker` alone does).
    Serve(Args),
    /// Print a stream's records as they arrive, from every shard (children after their parents).
    Tail(tail::TailArgs),
    /// Write one record per line of standard input, batched into PutRecords.
    Put(put::PutArgs),
    /// List the account's streams.
    Streams(streams::StreamsArgs),
}

/// Where the client commands connect, and as whom; the rest comes from the environment and
/// `~/.aws` as for the AWS CLI.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Endpoint (default: AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL, the profile's
    /// endpoint_url, else http://127.0.0.1:4567); http:// or https://.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Region to sign for (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's region,
    /// else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Profile of ~/.aws/credentials and ~/.aws/config (default: AWS_PROFILE, else default).
    #[arg(long)]
    pub profile: Option<String>,
    /// PEM certificates to trust for an https endpoint besides the system's, e.g. the
    /// broker's --tls-self-signed certificate (default: AWS_CA_BUNDLE, the profile's ca_bundle).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<String>,
}

impl ConnectArgs {
    /// The client these settings describe, or the message and exit code to stop with.
    pub fn client(&self) -> Result<KinesisClient, Failure> {
        let settings = resolve_from_environment(&Overrides {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            ca_bundle: self.ca_bundle.clone(),
        })
        .map_err(Failure::usage)?;
        KinesisClient::new(settings).map_err(Failure::from)
    }
}

/// Why a client command stops: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// Printed after `kinesis-broker: `.
    pub message: String,
    /// 1 for errors of the service or the connection, 2 for usage errors.
    pub code: u8,
}

impl Failure {
    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }

    /// Any other error (exit 1).
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }
}

impl From<ClientError> for Failure {
    /// The AWS error type and message as the service sent them; an unusable endpoint is a
    /// usage error.
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Config(message) => Failure::usage(message),
            other => Failure::error(other.to_string()),
        }
    }
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs a client command to its end on a runtime of its own.
pub fn run(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kinesis-broker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            Command::Tail(args) => tail::run(args).await,
            Command::Put(args) => put::run(args).await,
            Command::Streams(args) => streams::run(args).await,
            Command::Serve(_) => Err(Failure::usage("serve is not a client command")),
        }
    });
    // Readers blocked on stdin or the network must not keep the process alive.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("kinesis-broker: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
