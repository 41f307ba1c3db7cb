//! `kinesis-broker put STREAM`: one record per line of standard input, batched into
//! PutRecords (at most 500 records and 5 MiB a call, sent after a short linger), records
//! that fail retried with backoff; a summary goes to stderr.

use super::{ConnectArgs, Failure};
use crate::client::kinesis::jitter;
use crate::client::{ClientError, KinesisClient};
use std::io::BufRead;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// PutRecords' limit on records per call.
const MAX_BATCH_RECORDS: usize = 500;
/// Bytes (data and partition keys) per call: half of AWS's 10 MiB request limit, so
/// that the base64 and JSON around the data keep the request well under it.
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// First retry delay; doubled each attempt up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Line numbers listed when records are lost; the count is always given.
const LOST_LINES_SHOWN: usize = 20;

/// `put` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// The stream to write to.
    stream: String,
    /// Partition key of every record; by default each record gets a random one, which
    /// spreads the records over the shards.
    #[arg(long, value_name = "KEY")]
    partition_key: Option<String>,
    /// How long a batch waits for more lines before it is sent, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    linger_ms: u64,
    /// Attempts per record (the first call and the retries, with exponential backoff up to
    /// 5 s) before the record counts as lost.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// A line to send.
struct Entry {
    /// 1-based line number, for the report of lost records.
    line: u64,
    data: Vec<u8>,
    key: String,
}

#[derive(Default)]
struct Totals {
    sent: u64,
    calls: u64,
    retried: u64,
    lost_lines: Vec<u64>,
    last_loss: Option<String>,
}

/// Reads standard input to its end, sending as it goes.
pub async fn run(args: PutArgs) -> Result<(), Failure> {
    if let Some(key) = &args.partition_key
        && !(1..=256).contains(&key.chars().count())
    {
        return Err(Failure::usage(
            "--partition-key must be 1 to 256 characters",
        ));
    }
    let client = args.connect.client()?;
    let began = Instant::now();
    let (lines_in, mut lines) = mpsc::channel::<std::io::Result<Vec<u8>>>(4 * MAX_BATCH_RECORDS);
    // Reading on a thread of its own keeps the next batch filling while one is in flight
    // (a plain thread: standard input has no non-blocking form worth having here).
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if lines_in.blocking_send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = lines_in.blocking_send(Err(e));
                    return;
                }
            }
        }
    });

    // Ctrl-C or SIGTERM ends the input: what was read is still sent, and the summary says
    // how far it got.
    let (interrupt, mut interrupted) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::stop_signal().await;
        let _ = interrupt.send(true);
    });

    let mut keys = KeyGenerator::new();
    let mut totals = Totals::default();
    let mut line_number = 0u64;
    let linger = Duration::from_millis(args.linger_ms);
    let mut input_done = false;
    while !input_done {
        // The batch starts with the first line and closes when full, when the linger has
        // passed since that line, or at the end of the input.
        let mut batch: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let receive = async {
                match deadline {
                    None => Some(lines.recv().await),
                    Some(at) => tokio::time::timeout_at(at, lines.recv()).await.ok(),
                }
            };
            let next = tokio::select! {
                received = receive => match received {
                    Some(next) => next,
                    // The linger is over.
                    None => break,
                },
                _ = interrupted.wait_for(|stop| *stop) => None,
            };
            let data = match next {
                None => {
                    input_done = true;
                    break;
                }
                Some(Err(e)) => {
                    return Err(Failure::error(format!("cannot read standard input: {e}")));
                }
                Some(Ok(data)) => data,
            };
            line_number += 1;
            let key = match &args.partition_key {
                Some(key) => key.clone(),
                None => keys.next_key(),
            };
            let size = data.len() + key.len();
            if !batch.is_empty() && bytes + size > MAX_BATCH_BYTES {
                // Too big to join this batch: send it, and let the line start the next.
                if let Err(failure) =
                    send(&client, &args, std::mem::take(&mut batch), &mut totals).await
                {
                    summarise(&totals, line_number, &args.stream, began);
                    return Err(failure);
                }
                bytes = 0;
            }
            if batch.is_empty() {
                deadline = Some(tokio::time::Instant::now() + linger);
            }
            bytes += size;
            batch.push(Entry {
                line: line_number,
                data,
                key,
            });
            if batch.len() >= MAX_BATCH_RECORDS {
                break;
            }
        }
        if !batch.is_empty()
            && let Err(failure) = send(&client, &args, batch, &mut totals).await
        {
            summarise(&totals, line_number, &args.stream, began);
            return Err(failure);
        }
    }

    summarise(&totals, line_number, &args.stream, began);
    if !totals.lost_lines.is_empty() {
        return Err(Failure::error(format!(
            "{} records lost after {} attempts each ({}); last error: {}",
            totals.lost_lines.len(),
            args.max_attempts,
            input_lines(&totals.lost_lines),
            totals.last_loss.clone().unwrap_or_default()
        )));
    }
    Ok(())
}

/// The summary line on stderr.
fn summarise(totals: &Totals, lines_read: u64, stream: &str, began: Instant) {
    eprintln!(
        "kinesis-broker put: {} of {lines_read} records written to {stream} in {} PutRecords calls ({} retried, {} lost) in {:.1} s",
        totals.sent,
        totals.calls,
        totals.retried,
        totals.lost_lines.len(),
        began.elapsed().as_secs_f64()
    );
}

/// `input line 3` or `input lines 3, 7-9`.
fn input_lines(lines: &[u64]) -> String {
    let plural = if lines.len() == 1 { "" } else { "s" };
    format!("input line{plural} {}", line_ranges(lines))
}

/// `3, 7-9, 12`: line numbers as runs, the first [`LOST_LINES_SHOWN`] runs of them.
fn line_ranges(lines: &[u64]) -> String {
    let mut sorted = lines.to_vec();
    sorted.sort_unstable();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for line in sorted {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == line => *end = line,
            _ => runs.push((line, line)),
        }
    }
    let mut text: Vec<String> = runs
        .iter()
        .take(LOST_LINES_SHOWN)
        .map(|&(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            }
        })
        .collect();
    if runs.len() > LOST_LINES_SHOWN {
        text.push("...".into());
    }
    text.join(", ")
}

/// Sends one batch, retrying the records that fail (throttled, internal failures) and the
/// whole call when it fails transiently. Errors that retrying cannot cure (no such stream,
/// invalid request, access denied) stop the command.
async fn send(
    client: &KinesisClient,
    args: &PutArgs,
    batch: Vec<Entry>,
    totals: &mut Totals,
) -> Result<(), Failure> {
    let stream = args.stream.as_str();
    let mut pending = batch;
    let mut delay = FIRST_RETRY_DELAY;
    let mut last_error = String::new();
    for attempt in 1..=args.max_attempts {
        if attempt > 1 {
            totals.retried += pending.len() as u64;
            tokio::time::sleep(jitter(delay)).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
        let entries: Vec<(&[u8], &str)> = pending
            .iter()
            .map(|e| (e.data.as_slice(), e.key.as_str()))
            .collect();
        totals.calls += 1;
        match client.put_records(stream, &entries).await {
            Ok(answer) => {
                if answer.records.len() != pending.len() {
                    return Err(Failure::error(format!(
                        "PutRecords answered {} results for {} records",
                        answer.records.len(),
                        pending.len()
                    )));
                }
                let mut failed = Vec::new();
                for (entry, result) in pending.into_iter().zip(answer.records) {
                    match result.error_code {
                        None => totals.sent += 1,
                        Some(code) => {
                            last_error =
                                format!("{code}: {}", result.error_message.unwrap_or_default());
                            failed.push(entry);
                        }
                    }
                }
                pending = failed;
                if pending.is_empty() {
                    return Ok(());
                }
            }
            Err(e) if e.is_transient() => last_error = e.to_string(),
            Err(e @ ClientError::Api { .. }) | Err(e @ ClientError::BadAnswer { .. }) => {
                let lines: Vec<u64> = pending.iter().map(|e| e.line).collect();
                return Err(Failure::error(format!(
                    "{e} ({} not written)",
                    input_lines(&lines)
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    totals.lost_lines.extend(pending.iter().map(|e| e.line));
    totals.last_loss = Some(last_error);
    Ok(())
}

/// Random partition keys (128 bits, hex), from a generator seeded once by the OS: MD5 of
/// the key picks the shard, so any spread-out keys spread the records.
struct KeyGenerator {
    state: u64,
}

impl KeyGenerator {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            seed = (nanos ^ u64::from(std::process::id())).to_le_bytes();
        }
        Self {
            state: u64::from_le_bytes(seed),
        }
    }

    /// splitmix64: cheap and well spread.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_key(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers_are_shown_as_runs() {
        assert_eq!(line_ranges(&[9, 3, 7, 8, 12]), "3, 7-9, 12");
        let many: Vec<u64> = (0..50).map(|i| i * 2).collect();
        assert!(
            line_ranges(&many).ends_with(", 38, ..."),
            "{}",
            line_ranges(&many)
        );
    }

    #[test]
    fn random_keys_differ_and_fit_kinesis() {
        let mut keys = KeyGenerator::new();
        let a = keys.next_key();
        let b = keys.next_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
