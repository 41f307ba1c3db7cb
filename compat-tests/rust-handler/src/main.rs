//! Unmodified Lambda handlers for a Kinesis event source, run by the official `lambda_runtime`
//! crate against the broker's Runtime API (`AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT`; the
//! crate also needs `AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` and
//! `AWS_LAMBDA_FUNCTION_VERSION`).
//!
//! `ESM_MODE` picks the handler:
//! - `record` (default): appends `partitionKey \t sequenceNumber \t data(base64) \n` per record
//!   to the file `ESM_OUT`, after sleeping `ESM_DELAY_MS` (keeps a batch in flight for the
//!   crash tests); `ESM_STARTED`, when set, gets a line as each batch arrives, before the
//!   sleep, so a test knows a batch is in flight.
//! - `noop`: does nothing with the records; when `ESM_RECEIPTS` is set, appends one line per
//!   batch, `<unix µs at receipt> <count> <first 24 base64 characters of each record's data>…`,
//!   for the benchmark's delivery rate and latency. One `write` per batch, unbuffered, so a
//!   reader sees whole batches while the handler runs and nothing is lost to SIGKILL/SIGTERM.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Characters of each record's base64 data the `noop` handler reports: the benchmark's
/// 18-byte record header.
const HEADER_B64: usize = 24;

enum Mode {
    Record {
        out: Mutex<File>,
        started: Option<Mutex<File>>,
        delay: Duration,
    },
    Noop {
        receipts: Option<Mutex<File>>,
    },
}

fn append(path: &str) -> Result<File, Error> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {path}: {e}").into())
}

fn env_file(name: &str) -> Result<Option<Mutex<File>>, Error> {
    match std::env::var(name) {
        Ok(path) if !path.is_empty() => Ok(Some(Mutex::new(append(&path)?))),
        _ => Ok(None),
    }
}

fn mode_from_env() -> Result<Mode, Error> {
    match std::env::var("ESM_MODE").as_deref() {
        Ok("noop") => Ok(Mode::Noop {
            receipts: env_file("ESM_RECEIPTS")?,
        }),
        Ok("record") | Err(_) => {
            let out = env_file("ESM_OUT")?.ok_or("ESM_OUT must name the output file")?;
            let delay_ms = match std::env::var("ESM_DELAY_MS") {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("ESM_DELAY_MS '{v}' is not a number of ms"))?,
                Err(_) => 0,
            };
            Ok(Mode::Record {
                out,
                started: env_file("ESM_STARTED")?,
                delay: Duration::from_millis(delay_ms),
            })
        }
        Ok(other) => Err(format!("ESM_MODE '{other}' is neither 'record' nor 'noop'").into()),
    }
}

fn records(event: &Value) -> Result<&Vec<Value>, Error> {
    event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| "the event has no Records list".into())
}

fn field<'a>(record: &'a Value, name: &str) -> &'a str {
    record
        .get("kinesis")
        .and_then(|k| k.get(name))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn write_all(file: &Mutex<File>, bytes: &[u8]) -> Result<(), Error> {
    let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
    f.write_all(bytes)?;
    Ok(())
}

async fn handle(mode: &Mode, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let received_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let recs = records(&event.payload)?;
    match mode {
        Mode::Noop { receipts } => {
            if let Some(file) = receipts {
                let mut line = format!("{received_us} {}", recs.len());
                for r in recs {
                    let data = field(r, "data");
                    line.push(' ');
                    line.push_str(data.get(..HEADER_B64).unwrap_or(data));
                }
                line.push('\n');
                write_all(file, line.as_bytes())?;
            }
        }
        Mode::Record {
            out,
            started,
            delay,
        } => {
            if let Some(file) = started {
                let first = recs.first().map_or("", |r| field(r, "sequenceNumber"));
                write_all(file, format!("{} {first}\n", recs.len()).as_bytes())?;
            }
            if !delay.is_zero() {
                tokio::time::sleep(*delay).await;
            }
            let mut lines = String::new();
            for r in recs {
                for (i, name) in ["partitionKey", "sequenceNumber", "data"]
                    .iter()
                    .enumerate()
                {
                    if i > 0 {
                        lines.push('\t');
                    }
                    lines.push_str(field(r, name));
                }
                lines.push('\n');
            }
            write_all(out, lines.as_bytes())?;
        }
    }
    Ok(json!({ "count": recs.len() }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mode = Arc::new(mode_from_env()?);
    lambda_runtime::run(service_fn(move |event| {
        let mode = mode.clone();
        async move { handle(&mode, event).await }
    }))
    .await
}
