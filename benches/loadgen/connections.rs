//! The `connections` workload (issue 21): many idle keep-alive connections and slowloris
//! clients held open while a normal client is served, compared with the same client alone.
//!
//! 1. Baseline, for `--baseline`: writers send PutRecord at `--rate` requests/s over
//!    `--concurrency` keep-alive connections, and `--new-clients` times a second a fresh
//!    connection makes one PutRecord (connect included in its latency).
//! 2. The crowd opens: `--idle` connections each make one request (`GET /_broker/health`)
//!    and then sit idle, repeating it every `--refresh` (as an SDK pool that is used now and
//!    then; under the broker's 60 s HTTP/1.1 idle timeout); `--slowloris` connections send
//!    a request head one byte every `--slowloris-interval`, reconnecting when closed.
//! 3. Held, for `--duration`: the same writers and new clients as in the baseline.
//!
//! Reported: both phases' latencies (`baseline`, `crowd`), the crowd's numbers (opened,
//! closed by the server, slowloris reconnects), the broker's RSS (and anonymous RSS) before
//! and after the crowd opened with `--server-pid`, hence memory per connection, and its
//! `kinesis_broker_idle_connections_evicted_total` and `kinesis_broker_open_connections`.
//! Against a broker whose `--max-connections` is below `--idle`, the connections past the
//! cap are served by evicting the longest-idle ones: `idle_closed_by_server` counts them.

use crate::client::{Client, Conn};
use crate::stats::{Recorder, percentiles, round3, status_kib};
use crate::workloads::Report;
use base64_simd::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The workload's own options (see `Workload::Connections`).
pub struct Opts {
    pub idle: usize,
    pub slowloris: usize,
    pub slowloris_interval: Duration,
    pub refresh: Duration,
    pub rate: f64,
    pub new_clients: f64,
    pub baseline: Duration,
    pub duration: Duration,
    pub connect_concurrency: usize,
    pub concurrency: usize,
    pub record_size: usize,
}

/// Raises this process's open-files soft limit to the hard one: the crowd needs a
/// descriptor per connection. Returns the limit in force.
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(_) => limit.current,
    }
}

/// One answer of a raw keep-alive connection: reads a head and its `Content-Length` body.
/// `None` when the server closed the connection first.
async fn read_answer(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<u16> {
    buf.clear();
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return head.get(9..12)?.parse().ok();
            }
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

const HEALTH_REQUEST: &[u8] = b"GET /_broker/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Counts of the crowd, shared by its tasks.
#[derive(Default)]
struct Crowd {
    idle_open: AtomicU64,
    idle_failed: AtomicU64,
    idle_closed_by_server: AtomicU64,
    slowloris_connects: AtomicU64,
    slowloris_closed_by_server: AtomicU64,
    stop: AtomicBool,
}

/// An idle keep-alive connection: one request, then idle with a request every `refresh`
/// (first one at a random point within it, so they spread), until stopped or closed.
async fn idle_connection(
    addr: SocketAddr,
    refresh: Duration,
    crowd: Arc<Crowd>,
    opened: tokio::sync::mpsc::Sender<()>,
) {
    let Ok(Ok(mut socket)) =
        tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await
    else {
        crowd.idle_failed.fetch_add(1, Ordering::Relaxed);
        let _ = opened.send(()).await;
        return;
    };
    let mut buf = Vec::with_capacity(512);
    let first = async {
        socket.write_all(HEALTH_REQUEST).await.ok()?;
        read_answer(&mut socket, &mut buf).await
    };
    match tokio::time::timeout(Duration::from_secs(30), first).await {
        Ok(Some(200)) => {}
        _ => {
            crowd.idle_failed.fetch_add(1, Ordering::Relaxed);
            let _ = opened.send(()).await;
            return;
        }
    }
    crowd.idle_open.fetch_add(1, Ordering::Relaxed);
    let _ = opened.send(()).await;
    drop(opened);
    let mut next = tokio::time::Instant::now()
        + refresh.mul_f64(rand_unit(
            socket.local_addr().map(|a| a.port()).unwrap_or(0),
        ));
    let mut byte = [0u8; 1];
    loop {
        if crowd.stop.load(Ordering::Relaxed) {
            return;
        }
        tokio::select! {
            // Anything from an idle connection is its close (or a reset).
            _ = socket.read(&mut byte) => {
                crowd.idle_open.fetch_sub(1, Ordering::Relaxed);
                crowd.idle_closed_by_server.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ = tokio::time::sleep_until(next) => {
                next += refresh;
                let again = async {
                    socket.write_all(HEALTH_REQUEST).await.ok()?;
                    read_answer(&mut socket, &mut buf).await
                };
                if tokio::time::timeout(Duration::from_secs(30), again).await != Ok(Some(200)) {
                    crowd.idle_open.fetch_sub(1, Ordering::Relaxed);
                    crowd.idle_closed_by_server.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// A number in [0, 1) from `seed` (SplitMix64): spreads the refreshes without a RNG crate.
fn rand_unit(seed: u16) -> f64 {
    let mut z = (seed as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A slowloris client: a request head trickled one byte per `interval`, reconnecting when
/// the server closes it, until stopped.
async fn slowloris(addr: SocketAddr, interval: Duration, crowd: Arc<Crowd>) {
    let head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nX-Slow: ";
    while !crowd.stop.load(Ordering::Relaxed) {
        let Ok(Ok(mut socket)) =
            tokio::time::timeout(Duration::from_secs(30), TcpStream::connect(addr)).await
        else {
            tokio::time::sleep(interval).await;
            continue;
        };
        crowd.slowloris_connects.fetch_add(1, Ordering::Relaxed);
        let mut sent = 0usize;
        let mut byte = [0u8; 64];
        loop {
            if crowd.stop.load(Ordering::Relaxed) {
                return;
            }
            let next = if sent < head.len() { head[sent] } else { b'a' };
            if socket.write_all(&[next]).await.is_err() {
                crowd
                    .slowloris_closed_by_server
                    .fetch_add(1, Ordering::Relaxed);
                break;
            }
            sent += 1;
            let closed = tokio::select! {
                // Whatever comes (an answer, the close, a reset) ends this head.
                _ = socket.read(&mut byte) => true,
                _ = tokio::time::sleep(interval) => false,
            };
            if closed {
                crowd
                    .slowloris_closed_by_server
                    .fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

fn put_record_body(stream: &str, record_size: usize, i: u64) -> Bytes {
    let data = vec![b'x'; record_size.max(1)];
    Bytes::from(
        json!({
            "StreamName": stream,
            "Data": B64.encode_to_string(&data),
            "PartitionKey": format!("pk-{}", i % 1000),
        })
        .to_string(),
    )
}

/// Writers at `rate` requests/s over `concurrency` keep-alive connections, and a fresh
/// connection `new_clients` times a second, for `duration`.
async fn normal_clients(
    client: &Arc<Client>,
    stream: &str,
    opts: &Opts,
    duration: Duration,
) -> (Recorder, Recorder) {
    let deadline = Instant::now() + duration;
    let mut writers = Vec::new();
    let per_writer = opts.rate / opts.concurrency.max(1) as f64;
    for w in 0..opts.concurrency.max(1) {
        let client = client.clone();
        let stream = stream.to_string();
        let record_size = opts.record_size;
        writers.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            if per_writer <= 0.0 {
                return rec;
            }
            let mut conn = Conn::new(client);
            let period = Duration::from_secs_f64(1.0 / per_writer);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = w as u64;
            while Instant::now() < deadline {
                tick.tick().await;
                let body = put_record_body(&stream, record_size, i);
                i += 1;
                let t = Instant::now();
                rec.requests += 1;
                match conn.call("PutRecord", body, None).await {
                    Ok(_) => {
                        rec.latency(t.elapsed());
                        rec.records += 1;
                        rec.bytes += record_size as u64;
                    }
                    Err(e) => rec.fail(e.kind(), 1),
                }
            }
            rec
        }));
    }
    let newcomers = {
        let client = client.clone();
        let stream = stream.to_string();
        let record_size = opts.record_size;
        let rate = opts.new_clients;
        tokio::spawn(async move {
            let mut rec = Recorder::default();
            if rate <= 0.0 {
                return rec;
            }
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0u64;
            let mut pending = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let client = client.clone();
                let body = put_record_body(&stream, record_size, i);
                i += 1;
                // Each on its own task: one slow newcomer must not hold the next back.
                pending.push(tokio::spawn(async move {
                    let mut conn = Conn::new(client);
                    let t = Instant::now();
                    conn.call("PutRecord", body, None)
                        .await
                        .map(|_| t.elapsed())
                        .map_err(|e| e.kind())
                }));
            }
            for p in pending {
                rec.requests += 1;
                match p.await {
                    Ok(Ok(took)) => {
                        rec.latency(took);
                        rec.records += 1;
                    }
                    Ok(Err(kind)) => rec.fail(kind, 1),
                    Err(_) => rec.fail("task", 1),
                }
            }
            rec
        })
    };
    let mut writes = Recorder::default();
    for w in writers {
        if let Ok(rec) = w.await {
            writes.merge(rec);
        }
    }
    let newcomers = newcomers.await.unwrap_or_default();
    (writes, newcomers)
}

fn summary(mut rec: Recorder, elapsed: Duration) -> Value {
    json!({
        "requests": rec.requests,
        "ok": rec.records,
        "per_s": round3(rec.records as f64 / elapsed.as_secs_f64().max(1e-9)),
        "latency_ms": percentiles(&mut rec.latency_us),
        "failures": rec.failures_json(),
    })
}

/// `GET /metrics` of the broker, the lines of the connection series.
async fn connection_metrics(addr: SocketAddr) -> Value {
    let scrape = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.ok()?;
        Some(raw)
    };
    let Ok(Some(raw)) = tokio::time::timeout(Duration::from_secs(30), scrape).await else {
        return Value::Null;
    };
    let mut out = serde_json::Map::new();
    for line in raw.lines() {
        for name in [
            "kinesis_broker_open_connections",
            "kinesis_broker_connection_limit",
            "kinesis_broker_idle_connections_evicted_total",
        ] {
            if let Some(v) = line
                .strip_prefix(name)
                .and_then(|r| r.trim().parse::<f64>().ok())
            {
                out.insert(name.into(), json!(v));
            }
        }
    }
    Value::Object(out)
}

/// (RSS, anonymous RSS) of the server in KiB.
fn server_memory(pid: Option<u32>) -> Option<(u64, u64)> {
    let pid = pid?;
    Some((status_kib(pid, "VmRSS:")?, status_kib(pid, "RssAnon:")?))
}

pub async fn run(
    cli: &crate::Cli,
    client: &Arc<Client>,
    stream: &str,
    opts: Opts,
    report: &mut Report,
) -> Result<(), String> {
    let nofile = raise_open_files_limit();
    report.set("client_open_files_limit", json!(nofile));
    let needed = (opts.idle + opts.slowloris + opts.concurrency + 64) as u64;
    if nofile.is_some_and(|n| n < needed) {
        return Err(format!(
            "the open-files limit ({nofile:?}) is below the {needed} descriptors this run needs"
        ));
    }
    let addr = client.endpoint.addr;

    eprintln!("connections: baseline for {:?}", opts.baseline);
    let t = Instant::now();
    let (writes, newcomers) = normal_clients(client, stream, &opts, opts.baseline).await;
    let took = t.elapsed();
    report.set(
        "baseline",
        json!({"writes": summary(writes, took), "new_clients": summary(newcomers, took)}),
    );

    let memory_before = server_memory(cli.server_pid);
    let crowd = Arc::new(Crowd::default());
    eprintln!(
        "connections: opening {} idle and {} slowloris connections",
        opts.idle, opts.slowloris
    );
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..opts.slowloris {
        tasks.spawn(slowloris(addr, opts.slowloris_interval, crowd.clone()));
    }
    // Opened in waves of `connect_concurrency`: a burst of 10,000 SYNs overflows the
    // listen backlog and measures SYN retries instead.
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel(opts.idle.max(1));
    let mut started = 0usize;
    let mut finished = 0usize;
    while finished < opts.idle {
        while started < opts.idle && started - finished < opts.connect_concurrency.max(1) {
            tasks.spawn(idle_connection(
                addr,
                opts.refresh,
                crowd.clone(),
                opened_tx.clone(),
            ));
            started += 1;
        }
        if opened_rx.recv().await.is_none() {
            break;
        }
        finished += 1;
    }
    drop(opened_tx);
    let open_took = t.elapsed();
    // Let the server settle (buffers released after the first requests).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let memory_open = server_memory(cli.server_pid);
    let metrics_open = connection_metrics(addr).await;
    eprintln!(
        "connections: {} idle open after {:.1} s; held for {:?} while the normal clients run",
        crowd.idle_open.load(Ordering::Relaxed),
        open_took.as_secs_f64(),
        opts.duration
    );

    let t = Instant::now();
    let (writes, newcomers) = normal_clients(client, stream, &opts, opts.duration).await;
    let took = t.elapsed();
    let memory_after = server_memory(cli.server_pid);
    let metrics_after = connection_metrics(addr).await;
    report.set(
        "crowd",
        json!({"writes": summary(writes, took), "new_clients": summary(newcomers, took)}),
    );

    let idle_open_at_end = crowd.idle_open.load(Ordering::Relaxed);
    crowd.stop.store(true, Ordering::Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    let mb = |kib: u64| round3(kib as f64 / 1024.0);
    let crowd_size = (opts.idle + opts.slowloris) as f64;
    let memory = match (memory_before, memory_open, memory_after) {
        (Some(b), Some(o), Some(a)) => json!({
            "rss_before_mb": mb(b.0),
            "rss_crowd_open_mb": mb(o.0),
            "rss_after_mb": mb(a.0),
            "anon_before_mb": mb(b.1),
            "anon_crowd_open_mb": mb(o.1),
            "anon_after_mb": mb(a.1),
            "rss_per_connection_kib": round3((o.0 as f64 - b.0 as f64) / crowd_size),
            "anon_per_connection_kib": round3((o.1 as f64 - b.1 as f64) / crowd_size),
        }),
        _ => Value::Null,
    };
    report.set(
        "crowd_connections",
        json!({
            "idle_requested": opts.idle,
            "idle_opened_s": round3(open_took.as_secs_f64()),
            "idle_failed_to_open": crowd.idle_failed.load(Ordering::Relaxed),
            "idle_open_at_end": idle_open_at_end,
            "idle_closed_by_server": crowd.idle_closed_by_server.load(Ordering::Relaxed),
            "slowloris": opts.slowloris,
            "slowloris_connects": crowd.slowloris_connects.load(Ordering::Relaxed),
            "slowloris_closed_by_server": crowd.slowloris_closed_by_server.load(Ordering::Relaxed),
            "server_metrics_crowd_open": metrics_open,
            "server_metrics_end": metrics_after,
        }),
    );
    report.set("server_memory", memory);
    Ok(())
}
