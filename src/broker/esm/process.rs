//! Runtime processes the broker starts itself (`--function-command NAME=COMMAND`): each is
//! `/bin/sh -c COMMAND` in a process group of its own, with the environment Lambda gives a
//! runtime (`AWS_LAMBDA_RUNTIME_API` and the function's name, memory, version, region),
//! and speaks the Runtime API the broker serves for the function.
//!
//! One more starts when an invocation waits and no runtime is idle nor starting, up to the
//! function's concurrency; one that exits is replaced when invocations need it (an
//! invocation it had taken fails at once: its connection closed, see [`super::runtime`]).
//! At the end every group gets SIGTERM, then SIGKILL after [`STOP_GRACE`], and every child
//! is waited for: no zombie, no stray.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::runtime::RuntimeApi;

/// How long runtimes have to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// A runtime exiting sooner than this after its start is failing to start: the next one
/// waits (doubling from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`]) instead of looping hot.
const QUICK_EXIT: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Lambda's default memory size, which clients read from the environment.
const MEMORY_SIZE_MB: &str = "128";

/// What the processes of one function are started with.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The function's name.
    pub name: String,
    /// The shell command starting one runtime.
    pub command: String,
    /// Where the broker serves the function's Runtime API.
    pub runtime_api: SocketAddr,
    /// The region the function appears to run in.
    pub region: String,
    /// Most processes at once.
    pub concurrency: usize,
}

struct Exited {
    pid: u32,
    started: Instant,
    /// The Runtime API's poll count when this process started.
    polls_at_start: usize,
    status: std::io::Result<ExitStatus>,
}

/// Runs the processes of one function until `stop` turns true, then stops them all.
pub async fn run(api: Arc<RuntimeApi>, launch: Launch, mut stop: watch::Receiver<bool>) {
    let mut children: JoinSet<Exited> = JoinSet::new();
    let mut pids: Vec<u32> = Vec::new();
    let mut backoff = Duration::ZERO;
    let mut next_start = Instant::now();
    let mut serial: u64 = 0;
    loop {
        if *stop.borrow() {
            break;
        }
        let load = api.load();
        let live = children.len();
        // A process that is neither waiting for work nor working is still starting.
        let starting = live.saturating_sub(load.idle + load.in_flight);
        let wanted = load.waiting > load.idle + starting && live < launch.concurrency;
        if wanted && Instant::now() >= next_start {
            serial += 1;
            match start(&launch, serial) {
                Ok(mut child) => {
                    let pid = child.id().unwrap_or(0);
                    tracing::info!(function = %launch.name, pid, "runtime process started");
                    pids.push(pid);
                    let polls_at_start = api.polls();
                    children.spawn(async move {
                        let started = Instant::now();
                        let status = child.wait().await;
                        Exited {
                            pid,
                            started,
                            polls_at_start,
                            status,
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(function = %launch.name, command = %launch.command, error = %e, "cannot start a runtime process");
                    backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                    next_start = Instant::now() + backoff;
                }
            }
            continue;
        }
        let changed = api.changed.notified();
        tokio::select! {
            _ = changed => {}
            Some(joined) = children.join_next(), if !children.is_empty() => {
                if let Ok(exited) = joined {
                    pids.retain(|p| *p != exited.pid);
                    // The shell is gone; what it started must not outlive it.
                    signal_group(exited.pid, "KILL").await;
                    match &exited.status {
                        Ok(s) => tracing::warn!(function = %launch.name, pid = exited.pid, status = %s, "runtime process exited"),
                        Err(e) => tracing::warn!(function = %launch.name, pid = exited.pid, error = %e, "runtime process lost"),
                    }
                    // No runtime ever polled since this one started, and none is left: it
                    // failed to start.
                    let never_polled = api.polls() == exited.polls_at_start;
                    if never_polled && children.is_empty() && api.load().waiting > 0 {
                        // Lambda answers an invocation whose runtime failed to start with an
                        // error rather than holding it: the mapping's retry policy applies.
                        let why = match &exited.status {
                            Ok(s) => format!("the function's runtime process exited ({s}) before taking the invocation"),
                            Err(e) => format!("the function's runtime process was lost ({e}) before taking the invocation"),
                        };
                        let n = api.fail_waiting(&why);
                        tracing::warn!(function = %launch.name, invocations = n, "{why}");
                    }
                    if exited.started.elapsed() < QUICK_EXIT {
                        backoff = (backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                        next_start = Instant::now() + backoff;
                    } else {
                        backoff = Duration::ZERO;
                    }
                }
            }
            _ = tokio::time::sleep_until(next_start), if wanted => {}
            // The Ref `wait_for` gives is not Send: dropped inside.
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    stop_all(&launch.name, &mut children, &pids).await;
}

fn start(launch: &Launch, serial: u64) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(&launch.command)
        .env("AWS_LAMBDA_RUNTIME_API", launch.runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &launch.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_SIZE_MB)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", launch.name),
        )
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("kinesis-broker/[$LATEST]{serial:032x}"),
        )
        .env("AWS_REGION", &launch.region)
        .env("AWS_DEFAULT_REGION", &launch.region)
        .stdin(Stdio::null())
        // Its own group, so that stopping it reaches whatever the shell started.
        .process_group(0)
        // Should this task be dropped without `stop_all` (a runtime torn down), the child
        // still gets SIGKILL.
        .kill_on_drop(true);
    command.spawn()
}

/// Sends `signal` (a name `kill` knows) to the process group led by `pid`.
async fn signal_group(pid: u32, signal: &str) {
    if pid == 0 {
        return;
    }
    let _ = tokio::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

async fn stop_all(name: &str, children: &mut JoinSet<Exited>, pids: &[u32]) {
    if children.is_empty() {
        return;
    }
    tracing::info!(function = %name, processes = children.len(), "stopping runtime processes");
    for pid in pids {
        signal_group(*pid, "TERM").await;
    }
    let deadline = Instant::now() + STOP_GRACE;
    let mut remaining: Vec<u32> = pids.to_vec();
    while !children.is_empty() {
        match tokio::time::timeout_at(deadline, children.join_next()).await {
            Ok(Some(Ok(exited))) => {
                remaining.retain(|p| *p != exited.pid);
                signal_group(exited.pid, "KILL").await;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    for pid in remaining {
        signal_group(pid, "KILL").await;
    }
    // Each task owns its child and waits for it: joining them reaps every child.
    while children.join_next().await.is_some() {}
}
