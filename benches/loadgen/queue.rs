//! The `queue` workload: Kinesis queues (issue 18). On one ON_DEMAND stream, a queue is
//! created with CreateQueue (TRIM_HORIZON) and DescribeQueue is polled until ACTIVE. Then:
//!
//! 1. `--prefill` records are written (untimed), and `--workers` tasks, each on its own
//!    connection, loop ReceiveQueueRecords (`--limit`, `--wait-time-seconds`) then
//!    AcknowledgeQueueRecords of every record received: the rate is records received and
//!    acknowledged per second, from the workers' start to the last prefilled record's
//!    acknowledgement.
//! 2. Writers send PutRecords at `--rate` for `--duration` while the same workers long-poll:
//!    each record's latency runs from its request's acknowledgement at the writer to the
//!    answer of the ReceiveQueueRecords that delivered it (the target: p99 ≤ 5 ms).
//!
//! Records carry `subscribe`'s 18-byte header (send time, request id, index), so missing and
//! duplicate deliveries are counted per acknowledged record.

use crate::client::{CallError, Client, Conn};
use crate::stats::{ProcWatch, Recorder, percentiles, round3, weighted_percentiles};
use crate::subscribe::{AckBook, AckState, HEADER_B64, HEADER_LEN, MAGIC, Writers, writer};
use crate::workloads::Report;
use crate::{Cli, WriteOpts};
use base64_simd::STANDARD as B64;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workload's own options (see `Workload::Queue`).
pub struct Opts<'a> {
    pub workers: usize,
    pub limit: u32,
    pub wait_time_seconds: u32,
    pub prefill: u64,
    pub rate: f64,
    pub max_batch: usize,
    pub queue_name: &'a str,
    pub drain_timeout: Duration,
    pub grace: Duration,
    pub write: &'a WriteOpts,
}

#[derive(Deserialize)]
struct ReceiveOut {
    #[serde(rename = "QueueRecords", default)]
    records: Vec<QueueRecord>,
}

#[derive(Deserialize)]
struct QueueRecord {
    #[serde(rename = "ReceiptHandle")]
    receipt_handle: String,
    #[serde(rename = "Data", default)]
    data: String,
}

#[derive(Deserialize)]
struct AckOut {
    #[serde(rename = "Successful", default)]
    successful: Vec<AckEntry>,
    #[serde(rename = "Failed", default)]
    failed: Vec<AckFailure>,
}

#[derive(Deserialize)]
struct AckEntry {
    #[serde(rename = "ReceiptHandle")]
    receipt_handle: String,
}

#[derive(Deserialize)]
struct AckFailure {
    #[serde(rename = "ErrorCode", default)]
    error_code: String,
}

/// Every delivery of this run's records: (request id, index) → receipt times (µs since the
/// anchor), and whether an acknowledgement of it succeeded.
#[derive(Default)]
struct Seen {
    by_record: HashMap<(u32, u16), (Vec<u64>, bool)>,
    /// Request ids below this are the prefill's.
    live_from: u32,
    acked_prefill: u64,
    acked_live: u64,
    /// Records without this run's header: another writer's, or data the queue mangled.
    foreign: u64,
}

struct WorkerCtx {
    client: Arc<Client>,
    queue_arn: String,
    limit: u32,
    wait_time_seconds: u32,
    anchor: Instant,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct WorkerOut {
    receive: Recorder,
    ack: Recorder,
    empty_receives: u64,
    records_received: u64,
}

fn header_of(data: &str) -> Option<(u32, u16)> {
    let b = B64.decode_to_vec(data.get(..HEADER_B64)?).ok()?;
    if b.len() != HEADER_LEN || &b[..4] != MAGIC {
        return None;
    }
    Some((
        u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        u16::from_le_bytes([b[16], b[17]]),
    ))
}

async fn worker(c: WorkerCtx) -> WorkerOut {
    let mut out = WorkerOut::default();
    let mut conn = Conn::new(c.client.clone());
    let receive_body = Bytes::from(
        json!({
            "QueueARN": c.queue_arn,
            "Limit": c.limit,
            "WaitTimeSeconds": c.wait_time_seconds,
        })
        .to_string(),
    );
    let mut handles: HashMap<String, Option<(u32, u16)>> = HashMap::new();
    while !c.stop.load(Ordering::Acquire) {
        let t0 = Instant::now();
        let answer = conn
            .call("ReceiveQueueRecords", receive_body.clone(), None)
            .await;
        let at_us = c.anchor.elapsed().as_micros() as u64;
        out.receive.latency(t0.elapsed());
        out.receive.requests += 1;
        let records = match answer {
            Ok(b) => match serde_json::from_slice::<ReceiveOut>(&b) {
                Ok(r) => r.records,
                Err(_) => {
                    out.receive.fail("BadAnswer", 1);
                    continue;
                }
            },
            Err(e) => {
                out.receive.fail(e.kind(), 1);
                if matches!(e, CallError::Transport(_)) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        };
        if records.is_empty() {
            out.empty_receives += 1;
            continue;
        }
        out.records_received += records.len() as u64;
        out.receive.records += records.len() as u64;
        handles.clear();
        {
            let mut seen = c.seen.lock().unwrap_or_else(|p| p.into_inner());
            for r in &records {
                let key = header_of(&r.data);
                match key {
                    Some(k) => seen.by_record.entry(k).or_default().0.push(at_us),
                    None => seen.foreign += 1,
                }
                handles.insert(r.receipt_handle.clone(), key);
            }
        }
        let entries: Vec<Value> = records
            .iter()
            .map(|r| json!({"ReceiptHandle": r.receipt_handle}))
            .collect();
        let body = json!({"QueueARN": c.queue_arn, "Entries": entries}).to_string();
        let t0 = Instant::now();
        let answer = conn
            .call("AcknowledgeQueueRecords", Bytes::from(body), None)
            .await;
        out.ack.latency(t0.elapsed());
        out.ack.requests += 1;
        match answer {
            Ok(b) => match serde_json::from_slice::<AckOut>(&b) {
                Ok(a) => {
                    for f in &a.failed {
                        out.ack.fail(f.error_code.as_str(), 1);
                    }
                    out.ack.records += a.successful.len() as u64;
                    let mut seen = c.seen.lock().unwrap_or_else(|p| p.into_inner());
                    for s in &a.successful {
                        let Some(Some(k)) = handles.get(&s.receipt_handle) else {
                            continue;
                        };
                        let live_from = seen.live_from;
                        let entry = seen.by_record.entry(*k).or_default();
                        if !entry.1 {
                            entry.1 = true;
                            if k.0 < live_from {
                                seen.acked_prefill += 1;
                            } else {
                                seen.acked_live += 1;
                            }
                        }
                    }
                }
                Err(_) => out.ack.fail("BadAnswer", records.len() as u64),
            },
            // The records come back after their visibility timeout: counted as duplicates
            // if the run lasts that long.
            Err(e) => out.ack.fail(e.kind(), records.len() as u64),
        }
    }
    out
}

/// CreateQueue from TRIM_HORIZON, then DescribeQueue until ACTIVE. Returns the queue's ARN.
async fn create_queue(
    conn: &mut Conn,
    name: &str,
    stream_arn: &str,
    timeout: Duration,
) -> Result<String, String> {
    let v = conn
        .call_json(
            "CreateQueue",
            json!({
                "QueueName": name,
                "StreamConfigurationList": [{
                    "StreamARN": stream_arn,
                    "StartingPosition": {"Type": "TRIM_HORIZON"},
                }],
            }),
        )
        .await
        .map_err(|e| match &e {
            CallError::Api { kind, .. } if kind.contains("UnknownOperation") => {
                format!("queue: not supported by this endpoint: {e}")
            }
            _ => format!("CreateQueue {name}: {e}"),
        })?;
    let arn = v["QueueDescription"]["QueueARN"]
        .as_str()
        .ok_or("CreateQueue: no QueueARN in the answer")?
        .to_string();
    let deadline = Instant::now() + timeout;
    loop {
        let status = match conn
            .call_json("DescribeQueue", json!({"QueueARN": arn}))
            .await
        {
            Ok(v) => v["QueueDescription"]["QueueStatus"]
                .as_str()
                .map(str::to_owned),
            Err(e) if e.kind() == "ResourceNotFoundException" => None,
            Err(e) => return Err(format!("DescribeQueue {arn}: {e}")),
        };
        if status.as_deref() == Some("ACTIVE") {
            return Ok(arn);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "queue {name} not ACTIVE in time (last status {status:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// DeleteQueue, then DescribeQueue until it is gone: a stream with queues cannot be deleted.
async fn delete_queue(conn: &mut Conn, arn: &str, timeout: Duration) {
    if let Err(e) = conn
        .call_json("DeleteQueue", json!({"QueueARN": arn}))
        .await
    {
        eprintln!("kinesis-loadgen: DeleteQueue {arn}: {e}");
        return;
    }
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match conn
            .call_json("DescribeQueue", json!({"QueueARN": arn}))
            .await
        {
            Err(e) if e.kind() == "ResourceNotFoundException" => return,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    eprintln!("kinesis-loadgen: queue {arn} still there after {timeout:?}");
}

pub async fn run(
    cli: &Cli,
    client: &Arc<Client>,
    stream: &str,
    o: Opts<'_>,
    report: &mut Report,
) -> Result<(), String> {
    let mut conn = Conn::new(client.clone());
    let arn = crate::subscribe::stream_arn(&mut conn, stream).await?;
    let queue_arn = create_queue(&mut conn, o.queue_name, &arn, cli.create_timeout).await?;
    let outcome = measure(cli, client, stream, &queue_arn, &o, report).await;
    if !cli.keep_streams {
        delete_queue(&mut conn, &queue_arn, cli.create_timeout).await;
    }
    outcome
}

/// Missing (acknowledged writes never received) and duplicate deliveries over `ids`, and
/// each received record's latency from its write's acknowledgement to its first receipt.
fn tally(
    acks: &AckBook,
    seen: &Seen,
    ids: std::ops::Range<u32>,
) -> (u64, u64, u64, Vec<(i64, u64)>) {
    let acks_v = acks.acks.lock().unwrap_or_else(|p| p.into_inner());
    let failed = acks.failed.lock().unwrap_or_else(|p| p.into_inner());
    let (mut missing, mut dups, mut unacked) = (0u64, 0u64, 0u64);
    let mut latency = Vec::new();
    for id in ids {
        let Some(ack) = acks_v.get(id as usize) else {
            continue;
        };
        let failed_here = failed.get(&id);
        for idx in 0..ack.n {
            let stored =
                ack.state == AckState::Acked && !failed_here.is_some_and(|f| f.contains(&idx));
            match seen.by_record.get(&(id, idx)) {
                Some((times, _)) => {
                    dups += times.len() as u64 - 1;
                    if stored {
                        latency.push((times[0] as i64 - ack.at_us as i64, 1));
                    } else {
                        unacked += 1;
                    }
                }
                None if stored => missing += 1,
                None => {}
            }
        }
    }
    (missing, dups, unacked, latency)
}

fn merge_workers(outs: Vec<WorkerOut>) -> WorkerOut {
    let mut all = WorkerOut::default();
    for w in outs {
        all.receive.merge(w.receive);
        all.ack.merge(w.ack);
        all.empty_receives += w.empty_receives;
        all.records_received += w.records_received;
    }
    all
}

fn workers_json(w: &mut WorkerOut) -> Value {
    json!({
        "receives": w.receive.requests,
        "empty_receives": w.empty_receives,
        "records_received": w.records_received,
        "receive_failures": w.receive.failures_json(),
        "receive_latency_ms": percentiles(&mut w.receive.latency_us),
        "acknowledge_calls": w.ack.requests,
        "records_acknowledged": w.ack.records,
        "acknowledge_failures": w.ack.failures_json(),
        "acknowledge_latency_ms": percentiles(&mut w.ack.latency_us),
    })
}

fn spawn_workers(
    client: &Arc<Client>,
    queue_arn: &str,
    o: &Opts<'_>,
    anchor: Instant,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
) -> tokio::task::JoinSet<WorkerOut> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..o.workers.max(1) {
        set.spawn(worker(WorkerCtx {
            client: client.clone(),
            queue_arn: queue_arn.to_string(),
            limit: o.limit.clamp(1, 10),
            wait_time_seconds: o.wait_time_seconds.clamp(1, 20),
            anchor,
            stop: stop.clone(),
            seen: seen.clone(),
        }));
    }
    set
}

async fn join_workers(mut set: tokio::task::JoinSet<WorkerOut>) -> WorkerOut {
    let mut outs = Vec::new();
    while let Some(r) = set.join_next().await {
        outs.push(r.expect("queue worker task"));
    }
    merge_workers(outs)
}

async fn measure(
    cli: &Cli,
    client: &Arc<Client>,
    stream: &str,
    queue_arn: &str,
    o: &Opts<'_>,
    report: &mut Report,
) -> Result<(), String> {
    let anchor = Instant::now();
    let acks = Arc::new(AckBook::default());
    let w = o.write;
    let writers = w.concurrency.max(1);
    let spec_of = Writers::new(client, stream, w, o.max_batch, anchor, &acks);
    let spec = |i, rate, deadline, budget| spec_of.spec(i, rate, deadline, budget);

    // 1. The prefill, untimed, then the workers drain it.
    let mut prefilled = 0;
    let mut prefill_ids = 0;
    if o.prefill > 0 {
        let t0 = Instant::now();
        let prec = spec_of
            .prefill(writers, o.prefill, t0 + o.drain_timeout)
            .await;
        prefilled = prec.records;
        prefill_ids = acks.next_id.load(Ordering::Relaxed) as u32;
        report.set(
            "prefill",
            json!({
                "records": prefilled,
                "records_per_s": round3(prefilled as f64 / t0.elapsed().as_secs_f64().max(1e-9)),
                "failures": prec.failures_json(),
            }),
        );
        if prefilled == 0 {
            return Err("queue: the prefill wrote nothing".into());
        }
    }
    let seen = Arc::new(Mutex::new(Seen {
        live_from: prefill_ids,
        ..Default::default()
    }));
    if prefilled > 0 {
        let stop = Arc::new(AtomicBool::new(false));
        let watch = cli.server_pid.map(ProcWatch::start);
        let start = Instant::now();
        let set = spawn_workers(client, queue_arn, o, anchor, &stop, &seen);
        let deadline = start + o.drain_timeout;
        let mut done_at = None;
        while Instant::now() < deadline {
            let acked = seen.lock().unwrap_or_else(|p| p.into_inner()).acked_prefill;
            if acked >= prefilled {
                done_at = Some(start.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = done_at.unwrap_or_else(|| start.elapsed());
        stop.store(true, Ordering::Release);
        let server = ProcWatch::finish_if_any(watch).await;
        let mut wout = join_workers(set).await;
        let s = seen.lock().unwrap_or_else(|p| p.into_inner());
        let (missing, dups, _, _) = tally(&acks, &s, 0..prefill_ids);
        let acked = s.acked_prefill;
        let mut drain = json!({
            "records": acked,
            "records_per_s": round3(acked as f64 / took.as_secs_f64().max(1e-9)),
            "elapsed_s": round3(took.as_secs_f64()),
            "complete": done_at.is_some(),
            "missing": missing,
            "duplicates": dups,
            "foreign": s.foreign,
            "server": server,
        });
        if let (Some(d), Value::Object(m)) = (drain.as_object_mut(), workers_json(&mut wout)) {
            d.extend(m);
        }
        report.set("queue_drain", drain);
    }

    // 2. Live: writers at --rate while the workers long-poll.
    let stop = Arc::new(AtomicBool::new(false));
    let set = spawn_workers(client, queue_arn, o, anchor, &stop, &seen);
    // Let every worker's first ReceiveQueueRecords start waiting before the first write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let watch = cli.server_pid.map(ProcWatch::start);
    let start = Instant::now();
    let deadline = start + w.duration;
    let mut wset = tokio::task::JoinSet::new();
    for i in 0..writers {
        wset.spawn(writer(spec(i, o.rate / writers as f64, deadline, None)));
    }
    let mut wrec = Recorder::default();
    while let Some(r) = wset.join_next().await {
        wrec.merge(r.expect("writer task"));
    }
    let took = start.elapsed();
    let live_ids = prefill_ids..acks.next_id.load(Ordering::Relaxed) as u32;
    let grace_end = Instant::now() + o.grace;
    while Instant::now() < grace_end {
        let acked = seen.lock().unwrap_or_else(|p| p.into_inner()).acked_live;
        if acked >= wrec.records {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Release);
    let server = ProcWatch::finish_if_any(watch).await;
    let mut wout = join_workers(set).await;
    let s = seen.lock().unwrap_or_else(|p| p.into_inner());
    let (missing, dups, unacked, mut latency) = tally(&acks, &s, live_ids);
    let delivered = latency.len();
    let lat = weighted_percentiles(&mut latency);
    let p99_ok = lat.get("p99").and_then(Value::as_f64).map(|p| p <= 5.0);
    let mut live = json!({
        "delivered": delivered,
        "acknowledged": s.acked_live,
        "missing": missing,
        "duplicates": dups,
        "delivered_unacknowledged": unacked,
        "ack_to_receipt_ms": lat,
        "target_p99_ms": 5.0,
        "target_met": p99_ok,
    });
    if let (Some(d), Value::Object(m)) = (live.as_object_mut(), workers_json(&mut wout)) {
        d.extend(m);
    }
    report.phase(wrec, took);
    report.set("queue_live", live);
    report.set("workers", json!(o.workers.max(1)));
    report.set("server", server);
    Ok(())
}
