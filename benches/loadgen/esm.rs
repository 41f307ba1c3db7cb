//! The `esm` workload: an event-source mapping delivering a stream into an unmodified Lambda
//! handler on the official `lambda_runtime` crate (`compat-tests/rust-handler` in `noop`
//! mode), against a broker started with `--function NAME=runtime://127.0.0.1:PORT`.
//!
//! In one run, on one stream: `--prefill` records are written, read back with GetRecords
//! (one reader per shard: the drain rate), then a mapping (TRIM_HORIZON, `--batch-size`,
//! batching window 0) delivers the same records to the handlers (one process per shard by
//! default): the delivered rate. Then writers send PutRecords at `--rate` for `--duration`
//! and each record's latency is taken from its request's acknowledgement at the writer to
//! the handler receiving it. Records carry `subscribe`'s 18-byte header (send time, request
//! id, index); the handlers append `<unix µs> <count> <header base64>…` per batch to a file
//! each, which this workload reads as they grow.

use crate::client::{Client, Conn};
use crate::stats::{ProcWatch, Recorder, round3, weighted_percentiles};
use crate::subscribe::{AckBook, AckState, HEADER_LEN, MAGIC, Writers, stream_arn, writer};
use crate::workloads::{Report, drain_shard, list_shards, unix_ms};
use crate::{Cli, WriteOpts};
use base64_simd::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MAPPINGS_PATH: &str = "/2015-03-31/event-source-mappings";

/// The workload's own options (see `Workload::Esm`).
pub struct Opts<'a> {
    pub function: &'a str,
    pub runtime_api: &'a str,
    pub handler: &'a Path,
    pub handlers: usize,
    pub batch_size: u32,
    pub prefill: u64,
    pub limit: u32,
    pub rate: f64,
    pub max_batch: usize,
    pub drain_timeout: Duration,
    pub grace: Duration,
    pub write: &'a WriteOpts,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The handler processes and the files they write.
struct Handlers {
    dir: PathBuf,
    children: Vec<Child>,
    files: Vec<(PathBuf, u64, Vec<u8>)>,
}

impl Handlers {
    fn start(o: &Opts<'_>, n: usize) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "kinesis-loadgen-esm-{}-{}",
            std::process::id(),
            unix_ms()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut me = Self {
            dir,
            children: Vec::new(),
            files: Vec::new(),
        };
        for i in 0..n {
            let path = me.dir.join(format!("receipts-{i}"));
            let log = std::fs::File::create(me.dir.join(format!("handler-{i}.log")))
                .map_err(|e| format!("handler log: {e}"))?;
            let log2 = log.try_clone().map_err(|e| format!("handler log: {e}"))?;
            // `lambda_runtime` needs the function's name, memory size and version as Lambda
            // sets them, besides the Runtime API's address.
            let child = Command::new(o.handler)
                .env("AWS_LAMBDA_RUNTIME_API", o.runtime_api)
                .env("AWS_LAMBDA_FUNCTION_NAME", o.function)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("ESM_MODE", "noop")
                .env("ESM_RECEIPTS", &path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", o.handler.display()))?;
            me.children.push(child);
            me.files.push((path, 0, Vec::new()));
        }
        Ok(me)
    }

    /// Complete lines appended since the last call, over every handler's file.
    fn poll(&mut self, out: &mut Vec<String>) {
        for (path, read, partial) in &mut self.files {
            let Ok(mut f) = std::fs::File::open(&*path) else {
                continue;
            };
            use std::io::Seek;
            if f.seek(std::io::SeekFrom::Start(*read)).is_err() {
                continue;
            }
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_err() {
                continue;
            }
            *read += buf.len() as u64;
            partial.extend_from_slice(&buf);
            if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
                let complete: Vec<u8> = partial.drain(..=end).collect();
                out.extend(
                    String::from_utf8_lossy(&complete)
                        .lines()
                        .map(str::to_owned),
                );
            }
        }
    }

    /// Handlers that exited (they must not while the run lasts), with their logs' tails.
    fn exited(&mut self) -> Option<String> {
        for (i, c) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                let log = std::fs::read_to_string(self.dir.join(format!("handler-{i}.log")))
                    .unwrap_or_default();
                let tail: String = log
                    .chars()
                    .rev()
                    .take(800)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Some(format!("handler {i} exited ({status}): {tail}"));
            }
        }
        None
    }
}

impl Drop for Handlers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every delivery seen: (request id, index) → arrival times (unix µs), and batch sizes.
#[derive(Default)]
struct Deliveries {
    seen: HashMap<(u32, u16), Vec<u64>>,
    /// Request ids below this are the prefill's.
    live_from: u32,
    /// Distinct records delivered, of the prefill and of the live phase: counted as they
    /// arrive, because the workload polls them every few ms.
    distinct_prefill: u64,
    distinct_live: u64,
    batches: Vec<u32>,
    foreign: u64,
    first_us: u64,
    last_us: u64,
}

impl Deliveries {
    fn take(&mut self, lines: &[String]) {
        for line in lines {
            let mut parts = line.split(' ');
            let Some(at) = parts.next().and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            let Some(count) = parts.next().and_then(|v| v.parse::<u32>().ok()) else {
                continue;
            };
            self.batches.push(count);
            if self.first_us == 0 {
                self.first_us = at;
            }
            self.first_us = self.first_us.min(at);
            self.last_us = self.last_us.max(at);
            for h in parts {
                match B64.decode_to_vec(h) {
                    Ok(b) if b.len() == HEADER_LEN && &b[..4] == MAGIC => {
                        let id = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
                        let idx = u16::from_le_bytes([b[16], b[17]]);
                        let times = self.seen.entry((id, idx)).or_default();
                        if times.is_empty() {
                            if id < self.live_from {
                                self.distinct_prefill += 1;
                            } else {
                                self.distinct_live += 1;
                            }
                        }
                        times.push(at);
                    }
                    _ => self.foreign += 1,
                }
            }
        }
    }
}

async fn create_mapping(
    client: &Client,
    function: &str,
    arn: &str,
    batch_size: u32,
) -> Result<String, String> {
    let body = json!({
        "FunctionName": function,
        "EventSourceArn": arn,
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": batch_size,
        "MaximumBatchingWindowInSeconds": 0,
    })
    .to_string();
    let (status, answer) = client
        .rest(
            "lambda",
            hyper::Method::POST,
            MAPPINGS_PATH,
            Bytes::from(body),
        )
        .await
        .map_err(|e| format!("CreateEventSourceMapping: {e}"))?;
    if status != 202 {
        return Err(format!(
            "esm: CreateEventSourceMapping answered {status}: {} (is the broker started with --function {function}=runtime://…?)",
            String::from_utf8_lossy(&answer)
        ));
    }
    let v: Value = serde_json::from_slice(&answer).map_err(|e| format!("mapping: {e}"))?;
    v["UUID"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "CreateEventSourceMapping: no UUID".into())
}

async fn delete_mapping(client: &Client, uuid: &str) {
    let path = format!("{MAPPINGS_PATH}/{uuid}");
    match client
        .rest("lambda", hyper::Method::DELETE, &path, Bytes::new())
        .await
    {
        Ok((202, _)) => {}
        Ok((s, b)) => eprintln!(
            "kinesis-loadgen: DeleteEventSourceMapping {uuid}: {s} {}",
            String::from_utf8_lossy(&b)
        ),
        Err(e) => eprintln!("kinesis-loadgen: DeleteEventSourceMapping {uuid}: {e}"),
    }
}

pub async fn run(
    cli: &Cli,
    client: &Arc<Client>,
    stream: &str,
    o: Opts<'_>,
    report: &mut Report,
) -> Result<(), String> {
    let mut conn = Conn::new(client.clone());
    let shard_ids = list_shards(&mut conn, stream).await?;
    let arn = stream_arn(&mut conn, stream).await?;
    let n_handlers = if o.handlers == 0 {
        shard_ids.len()
    } else {
        o.handlers
    };
    let mut handlers = Handlers::start(&o, n_handlers)?;
    let mut uuid = None;
    let outcome = measure(
        cli,
        client,
        stream,
        &arn,
        &shard_ids,
        &o,
        &mut handlers,
        &mut uuid,
        report,
    )
    .await;
    if let Some(uuid) = uuid {
        delete_mapping(client, &uuid).await;
    }
    drop(handlers);
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    cli: &Cli,
    client: &Arc<Client>,
    stream: &str,
    arn: &str,
    shard_ids: &[String],
    o: &Opts<'_>,
    handlers: &mut Handlers,
    uuid: &mut Option<String>,
    report: &mut Report,
) -> Result<(), String> {
    let anchor = Instant::now();
    let anchor_unix_us = unix_us();
    let acks = Arc::new(AckBook::default());
    let w = o.write;
    let writers = w.concurrency.max(1);
    let spec_of = Writers::new(client, stream, w, o.max_batch, anchor, &acks);
    let spec = |i, rate, deadline, budget| spec_of.spec(i, rate, deadline, budget);

    // 1. The prefill, untimed.
    let t0 = Instant::now();
    let prec = spec_of
        .prefill(writers, o.prefill, t0 + o.drain_timeout)
        .await;
    let prefilled = prec.records;
    let prefill_ids = acks.next_id.load(Ordering::Relaxed) as u32;
    report.set(
        "prefill",
        json!({
            "records": prefilled,
            "records_per_s": round3(prefilled as f64 / t0.elapsed().as_secs_f64().max(1e-9)),
            "failures": prec.failures_json(),
        }),
    );
    if prefilled == 0 {
        return Err("esm: the prefill wrote nothing".into());
    }

    // 2. The GetRecords drain of the same records.
    let start = Instant::now();
    let read = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for shard in shard_ids {
        set.spawn(drain_shard(
            client.clone(),
            stream.to_string(),
            shard.clone(),
            o.limit,
            prefilled,
            read.clone(),
            start + o.drain_timeout,
        ));
    }
    let mut drec = Recorder::default();
    while let Some(r) = set.join_next().await {
        drec.merge(r.expect("reader task"));
    }
    let drain_s = start.elapsed().as_secs_f64();
    let drain_rate = drec.records as f64 / drain_s.max(1e-9);
    report.set(
        "get_records_drain",
        json!({
            "records": drec.records,
            "records_per_s": round3(drain_rate),
            "elapsed_s": round3(drain_s),
            "requests": drec.requests,
            "failures": drec.failures_json(),
        }),
    );

    // 3. The mapping delivers the same records from TRIM_HORIZON.
    if let Some(why) = handlers.exited() {
        return Err(format!("esm: {why}"));
    }
    let watch = cli.server_pid.map(ProcWatch::start);
    let mut deliveries = Deliveries {
        live_from: prefill_ids,
        ..Default::default()
    };
    let mut lines = Vec::new();
    let created_us = unix_us();
    *uuid = Some(create_mapping(client, o.function, arn, o.batch_size).await?);
    let deadline = Instant::now() + o.drain_timeout;
    while deliveries.distinct_prefill < prefilled && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
        lines.clear();
        handlers.poll(&mut lines);
        deliveries.take(&lines);
        if let Some(why) = handlers.exited() {
            return Err(format!("esm: {why}"));
        }
    }
    let delivered = deliveries.distinct_prefill;
    let esm_s = deliveries.last_us.saturating_sub(created_us) as f64 / 1e6;
    let esm_rate = delivered as f64 / esm_s.max(1e-9);
    let from_first_s = deliveries.last_us.saturating_sub(deliveries.first_us) as f64 / 1e6;
    let batches = deliveries.batches.len() as u64;
    let in_batches: u64 = deliveries.batches.iter().map(|&c| u64::from(c)).sum();
    report.set(
        "esm_drain",
        json!({
            "delivered": delivered,
            "unread": prefilled as i64 - delivered as i64,
            "records_per_s": round3(esm_rate),
            "elapsed_s": round3(esm_s),
            "records_per_s_from_first_batch": round3(delivered as f64 / from_first_s.max(1e-9)),
            "first_batch_after_ms": round3(deliveries.first_us.saturating_sub(created_us) as f64 / 1e3),
            "batches": batches,
            "mean_batch": round3(in_batches as f64 / (batches.max(1)) as f64),
            "ratio_to_get_records": round3(esm_rate / drain_rate.max(1e-9)),
            "duplicates": in_batches.saturating_sub(delivered + deliveries.foreign),
            "server": ProcWatch::finish_if_any(watch).await,
        }),
    );

    // 4. Live: writers at --rate; latency from each request's acknowledgement to the handler.
    let batches_before = deliveries.batches.len();
    let watch = cli.server_pid.map(ProcWatch::start);
    let start = Instant::now();
    let deadline = start + w.duration;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..writers {
        set.spawn(writer(spec(i, o.rate / writers as f64, deadline, None)));
    }
    let mut wrec = Recorder::default();
    while let Some(r) = set.join_next().await {
        wrec.merge(r.expect("writer task"));
    }
    let took = start.elapsed();
    let live_ids = prefill_ids..acks.next_id.load(Ordering::Relaxed) as u32;
    let grace_end = Instant::now() + o.grace;
    loop {
        lines.clear();
        handlers.poll(&mut lines);
        deliveries.take(&lines);
        if deliveries.distinct_live >= wrec.records || Instant::now() >= grace_end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acks_v = acks.acks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let failed = acks
        .failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut latency: Vec<(i64, u64)> = Vec::new();
    let (mut missing, mut dups, mut unacked) = (0u64, 0u64, 0u64);
    for id in live_ids.clone() {
        let Some(ack) = acks_v.get(id as usize) else {
            continue;
        };
        let failed_here = failed.get(&id);
        for idx in 0..ack.n {
            let stored =
                ack.state == AckState::Acked && !failed_here.is_some_and(|f| f.contains(&idx));
            match deliveries.seen.get(&(id, idx)) {
                Some(times) => {
                    dups += times.len() as u64 - 1;
                    if stored {
                        let acked_unix = anchor_unix_us + ack.at_us;
                        latency.push((times[0] as i64 - acked_unix as i64, 1));
                    } else {
                        unacked += 1;
                    }
                }
                None if stored => missing += 1,
                None => {}
            }
        }
    }
    let live_batches = &deliveries.batches[batches_before..];
    report.phase(wrec, took);
    report.set(
        "esm_live",
        json!({
            "delivered": latency.len(),
            "missing": missing,
            "duplicates": dups,
            "delivered_unacknowledged": unacked,
            "batches": live_batches.len(),
            "mean_batch": round3(live_batches.iter().map(|&c| f64::from(c)).sum::<f64>() / live_batches.len().max(1) as f64),
            "ack_to_handler_ms": weighted_percentiles(&mut latency),
        }),
    );
    report.set("handlers", json!(handlers.children.len()));
    if let Some(w) = watch {
        report.set("server", w.finish().await);
    }
    Ok(())
}
