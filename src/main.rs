//! `kinesis-broker`: the command line. Parses flags (and `KINESIS_BROKER_*` variables),
//! starts the server, and shuts it down cleanly on SIGINT or SIGTERM.

use clap::Parser;
use kinesis_broker::Server;
use kinesis_broker::config::Args;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_level.as_deref());

    let config = match args.to_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kinesis-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kinesis-broker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("kinesis-broker: {e}");
                return ExitCode::FAILURE;
            }
        };
        let trigger = server.shutdown_trigger();
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            tracing::info!(
                signal,
                "shutting down: finishing in-flight requests and flushing"
            );
            trigger.trigger();
            // A second signal means the user will not wait for the flush.
            let signal = wait_for_signal().await;
            tracing::warn!(signal, "second signal, exiting without a clean shutdown");
            std::process::exit(130);
        });
        match server.wait().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `--log-level` if given, else `RUST_LOG`, else `info`.
fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level).ok(),
        None => EnvFilter::try_from_default_env().ok(),
    }
    .unwrap_or_else(|| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in files and CI logs they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM and names it.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
