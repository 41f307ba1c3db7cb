//! The `subscribe` workload: enhanced fan-out. Registered consumers each hold a
//! SubscribeToShard subscription to every shard (HTTP/1.1, one connection per
//! subscription, events in the AWS event-stream framing) while writers send PutRecords at a
//! fixed rate, or as fast as they go (`--rate 0`).
//!
//! Every record carries an 18-byte header: magic, its send time, its PutRecords request's id
//! and its index in that request. Writers note when each request was acknowledged and which
//! entries failed, so at the end each consumer's deliveries are checked against what was
//! acknowledged (exactly once each: duplicates and missing records are counted), and each
//! delivery is timed from the acknowledgement (propagation: the server's push) and from the
//! send time (end to end).

use crate::client::{CallError, Client, Conn, StreamedAnswer};
use crate::stats::{ProcWatch, Recorder, percentiles, round3, weighted_percentiles};
use crate::workloads::{PutRecordsOut, Report, Rng, is_retryable_control, list_shards, unix_ms};
use crate::{Cli, WriteOpts};
use base64_simd::{AsOut, STANDARD as B64};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use kinesis_broker::protocol::eventstream::{self, DecodeError, Message};
use serde::Deserialize;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Marks records written by `subscribe`: magic, send time (µs since the run's anchor, u64),
/// request id (u32), index in the request (u16), all little-endian. 18 bytes: a multiple
/// of 3, so its base64 is exactly the first 24 characters of the record's `Data`, whatever
/// follows.
pub(crate) const MAGIC: &[u8; 4] = b"KLS1";
pub(crate) const HEADER_LEN: usize = 18;
pub(crate) const HEADER_B64: usize = 24;
/// Bits per request in the delivery bitmaps: PutRecords takes at most 500 records.
const STRIDE: usize = 512;
/// `{"Data":"` precedes the base64 in a record's JSON.
const DATA_AT: usize = 9;

/// The workload's own options (see `Workload::Subscribe`).
pub struct Opts<'a> {
    pub rate: f64,
    pub consumers: usize,
    pub max_batch: usize,
    pub grace: Duration,
    pub prefill: u64,
    pub prefill_timeout: Duration,
    pub consumer_prefix: &'a str,
    pub write: &'a WriteOpts,
}

// ---------------------------------------------------------------------------------------
// Acknowledgements

#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum AckState {
    /// Not answered (yet).
    #[default]
    Pending,
    /// Answered 200: the request's records are stored, except its failed entries.
    Acked,
    /// Refused as a whole (an error answer): none stored.
    Refused,
    /// Transport error or timeout: stored or not, nobody knows.
    Unknown,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Ack {
    pub(crate) at_us: u64,
    pub(crate) n: u16,
    pub(crate) state: AckState,
}

/// What became of each PutRecords request, by the id its records carry.
#[derive(Default)]
pub(crate) struct AckBook {
    pub(crate) acks: Mutex<Vec<Ack>>,
    /// Entries that failed inside acknowledged requests (ErrorCode), by request id.
    pub(crate) failed: Mutex<HashMap<u32, Vec<u16>>>,
    pub(crate) next_id: AtomicU64,
}

impl AckBook {
    fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed) as u32
    }

    fn note(&self, id: u32, ack: Ack) {
        let mut v = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        let i = id as usize;
        if v.len() <= i {
            v.resize(i + 1, Ack::default());
        }
        v[i] = ack;
    }
}

// ---------------------------------------------------------------------------------------
// Writers

/// A writer's records, built once: `{"Data":"…","PartitionKey":"pk-K"}` with random data
/// and keys. A request copies `n` of them from a random slot on and overwrites each one's
/// first 24 base64 characters with its header, so sending costs a copy and the SHA-256,
/// not encoding.
struct Template {
    prefix: Vec<u8>,
    records: Vec<Vec<u8>>,
}

impl Template {
    fn new(stream: &str, slots: usize, record_size: usize, keys: u32, rng: &mut Rng) -> Self {
        let mut data = vec![0u8; record_size.max(HEADER_LEN)];
        let records = (0..slots)
            .map(|_| {
                rng.fill(&mut data);
                let mut s = String::with_capacity(48 + data.len() * 4 / 3);
                s.push_str("{\"Data\":\"");
                B64.encode_append(&data, &mut s);
                let _ = write!(s, "\",\"PartitionKey\":\"pk-{}\"}}", rng.below(keys));
                s.into_bytes()
            })
            .collect();
        Self {
            prefix: format!("{{\"StreamName\":\"{stream}\",\"Records\":[").into_bytes(),
            records,
        }
    }

    fn body(&self, n: usize, from: usize, sent_us: u64, id: u32) -> Vec<u8> {
        let per = self.records.first().map_or(0, Vec::len) + 1;
        let mut body = Vec::with_capacity(self.prefix.len() + n * per + 2);
        body.extend_from_slice(&self.prefix);
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4..12].copy_from_slice(&sent_us.to_le_bytes());
        header[12..16].copy_from_slice(&id.to_le_bytes());
        let mut b64 = [0u8; HEADER_B64];
        for i in 0..n {
            if i > 0 {
                body.push(b',');
            }
            let at = body.len() + DATA_AT;
            body.extend_from_slice(&self.records[(from + i) % self.records.len()]);
            header[16..18].copy_from_slice(&(i as u16).to_le_bytes());
            let _ = B64.encode(&header, b64.as_mut_slice().as_out());
            body[at..at + HEADER_B64].copy_from_slice(&b64);
        }
        body.extend_from_slice(b"]}");
        body
    }
}

pub(crate) struct WriterSpec {
    pub(crate) client: Arc<Client>,
    pub(crate) stream: String,
    /// Records/s for this writer; 0: full batches back to back.
    pub(crate) rate: f64,
    pub(crate) max_batch: usize,
    pub(crate) record_size: usize,
    pub(crate) keys: u32,
    pub(crate) deadline: Instant,
    pub(crate) anchor: Instant,
    pub(crate) seed: u64,
    pub(crate) acks: Arc<AckBook>,
    /// Records still to write (the prefill), claimed a request at a time.
    pub(crate) budget: Option<Arc<AtomicI64>>,
}

/// What every writer of one run shares: the measured workloads (subscribe, esm, queue) build
/// their writers' specs from one of these, and prefill the stream through it.
pub(crate) struct Writers {
    pub(crate) client: Arc<Client>,
    pub(crate) stream: String,
    pub(crate) max_batch: usize,
    pub(crate) record_size: usize,
    pub(crate) keys: u32,
    pub(crate) anchor: Instant,
    pub(crate) acks: Arc<AckBook>,
}

impl Writers {
    /// The writers of a run on `stream`, from the command line's write options.
    pub(crate) fn new(
        client: &Arc<Client>,
        stream: &str,
        write: &WriteOpts,
        max_batch: usize,
        anchor: Instant,
        acks: &Arc<AckBook>,
    ) -> Self {
        Self {
            client: client.clone(),
            stream: stream.to_string(),
            max_batch: max_batch.clamp(1, 500),
            record_size: write.record_size,
            keys: write.partition_keys.max(1),
            anchor,
            acks: acks.clone(),
        }
    }

    /// Writer `i` at `rate` records/s (0: full batches back to back) until `deadline`, or
    /// until `budget` records are claimed.
    pub(crate) fn spec(
        &self,
        i: usize,
        rate: f64,
        deadline: Instant,
        budget: Option<Arc<AtomicI64>>,
    ) -> WriterSpec {
        WriterSpec {
            client: self.client.clone(),
            stream: self.stream.clone(),
            rate,
            max_batch: self.max_batch,
            record_size: self.record_size,
            keys: self.keys,
            deadline,
            anchor: self.anchor,
            seed: i as u64 + 1,
            acks: self.acks.clone(),
            budget,
        }
    }

    /// Writes `total` records with `count` writers at full speed (giving up at `deadline`);
    /// their merged recorder.
    pub(crate) async fn prefill(&self, count: usize, total: u64, deadline: Instant) -> Recorder {
        let budget = Arc::new(AtomicI64::new(total as i64));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..count {
            set.spawn(writer(self.spec(
                i + 1000,
                0.0,
                deadline,
                Some(budget.clone()),
            )));
        }
        let mut merged = Recorder::default();
        while let Some(r) = set.join_next().await {
            merged.merge(r.expect("writer task"));
        }
        merged
    }
}

pub(crate) async fn writer(w: WriterSpec) -> Recorder {
    let mut rng = Rng::new(w.seed);
    let template = Template::new(
        &w.stream,
        w.max_batch.max(1000),
        w.record_size,
        w.keys,
        &mut rng,
    );
    let record_size = w.record_size.max(HEADER_LEN);
    let mut rec = Recorder::default();
    let mut conn = Conn::new(w.client.clone());
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < w.deadline {
        let due = if w.rate > 0.0 {
            interval.tick().await;
            (w.rate * start.elapsed().as_secs_f64()) as u64
        } else {
            sent + w.max_batch as u64
        };
        while sent < due && Instant::now() < w.deadline {
            let mut n = ((due - sent) as usize).min(w.max_batch);
            if let Some(b) = &w.budget {
                let left = b.fetch_sub(n as i64, Ordering::Relaxed);
                if left <= 0 {
                    return rec;
                }
                n = n.min(left as usize);
            }
            let id = w.acks.next_id();
            let sent_us = w.anchor.elapsed().as_micros() as u64;
            let from = rng.below(template.records.len() as u32) as usize;
            let body = template.body(n, from, sent_us, id);
            let t0 = Instant::now();
            let result = conn.call("PutRecords", Bytes::from(body), None).await;
            let at_us = w.anchor.elapsed().as_micros() as u64;
            rec.latency(t0.elapsed());
            rec.requests += 1;
            let mut ack = Ack {
                at_us,
                n: n as u16,
                state: AckState::Unknown,
            };
            match result {
                Ok(answer) => match serde_json::from_slice::<PutRecordsOut>(&answer) {
                    Ok(out) => {
                        ack.state = AckState::Acked;
                        let mut failed = Vec::new();
                        if out.failed.unwrap_or(0) > 0 {
                            for (i, e) in out.records.iter().enumerate() {
                                if let Some(code) = &e.error_code {
                                    rec.fail(code.as_ref(), 1);
                                    failed.push(i as u16);
                                }
                            }
                        }
                        let ok = (n - failed.len()) as u64;
                        rec.records += ok;
                        rec.bytes += ok * record_size as u64;
                        if !failed.is_empty() {
                            let mut f = w.acks.failed.lock().unwrap_or_else(|p| p.into_inner());
                            f.insert(id, failed);
                        }
                    }
                    Err(_) => rec.fail("BadAnswer", n as u64),
                },
                Err(e) => {
                    if matches!(e, CallError::Api { .. }) {
                        ack.state = AckState::Refused;
                    }
                    rec.fail(e.kind(), n as u64);
                    if matches!(e, CallError::Transport(_)) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            w.acks.note(id, ack);
            sent += n as u64;
        }
    }
    rec
}

// ---------------------------------------------------------------------------------------
// Subscriptions

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<EventRecord<'a>>,
    #[serde(rename = "ContinuationSequenceNumber", default)]
    continuation: Option<String>,
}

#[derive(Deserialize)]
struct EventRecord<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
}

/// Deliveries of records of one request in one event: they share the send, acknowledgement
/// and arrival times.
#[derive(Clone, Copy)]
struct Sample {
    id: u32,
    count: u32,
    sent_us: u64,
    arrival_us: u64,
}

/// What one subscription task (one consumer, one shard) saw.
#[derive(Default)]
struct TaskOut {
    consumer: usize,
    /// Records delivered that carry this run's header (duplicates included).
    delivered: u64,
    bytes: u64,
    duplicates: u64,
    /// Records without this run's header.
    foreign: u64,
    /// Delivered records, bit `id * STRIDE + index`.
    bits: Vec<u64>,
    samples: Vec<Sample>,
    events: u64,
    /// Events with no records after the first of a subscription.
    empty_events: u64,
    /// Successful SubscribeToShard calls (the first, then one per resubscription).
    subscriptions: u64,
    /// `initial-response` events received (AWS sends one first in every subscription).
    initial_responses: u64,
    /// Time from sending SubscribeToShard to its answer's status line, µs.
    setup_us: Vec<u32>,
    failures: BTreeMap<String, u64>,
    /// Why subscriptions ended other than by the run's end, by kind.
    endings: BTreeMap<String, u64>,
    last_arrival_us: u64,
}

struct TaskCtx {
    client: Arc<Client>,
    consumer: usize,
    consumer_arn: String,
    shard: String,
    anchor: Instant,
    stop: watch::Receiver<bool>,
    /// One message per task: Ok at its first initial-response, or why it cannot subscribe.
    ready: mpsc::UnboundedSender<Result<(), String>>,
    /// Distinct records this consumer has received (all its shards).
    unique: Arc<AtomicU64>,
}

/// How a subscription's answer ended.
enum Ended {
    /// The run is over.
    Stopped,
    /// The server ended the stream (its lifetime passed): resubscribe from the continuation.
    Closed,
    /// The last event of a closed shard (no continuation): nothing more to read.
    ShardClosed,
    /// An exception event, a broken connection or bytes that are not an event stream.
    Failed(String, String),
}

fn set_bit(bits: &mut Vec<u64>, bit: usize) -> bool {
    let word = bit / 64;
    if bits.len() <= word {
        bits.resize((word + 1).next_power_of_two(), 0);
    }
    let mask = 1u64 << (bit % 64);
    let was = bits[word] & mask != 0;
    bits[word] |= mask;
    !was
}

async fn subscription_task(mut c: TaskCtx) -> TaskOut {
    let mut out = TaskOut {
        consumer: c.consumer,
        ..Default::default()
    };
    let mut continuation: Option<String> = None;
    let mut announced = false;
    let mut attempts_before_ready = 0u32;
    loop {
        if *c.stop.borrow() {
            break;
        }
        let position = match &continuation {
            None => json!({"Type": "TRIM_HORIZON"}),
            Some(seq) => json!({"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seq}),
        };
        let body = json!({
            "ConsumerARN": c.consumer_arn,
            "ShardId": c.shard,
            "StartingPosition": position,
        })
        .to_string();
        let t0 = Instant::now();
        let opened = tokio::select! {
            r = c.client.open_streamed("SubscribeToShard", Bytes::from(body), 0) => r,
            _ = c.stop.changed() => break,
        };
        let mut answer = match opened {
            Ok(a) => a,
            Err(e) => {
                let kind = e.kind();
                *out.failures.entry(kind.clone()).or_default() += 1;
                attempts_before_ready += 1;
                // Before the first success, anything but a transient refusal means the
                // endpoint cannot do this: say so and stop.
                let transient = kind == "ResourceInUseException" || is_retryable_control(&kind);
                if !announced && (!transient || attempts_before_ready >= 20) {
                    let _ = c
                        .ready
                        .send(Err(format!("SubscribeToShard {}: {e}", c.shard)));
                    announced = true;
                    break;
                }
                // The 5-second rule: a second subscription within 5 s is refused.
                let wait = if kind == "ResourceInUseException" {
                    1000
                } else {
                    200
                };
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => continue,
                    _ = c.stop.changed() => break,
                }
            }
        };
        if !answer.content_type.starts_with(eventstream::CONTENT_TYPE) && !announced {
            let _ = c.ready.send(Err(format!(
                "SubscribeToShard {}: answered 200 with Content-Type '{}', not an event stream",
                c.shard, answer.content_type
            )));
            break;
        }
        // Subscribed: the answer started (kinesis-mock sends no initial-response event; its
        // first message is a SubscribeToShardEvent).
        out.setup_us
            .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if !announced {
            let _ = c.ready.send(Ok(()));
            announced = true;
        }
        out.subscriptions += 1;
        let ended = read_events(&mut c, &mut answer, &mut out, &mut continuation).await;
        drop(answer);
        match ended {
            Ended::Stopped | Ended::ShardClosed => break,
            Ended::Closed => {
                *out.endings.entry("closed by server".into()).or_default() += 1;
            }
            Ended::Failed(kind, message) => {
                *out.endings.entry(kind.clone()).or_default() += 1;
                if !announced {
                    let _ = c.ready.send(Err(format!(
                        "SubscribeToShard {}: {kind}: {message}",
                        c.shard
                    )));
                    announced = true;
                    break;
                }
                let wait = if kind == "ResourceInUseException" {
                    1000
                } else {
                    100
                };
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = c.stop.changed() => break,
                }
            }
        }
    }
    if !announced {
        let _ = c.ready.send(Err(format!(
            "SubscribeToShard {}: stopped before subscribing",
            c.shard
        )));
    }
    out
}

async fn read_events(
    c: &mut TaskCtx,
    answer: &mut StreamedAnswer,
    out: &mut TaskOut,
    continuation: &mut Option<String>,
) -> Ended {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut first_event = true;
    loop {
        let frame = tokio::select! {
            f = answer.body.frame() => f,
            _ = c.stop.changed() => return Ended::Stopped,
        };
        let arrival_us = c.anchor.elapsed().as_micros() as u64;
        match frame {
            None => {
                return if buf.is_empty() {
                    Ended::Closed
                } else {
                    Ended::Failed(
                        "TruncatedEvent".into(),
                        format!("{} bytes of a partial message at the end", buf.len()),
                    )
                };
            }
            Some(Err(e)) => return Ended::Failed("TransportError".into(), e.to_string()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
        loop {
            let (message, used) = match eventstream::decode(&buf) {
                Ok(m) => m,
                Err(DecodeError::Incomplete) => break,
                Err(e) => return Ended::Failed("BadEventStream".into(), e.to_string()),
            };
            buf.advance(used);
            match message.header(":message-type") {
                Some("event") => {}
                Some("exception") | Some("error") => {
                    let kind = message
                        .header(":exception-type")
                        .or_else(|| message.header(":error-code"))
                        .unwrap_or("exception")
                        .to_string();
                    *out.failures.entry(kind.clone()).or_default() += 1;
                    let text = String::from_utf8_lossy(&message.payload).into_owned();
                    return Ended::Failed(kind, text);
                }
                other => {
                    return Ended::Failed(
                        "BadEventStream".into(),
                        format!("message type {other:?}"),
                    );
                }
            }
            match message.header(":event-type") {
                Some("initial-response") => out.initial_responses += 1,
                Some("SubscribeToShardEvent") => {
                    match on_event(c, &message, out, arrival_us, first_event) {
                        Ok(next) => {
                            first_event = false;
                            match next {
                                Some(seq) => *continuation = Some(seq),
                                None => return Ended::ShardClosed,
                            }
                        }
                        Err(e) => return Ended::Failed("BadEvent".into(), e),
                    }
                }
                _ => {}
            }
        }
    }
}

/// Counts one SubscribeToShardEvent; returns its continuation sequence number.
fn on_event(
    c: &TaskCtx,
    message: &Message,
    out: &mut TaskOut,
    arrival_us: u64,
    first: bool,
) -> Result<Option<String>, String> {
    let event: Event = serde_json::from_slice(&message.payload).map_err(|e| e.to_string())?;
    out.events += 1;
    if event.records.is_empty() && !first {
        out.empty_events += 1;
    }
    let mut new = 0u64;
    let mut header = [0u8; HEADER_LEN];
    for r in &event.records {
        let data = r.data.as_bytes();
        let pad = data.iter().rev().take_while(|&&b| b == b'=').count();
        out.bytes += (data.len() / 4 * 3).saturating_sub(pad) as u64;
        let ok = data.len() >= HEADER_B64
            && B64
                .decode(&data[..HEADER_B64], header.as_mut_slice().as_out())
                .is_ok()
            && &header[..4] == MAGIC;
        if !ok {
            out.foreign += 1;
            continue;
        }
        let sent_us = u64::from_le_bytes(header[4..12].try_into().expect("8 bytes"));
        let id = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        let index = u16::from_le_bytes(header[16..18].try_into().expect("2 bytes"));
        out.delivered += 1;
        if set_bit(&mut out.bits, id as usize * STRIDE + index as usize) {
            new += 1;
        } else {
            out.duplicates += 1;
        }
        match out.samples.last_mut() {
            Some(s) if s.id == id && s.arrival_us == arrival_us => s.count += 1,
            _ => out.samples.push(Sample {
                id,
                count: 1,
                sent_us,
                arrival_us,
            }),
        }
    }
    if !event.records.is_empty() {
        out.last_arrival_us = arrival_us;
    }
    if new > 0 {
        c.unique.fetch_add(new, Ordering::Relaxed);
    }
    Ok(event.continuation)
}

// ---------------------------------------------------------------------------------------
// Consumers: registration

/// The stream's ARN, from DescribeStreamSummary (DescribeStream where that is unknown).
pub(crate) async fn stream_arn(conn: &mut Conn, stream: &str) -> Result<String, String> {
    let arn = match conn
        .call_json("DescribeStreamSummary", json!({"StreamName": stream}))
        .await
    {
        Ok(v) => v["StreamDescriptionSummary"]["StreamARN"]
            .as_str()
            .map(str::to_owned),
        Err(e) if e.kind().contains("UnknownOperation") => conn
            .call_json("DescribeStream", json!({"StreamName": stream, "Limit": 1}))
            .await
            .map_err(|e| format!("DescribeStream {stream}: {e}"))?["StreamDescription"]["StreamARN"]
            .as_str()
            .map(str::to_owned),
        Err(e) => return Err(format!("DescribeStreamSummary {stream}: {e}")),
    };
    arn.ok_or_else(|| format!("no StreamARN for {stream}"))
}

/// A consumer to subscribe with.
struct Consumer {
    arn: String,
    /// Registered with RegisterStreamConsumer (deregistered at the end).
    registered: bool,
}

/// Registers consumer `name` and waits until it is ACTIVE; where the endpoint does not
/// know RegisterStreamConsumer, makes up the ARN such a registration would have
/// (`<streamARN>/consumer/<name>:<seconds>`), which also shows what the endpoint does
/// with SubscribeToShard. Returns the consumer and how it was obtained.
async fn register(
    conn: &mut Conn,
    stream_arn: &str,
    name: &str,
    timeout: Duration,
) -> Result<(Consumer, String), String> {
    let deadline = Instant::now() + timeout;
    let answer = loop {
        match conn
            .call_json(
                "RegisterStreamConsumer",
                json!({"StreamARN": stream_arn, "ConsumerName": name}),
            )
            .await
        {
            Ok(v) => break v,
            Err(CallError::Api { kind, message, .. })
                if kind.contains("UnknownOperation") || kind.contains("NotImplemented") =>
            {
                let arn = format!("{stream_arn}/consumer/{name}:{}", unix_ms() / 1000);
                return Ok((
                    Consumer {
                        arn,
                        registered: false,
                    },
                    format!("constructed ARN (RegisterStreamConsumer: {kind}: {message})"),
                ));
            }
            Err(e) if is_retryable_control(&e.kind()) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("RegisterStreamConsumer {name}: {e}")),
        }
    };
    let arn = answer["Consumer"]["ConsumerARN"]
        .as_str()
        .ok_or_else(|| format!("RegisterStreamConsumer {name}: no ConsumerARN in {answer}"))?
        .to_string();
    let mut status = answer["Consumer"]["ConsumerStatus"]
        .as_str()
        .map(str::to_owned);
    while status.as_deref() != Some("ACTIVE") {
        if Instant::now() >= deadline {
            return Err(format!(
                "consumer {name} not ACTIVE in time (last status {status:?})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = match conn
            .call_json("DescribeStreamConsumer", json!({"ConsumerARN": arn}))
            .await
        {
            Ok(v) => v["ConsumerDescription"]["ConsumerStatus"]
                .as_str()
                .map(str::to_owned),
            Err(e) if is_retryable_control(&e.kind()) => None,
            Err(e) => return Err(format!("DescribeStreamConsumer {name}: {e}")),
        };
    }
    Ok((
        Consumer {
            arn,
            registered: true,
        },
        "RegisterStreamConsumer".into(),
    ))
}

/// Deregisters the consumers this run registered and waits (up to 10 s) until they are
/// gone: some endpoints (kinesis-mock) refuse DeleteStream while a consumer is DELETING.
async fn deregister(conn: &mut Conn, consumers: &[Consumer]) {
    for c in consumers.iter().filter(|c| c.registered) {
        if let Err(e) = conn
            .call_json("DeregisterStreamConsumer", json!({"ConsumerARN": c.arn}))
            .await
        {
            eprintln!("kinesis-loadgen: DeregisterStreamConsumer {}: {e}", c.arn);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in consumers.iter().filter(|c| c.registered) {
        while Instant::now() < deadline {
            match conn
                .call_json("DescribeStreamConsumer", json!({"ConsumerARN": c.arn}))
                .await
            {
                Err(e) if e.kind() == "ResourceNotFoundException" => break,
                Err(e) if !is_retryable_control(&e.kind()) => break,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The run

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
    let mut consumers = Vec::new();
    let mut how = Vec::new();
    for i in 0..o.consumers.max(1) {
        let name = format!("{}{i}", o.consumer_prefix);
        match register(&mut conn, &arn, &name, cli.create_timeout).await {
            Ok((c, h)) => {
                consumers.push(c);
                how.push(h);
            }
            Err(e) => {
                deregister(&mut conn, &consumers).await;
                return Err(e);
            }
        }
    }
    how.dedup();
    report.set("consumer_registration", json!(how));
    let outcome = measure(cli, client, stream, &shard_ids, &consumers, &o, report).await;
    deregister(&mut conn, &consumers).await;
    outcome
}

async fn measure(
    cli: &Cli,
    client: &Arc<Client>,
    stream: &str,
    shard_ids: &[String],
    consumers: &[Consumer],
    o: &Opts<'_>,
    report: &mut Report,
) -> Result<(), String> {
    let anchor = Instant::now();
    let acks = Arc::new(AckBook::default());
    let w = o.write;
    let writers = w.concurrency.max(1);
    let spec_of = Writers::new(client, stream, w, o.max_batch, anchor, &acks);
    let spec = |i, rate, deadline, budget| spec_of.spec(i, rate, deadline, budget);
    // --prefill: records written before anyone subscribes, read from TRIM_HORIZON by every
    // consumer at once (the counterpart of get-records-drain).
    let mut prefilled = 0;
    if o.prefill > 0 {
        let t0 = Instant::now();
        let prec = spec_of
            .prefill(writers, o.prefill, t0 + o.prefill_timeout)
            .await;
        prefilled = prec.records;
        report.set(
            "prefill",
            json!({
                "records": prec.records,
                "records_per_s": round3(prec.records as f64 / t0.elapsed().as_secs_f64().max(1e-9)),
                "failures": prec.failures_json(),
            }),
        );
    }
    let first_live_id = acks.next_id.load(Ordering::Relaxed) as u32;
    let watch = if o.prefill > 0 {
        cli.server_pid.map(ProcWatch::start)
    } else {
        None
    };
    let subscribe_us = anchor.elapsed().as_micros() as u64;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let unique: Vec<Arc<AtomicU64>> = consumers.iter().map(|_| Default::default()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, consumer) in consumers.iter().enumerate() {
        for shard in shard_ids {
            tasks.spawn(subscription_task(TaskCtx {
                client: client.clone(),
                consumer: i,
                consumer_arn: consumer.arn.clone(),
                shard: shard.clone(),
                anchor,
                stop: stop_rx.clone(),
                ready: ready_tx.clone(),
                unique: unique[i].clone(),
            }));
        }
    }
    drop(ready_tx);
    // Every subscription must be up before the first record is written.
    let expected = tasks.len();
    let setup_deadline = tokio::time::Instant::now() + cli.create_timeout;
    let mut up = 0;
    let mut refused = None;
    while up < expected {
        match tokio::time::timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(Ok(()))) => up += 1,
            Ok(Some(Err(e))) => {
                refused = Some(e);
                break;
            }
            Ok(None) => break,
            Err(_) => {
                refused = Some(format!(
                    "{up} of {expected} subscriptions started within {:?}",
                    cli.create_timeout
                ));
                break;
            }
        }
    }
    if let Some(why) = refused {
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        return Err(format!("subscribe: not supported by this endpoint: {why}"));
    }
    report.set(
        "subscriptions_started_s",
        json!(round3(anchor.elapsed().as_secs_f64())),
    );

    let watch = watch.or_else(|| cli.server_pid.map(ProcWatch::start));
    let start = Instant::now();
    // Deliveries are timed from the first write, or with a prefill from the first
    // SubscribeToShard call.
    let start_us = if o.prefill > 0 {
        subscribe_us
    } else {
        anchor.elapsed().as_micros() as u64
    };
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
    // Wait until every consumer has every acknowledged record, or the grace period ends.
    let acked = prefilled + wrec.records;
    let grace_end = Instant::now() + o.grace;
    while Instant::now() < grace_end && unique.iter().any(|u| u.load(Ordering::Relaxed) < acked) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let caught_up_s = start.elapsed().as_secs_f64();
    // A moment longer, to see duplicates that follow right behind.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop_tx.send(true);
    let mut outs = Vec::new();
    while let Some(r) = tasks.join_next().await {
        outs.push(r.expect("subscription task"));
    }
    let server = match watch {
        Some(w) => Some(w.finish().await),
        None => None,
    };
    summarize(
        report,
        &acks,
        outs,
        consumers.len(),
        (start_us, first_live_id),
        caught_up_s,
    );
    report.phase(wrec, took);
    if let Some(s) = server {
        report.set("server", s);
    }
    Ok(())
}

fn summarize(
    report: &mut Report,
    acks: &AckBook,
    outs: Vec<TaskOut>,
    n_consumers: usize,
    (start_us, first_live_id): (u64, u32),
    caught_up_s: f64,
) {
    let acks_v = acks.acks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let failed = acks
        .failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut per: Vec<Vec<TaskOut>> = (0..n_consumers).map(|_| Vec::new()).collect();
    for o in outs {
        per[o.consumer].push(o);
    }
    let mut all_prop: Vec<(i64, u64)> = Vec::new();
    let mut all_e2e: Vec<(i64, u64)> = Vec::new();
    let mut consumers_json = Vec::new();
    let (mut delivered, mut dups, mut missing, mut unacked, mut before_ack, mut foreign) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_us = start_us;
    let (mut subs, mut events, mut empty, mut initial) = (0u64, 0u64, 0u64, 0u64);
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut endings: BTreeMap<String, u64> = BTreeMap::new();
    let mut setup: Vec<u32> = Vec::new();
    for (i, tasks) in per.into_iter().enumerate() {
        let mut union: Vec<u64> = Vec::new();
        let mut c_delivered = 0;
        let mut c_dups = 0;
        let mut c_last = start_us;
        let mut prop: Vec<(i64, u64)> = Vec::new();
        let mut e2e: Vec<(i64, u64)> = Vec::new();
        let mut c_before = 0u64;
        let mut c_bytes = 0u64;
        for t in tasks {
            c_delivered += t.delivered;
            c_dups += t.duplicates;
            c_bytes += t.bytes;
            foreign += t.foreign;
            c_last = c_last.max(t.last_arrival_us);
            subs += t.subscriptions;
            events += t.events;
            empty += t.empty_events;
            initial += t.initial_responses;
            setup.extend(&t.setup_us);
            for (k, v) in t.failures {
                *failures.entry(k).or_default() += v;
            }
            for (k, v) in t.endings {
                *endings.entry(k).or_default() += v;
            }
            // The same record delivered on two shards' subscriptions is a duplicate too.
            if union.len() < t.bits.len() {
                union.resize(t.bits.len(), 0);
            }
            for (u, b) in union.iter_mut().zip(&t.bits) {
                c_dups += u64::from((*u & b).count_ones());
                *u |= b;
            }
            // Prefilled records were written before anyone subscribed: no latency to speak of.
            for s in t.samples.into_iter().filter(|s| s.id >= first_live_id) {
                let count = u64::from(s.count);
                e2e.push((s.arrival_us as i64 - s.sent_us as i64, count));
                if let Some(a) = acks_v.get(s.id as usize)
                    && a.state == AckState::Acked
                {
                    let p = s.arrival_us as i64 - a.at_us as i64;
                    if p < 0 {
                        c_before += count;
                    }
                    prop.push((p, count));
                }
            }
        }
        // Every acknowledged entry once; anything else delivered was not acknowledged.
        let bit = |id: usize, i: usize| {
            let b = id * STRIDE + i;
            union
                .get(b / 64)
                .is_some_and(|w| w & (1u64 << (b % 64)) != 0)
        };
        let mut c_missing = 0u64;
        let mut c_unacked = 0u64;
        for (id, a) in acks_v.iter().enumerate() {
            let failed_here = failed.get(&(id as u32));
            for idx in 0..a.n as usize {
                let stored = a.state == AckState::Acked
                    && !failed_here.is_some_and(|f| f.contains(&(idx as u16)));
                match (stored, bit(id, idx)) {
                    (true, false) => c_missing += 1,
                    (false, true) => c_unacked += 1,
                    _ => {}
                }
            }
        }
        // Bits past every request the writers noted (cannot happen unless the data is
        // not this run's).
        let noted_words = acks_v.len() * STRIDE / 64;
        c_unacked += union
            .iter()
            .skip(noted_words)
            .map(|w| u64::from(w.count_ones()))
            .sum::<u64>();
        let window = (c_last.saturating_sub(start_us)) as f64 / 1e6;
        consumers_json.push(json!({
            "consumer": i,
            "delivered": c_delivered,
            "delivered_per_s": round3(c_delivered as f64 / window.max(1e-9)),
            "mb_per_s": round3(c_bytes as f64 / window.max(1e-9) / 1e6),
            "window_s": round3(window),
            "duplicates": c_dups,
            "missing": c_missing,
            "delivered_unacknowledged": c_unacked,
            "delivered_before_ack": c_before,
            "propagation_ms": weighted_percentiles(&mut prop.clone()),
            "e2e_ms": weighted_percentiles(&mut e2e.clone()),
        }));
        delivered += c_delivered;
        dups += c_dups;
        missing += c_missing;
        unacked += c_unacked;
        before_ack += c_before;
        last_us = last_us.max(c_last);
        all_prop.extend(prop);
        all_e2e.extend(e2e);
    }
    let window = (last_us.saturating_sub(start_us)) as f64 / 1e6;
    report.set("consumers", json!(n_consumers));
    report.set("delivered", json!(delivered));
    report.set(
        "delivered_per_s",
        json!(round3(delivered as f64 / window.max(1e-9))),
    );
    report.set("delivery_window_s", json!(round3(window)));
    report.set("caught_up_s", json!(round3(caught_up_s)));
    report.set("per_consumer", Value::Array(consumers_json));
    report.set("propagation_ms", weighted_percentiles(&mut all_prop));
    report.set("e2e_ms", weighted_percentiles(&mut all_e2e));
    report.set("duplicates", json!(dups));
    report.set("missing", json!(missing));
    report.set("delivered_unacknowledged", json!(unacked));
    report.set("delivered_before_ack", json!(before_ack));
    report.set("foreign_records", json!(foreign));
    report.set("subscriptions", json!(subs));
    report.set("events", json!(events));
    report.set("empty_events", json!(empty));
    report.set("initial_responses", json!(initial));
    report.set("subscribe_setup_ms", percentiles(&mut setup));
    report.set("subscribe_failures", json!(failures));
    report.set("subscription_endings", json!(endings));
}
