//! The workloads: stream set-up and tear-down, writers, readers, and the report.

use crate::client::{CallError, Client, Conn, payload_hash};
use crate::stats::{ProcWatch, Recorder, cpu_seconds, percentiles, round3};
use crate::{Cli, Payload, Workload, WriteOpts};
use base64_simd::STANDARD as B64;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Marks records written by produce-consume: magic, then the send time in µs since the
/// run's anchor (little-endian u64), then 4 bytes of padding.
const MAGIC: &[u8; 4] = b"KLG1";
const HEADER_LEN: usize = 16;

/// xorshift64*: cheap, deterministic per task, good enough for keys and filler.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n.max(1))) >> 32) as u32
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

pub(crate) fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

pub(crate) fn is_retryable_control(kind: &str) -> bool {
    matches!(
        kind,
        "LimitExceededException" | "TransportError" | "Timeout" | "ThrottlingException"
    )
}

// ---------------------------------------------------------------------------------------
// Control plane

async fn create_stream(
    conn: &mut Conn,
    name: &str,
    shards: u32,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match conn
            .call_json(
                "CreateStream",
                if shards == 0 {
                    json!({"StreamName": name, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}})
                } else {
                    json!({"StreamName": name, "ShardCount": shards})
                },
            )
            .await
        {
            Ok(_) => break,
            Err(e) if e.kind() == "ResourceInUseException" => break,
            Err(CallError::Api { kind, message, .. })
                if kind == "LimitExceededException" && message.contains("shard limit") =>
            {
                return Err(format!(
                    "CreateStream {name}: the account's shard limit is reached ({message}); \
                     --accounts spreads streams over several accounts"
                ));
            }
            Err(e) if is_retryable_control(&e.kind()) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("CreateStream {name}: {e}")),
        }
    }
    wait_active(conn, name, deadline).await
}

async fn wait_active(conn: &mut Conn, name: &str, deadline: Instant) -> Result<(), String> {
    let mut summary = true;
    loop {
        let status = if summary {
            match conn
                .call_json("DescribeStreamSummary", json!({"StreamName": name}))
                .await
            {
                Ok(v) => v["StreamDescriptionSummary"]["StreamStatus"]
                    .as_str()
                    .map(str::to_owned),
                Err(e) if matches!(&e, CallError::Api { kind, .. } if kind.contains("UnknownOperation")) =>
                {
                    summary = false;
                    continue;
                }
                Err(e)
                    if is_retryable_control(&e.kind())
                        || e.kind() == "ResourceNotFoundException" =>
                {
                    None
                }
                Err(e) => return Err(format!("DescribeStreamSummary {name}: {e}")),
            }
        } else {
            match conn
                .call_json("DescribeStream", json!({"StreamName": name, "Limit": 1}))
                .await
            {
                Ok(v) => v["StreamDescription"]["StreamStatus"]
                    .as_str()
                    .map(str::to_owned),
                Err(e)
                    if is_retryable_control(&e.kind())
                        || e.kind() == "ResourceNotFoundException" =>
                {
                    None
                }
                Err(e) => return Err(format!("DescribeStream {name}: {e}")),
            }
        };
        if status.as_deref() == Some("ACTIVE") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "stream {name} not ACTIVE in time (last status {status:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Open shards of a stream, by ListShards (paged).
pub(crate) async fn list_shards(conn: &mut Conn, name: &str) -> Result<Vec<String>, String> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let body = match &token {
            None => json!({"StreamName": name}),
            Some(t) => json!({"NextToken": t}),
        };
        let v = conn
            .call_json("ListShards", body)
            .await
            .map_err(|e| format!("ListShards {name}: {e}"))?;
        for shard in v["Shards"].as_array().into_iter().flatten() {
            let open = shard["SequenceNumberRange"]["EndingSequenceNumber"].is_null();
            if let (true, Some(id)) = (open, shard["ShardId"].as_str()) {
                ids.push(id.to_string());
            }
        }
        match v["NextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(ids),
        }
    }
}

/// Creates `names` (8 at a time), each with `shards` shards, and waits for ACTIVE.
async fn create_streams(
    client: &Arc<Client>,
    names: &[String],
    shards: u32,
    timeout: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    for (c, chunk) in names.chunks(8).enumerate() {
        let mut set = tokio::task::JoinSet::new();
        for (j, name) in chunk.iter().enumerate() {
            let client = client.clone();
            let name = name.clone();
            set.spawn(async move {
                let mut conn = Conn::new(client);
                conn.account = c * 8 + j;
                create_stream(&mut conn, &name, shards, timeout).await
            });
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| e.to_string())??;
        }
    }
    Ok(start.elapsed())
}

async fn delete_streams(client: &Arc<Client>, names: &[String]) {
    let mut conn = Conn::new(client.clone());
    for (i, name) in names.iter().enumerate() {
        conn.account = i;
        if let Err(e) = conn
            .call_json("DeleteStream", json!({"StreamName": name}))
            .await
        {
            eprintln!("kinesis-loadgen: DeleteStream {name}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies

fn push_record(s: &mut String, data: &[u8], key: u32) {
    s.push_str("{\"Data\":\"");
    B64.encode_append(data, s);
    let _ = write!(s, "\",\"PartitionKey\":\"pk-{key}\"}}");
}

/// Words of the JSON payload's text: a small vocabulary, so the text compresses roughly as
/// log and event text does rather than as random bytes.
const WORDS: [&str; 32] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "order", "click", "checkout",
    "session", "payment", "error",
];
const EVENTS: [&str; 4] = ["view", "click", "purchase", "signup"];

/// The shortest JSON payload: the fixed fields with their widest values and an empty text.
pub(crate) const JSON_PAYLOAD_MIN: usize = 110;

/// Fills `buf` with one JSON object of exactly `buf.len()` bytes (at least
/// [`JSON_PAYLOAD_MIN`]): numbered, timestamped event fields and a text of random words.
fn fill_json(rng: &mut Rng, buf: &mut [u8]) {
    let mut s = String::with_capacity(buf.len());
    let _ = write!(
        s,
        "{{\"id\":{},\"ts\":{},\"user\":\"user-{:06}\",\"event\":\"{}\",\"amount\":{}.{:02},\"text\":\"",
        rng.next() >> 12,
        1_700_000_000_000u64 + (rng.next() >> 40),
        rng.below(1_000_000),
        EVENTS[rng.below(EVENTS.len() as u32) as usize],
        rng.below(10_000),
        rng.below(100),
    );
    let text_end = buf.len().saturating_sub(2);
    while s.len() < text_end {
        s.push_str(WORDS[rng.below(WORDS.len() as u32) as usize]);
        s.push(' ');
    }
    s.truncate(text_end);
    s.push_str("\"}");
    let n = s.len().min(buf.len());
    buf[..n].copy_from_slice(&s.as_bytes()[..n]);
}

fn fill_payload(payload: Payload, rng: &mut Rng, buf: &mut [u8]) {
    match payload {
        Payload::Random => rng.fill(buf),
        Payload::Json => fill_json(rng, buf),
    }
}

/// How the full-speed writers write: their total rate (0: unpaced) and what each record holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Writing {
    pub rate: f64,
    pub payload: Payload,
}

impl Default for Writing {
    fn default() -> Self {
        Self {
            rate: 0.0,
            payload: Payload::Random,
        }
    }
}

/// A PutRecords body of `n` records; `fill` writes each record's data.
fn put_records_body(
    stream: &str,
    n: usize,
    record_size: usize,
    keys: u32,
    rng: &mut Rng,
    mut fill: impl FnMut(&mut Rng, &mut [u8]),
) -> String {
    let mut s = String::with_capacity(64 + n * (record_size * 4 / 3 + 40));
    let mut data = vec![0u8; record_size];
    let _ = write!(s, "{{\"StreamName\":\"{stream}\",\"Records\":[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        fill(rng, &mut data);
        let key = rng.below(keys);
        push_record(&mut s, &data, key);
    }
    s.push_str("]}");
    s
}

fn put_record_body(
    stream: &str,
    record_size: usize,
    keys: u32,
    payload: Payload,
    rng: &mut Rng,
) -> String {
    let mut data = vec![0u8; record_size];
    fill_payload(payload, rng, &mut data);
    let mut s = String::with_capacity(96 + record_size * 4 / 3);
    let _ = write!(s, "{{\"StreamName\":\"{stream}\",\"Data\":\"");
    B64.encode_append(&data, &mut s);
    let _ = write!(s, "\",\"PartitionKey\":\"pk-{}\"}}", rng.below(keys));
    s
}

#[derive(Deserialize)]
pub(crate) struct PutRecordsOut<'a> {
    #[serde(rename = "FailedRecordCount", default)]
    pub failed: Option<u64>,
    #[serde(rename = "Records", borrow, default)]
    pub records: Vec<PutEntry<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct PutEntry<'a> {
    #[serde(rename = "ErrorCode", borrow, default)]
    pub error_code: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct GetRecordsOut<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<RecordOut<'a>>,
    #[serde(rename = "NextShardIterator", default)]
    next: Option<String>,
    #[serde(rename = "MillisBehindLatest", default)]
    behind: Option<i64>,
}

#[derive(Deserialize)]
struct RecordOut<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
}

fn decoded_len(b64: &str) -> u64 {
    let pad = b64.bytes().rev().take_while(|&b| b == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(pad) as u64
}

/// Counts a PutRecords answer into `rec`: acknowledged records and per-entry failures.
fn count_put_records(rec: &mut Recorder, body: &[u8], n: usize, record_size: usize) {
    match serde_json::from_slice::<PutRecordsOut>(body) {
        Ok(out) => {
            let failed = out.failed.unwrap_or(0);
            if failed > 0 {
                for e in &out.records {
                    if let Some(code) = &e.error_code {
                        rec.fail(code.as_ref(), 1);
                    }
                }
            }
            let ok = (n as u64).saturating_sub(failed);
            rec.records += ok;
            rec.bytes += ok * record_size as u64;
        }
        Err(_) => rec.fail("BadAnswer", n as u64),
    }
}

// ---------------------------------------------------------------------------------------
// Writers at full speed

#[derive(Clone)]
struct WriteSpec {
    streams: Arc<Vec<String>>,
    batch: usize,
    record_size: usize,
    keys: u32,
    deadline: Instant,
    /// Records still allowed (`--total`), claimed a request at a time.
    budget: Option<Arc<AtomicI64>>,
    /// Records/s for this writer; 0: unpaced.
    rate: f64,
    payload: Payload,
}

/// One writer: prepares a few request bodies (and their SHA-256) up front and cycles
/// through them, so that the client spends its CPU on sending, not on building.
async fn write_worker(client: Arc<Client>, spec: WriteSpec, worker: usize) -> Recorder {
    let mut rng = Rng::new(worker as u64 + 1);
    let mut rec = Recorder::default();
    let single = spec.batch <= 1;
    let op = if single { "PutRecord" } else { "PutRecords" };
    let n_bodies = if spec.streams.len() > 1 {
        spec.streams.len()
    } else if single {
        64
    } else {
        4
    };
    let bodies: Vec<(Bytes, String, usize)> = (0..n_bodies)
        .map(|i| {
            let index = (worker + i) % spec.streams.len();
            let stream = &spec.streams[index];
            let body = if single {
                put_record_body(stream, spec.record_size, spec.keys, spec.payload, &mut rng)
            } else {
                put_records_body(
                    stream,
                    spec.batch,
                    spec.record_size,
                    spec.keys,
                    &mut rng,
                    |r, d| fill_payload(spec.payload, r, d),
                )
            };
            let hash = payload_hash(body.as_bytes());
            (Bytes::from(body), hash, index)
        })
        .collect();
    let mut conn = Conn::new(client);
    let mut i = 0usize;
    let start = Instant::now();
    let mut sent = 0u64;
    while Instant::now() < spec.deadline {
        if spec.rate > 0.0 {
            // Paced on the run's clock, not per request: a slow answer is caught up after.
            let due = start + Duration::from_secs_f64(sent as f64 / spec.rate);
            if due >= spec.deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            sent += spec.batch as u64;
        }
        if let Some(b) = &spec.budget
            && b.fetch_sub(spec.batch as i64, Ordering::Relaxed) <= 0
        {
            break;
        }
        let (body, hash, index) = &bodies[i % bodies.len()];
        i += 1;
        conn.account = *index;
        let t0 = Instant::now();
        let result = conn.call(op, body.clone(), Some(hash)).await;
        rec.latency(t0.elapsed());
        rec.requests += 1;
        match result {
            Ok(answer) if !single => {
                count_put_records(&mut rec, &answer, spec.batch, spec.record_size)
            }
            Ok(_) => {
                rec.records += 1;
                rec.bytes += spec.record_size as u64;
            }
            Err(e) => {
                rec.fail(e.kind(), spec.batch as u64);
                if matches!(e, CallError::Transport(_)) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    rec
}

async fn run_writers(
    client: &Arc<Client>,
    streams: Arc<Vec<String>>,
    batch: usize,
    w: &WriteOpts,
    how: Writing,
) -> (Recorder, Duration) {
    let start = Instant::now();
    let writers = w.concurrency.max(1);
    let spec = WriteSpec {
        streams,
        batch: batch.max(1),
        record_size: w.record_size,
        keys: w.partition_keys.max(1),
        deadline: start + w.duration,
        budget: w.total.map(|t| Arc::new(AtomicI64::new(t as i64))),
        rate: how.rate.max(0.0) / writers as f64,
        payload: how.payload,
    };
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..writers {
        set.spawn(write_worker(client.clone(), spec.clone(), worker));
    }
    let mut total = Recorder::default();
    while let Some(r) = set.join_next().await {
        total.merge(r.expect("writer task"));
    }
    (total, start.elapsed())
}

// ---------------------------------------------------------------------------------------
// Readers

pub(crate) async fn shard_iterator(
    conn: &mut Conn,
    stream: &str,
    shard: &str,
) -> Result<String, CallError> {
    let v = conn
        .call_json(
            "GetShardIterator",
            json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
        )
        .await?;
    v["ShardIterator"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| CallError::Transport("no ShardIterator in the answer".into()))
}

/// Reads one shard from TRIM_HORIZON until it is drained, everything written has been
/// read, or the deadline.
pub(crate) async fn drain_shard(
    client: Arc<Client>,
    stream: String,
    shard: String,
    limit: u32,
    written: u64,
    read: Arc<AtomicU64>,
    deadline: Instant,
) -> Recorder {
    let mut rec = Recorder::default();
    let mut conn = Conn::new(client);
    let mut iterator = match shard_iterator(&mut conn, &stream, &shard).await {
        Ok(it) => it,
        Err(e) => {
            rec.fail(e.kind(), 1);
            return rec;
        }
    };
    while Instant::now() < deadline && read.load(Ordering::Relaxed) < written {
        let body = json!({"ShardIterator": iterator, "Limit": limit}).to_string();
        let t0 = Instant::now();
        let result = conn.call("GetRecords", Bytes::from(body), None).await;
        rec.latency(t0.elapsed());
        rec.requests += 1;
        match result {
            Ok(answer) => {
                let Ok(out) = serde_json::from_slice::<GetRecordsOut>(&answer) else {
                    rec.fail("BadAnswer", 1);
                    break;
                };
                let n = out.records.len() as u64;
                rec.records += n;
                rec.bytes += out
                    .records
                    .iter()
                    .map(|r| decoded_len(&r.data))
                    .sum::<u64>();
                read.fetch_add(n, Ordering::Relaxed);
                match out.next {
                    Some(next) => iterator = next,
                    None => break,
                }
                if n == 0 && out.behind.unwrap_or(0) == 0 {
                    break;
                }
            }
            Err(e) => {
                let kind = e.kind();
                rec.fail(kind.clone(), 1);
                if kind == "ExpiredIteratorException" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    rec
}

/// Produce-consume: a consumer of one shard, recording end-to-end latencies.
struct ConsumerCtx {
    client: Arc<Client>,
    stream: String,
    shard: String,
    limit: u32,
    poll: Duration,
    anchor: Instant,
    /// Set when the writers are done, with `written` and `grace_until_us` filled in.
    done: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    read: Arc<AtomicU64>,
    grace_until_us: Arc<AtomicU64>,
    acks: Arc<AckBook>,
}

/// When each produce-consume PutRecords request was acknowledged (µs since the anchor), by
/// the request id the writer puts in each record's header. It lets a consumer tell the wait
/// for its own next poll, which no server can shorten, from the time the server takes.
#[derive(Default)]
struct AckBook {
    acked_us: std::sync::Mutex<Vec<u64>>,
    next_id: AtomicU64,
}

impl AckBook {
    fn next_id(&self) -> u32 {
        // Ids wrap after 4 billion requests: far beyond any bounded run.
        self.next_id.fetch_add(1, Ordering::Relaxed) as u32
    }

    fn acked(&self, id: u32, at_us: u64) {
        let mut v = self.acked_us.lock().unwrap_or_else(|p| p.into_inner());
        let i = id as usize;
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        v[i] = at_us;
    }
}

async fn consume_shard(c: ConsumerCtx) -> Recorder {
    let mut rec = Recorder::default();
    let mut conn = Conn::new(c.client.clone());
    let us = |anchor: Instant| anchor.elapsed().as_micros() as u64;
    let mut iterator = match shard_iterator(&mut conn, &c.stream, &c.shard).await {
        Ok(it) => it,
        Err(e) => {
            rec.fail(e.kind(), 1);
            return rec;
        }
    };
    // Issue times of recent GetRecords calls (µs since the anchor), oldest first.
    let mut issued: VecDeque<u64> = VecDeque::with_capacity(1024);
    loop {
        let mut behind = false;
        if c.done.load(Ordering::Acquire)
            && (c.read.load(Ordering::Relaxed) >= c.written.load(Ordering::Relaxed)
                || us(c.anchor) > c.grace_until_us.load(Ordering::Relaxed))
        {
            break;
        }
        let t0 = Instant::now();
        let issue_us = us(c.anchor);
        if issued.len() == 1024 {
            issued.pop_front();
        }
        issued.push_back(issue_us);
        let body = json!({"ShardIterator": iterator, "Limit": c.limit}).to_string();
        let result = conn.call("GetRecords", Bytes::from(body), None).await;
        rec.latency(t0.elapsed());
        rec.requests += 1;
        match result {
            Ok(answer) => {
                let now_us = us(c.anchor);
                let Ok(out) = serde_json::from_slice::<GetRecordsOut>(&answer) else {
                    rec.fail("BadAnswer", 1);
                    break;
                };
                let acks = c.acks.acked_us.lock().unwrap_or_else(|p| p.into_inner());
                for r in &out.records {
                    rec.bytes += decoded_len(&r.data);
                    let Some(head) = r.data.get(..24).and_then(|h| B64.decode_to_vec(h).ok())
                    else {
                        continue;
                    };
                    if &head[..4] != MAGIC {
                        continue;
                    }
                    let sent_us = u64::from_le_bytes(head[4..12].try_into().unwrap());
                    let id = u32::from_le_bytes(head[12..16].try_into().unwrap());
                    let e2e = now_us.saturating_sub(sent_us);
                    rec.e2e_us.push(e2e.min(u32::MAX as u64) as u32);
                    // The poller's own wait: from the write's acknowledgement to the first
                    // poll issued after it. A record read before its acknowledgement reached
                    // the writer (visible as soon as appended) had no such wait.
                    let ack_us = acks.get(id as usize).copied().unwrap_or(0);
                    let mut poll_wait = 0;
                    if ack_us != 0 {
                        for &t in issued.iter().rev() {
                            if t < ack_us {
                                break;
                            }
                            poll_wait = t - ack_us;
                        }
                    }
                    rec.server_share_us
                        .push(e2e.saturating_sub(poll_wait).min(u32::MAX as u64) as u32);
                }
                drop(acks);
                let n = out.records.len() as u64;
                rec.records += n;
                c.read.fetch_add(n, Ordering::Relaxed);
                // A full answer, or one that says the shard holds more: read on at once, as
                // a consumer that is behind does; the poll interval is for a caught-up one.
                behind = n >= u64::from(c.limit) || out.behind.unwrap_or(0) > 0;
                match out.next {
                    Some(next) => iterator = next,
                    None => break,
                }
            }
            Err(e) => {
                let kind = e.kind();
                rec.fail(kind.clone(), 1);
                if kind == "ExpiredIteratorException" {
                    match shard_iterator(&mut conn, &c.stream, &c.shard).await {
                        Ok(it) => iterator = it, // re-reads from the start: counted twice
                        Err(_) => break,
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if !c.poll.is_zero() && !behind {
            tokio::time::sleep_until((t0 + c.poll).into()).await;
        }
    }
    rec
}

/// Produce-consume: a writer at `rate` records/s, sending what is due every `tick`.
#[allow(clippy::too_many_arguments)]
async fn rate_writer(
    client: Arc<Client>,
    stream: String,
    rate: f64,
    max_batch: usize,
    record_size: usize,
    keys: u32,
    deadline: Instant,
    anchor: Instant,
    seed: u64,
    acks: Arc<AckBook>,
) -> Recorder {
    let tick = Duration::from_millis(10);
    let record_size = record_size.max(HEADER_LEN);
    let mut rng = Rng::new(seed);
    let mut rec = Recorder::default();
    let mut conn = Conn::new(client);
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < deadline {
        interval.tick().await;
        let due = (rate * start.elapsed().as_secs_f64()) as u64;
        while sent < due && Instant::now() < deadline {
            let n = ((due - sent) as usize).min(max_batch.max(1));
            let sent_us = anchor.elapsed().as_micros() as u64;
            let id = acks.next_id();
            let body = put_records_body(&stream, n, record_size, keys, &mut rng, |r, d| {
                d[..4].copy_from_slice(MAGIC);
                d[4..12].copy_from_slice(&sent_us.to_le_bytes());
                d[12..16].copy_from_slice(&id.to_le_bytes());
                r.fill(&mut d[HEADER_LEN..]);
            });
            let t0 = Instant::now();
            let result = conn.call("PutRecords", Bytes::from(body), None).await;
            rec.latency(t0.elapsed());
            rec.requests += 1;
            if result.is_ok() {
                acks.acked(id, anchor.elapsed().as_micros() as u64);
            }
            match result {
                Ok(answer) => count_put_records(&mut rec, &answer, n, record_size),
                Err(e) => rec.fail(e.kind(), n as u64),
            }
            sent += n as u64;
        }
    }
    rec
}

// ---------------------------------------------------------------------------------------
// The report

pub(crate) struct Report {
    obj: Map<String, Value>,
}

impl Report {
    fn new(cli: &Cli, workload: &str, params: Value) -> Self {
        let mut obj = Map::new();
        obj.insert("workload".into(), json!(workload));
        obj.insert("label".into(), json!(cli.label));
        obj.insert("endpoint".into(), json!(cli.endpoint));
        obj.insert("unix_ms".into(), json!(unix_ms() as u64));
        obj.insert("params".into(), params);
        obj.insert("accounts".into(), json!(cli.accounts.max(1)));
        Self { obj }
    }

    pub(crate) fn set(&mut self, k: &str, v: Value) {
        self.obj.insert(k.into(), v);
    }

    /// Rate, throughput, latencies and failures of a measured phase.
    pub(crate) fn phase(&mut self, mut rec: Recorder, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        self.set("elapsed_s", json!(round3(secs)));
        self.set("requests", json!(rec.requests));
        self.set("records", json!(rec.records));
        self.set("records_per_s", json!(round3(rec.records as f64 / secs)));
        self.set("mb_per_s", json!(round3(rec.bytes as f64 / secs / 1e6)));
        self.set("latency_ms", percentiles(&mut rec.latency_us));
        self.set("failures", rec.failures_json());
        if !rec.e2e_us.is_empty() {
            self.set("e2e_ms", percentiles(&mut rec.e2e_us));
            self.set(
                "e2e_minus_poll_wait_ms",
                percentiles(&mut rec.server_share_us),
            );
        }
    }

    fn emit(self, cli: &Cli) {
        let line = Value::Object(self.obj.clone()).to_string();
        println!("{line}");
        if let Some(path) = &cli.out {
            use std::io::Write;
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{line}");
                }
                Err(e) => eprintln!("kinesis-loadgen: cannot append to {}: {e}", path.display()),
            }
        }
        // The table, on stderr.
        let o = &self.obj;
        let g = |k: &str| o.get(k).cloned().unwrap_or(Value::Null);
        let ms = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_f64)
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "-".into())
        };
        let lat = g("latency_ms");
        eprintln!();
        eprintln!(
            "  workload        {} {}",
            g("workload").as_str().unwrap_or(""),
            g("label").as_str().unwrap_or("")
        );
        eprintln!("  params          {}", g("params"));
        eprintln!("  records/s       {:>12}", g("records_per_s"));
        eprintln!("  MB/s            {:>12}", g("mb_per_s"));
        eprintln!(
            "  requests        {:>12}   elapsed {} s",
            g("requests"),
            g("elapsed_s")
        );
        eprintln!(
            "  latency ms      p50 {}  p99 {}  max {}",
            ms(&lat, "p50"),
            ms(&lat, "p99"),
            ms(&lat, "max")
        );
        if let Some(delivered) = o.get("delivered") {
            eprintln!(
                "  delivered       {:>12}   {} records/s over {} consumer(s) in {} s",
                delivered,
                g("delivered_per_s"),
                g("consumers"),
                g("delivery_window_s")
            );
            for c in o
                .get("per_consumer")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let p = &c["propagation_ms"];
                eprintln!(
                    "    consumer {:<3}  {} records/s  propagation p50 {} p99 {} max {}  dup {} missing {}",
                    c["consumer"],
                    c["delivered_per_s"],
                    ms(p, "p50"),
                    ms(p, "p99"),
                    ms(p, "max"),
                    c["duplicates"],
                    c["missing"]
                );
            }
            let p = g("propagation_ms");
            eprintln!(
                "  propagation ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (from the write's acknowledgement; {} records arrived before it)",
                p["p50"].as_f64().unwrap_or(f64::NAN),
                p["p90"].as_f64().unwrap_or(f64::NAN),
                p["p99"].as_f64().unwrap_or(f64::NAN),
                p["max"].as_f64().unwrap_or(f64::NAN),
                g("delivered_before_ack")
            );
            eprintln!(
                "  duplicates      {}   missing {}   delivered unacknowledged {}",
                g("duplicates"),
                g("missing"),
                g("delivered_unacknowledged")
            );
            eprintln!(
                "  subscriptions   {}   events {} ({} empty)   failures {}   endings {}",
                g("subscriptions"),
                g("events"),
                g("empty_events"),
                g("subscribe_failures"),
                g("subscription_endings")
            );
        }
        if let (Some(get), Some(esm)) = (o.get("get_records_drain"), o.get("esm_drain")) {
            eprintln!(
                "  GetRecords drain {} records/s ({} records)",
                get["records_per_s"], get["records"]
            );
            eprintln!(
                "  mapping drain   {} records/s ({} delivered, {} batches of {} on average; {} of the GetRecords rate)",
                esm["records_per_s"],
                esm["delivered"],
                esm["batches"],
                esm["mean_batch"],
                esm["ratio_to_get_records"]
            );
        }
        if let Some(live) = o.get("esm_live") {
            let l = &live["ack_to_handler_ms"];
            eprintln!(
                "  ack -> handler  p50 {}  p90 {}  p99 {}  max {} ms  (delivered {}, missing {}, duplicates {})",
                ms(l, "p50"),
                ms(l, "p90"),
                ms(l, "p99"),
                ms(l, "max"),
                live["delivered"],
                live["missing"],
                live["duplicates"]
            );
        }
        if let Some(d) = o.get("queue_drain") {
            eprintln!(
                "  queue drain     {} records/s received+acknowledged ({} in {} s; missing {}, duplicates {}, empty receives {})",
                d["records_per_s"],
                d["records"],
                d["elapsed_s"],
                d["missing"],
                d["duplicates"],
                // queue-jetstream counts empty fetches, the queue workload empty receives.
                d.get("empty_receives").unwrap_or(&d["empty_fetches"])
            );
        }
        if let Some(live) = o.get("queue_live") {
            let l = &live["ack_to_receipt_ms"];
            eprintln!(
                "  ack -> receipt  p50 {}  p90 {}  p99 {}  max {} ms  (delivered {}, missing {}, duplicates {})",
                ms(l, "p50"),
                ms(l, "p90"),
                ms(l, "p99"),
                ms(l, "max"),
                live["delivered"],
                live["missing"],
                live["duplicates"]
            );
        }
        if let Some(e2e) = o.get("e2e_ms") {
            eprintln!(
                "  end-to-end ms   p50 {}  p99 {}  max {}",
                ms(e2e, "p50"),
                ms(e2e, "p99"),
                ms(e2e, "max")
            );
            if let Some(ap) = o.get("e2e_minus_poll_wait_ms") {
                eprintln!(
                    "  - poll wait     p50 {}  p99 {}  max {}",
                    ms(ap, "p50"),
                    ms(ap, "p99"),
                    ms(ap, "max")
                );
            }
        }
        eprintln!("  failures        {}", g("failures"));
        if let Some(s) = o.get("server").filter(|s| !s.is_null()) {
            eprintln!(
                "  server          cpu {} s  peak rss {} MB (anonymous {} MB, file {} MB, VmHWM {} MB)",
                s["cpu_s"], s["peak_rss_mb"], s["peak_anon_mb"], s["peak_file_mb"], s["vm_hwm_mb"]
            );
            eprintln!(
                "  server at end   rss {} MB (anonymous {} MB, file {} MB)",
                s["rss_mb"], s["rss_anon_mb"], s["rss_file_mb"]
            );
        }
        eprintln!("  client cpu      {} s", g("client_cpu_s"));
        eprintln!();
    }
}

fn write_params(w: &WriteOpts) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("concurrency".into(), json!(w.concurrency));
    m.insert("record_size".into(), json!(w.record_size));
    m.insert("partition_keys".into(), json!(w.partition_keys));
    m.insert("duration_s".into(), json!(w.duration.as_secs_f64()));
    m.insert("total".into(), json!(w.total));
    m
}

// ---------------------------------------------------------------------------------------

pub async fn run(cli: &Cli, client: Arc<Client>) -> Result<(), String> {
    let prefix = cli
        .stream
        .clone()
        .unwrap_or_else(|| format!("loadgen-{}-{}", std::process::id(), unix_ms()));
    let client_cpu0 = cpu_seconds(std::process::id());
    if matches!(cli.workload, Workload::QueueJetstream { .. }) {
        // Not a Kinesis endpoint: no stream to create or delete.
        return run_queue_jetstream(cli, client_cpu0).await;
    }

    // (workload name, params, streams, shards per stream)
    let (name, params, streams, shards) = match &cli.workload {
        Workload::QueueJetstream { .. } => {
            return Err("queue-jetstream has no Kinesis streams".into());
        }
        Workload::PutRecords {
            shards,
            batch_size,
            rate,
            payload,
            write,
        } => {
            if *payload == Payload::Json && write.record_size < JSON_PAYLOAD_MIN {
                return Err(format!(
                    "--payload json needs --record-size {JSON_PAYLOAD_MIN} or more"
                ));
            }
            let mut p = write_params(write);
            p.insert("shards".into(), json!(shards));
            p.insert("batch_size".into(), json!(batch_size));
            p.insert("rate".into(), json!(rate));
            p.insert(
                "payload".into(),
                json!(match payload {
                    Payload::Random => "random",
                    Payload::Json => "json",
                }),
            );
            ("put-records", p, vec![prefix.clone()], *shards)
        }
        Workload::PutRecord { shards, write } => {
            let mut p = write_params(write);
            p.insert("shards".into(), json!(shards));
            ("put-record", p, vec![prefix.clone()], *shards)
        }
        Workload::Connections {
            shards,
            idle,
            slowloris,
            slowloris_interval,
            refresh,
            rate,
            new_clients,
            baseline,
            connect_concurrency,
            write,
        } => {
            let mut p = write_params(write);
            p.insert("shards".into(), json!(shards));
            p.insert("idle".into(), json!(idle));
            p.insert("slowloris".into(), json!(slowloris));
            p.insert(
                "slowloris_interval_s".into(),
                json!(slowloris_interval.as_secs_f64()),
            );
            p.insert("refresh_s".into(), json!(refresh.as_secs_f64()));
            p.insert("rate".into(), json!(rate));
            p.insert("new_clients".into(), json!(new_clients));
            p.insert("baseline_s".into(), json!(baseline.as_secs_f64()));
            p.insert("connect_concurrency".into(), json!(connect_concurrency));
            ("connections", p, vec![prefix.clone()], *shards)
        }
        Workload::GetRecordsDrain {
            shards,
            batch_size,
            limit,
            write,
            ..
        } => {
            let mut p = write_params(write);
            p.insert("shards".into(), json!(shards));
            p.insert("batch_size".into(), json!(batch_size));
            p.insert("limit".into(), json!(limit));
            ("get-records-drain", p, vec![prefix.clone()], *shards)
        }
        Workload::ProduceConsume {
            shards,
            rate,
            max_batch,
            poll_interval_ms,
            limit,
            write,
            ..
        } => {
            let mut p = write_params(write);
            p.insert("shards".into(), json!(shards));
            p.insert("rate".into(), json!(rate));
            p.insert("max_batch".into(), json!(max_batch));
            p.insert("poll_interval_ms".into(), json!(poll_interval_ms));
            p.insert("limit".into(), json!(limit));
            ("produce-consume", p, vec![prefix.clone()], *shards)
        }
        Workload::Subscribe {
            shards,
            rate,
            consumers,
            max_batch,
            prefill,
            write,
            ..
        } => {
            let mut p = write_params(write);
            p.insert("shards".into(), json!(shards));
            p.insert("rate".into(), json!(rate));
            p.insert("consumers".into(), json!(consumers));
            p.insert("max_batch".into(), json!(max_batch));
            p.insert("prefill".into(), json!(prefill));
            ("subscribe", p, vec![prefix.clone()], *shards)
        }
        Workload::Esm {
            shards,
            function,
            batch_size,
            prefill,
            rate,
            handlers,
            max_batch,
            write,
            ..
        } => {
            let mut p = write_params(write);
            p.insert("shards".into(), json!(shards));
            p.insert("function".into(), json!(function));
            p.insert("batch_size".into(), json!(batch_size));
            p.insert("batching_window_s".into(), json!(0));
            p.insert("prefill".into(), json!(prefill));
            p.insert("rate".into(), json!(rate));
            p.insert("handlers".into(), json!(handlers));
            p.insert("max_batch".into(), json!(max_batch));
            ("esm", p, vec![prefix.clone()], *shards)
        }
        Workload::Queue {
            workers,
            limit,
            wait_time_seconds,
            prefill,
            rate,
            max_batch,
            write,
            ..
        } => {
            let mut p = write_params(write);
            p.insert("stream_mode".into(), json!("ON_DEMAND"));
            p.insert("workers".into(), json!(workers));
            p.insert("limit".into(), json!(limit));
            p.insert("wait_time_seconds".into(), json!(wait_time_seconds));
            p.insert("prefill".into(), json!(prefill));
            p.insert("rate".into(), json!(rate));
            p.insert("max_batch".into(), json!(max_batch));
            // Queues exist on ON_DEMAND streams only: 0 shards asks create_stream for one.
            ("queue", p, vec![prefix.clone()], 0)
        }
        Workload::ManyShards {
            streams,
            shards_per_stream,
            batch_size,
            write,
            ..
        }
        | Workload::ManyStreams {
            streams,
            shards_per_stream,
            batch_size,
            write,
            ..
        } => {
            let mut p = write_params(write);
            p.insert("streams".into(), json!(streams));
            p.insert("shards_per_stream".into(), json!(shards_per_stream));
            p.insert("batch_size".into(), json!(batch_size));
            let name = if matches!(cli.workload, Workload::ManyShards { .. }) {
                "many-shards"
            } else {
                "many-streams"
            };
            let names = (0..*streams).map(|i| format!("{prefix}-{i}")).collect();
            (name, p, names, *shards_per_stream)
        }
    };
    let mut report = Report::new(cli, name, Value::Object(params));

    if !cli.use_existing {
        let took = create_streams(&client, &streams, shards, cli.create_timeout).await?;
        report.set("create_s", json!(round3(took.as_secs_f64())));
    }
    let streams = Arc::new(streams);
    let outcome = run_workload(cli, &client, &streams, &mut report).await;
    if !cli.use_existing && !cli.keep_streams {
        delete_streams(&client, &streams).await;
    }
    outcome?;
    if let (Some(a), Some(b)) = (client_cpu0, cpu_seconds(std::process::id())) {
        report.set("client_cpu_s", json!(round3(b - a)));
    }
    report.emit(cli);
    Ok(())
}

async fn run_queue_jetstream(cli: &Cli, client_cpu0: Option<f64>) -> Result<(), String> {
    let Workload::QueueJetstream {
        nats,
        workers,
        batch,
        wait_time_seconds,
        prefill,
        rate,
        ack_wait_seconds,
        max_deliver,
        ack,
        stream_name,
        drain_timeout,
        grace,
        write,
    } = &cli.workload
    else {
        return Err("not the queue-jetstream workload".into());
    };
    let addr = {
        use std::net::ToSocketAddrs;
        let addrs: Vec<std::net::SocketAddr> = nats
            .to_socket_addrs()
            .map_err(|e| format!("--nats {nats}: {e}"))?
            .collect();
        match addrs.first() {
            Some(a) if cli.allow_remote || addrs.iter().all(|a| a.ip().is_loopback()) => *a,
            Some(a) => {
                return Err(format!(
                    "--nats {nats} is not a loopback address ({a}); that needs --allow-remote"
                ));
            }
            None => return Err(format!("--nats {nats} resolves to no address")),
        }
    };
    let mut p = write_params(write);
    p.insert("nats".into(), json!(nats));
    p.insert("workers".into(), json!(workers));
    p.insert("batch".into(), json!(batch));
    p.insert("wait_time_seconds".into(), json!(wait_time_seconds));
    p.insert("prefill".into(), json!(prefill));
    p.insert("rate".into(), json!(rate));
    p.insert("retention".into(), json!("workqueue"));
    p.insert("storage".into(), json!("file"));
    p.insert("ack_policy".into(), json!("explicit"));
    p.insert("ack_wait_s".into(), json!(ack_wait_seconds));
    p.insert("max_deliver".into(), json!(max_deliver));
    p.insert("ack".into(), json!(ack.name()));
    let mut report = Report::new(cli, "queue-jetstream", Value::Object(p));
    let opts = crate::jetstream::Opts {
        nats: addr,
        workers: *workers,
        batch: *batch,
        wait_time_seconds: *wait_time_seconds,
        prefill: *prefill,
        rate: *rate,
        ack_wait_seconds: *ack_wait_seconds,
        max_deliver: *max_deliver,
        ack: *ack,
        stream_name,
        drain_timeout: *drain_timeout,
        grace: *grace,
        write,
    };
    crate::jetstream::run(cli, opts, &mut report).await?;
    if let (Some(a), Some(b)) = (client_cpu0, cpu_seconds(std::process::id())) {
        report.set("client_cpu_s", json!(round3(b - a)));
    }
    report.emit(cli);
    Ok(())
}

async fn run_workload(
    cli: &Cli,
    client: &Arc<Client>,
    streams: &Arc<Vec<String>>,
    report: &mut Report,
) -> Result<(), String> {
    let watch = |_: &mut Report| cli.server_pid.map(ProcWatch::start);
    match &cli.workload {
        Workload::QueueJetstream { .. } => {
            return Err("queue-jetstream has no Kinesis streams".into());
        }
        Workload::PutRecords {
            batch_size,
            rate,
            payload,
            write,
            ..
        } => {
            let w = watch(report);
            let how = Writing {
                rate: *rate,
                payload: *payload,
            };
            let (rec, took) = run_writers(
                client,
                streams.clone(),
                (*batch_size).clamp(1, 500),
                write,
                how,
            )
            .await;
            report.phase(rec, took);
            if let Some(w) = w {
                report.set("server", w.finish().await);
            }
        }
        Workload::Connections {
            idle,
            slowloris,
            slowloris_interval,
            refresh,
            rate,
            new_clients,
            baseline,
            connect_concurrency,
            write,
            ..
        } => {
            let opts = crate::connections::Opts {
                idle: *idle,
                slowloris: *slowloris,
                slowloris_interval: *slowloris_interval,
                refresh: *refresh,
                rate: *rate,
                new_clients: *new_clients,
                baseline: *baseline,
                duration: write.duration,
                connect_concurrency: *connect_concurrency,
                concurrency: write.concurrency,
                record_size: write.record_size,
            };
            crate::connections::run(cli, client, &streams[0], opts, report).await?;
        }
        Workload::PutRecord { write, .. } => {
            let w = watch(report);
            let (rec, took) =
                run_writers(client, streams.clone(), 1, write, Writing::default()).await;
            report.phase(rec, took);
            if let Some(w) = w {
                report.set("server", w.finish().await);
            }
        }
        Workload::GetRecordsDrain {
            batch_size,
            limit,
            drain_timeout,
            write,
            ..
        } => {
            let (wrec, wtook) = run_writers(
                client,
                streams.clone(),
                (*batch_size).clamp(1, 500),
                write,
                Writing::default(),
            )
            .await;
            let written = wrec.records;
            report.set("written", json!(written));
            // Nothing written by this run (--use-existing --total 0): drain what is there.
            let until = if written == 0 { u64::MAX } else { written };
            report.set(
                "write_records_per_s",
                json!(round3(written as f64 / wtook.as_secs_f64().max(1e-9))),
            );
            report.set("write_failures", wrec.failures_json());
            let mut conn = Conn::new(client.clone());
            let shard_ids = list_shards(&mut conn, &streams[0]).await?;
            let w = watch(report);
            let start = Instant::now();
            let read = Arc::new(AtomicU64::new(0));
            let mut set = tokio::task::JoinSet::new();
            for shard in shard_ids {
                set.spawn(drain_shard(
                    client.clone(),
                    streams[0].clone(),
                    shard,
                    *limit,
                    until,
                    read.clone(),
                    start + *drain_timeout,
                ));
            }
            let mut rec = Recorder::default();
            while let Some(r) = set.join_next().await {
                rec.merge(r.expect("reader task"));
            }
            let took = start.elapsed();
            if written > 0 {
                report.set("unread", json!(written as i64 - rec.records as i64));
            }
            report.phase(rec, took);
            if let Some(w) = w {
                report.set("server", w.finish().await);
            }
        }
        Workload::ProduceConsume {
            rate,
            max_batch,
            poll_interval_ms,
            limit,
            grace,
            write,
            ..
        } => {
            let mut conn = Conn::new(client.clone());
            let shard_ids = list_shards(&mut conn, &streams[0]).await?;
            let anchor = Instant::now();
            let done = Arc::new(AtomicBool::new(false));
            let written = Arc::new(AtomicU64::new(u64::MAX));
            let read = Arc::new(AtomicU64::new(0));
            let grace_until = Arc::new(AtomicU64::new(u64::MAX));
            let acks = Arc::new(AckBook::default());
            let w = watch(report);
            let mut consumers = tokio::task::JoinSet::new();
            for shard in shard_ids {
                consumers.spawn(consume_shard(ConsumerCtx {
                    client: client.clone(),
                    stream: streams[0].clone(),
                    shard,
                    limit: *limit,
                    poll: Duration::from_millis(*poll_interval_ms),
                    anchor,
                    done: done.clone(),
                    written: written.clone(),
                    read: read.clone(),
                    grace_until_us: grace_until.clone(),
                    acks: acks.clone(),
                }));
            }
            // Let the consumers take their iterators before the first record is written.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let start = Instant::now();
            let deadline = start + write.duration;
            let writers = write.concurrency.max(1);
            let mut set = tokio::task::JoinSet::new();
            for i in 0..writers {
                set.spawn(rate_writer(
                    client.clone(),
                    streams[0].clone(),
                    rate / writers as f64,
                    *max_batch,
                    write.record_size,
                    write.partition_keys.max(1),
                    deadline,
                    anchor,
                    i as u64 + 1,
                    acks.clone(),
                ));
            }
            let mut wrec = Recorder::default();
            while let Some(r) = set.join_next().await {
                wrec.merge(r.expect("writer task"));
            }
            let took = start.elapsed();
            grace_until.store(
                (anchor.elapsed() + *grace).as_micros() as u64,
                Ordering::Relaxed,
            );
            written.store(wrec.records, Ordering::Relaxed);
            done.store(true, Ordering::Release);
            let mut crec = Recorder::default();
            while let Some(r) = consumers.join_next().await {
                crec.merge(r.expect("consumer task"));
            }
            report.set("read", json!(crec.records));
            report.set("unread", json!(wrec.records as i64 - crec.records as i64));
            report.set("read_requests", json!(crec.requests));
            report.set("read_failures", crec.failures_json());
            report.set("read_latency_ms", percentiles(&mut crec.latency_us));
            wrec.e2e_us = std::mem::take(&mut crec.e2e_us);
            wrec.server_share_us = std::mem::take(&mut crec.server_share_us);
            report.phase(wrec, took);
            if let Some(w) = w {
                report.set("server", w.finish().await);
            }
        }
        Workload::Subscribe {
            rate,
            consumers,
            max_batch,
            consumer_prefix,
            grace,
            prefill,
            prefill_timeout,
            write,
            ..
        } => {
            let opts = crate::subscribe::Opts {
                prefill_timeout: *prefill_timeout,
                rate: *rate,
                consumers: *consumers,
                max_batch: *max_batch,
                grace: *grace,
                prefill: *prefill,
                consumer_prefix,
                write,
            };
            crate::subscribe::run(cli, client, &streams[0], opts, report).await?;
        }
        Workload::Esm {
            function,
            runtime_api,
            handler,
            handlers,
            batch_size,
            prefill,
            limit,
            rate,
            max_batch,
            drain_timeout,
            grace,
            write,
            ..
        } => {
            let opts = crate::esm::Opts {
                function,
                runtime_api,
                handler,
                handlers: *handlers,
                batch_size: *batch_size,
                prefill: *prefill,
                limit: *limit,
                rate: *rate,
                max_batch: *max_batch,
                drain_timeout: *drain_timeout,
                grace: *grace,
                write,
            };
            crate::esm::run(cli, client, &streams[0], opts, report).await?;
        }
        Workload::Queue {
            workers,
            limit,
            wait_time_seconds,
            prefill,
            rate,
            max_batch,
            queue_name,
            drain_timeout,
            grace,
            write,
        } => {
            let opts = crate::queue::Opts {
                workers: *workers,
                limit: *limit,
                wait_time_seconds: *wait_time_seconds,
                prefill: *prefill,
                rate: *rate,
                max_batch: *max_batch,
                queue_name,
                drain_timeout: *drain_timeout,
                grace: *grace,
                write,
            };
            crate::queue::run(cli, client, &streams[0], opts, report).await?;
        }
        Workload::ManyShards {
            batch_size,
            idle,
            write,
            ..
        }
        | Workload::ManyStreams {
            batch_size,
            idle,
            write,
            ..
        } => {
            if let Some(pid) = cli.server_pid {
                let w = ProcWatch::start(pid);
                tokio::time::sleep(*idle).await;
                report.set(
                    "idle",
                    json!({"seconds": idle.as_secs_f64(), "server": w.finish().await}),
                );
            }
            let w = watch(report);
            let (rec, took) = run_writers(
                client,
                streams.clone(),
                (*batch_size).clamp(1, 500),
                write,
                Writing::default(),
            )
            .await;
            report.phase(rec, took);
            if let Some(w) = w {
                report.set("server", w.finish().await);
            }
        }
    }
    Ok(())
}
