//! The `queue-jetstream` workload: the `queue` workload's peer on NATS JetStream (issue 18),
//! speaking the NATS client protocol over plain TCP (no NATS crate: the load generator keeps
//! its dependencies). Checked against nats-server v2.9.10 (Debian's) and nats.go:
//!
//! - a stream with `retention: workqueue` and file storage (`$JS.API.STREAM.CREATE.<s>`) and
//!   a durable pull consumer (`$JS.API.CONSUMER.DURABLE.CREATE.<s>.<c>`, which every 2.x
//!   server has) with `ack_policy: explicit`, `ack_wait` and `max_deliver` set like the
//!   broker queue's visibility timeout and MaxReceiveCount;
//! - `--prefill` records published with a reply inbox, each counted once its PubAck came
//!   back (untimed);
//! - `--workers` tasks, one connection each, pulling `--batch` messages per request as
//!   nats.go's `Fetch` does: `$JS.API.CONSUMER.MSG.NEXT.<s>.<c>` with
//!   `{"batch":N,"expires":ns,"no_wait":true}` first, and when that ends with status 404 or
//!   408 before any message, again without `no_wait` (the long poll). Each message is
//!   acknowledged as it arrives on its `$JS.ACK…` reply subject with `+ACK`: fire and forget
//!   by default (nats.go's `Ack()`), or `--ack sync`, a request whose empty answer confirms
//!   the ack (nats.go's `AckSync()`, one at a time);
//! - the drain rate: records acknowledged ÷ time from the workers' start to the last
//!   prefilled record's acknowledgement; then, as a check that fire-and-forget acks were
//!   applied, how long until the work-queue stream holds no message;
//! - writers publishing at `--rate` for `--duration` while the same workers long-poll: each
//!   record's latency from its PubAck at the writer to its arrival at a worker.
//!
//! Records carry a 12-byte header (magic, index), so missing and duplicate deliveries are
//! counted per acknowledged publish, as the broker's `queue` workload counts them.

use crate::stats::{ProcWatch, Recorder, percentiles, round3, weighted_percentiles};
use crate::workloads::Report;
use crate::{Cli, WriteOpts};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const MAGIC: &[u8; 4] = b"KBJQ";
const HEADER_LEN: usize = 12;
/// Longest control line accepted from the server (INFO lines are a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;
/// Largest message payload accepted (the server's default max_payload is 1 MiB).
const MAX_PAYLOAD: usize = 8 * 1024 * 1024;
/// Publishes in flight per prefill connection, as nats.go's PublishAsync window bounds them.
const PUBLISH_WINDOW: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    /// `+ACK` published without a reply: nats.go's `Msg.Ack()`.
    Async,
    /// `+ACK` as a request, waiting for the server's empty answer: nats.go's `Msg.AckSync()`.
    Sync,
}

impl AckMode {
    pub fn name(self) -> &'static str {
        match self {
            AckMode::Async => "async",
            AckMode::Sync => "sync",
        }
    }
}

/// The workload's own options (see `Workload::QueueJetstream`).
pub struct Opts<'a> {
    pub nats: SocketAddr,
    pub workers: usize,
    pub batch: u32,
    pub wait_time_seconds: u32,
    pub prefill: u64,
    pub rate: f64,
    pub ack_wait_seconds: u32,
    pub max_deliver: i64,
    pub ack: AckMode,
    pub stream_name: &'a str,
    pub drain_timeout: Duration,
    pub grace: Duration,
    pub write: &'a WriteOpts,
}

// ---------------------------------------------------------------------------------------
// The NATS client protocol

/// A message as delivered by `MSG` or `HMSG`; `status` is the code of an `HMSG` whose header
/// block starts with `NATS/1.0 <code>` (JetStream's 404/408/409 pull statuses, 503 for no
/// responders).
struct Msg {
    subject: String,
    reply: Option<String>,
    status: Option<u16>,
    payload: Vec<u8>,
}

static CONN_SEQ: AtomicU64 = AtomicU64::new(0);

struct Nats {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    out: Vec<u8>,
    /// This connection's reply subjects are `<inbox>.<token>`, all caught by one `SUB`.
    inbox: String,
    next_token: u64,
    /// Messages read while waiting for something else (an AckSync answer).
    held: VecDeque<Msg>,
}

impl Nats {
    async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("NATS connect to {addr}: timed out"))?
            .map_err(|e| format!("NATS connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let mut n = Nats {
            rd: BufReader::with_capacity(256 * 1024, r),
            wr: w,
            out: Vec::with_capacity(64 * 1024),
            inbox: format!(
                "_INBOX.kbloadgen{}x{}",
                std::process::id(),
                CONN_SEQ.fetch_add(1, Ordering::Relaxed)
            ),
            next_token: 0,
            held: VecDeque::new(),
        };
        let handshake = async {
            let info = n.read_line().await?;
            if !info.starts_with("INFO ") {
                return Err(format!("NATS: expected INFO, got {info:.200}"));
            }
            // headers: JetStream's pull statuses come as HMSG; no_responders: a request to
            // a subject nobody serves (JetStream off) fails at once with 503.
            let connect = json!({
                "verbose": false, "pedantic": false, "tls_required": false,
                "name": "kinesis-loadgen", "lang": "rust", "version": "0",
                "protocol": 1, "headers": true, "no_responders": true,
            });
            n.out
                .extend_from_slice(format!("CONNECT {connect}\r\n").as_bytes());
            let sub = format!("SUB {}.* 1\r\n", n.inbox);
            n.out.extend_from_slice(sub.as_bytes());
            n.out.extend_from_slice(b"PING\r\n");
            n.flush().await?;
            loop {
                let line = n.read_line().await?;
                match line.as_str() {
                    "PONG" => return Ok(()),
                    "PING" => {
                        n.out.extend_from_slice(b"PONG\r\n");
                        n.flush().await?;
                    }
                    l if l.starts_with("-ERR") => return Err(format!("NATS: {l}")),
                    _ => {}
                }
            }
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| format!("NATS handshake with {addr}: timed out"))??;
        Ok(n)
    }

    fn token(&mut self) -> String {
        self.next_token += 1;
        format!("{}.{}", self.inbox, self.next_token)
    }

    fn publish(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        let line = match reply {
            Some(r) => format!("PUB {subject} {r} {}\r\n", payload.len()),
            None => format!("PUB {subject} {}\r\n", payload.len()),
        };
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(payload);
        self.out.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.wr
            .write_all(&self.out)
            .await
            .map_err(|e| format!("NATS write: {e}"))?;
        self.out.clear();
        Ok(())
    }

    async fn read_line(&mut self) -> Result<String, String> {
        // Whatever is queued goes out before a read that may wait for the server: an ack
        // kept here while the server waits for it would stall both sides.
        if !self.out.is_empty() && !self.rd.buffer().contains(&b'\n') {
            self.flush().await?;
        }
        let mut line = Vec::new();
        let n = (&mut self.rd)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("NATS read: {e}"))?;
        if n == 0 {
            return Err("NATS: connection closed by the server".into());
        }
        if line.last() != Some(&b'\n') {
            return Err("NATS: control line too long or cut".into());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        String::from_utf8(line).map_err(|_| "NATS: control line is not UTF-8".to_string())
    }

    async fn read_payload(&mut self, len: usize) -> Result<Vec<u8>, String> {
        if len > MAX_PAYLOAD {
            return Err(format!("NATS: payload of {len} bytes"));
        }
        let mut buf = vec![0; len + 2];
        self.rd
            .read_exact(&mut buf)
            .await
            .map_err(|e| format!("NATS read: {e}"))?;
        if &buf[len..] != b"\r\n" {
            return Err("NATS: payload not followed by CRLF".into());
        }
        buf.truncate(len);
        Ok(buf)
    }

    /// The next message from the server, answering its PINGs on the way.
    async fn next(&mut self) -> Result<Msg, String> {
        if let Some(m) = self.held.pop_front() {
            return Ok(m);
        }
        self.next_from_socket().await
    }

    async fn next_from_socket(&mut self) -> Result<Msg, String> {
        loop {
            let line = self.read_line().await?;
            let mut parts = line.split_ascii_whitespace();
            let op = parts.next().unwrap_or("");
            let args: Vec<&str> = parts.collect();
            match op {
                "MSG" => {
                    // MSG <subject> <sid> [reply-to] <#bytes>
                    let (subject, reply, len) = match args.as_slice() {
                        [s, _, n] => (*s, None, *n),
                        [s, _, r, n] => (*s, Some(*r), *n),
                        _ => return Err(format!("NATS: bad MSG line {line:.200}")),
                    };
                    let len: usize = len
                        .parse()
                        .map_err(|_| format!("NATS: bad MSG size in {line:.200}"))?;
                    let (subject, reply) = (subject.to_string(), reply.map(str::to_string));
                    let payload = self.read_payload(len).await?;
                    return Ok(Msg {
                        subject,
                        reply,
                        status: None,
                        payload,
                    });
                }
                "HMSG" => {
                    // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
                    let (subject, reply, hlen, tlen) = match args.as_slice() {
                        [s, _, h, t] => (*s, None, *h, *t),
                        [s, _, r, h, t] => (*s, Some(*r), *h, *t),
                        _ => return Err(format!("NATS: bad HMSG line {line:.200}")),
                    };
                    let (Ok(hlen), Ok(tlen)) = (hlen.parse::<usize>(), tlen.parse::<usize>())
                    else {
                        return Err(format!("NATS: bad HMSG sizes in {line:.200}"));
                    };
                    if hlen > tlen {
                        return Err(format!("NATS: bad HMSG sizes in {line:.200}"));
                    }
                    let (subject, reply) = (subject.to_string(), reply.map(str::to_string));
                    let mut all = self.read_payload(tlen).await?;
                    let payload = all.split_off(hlen);
                    // "NATS/1.0 404 No Messages\r\n…": a status; "NATS/1.0\r\n…": headers only.
                    let status = std::str::from_utf8(&all)
                        .ok()
                        .and_then(|h| h.strip_prefix("NATS/1.0"))
                        .and_then(|rest| rest.split_ascii_whitespace().next())
                        .and_then(|code| code.parse::<u16>().ok());
                    return Ok(Msg {
                        subject,
                        reply,
                        status,
                        payload,
                    });
                }
                "PING" => {
                    self.out.extend_from_slice(b"PONG\r\n");
                    self.flush().await?;
                }
                "PONG" | "+OK" | "INFO" => {}
                "-ERR" => return Err(format!("NATS: {line:.300}")),
                _ => return Err(format!("NATS: unexpected {line:.200}")),
            }
        }
    }

    /// Publishes `payload` with a reply inbox and waits for the answer on it, holding any
    /// other message that arrives meanwhile for `next`.
    async fn request(
        &mut self,
        subject: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Msg, String> {
        let reply = self.token();
        self.publish(subject, Some(&reply), payload);
        let wait = async {
            loop {
                let m = self.next_from_socket().await?;
                if m.subject == reply {
                    return Ok(m);
                }
                self.held.push_back(m);
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(m)) if m.status == Some(503) => {
                Err(format!("{subject}: no responders (is JetStream on?)"))
            }
            Ok(r) => r,
            Err(_) => Err(format!("{subject}: no answer within {timeout:?}")),
        }
    }

    /// A JetStream API call: JSON in, JSON out, its `error` member made an `Err`.
    async fn api(&mut self, subject: &str, body: Value) -> Result<Value, String> {
        let m = self
            .request(
                subject,
                body.to_string().as_bytes(),
                Duration::from_secs(10),
            )
            .await?;
        let v: Value = serde_json::from_slice(&m.payload)
            .map_err(|e| format!("{subject}: answer is not JSON ({e})"))?;
        if let Some(e) = v.get("error") {
            return Err(format!("{subject}: {e}"));
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------
// Records

fn record(index: u64, size: usize) -> Vec<u8> {
    let mut r = vec![b'x'; size.max(HEADER_LEN)];
    r[..4].copy_from_slice(MAGIC);
    r[4..12].copy_from_slice(&index.to_le_bytes());
    r
}

fn index_of(payload: &[u8]) -> Option<u64> {
    if payload.len() < HEADER_LEN || &payload[..4] != MAGIC {
        return None;
    }
    Some(u64::from_le_bytes(payload[4..12].try_into().ok()?))
}

/// Publish acknowledgements, by record index: µs since the anchor, 0 while unacknowledged.
struct PubAcks {
    at_us: Vec<AtomicU64>,
}

impl PubAcks {
    fn new(n: u64) -> Self {
        Self {
            at_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn set(&self, index: u64, at_us: u64) {
        if let Some(a) = self.at_us.get(index as usize) {
            a.store(at_us.max(1), Ordering::Relaxed);
        }
    }

    fn get(&self, index: u64) -> Option<u64> {
        self.at_us
            .get(index as usize)
            .map(|a| a.load(Ordering::Relaxed))
            .filter(|&t| t > 0)
    }
}

/// What every publisher shares: the record indices come from one counter, their PubAck
/// times go into one book.
#[derive(Clone)]
struct Publishing {
    addr: SocketAddr,
    subject: String,
    next: Arc<AtomicU64>,
    size: usize,
    anchor: Instant,
    acks: Arc<PubAcks>,
}

/// Prefill: indices below `total`, each publisher keeping up to PUBLISH_WINDOW publishes in
/// flight on its connection.
async fn prefill_publisher(p: Publishing, total: u64, deadline: Instant) -> Recorder {
    let Publishing {
        addr,
        subject,
        next,
        size,
        anchor,
        acks,
    } = p;
    let mut rec = Recorder::default();
    let mut n = match Nats::connect(addr, Duration::from_secs(10)).await {
        Ok(n) => n,
        Err(e) => {
            rec.fail(e, 1);
            return rec;
        }
    };
    let mut in_flight: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut body = record(0, size);
    let mut exhausted = false;
    loop {
        while !exhausted && in_flight.len() < PUBLISH_WINDOW && Instant::now() < deadline {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                exhausted = true;
                break;
            }
            body[4..12].copy_from_slice(&i.to_le_bytes());
            let reply = n.token();
            n.publish(&subject, Some(&reply), &body);
            in_flight.insert(reply, (i, Instant::now()));
            rec.requests += 1;
        }
        if in_flight.is_empty() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        let m = match tokio::time::timeout(left, n.next()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                rec.fail(e, in_flight.len() as u64);
                break;
            }
            Err(_) => {
                rec.fail("PubAckTimeout", in_flight.len() as u64);
                break;
            }
        };
        let Some((i, t0)) = in_flight.remove(&m.subject) else {
            continue;
        };
        rec.latency(t0.elapsed());
        match serde_json::from_slice::<Value>(&m.payload) {
            _ if m.status.is_some() => rec.fail(format!("status {}", m.status.unwrap_or(0)), 1),
            Ok(v) if v.get("error").is_none() && v.get("seq").is_some() => {
                acks.set(i, anchor.elapsed().as_micros() as u64);
                rec.records += 1;
                rec.bytes += size as u64;
            }
            Ok(v) => rec.fail(
                v["error"]["description"]
                    .as_str()
                    .unwrap_or("bad PubAck")
                    .to_string(),
                1,
            ),
            Err(_) => rec.fail("bad PubAck", 1),
        }
        if exhausted && in_flight.is_empty() {
            break;
        }
    }
    rec
}

/// Live phase: one record at a time at `rate` records/s, each a request waiting for its
/// PubAck (a writer that falls behind catches up without pausing).
async fn rate_publisher(p: Publishing, limit: u64, rate: f64, deadline: Instant) -> Recorder {
    let Publishing {
        addr,
        subject,
        next,
        size,
        anchor,
        acks,
    } = p;
    let mut rec = Recorder::default();
    let mut n = match Nats::connect(addr, Duration::from_secs(10)).await {
        Ok(n) => n,
        Err(e) => {
            rec.fail(e, 1);
            return rec;
        }
    };
    let mut body = record(0, size);
    let start = Instant::now();
    let mut sent = 0u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    loop {
        let due = start + interval.mul_f64(sent as f64);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= limit {
            break;
        }
        body[4..12].copy_from_slice(&i.to_le_bytes());
        let t0 = Instant::now();
        rec.requests += 1;
        sent += 1;
        match n.request(&subject, &body, Duration::from_secs(10)).await {
            Ok(m) if m.status.is_none() => {
                let at = anchor.elapsed().as_micros() as u64;
                rec.latency(t0.elapsed());
                match serde_json::from_slice::<Value>(&m.payload) {
                    Ok(v) if v.get("error").is_none() && v.get("seq").is_some() => {
                        acks.set(i, at);
                        rec.records += 1;
                        rec.bytes += size as u64;
                    }
                    _ => rec.fail("bad PubAck", 1),
                }
            }
            Ok(m) => rec.fail(format!("status {}", m.status.unwrap_or(0)), 1),
            Err(e) => {
                rec.fail(e, 1);
                break;
            }
        }
    }
    rec
}

// ---------------------------------------------------------------------------------------
// Workers

/// Every delivery of this run's records: index → arrival times (µs since the anchor), and
/// whether it was acknowledged (sent, or with `--ack sync` confirmed).
#[derive(Default)]
struct Seen {
    by_record: HashMap<u64, (Vec<u64>, bool)>,
    /// Indices below this are the prefill's.
    live_from: u64,
    acked_prefill: u64,
    acked_live: u64,
    foreign: u64,
}

struct WorkerCtx {
    addr: SocketAddr,
    next_subject: String,
    batch: u32,
    expires: Duration,
    ack: AckMode,
    anchor: Instant,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct WorkerOut {
    /// Pull requests sent, and the time from each to its fetch's end.
    pulls: Recorder,
    /// AckSync round trips (`--ack sync`).
    ack: Recorder,
    empty_pulls: u64,
    statuses: HashMap<u16, u64>,
    records_received: u64,
    records_acknowledged: u64,
    reconnects: u64,
}

fn note_ack(seen: &Mutex<Seen>, index: Option<u64>) {
    let Some(i) = index else { return };
    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
    let live_from = s.live_from;
    let e = s.by_record.entry(i).or_default();
    if !e.1 {
        e.1 = true;
        if i < live_from {
            s.acked_prefill += 1;
        } else {
            s.acked_live += 1;
        }
    }
}

/// One `Fetch`: the no_wait request, the long poll when that found nothing, every message
/// acknowledged as it arrives. Ends at `batch` messages or a status that ends the request.
async fn fetch(n: &mut Nats, c: &WorkerCtx, out: &mut WorkerOut) -> Result<(), String> {
    let expires_ns = c.expires.as_nanos() as u64;
    let mut no_wait = true;
    let mut inbox = n.token();
    let request = |no_wait: bool| {
        json!({"batch": c.batch, "expires": expires_ns, "no_wait": no_wait})
            .to_string()
            .into_bytes()
    };
    n.publish(&c.next_subject, Some(&inbox), &request(true));
    let t0 = Instant::now();
    out.pulls.requests += 1;
    let mut got = 0u32;
    // The server ends every pull within `expires` (408); a silent connection is broken.
    let limit = c.expires + Duration::from_secs(10);
    loop {
        let m = match tokio::time::timeout(limit, n.next()).await {
            Ok(m) => m?,
            Err(_) => return Err(format!("no pull answer within {limit:?}")),
        };
        if let Some(status) = m.status {
            if m.subject != inbox {
                continue;
            }
            *out.statuses.entry(status).or_default() += 1;
            if got == 0 && no_wait && (status == 404 || status == 408) {
                // Nothing to hand out right now: wait for it, as nats.go's Fetch does.
                no_wait = false;
                inbox = n.token();
                n.publish(&c.next_subject, Some(&inbox), &request(false));
                out.pulls.requests += 1;
                continue;
            }
            break;
        }
        let Some(ack_subject) = m.reply.as_deref().filter(|r| r.starts_with("$JS.ACK.")) else {
            continue;
        };
        let at_us = c.anchor.elapsed().as_micros() as u64;
        let index = index_of(&m.payload);
        {
            let mut s = c.seen.lock().unwrap_or_else(|p| p.into_inner());
            match index {
                Some(i) => s.by_record.entry(i).or_default().0.push(at_us),
                None => s.foreign += 1,
            }
        }
        got += 1;
        out.records_received += 1;
        out.pulls.records += 1;
        out.pulls.bytes += m.payload.len() as u64;
        match c.ack {
            AckMode::Async => {
                let ack_subject = ack_subject.to_string();
                n.publish(&ack_subject, None, b"+ACK");
                out.records_acknowledged += 1;
                note_ack(&c.seen, index);
            }
            AckMode::Sync => {
                let ack_subject = ack_subject.to_string();
                let t = Instant::now();
                out.ack.requests += 1;
                match n
                    .request(&ack_subject, b"+ACK", Duration::from_secs(10))
                    .await
                {
                    Ok(a) if a.status.is_none() => {
                        out.ack.latency(t.elapsed());
                        out.ack.records += 1;
                        out.records_acknowledged += 1;
                        note_ack(&c.seen, index);
                    }
                    Ok(a) => out.ack.fail(format!("status {}", a.status.unwrap_or(0)), 1),
                    Err(e) => return Err(e),
                }
            }
        }
        if got >= c.batch {
            break;
        }
    }
    out.pulls.latency(t0.elapsed());
    if got == 0 {
        out.empty_pulls += 1;
    }
    Ok(())
}

async fn worker(c: WorkerCtx) -> WorkerOut {
    let mut out = WorkerOut::default();
    let mut conn: Option<Nats> = None;
    while !c.stop.load(Ordering::Acquire) {
        let n = match conn.as_mut() {
            Some(n) => n,
            None => match Nats::connect(c.addr, Duration::from_secs(10)).await {
                Ok(n) => conn.insert(n),
                Err(e) => {
                    out.pulls.fail(e, 1);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(e) = fetch(n, &c, &mut out).await {
            out.pulls.fail(e, 1);
            out.reconnects += 1;
            conn = None;
        }
    }
    if let Some(mut n) = conn {
        let _ = n.flush().await;
    }
    out
}

fn spawn_workers(
    o: &Opts<'_>,
    next_subject: &str,
    anchor: Instant,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
) -> tokio::task::JoinSet<WorkerOut> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..o.workers.max(1) {
        set.spawn(worker(WorkerCtx {
            addr: o.nats,
            next_subject: next_subject.to_string(),
            batch: o.batch.clamp(1, 256),
            expires: Duration::from_secs(o.wait_time_seconds.clamp(1, 20) as u64),
            ack: o.ack,
            anchor,
            stop: stop.clone(),
            seen: seen.clone(),
        }));
    }
    set
}

async fn join_workers(mut set: tokio::task::JoinSet<WorkerOut>) -> WorkerOut {
    let mut all = WorkerOut::default();
    while let Some(r) = set.join_next().await {
        let Ok(w) = r else {
            all.pulls.fail("worker task failed", 1);
            continue;
        };
        all.pulls.merge(w.pulls);
        all.ack.merge(w.ack);
        all.empty_pulls += w.empty_pulls;
        for (k, v) in w.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        all.records_received += w.records_received;
        all.records_acknowledged += w.records_acknowledged;
        all.reconnects += w.reconnects;
    }
    all
}

fn workers_json(w: &mut WorkerOut) -> Value {
    let statuses: HashMap<String, u64> = w
        .statuses
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    json!({
        "pull_requests": w.pulls.requests,
        "empty_fetches": w.empty_pulls,
        "pull_statuses": statuses,
        "records_received": w.records_received,
        "records_acknowledged": w.records_acknowledged,
        "fetch_latency_ms": percentiles(&mut w.pulls.latency_us),
        "failures": w.pulls.failures_json(),
        "ack_sync_calls": w.ack.requests,
        "ack_sync_latency_ms": percentiles(&mut w.ack.latency_us),
        "ack_failures": w.ack.failures_json(),
        "reconnects": w.reconnects,
    })
}

/// Missing (acknowledged publishes never received), duplicate deliveries, and each record's
/// latency from its PubAck to its first arrival, over `ids`.
fn tally(acks: &PubAcks, seen: &Seen, ids: std::ops::Range<u64>) -> (u64, u64, Vec<(i64, u64)>) {
    let (mut missing, mut dups) = (0u64, 0u64);
    let mut latency = Vec::new();
    for i in ids {
        let acked = acks.get(i);
        match seen.by_record.get(&i) {
            Some((times, _)) => {
                dups += times.len().saturating_sub(1) as u64;
                if let (Some(at), Some(first)) = (acked, times.first()) {
                    latency.push((*first as i64 - at as i64, 1));
                }
            }
            None if acked.is_some() => missing += 1,
            None => {}
        }
    }
    (missing, dups, latency)
}

// ---------------------------------------------------------------------------------------
// The run

pub async fn run(cli: &Cli, o: Opts<'_>, report: &mut Report) -> Result<(), String> {
    let mut admin = Nats::connect(o.nats, cli.create_timeout.min(Duration::from_secs(30))).await?;
    let stream = o.stream_name;
    let consumer = "workers";
    let subject = format!("{stream}.records");
    admin
        .api(
            &format!("$JS.API.STREAM.CREATE.{stream}"),
            json!({
                "name": stream,
                "subjects": [subject],
                "retention": "workqueue",
                "storage": "file",
                "num_replicas": 1,
                "discard": "old",
            }),
        )
        .await?;
    let created = admin
        .api(
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}"),
            json!({
                "stream_name": stream,
                "config": {
                    "durable_name": consumer,
                    "deliver_policy": "all",
                    "ack_policy": "explicit",
                    "ack_wait": o.ack_wait_seconds as u64 * 1_000_000_000,
                    "max_deliver": o.max_deliver,
                },
            }),
        )
        .await;
    let outcome = match created {
        Ok(info) => {
            report.set("consumer_config", info["config"].clone());
            measure(cli, &mut admin, stream, consumer, &subject, &o, report).await
        }
        Err(e) => Err(e),
    };
    if !cli.keep_streams
        && let Err(e) = admin
            .api(&format!("$JS.API.STREAM.DELETE.{stream}"), json!({}))
            .await
    {
        eprintln!("kinesis-loadgen: deleting the JetStream stream: {e}");
    }
    outcome
}

/// Messages the stream holds: a work-queue stream drops each message once acknowledged.
async fn stream_messages(admin: &mut Nats, stream: &str) -> Result<u64, String> {
    let v = admin
        .api(&format!("$JS.API.STREAM.INFO.{stream}"), json!({}))
        .await?;
    v["state"]["messages"]
        .as_u64()
        .ok_or_else(|| "STREAM.INFO: no state.messages".to_string())
}

async fn measure(
    cli: &Cli,
    admin: &mut Nats,
    stream: &str,
    consumer: &str,
    subject: &str,
    o: &Opts<'_>,
    report: &mut Report,
) -> Result<(), String> {
    let anchor = Instant::now();
    let w = o.write;
    let writers = w.concurrency.max(1);
    // The live phase cannot publish more than rate × duration (plus a margin for rounding).
    let live_cap = (o.rate.max(0.0) * w.duration.as_secs_f64()).ceil() as u64 + writers as u64;
    let acks = Arc::new(PubAcks::new(o.prefill + live_cap));
    let next_index = Arc::new(AtomicU64::new(0));
    let next_subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
    let publishing = Publishing {
        addr: o.nats,
        subject: subject.to_string(),
        next: next_index.clone(),
        size: w.record_size,
        anchor,
        acks: acks.clone(),
    };

    // 1. The prefill, untimed, then the workers drain it.
    let mut prefilled = 0;
    if o.prefill > 0 {
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..writers {
            set.spawn(prefill_publisher(
                publishing.clone(),
                o.prefill,
                t0 + o.drain_timeout,
            ));
        }
        let mut prec = Recorder::default();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                prec.merge(r);
            }
        }
        prefilled = prec.records;
        report.set(
            "prefill",
            json!({
                "records": prefilled,
                "records_per_s": round3(prefilled as f64 / t0.elapsed().as_secs_f64().max(1e-9)),
                "puback_latency_ms": percentiles(&mut prec.latency_us),
                "failures": prec.failures_json(),
            }),
        );
        if prefilled == 0 {
            return Err("queue-jetstream: the prefill stored nothing".into());
        }
        next_index.store(o.prefill, Ordering::Relaxed);
    }
    let seen = Arc::new(Mutex::new(Seen {
        live_from: o.prefill,
        ..Default::default()
    }));
    if prefilled > 0 {
        let stop = Arc::new(AtomicBool::new(false));
        let watch = cli.server_pid.map(ProcWatch::start);
        let start = Instant::now();
        let set = spawn_workers(o, &next_subject, anchor, &stop, &seen);
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
        // Fire-and-forget acks are only sent: the stream empties once the server applied
        // them all. Polled here, while the workers go on pulling (they find nothing).
        let mut emptied_after = None;
        let until = Instant::now() + Duration::from_secs(30);
        while done_at.is_some() && Instant::now() < until {
            match stream_messages(admin, stream).await {
                Ok(0) => {
                    emptied_after = Some(start.elapsed());
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) => {
                    eprintln!("kinesis-loadgen: {e}");
                    break;
                }
            }
        }
        stop.store(true, Ordering::Release);
        let server = ProcWatch::finish_if_any(watch).await;
        let mut wout = join_workers(set).await;
        let s = seen.lock().unwrap_or_else(|p| p.into_inner());
        let (missing, dups, _) = tally(&acks, &s, 0..o.prefill);
        let acked = s.acked_prefill;
        let rate = round3(acked as f64 / took.as_secs_f64().max(1e-9));
        let mut drain = json!({
            "records": acked,
            "records_per_s": rate,
            "elapsed_s": round3(took.as_secs_f64()),
            "complete": done_at.is_some(),
            "stream_empty_after_s": emptied_after.map(|d| round3(d.as_secs_f64())),
            "missing": missing,
            "duplicates": dups,
            "foreign": s.foreign,
            "server": server,
        });
        if let (Some(d), Value::Object(m)) = (drain.as_object_mut(), workers_json(&mut wout)) {
            d.extend(m);
        }
        // report.py compares the broker's queue_drain.records_per_s with this row's
        // records_per_s.
        report.set("records_per_s", json!(rate));
        report.set("queue_drain", drain);
    }

    // 2. Live: publishers at --rate while the workers long-poll.
    if o.rate > 0.0 && !w.duration.is_zero() {
        let stop = Arc::new(AtomicBool::new(false));
        let set = spawn_workers(o, &next_subject, anchor, &stop, &seen);
        // Let every worker's long poll start before the first publish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let watch = cli.server_pid.map(ProcWatch::start);
        let start = Instant::now();
        let deadline = start + w.duration;
        let limit = o.prefill + live_cap;
        let mut wset = tokio::task::JoinSet::new();
        for _ in 0..writers {
            wset.spawn(rate_publisher(
                publishing.clone(),
                limit,
                o.rate / writers as f64,
                deadline,
            ));
        }
        let mut wrec = Recorder::default();
        while let Some(r) = wset.join_next().await {
            if let Ok(r) = r {
                wrec.merge(r);
            }
        }
        let took = start.elapsed();
        let live_ids = o.prefill..next_index.load(Ordering::Relaxed).min(limit);
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
        let (missing, dups, mut latency) = tally(&acks, &s, live_ids);
        let lat = weighted_percentiles(&mut latency);
        let written = wrec.records;
        let mut live = json!({
            "written": written,
            "write_rate": round3(written as f64 / took.as_secs_f64().max(1e-9)),
            "puback_latency_ms": percentiles(&mut wrec.latency_us),
            "write_failures": wrec.failures_json(),
            "delivered": latency.len(),
            "acknowledged": s.acked_live,
            "missing": missing,
            "duplicates": dups,
            "ack_to_receipt_ms": lat,
            "server": server,
        });
        if let (Some(d), Value::Object(m)) = (live.as_object_mut(), workers_json(&mut wout)) {
            d.extend(m);
        }
        report.set("queue_live", live);
    }
    report.set("workers", json!(o.workers.max(1)));
    Ok(())
}
