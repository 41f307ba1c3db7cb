//! `kinesis-broker`: the command line. Without a command (or with `serve`) it parses the
//! server's flags (and `KINESIS_BROKER_*` variables), starts the server, and shuts it down
//! cleanly on SIGINT or SIGTERM; `tail`, `put` and `streams` are clients of a running
//! broker (see `kinesis_broker::cli`).

use clap::Parser;
use kinesis_broker::Server;
use kinesis_broker::cli::{Cli, Command, LogFormat};
use kinesis_broker::config::Args;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(command) => kinesis_broker::cli::run(command),
    }
}

fn serve(args: Args) -> ExitCode {
    init_logging(args.log_level.as_deref(), args.log_format);

    let mut config = match args.to_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("kinesis-broker: {e}");
            return ExitCode::from(2);
        }
    };
    // Every connection is a file descriptor: use all the process may have, and serve no
    // more connections than fit.
    config.max_connections =
        kinesis_broker::http::connections::fit_to_open_files_limit(config.max_connections);
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

/// `--log-level` if given, else `RUST_LOG`, else `info`; lines as text or JSON.
fn init_logging(level: Option<&str>, format: LogFormat) {
    let filter = match level {
        Some(level) => EnvFilter::try_new(level).ok(),
        None => EnvFilter::try_from_default_env().ok(),
    }
    .unwrap_or_else(|| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour codes only help a person at a terminal; in files and CI logs they are noise.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Shippers want the message and fields as keys of one flat object.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_ansi(false)
            .init(),
    }
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
