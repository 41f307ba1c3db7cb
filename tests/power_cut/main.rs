//! Power cut of the whole broker (issue 21): the storage crate's crash simulator (feature
//! `crash-sim`) records every write, rename, unlink and fsync a broker in `--durability flush`
//! makes under its data directory while a workload runs over its HTTP API; then, for many
//! points of that recording, the data directory a power cut could leave is rebuilt, a broker
//! is started on it and what had been acknowledged before the point is checked: streams
//! created or deleted, records (intact, in order, at their sequence numbers), a reshard, a
//! consumer, tags, a queue and the records it acknowledged (never delivered again) or holds
//! (never lost).
//!
//! A test target of its own, not a module of `tests/kinesis`: the recorder is one global per
//! process and names files by inode; other tests of the same process would run their brokers
//! beside it and could take an inode of a file the recording still tracks.
//!
//! `CRASH_STATES` (default 200) and `CRASH_SEED` change the run; `CRASH_TMP` the directory the
//! states are built in (default `/dev/shm` when present).

#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ScalingType, ShardIteratorType};
use kinesis_broker::config::DurabilityMode;
use kinesis_broker::{Config, Server};
use serde_json::{Value, json};
use storage::crash_sim::recorder::{self, Event, Recording};
use storage::crash_sim::states::{DiskModel, Flavor, Rng, materialize};

use common::*;

const PROVISIONED: &str = "prov";
const ON_DEMAND: &str = "ondemand";
const DOOMED: &str = "doomed";
const CONSUMER: &str = "reader";
const QUEUE: &str = "work";
/// The most records one ReceiveQueueRecords hands out.
const RECEIVE_LIMIT: usize = 10;
/// Bound on one HTTP exchange and on a broker's start.
/// The checking broker's clock runs this far ahead, so every visibility deadline the workload
/// set has passed and the queue hands out everything it holds.
const CHECK_CLOCK_AHEAD_MS: i64 = 2 * 3_600_000;

/// Something the workload saw acknowledged.
#[derive(Debug, Clone)]
enum Ack {
    StreamExists(&'static str),
    StreamGone(&'static str),
    Record {
        stream: &'static str,
        shard: String,
        seq: String,
        data: String,
    },
    /// The provisioned stream has this many open shards.
    OpenShards(usize),
    Consumer,
    Tag(String, String),
    QueueExists,
    /// The queue acknowledged (deleted) the record with this data.
    QueueDeleted(String),
    /// A receive answered with the record with this data (once per answer).
    QueueReceived(String),
}

/// What the workload did, with the point of the recording where each thing was acknowledged.
struct Recorded {
    events: Vec<Event>,
    /// Events before this describe the broker's first start, with nothing acknowledged yet.
    first_point: usize,
    acks: Vec<(usize, Ack)>,
    /// Where each acknowledged thing's request was sent: the lie of the self-test.
    sent: Vec<usize>,
    /// Data of every record ever sent, with its partition key and stream.
    written: HashMap<String, (String, &'static str)>,
    /// Data of records whose deletion from the queue was asked for, with where it was asked.
    delete_asked: HashMap<String, usize>,
    queue_arn: String,
}

/// One recording for both tests (the recorder runs one at a time anyway).
fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let seed = env_u64("CRASH_SEED", 1);
        runtime().block_on(record_workload(seed))
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config_for(dir: &Path) -> Config {
    let mut config = Config::new();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.data_dir = dir.to_path_buf();
    config.durability = DurabilityMode::Flush;
    config.create_stream_delay = Duration::ZERO;
    config.delete_stream_delay = Duration::ZERO;
    config.update_stream_delay = Duration::ZERO;
    config.register_consumer_delay = Duration::ZERO;
    config.deregister_consumer_delay = Duration::ZERO;
    config.event_source_mapping_delay = Duration::ZERO;
    config.throughput_limits = false;
    // Small segments: the workload rolls some, so states see sealed segments too.
    config.segment_bytes = 64 * 1024;
    config
}

async fn record_workload(seed: u64) -> Recorded {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let recording = Recording::start(&root);
    let handle = Server::start(config_for(&root))
        .await
        .expect("broker starts");
    let addr = handle.local_addr();
    let client = client_for(addr);
    let mut w = Workload {
        rng: Rng(seed),
        client,
        addr,
        acks: Vec::new(),
        sent: Vec::new(),
        written: HashMap::new(),
        delete_asked: HashMap::new(),
        next_data: 0,
    };
    let first_point = recorder::position();

    let at = w.send();
    create_stream(&w.client, PROVISIONED, 2).await;
    w.ack(at, Ack::StreamExists(PROVISIONED));
    let at = w.send();
    create_on_demand(&w.client, ON_DEMAND).await;
    w.ack(at, Ack::StreamExists(ON_DEMAND));
    let at = w.send();
    create_stream(&w.client, DOOMED, 1).await;
    w.ack(at, Ack::StreamExists(DOOMED));
    w.put(DOOMED, 3).await;

    let at = w.send();
    let (status, v) = call(
        addr,
        "CreateQueue",
        json!({
            "QueueName": QUEUE,
            "StreamConfigurationList": [{"StreamARN": stream_arn(ON_DEMAND), "StartingPosition": {"Type": "TRIM_HORIZON"}}],
        }),
    )
    .await;
    assert_eq!(status, 200, "CreateQueue: {v}");
    let queue_arn = v["QueueDescription"]["QueueARN"]
        .as_str()
        .expect("QueueARN")
        .to_string();
    w.ack(at, Ack::QueueExists);

    for round in 0..6 {
        let n = 1 + w.rng.below(12);
        w.put(PROVISIONED, n).await;
        let n = 1 + w.rng.below(6);
        w.put(ON_DEMAND, n).await;
        w.receive_and_delete(&queue_arn).await;
        match round {
            0 => {
                let at = w.send();
                w.client
                    .add_tags_to_stream()
                    .stream_name(PROVISIONED)
                    .tags("team", "storage")
                    .send()
                    .await
                    .unwrap();
                w.ack(at, Ack::Tag("team".into(), "storage".into()));
            }
            1 => {
                let at = w.send();
                w.client
                    .delete_stream()
                    .stream_name(DOOMED)
                    .send()
                    .await
                    .unwrap();
                wait_deleted(&w.client, DOOMED).await;
                w.ack(at, Ack::StreamGone(DOOMED));
            }
            2 => {
                let at = w.send();
                w.client
                    .update_shard_count()
                    .stream_name(PROVISIONED)
                    .target_shard_count(4)
                    .scaling_type(ScalingType::UniformScaling)
                    .send()
                    .await
                    .unwrap();
                wait_active(&w.client, PROVISIONED).await;
                w.ack(at, Ack::OpenShards(4));
            }
            3 => {
                let at = w.send();
                w.client
                    .register_stream_consumer()
                    .stream_arn(stream_arn(PROVISIONED))
                    .consumer_name(CONSUMER)
                    .send()
                    .await
                    .unwrap();
                w.ack(at, Ack::Consumer);
            }
            _ => {}
        }
    }
    let events = recording.finish();
    handle.shutdown().await.expect("clean shutdown");
    Recorded {
        events,
        first_point,
        acks: w.acks,
        sent: w.sent,
        written: w.written,
        delete_asked: w.delete_asked,
        queue_arn,
    }
}

struct Workload {
    rng: Rng,
    client: Client,
    addr: SocketAddr,
    acks: Vec<(usize, Ack)>,
    sent: Vec<usize>,
    written: HashMap<String, (String, &'static str)>,
    delete_asked: HashMap<String, usize>,
    next_data: usize,
}

impl Workload {
    /// A request is about to be sent: where it starts.
    fn send(&self) -> usize {
        recorder::position()
    }

    /// `what`, asked for at `sent`, was just acknowledged.
    fn ack(&mut self, sent: usize, what: Ack) {
        self.acks.push((recorder::position(), what));
        self.sent.push(sent);
    }

    /// One PutRecords of `n` records of 10 B to 6 KB (a torn page can cut one).
    async fn put(&mut self, stream: &'static str, n: usize) {
        let mut entries = Vec::new();
        let mut datas = Vec::new();
        for _ in 0..n {
            let id = self.next_data;
            self.next_data += 1;
            let len = 10 + self.rng.below(6000);
            let data = format!("{stream}-{id}-{}", "x".repeat(len));
            let key = format!("k{}", self.rng.below(1000));
            self.written.insert(data.clone(), (key.clone(), stream));
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(blob(data.clone()))
                    .build()
                    .unwrap(),
            );
            datas.push(data);
        }
        let at = self.send();
        let out = self
            .client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRecords: {}", describe_err(&e)));
        let position = recorder::position();
        for (r, data) in out.records().iter().zip(datas) {
            if let (Some(shard), Some(seq)) = (r.shard_id(), r.sequence_number()) {
                self.acks.push((
                    position,
                    Ack::Record {
                        stream,
                        shard: shard.to_string(),
                        seq: seq.to_string(),
                        data,
                    },
                ));
                self.sent.push(at);
            }
        }
    }

    /// Receives a few queue records and acknowledges some of them; the others stay in flight.
    async fn receive_and_delete(&mut self, arn: &str) {
        let at = self.send();
        let (status, v) = call(
            self.addr,
            "ReceiveQueueRecords",
            json!({"QueueARN": arn, "WaitTimeSeconds": 1, "Limit": 1 + self.rng.below(8)}),
        )
        .await;
        assert_eq!(status, 200, "ReceiveQueueRecords: {v}");
        let got = v["QueueRecords"].as_array().cloned().unwrap_or_default();
        for r in &got {
            self.ack(at, Ack::QueueReceived(data_of(r)));
        }
        let chosen: Vec<&Value> = got.iter().filter(|_| !self.rng.chance(3)).collect();
        if chosen.is_empty() {
            return;
        }
        let at = self.send();
        for r in &chosen {
            self.delete_asked.entry(data_of(r)).or_insert(at);
        }
        let entries: Vec<Value> = chosen
            .iter()
            .map(|r| json!({"ReceiptHandle": r["ReceiptHandle"]}))
            .collect();
        let (status, v) = call(
            self.addr,
            "AcknowledgeQueueRecords",
            json!({"QueueARN": arn, "Entries": entries}),
        )
        .await;
        assert_eq!(status, 200, "AcknowledgeQueueRecords: {v}");
        assert_eq!(v["Failed"], json!([]), "{v}");
        for r in chosen {
            self.ack(at, Ack::QueueDeleted(data_of(r)));
        }
    }
}

fn data_of(r: &Value) -> String {
    use base64_simd::STANDARD;
    let b = STANDARD
        .decode_to_vec(r["Data"].as_str().unwrap_or_default())
        .unwrap_or_default();
    String::from_utf8_lossy(&b).into_owned()
}

/// POSTs one Kinesis JSON request (the SDK has no queue operations); (status, body).
/// Sequence numbers are decimal strings; longer is larger.
fn seq_key(s: &str) -> (usize, &str) {
    (s.len(), s)
}

/// What a crash state at point `c` must show, given the acknowledgements by then.
struct Due<'a> {
    rec: &'a Recorded,
    acks: Vec<&'a Ack>,
    c: usize,
}

impl Due<'_> {
    fn has(&self, f: impl Fn(&Ack) -> bool) -> bool {
        self.acks.iter().any(|a| f(a))
    }
}

/// Starts a broker on the crash state in `dir` and checks it against `due`.
async fn check_state(dir: &Path, due: &Due<'_>) -> Result<(), String> {
    let mut config = config_for(dir);
    config.clock_offset_ms = CHECK_CLOCK_AHEAD_MS;
    let started = tokio::time::timeout(CALL_TIMEOUT, tokio::spawn(Server::start(config)))
        .await
        .map_err(|_| format!("the broker did not start within {CALL_TIMEOUT:?}"))?;
    let handle = match started {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return Err(format!("the broker refused to start: {e}")),
        Err(e) => return Err(format!("the broker panicked starting: {e}")),
    };
    let result = tokio::time::timeout(CALL_TIMEOUT * 3, check_running(handle.local_addr(), due))
        .await
        .unwrap_or_else(|_| Err("checks did not finish in time".into()));
    let stopped = handle.shutdown().await;
    result?;
    stopped.map_err(|e| format!("shutdown failed: {e}"))
}

async fn check_running(addr: SocketAddr, due: &Due<'_>) -> Result<(), String> {
    let client = client_for(addr);
    let listed = client
        .list_streams()
        .send()
        .await
        .map_err(|e| format!("ListStreams: {}", describe_err(&e)))?;
    let streams: BTreeSet<String> = listed.stream_names().iter().cloned().collect();
    for name in [PROVISIONED, ON_DEMAND, DOOMED] {
        let exists = streams.contains(name);
        if !exists && due.has(|a| matches!(a, Ack::StreamExists(s) if *s == name)) {
            // Deleting since the request was sent: the state may have it gone already.
            let deleting = due
                .rec
                .acks
                .iter()
                .zip(&due.rec.sent)
                .any(|((_, a), &sent)| {
                    matches!(a, Ack::StreamGone(s) if *s == name) && sent < due.c
                });
            if !deleting {
                return Err(format!(
                    "stream {name} was acknowledged created and is missing"
                ));
            }
        }
        if exists && due.has(|a| matches!(a, Ack::StreamGone(s) if *s == name)) {
            return Err(format!(
                "stream {name} was acknowledged deleted and came back"
            ));
        }
        if exists {
            check_stream(&client, name, due).await?;
        }
    }
    if streams.contains(PROVISIONED) {
        check_provisioned_extras(&client, due).await?;
    }
    check_queue(addr, due).await
}

/// Every record of `stream`: known, intact, in order; every acknowledged one at its place.
async fn check_stream(client: &Client, stream: &'static str, due: &Due<'_>) -> Result<(), String> {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| format!("ListShards {stream}: {}", describe_err(&e)))?;
    let mut found: HashMap<String, (String, String)> = HashMap::new();
    let mut open = 0;
    for shard in shards.shards() {
        let shard_id = shard.shard_id();
        if shard
            .sequence_number_range()
            .is_none_or(|r| r.ending_sequence_number().is_none())
        {
            open += 1;
        }
        let mut iter = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| format!("GetShardIterator {stream}/{shard_id}: {}", describe_err(&e)))?
            .shard_iterator()
            .map(str::to_string);
        let mut last_seq: Option<String> = None;
        let mut polls = 0;
        while let Some(it) = iter {
            polls += 1;
            if polls > MAX_POLLS {
                return Err(format!(
                    "{stream}/{shard_id}: no end after {MAX_POLLS} reads"
                ));
            }
            let out = client
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .map_err(|e| format!("GetRecords {stream}/{shard_id}: {}", describe_err(&e)))?;
            for r in out.records() {
                let data = String::from_utf8_lossy(r.data().as_ref()).into_owned();
                let seq = r.sequence_number().to_string();
                match due.rec.written.get(&data) {
                    Some((key, s)) if Some(key.as_str()) == r.partition_key() && *s == stream => {}
                    _ => {
                        return Err(format!(
                            "{stream}/{shard_id} served a record never written there: seq {seq}, key {}, {} bytes {:?}",
                            r.partition_key().unwrap_or_default(),
                            data.len(),
                            &data[..data.len().min(24)]
                        ));
                    }
                }
                if let Some(prev) = &last_seq
                    && seq_key(prev) >= seq_key(&seq)
                {
                    return Err(format!(
                        "{stream}/{shard_id}: sequence numbers out of order ({prev} then {seq})"
                    ));
                }
                last_seq = Some(seq.clone());
                if found
                    .insert(data.clone(), (shard_id.to_string(), seq))
                    .is_some()
                {
                    return Err(format!("{stream}: record {:?} served twice", &data[..24]));
                }
            }
            let at_tip = out.records().is_empty() && out.millis_behind_latest() == Some(0);
            iter = if at_tip {
                None
            } else {
                out.next_shard_iterator().map(str::to_string)
            };
        }
    }
    for a in &due.acks {
        if let Ack::Record {
            stream: s,
            shard,
            seq,
            data,
        } = a
            && *s == stream
        {
            match found.get(data) {
                Some((sh, sq)) if sh == shard && sq == seq => {}
                Some((sh, sq)) => {
                    return Err(format!(
                        "acknowledged record {:?} of {stream} moved: acknowledged at {shard} {seq}, found at {sh} {sq}",
                        &data[..data.len().min(24)]
                    ));
                }
                None => {
                    return Err(format!(
                        "acknowledged record lost: {:?} of {stream} at {shard} {seq} ({} records found)",
                        &data[..data.len().min(24)],
                        found.len()
                    ));
                }
            }
        }
    }
    if stream == PROVISIONED {
        let resharded = due.has(|a| matches!(a, Ack::OpenShards(4)));
        if !(open == 4 || (open == 2 && !resharded)) {
            return Err(format!(
                "{stream} has {open} open shards (reshard to 4 acknowledged: {resharded})"
            ));
        }
    }
    Ok(())
}

async fn check_provisioned_extras(client: &Client, due: &Due<'_>) -> Result<(), String> {
    if due.has(|a| matches!(a, Ack::Consumer)) {
        let consumers = client
            .list_stream_consumers()
            .stream_arn(stream_arn(PROVISIONED))
            .send()
            .await
            .map_err(|e| format!("ListStreamConsumers: {}", describe_err(&e)))?;
        if !consumers
            .consumers()
            .iter()
            .any(|c| c.consumer_name() == CONSUMER)
        {
            return Err("the acknowledged consumer registration is lost".into());
        }
    }
    let tags = client
        .list_tags_for_stream()
        .stream_name(PROVISIONED)
        .send()
        .await
        .map_err(|e| format!("ListTagsForStream: {}", describe_err(&e)))?;
    let tags: BTreeMap<&str, Option<&str>> =
        tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    for a in &due.acks {
        if let Ack::Tag(k, v) = a
            && tags.get(k.as_str()) != Some(&Some(v.as_str()))
        {
            return Err(format!("acknowledged tag {k}={v} lost: {tags:?}"));
        }
    }
    Ok(())
}

/// The queue: present once acknowledged; drained, it hands out every record of the stream it
/// was not acknowledged to have deleted, once, and none it deleted, each with a receive count
/// above the receives answered before (a receive is durable before it answers).
async fn check_queue(addr: SocketAddr, due: &Due<'_>) -> Result<(), String> {
    let arn = &due.rec.queue_arn;
    let (status, v) = try_call(addr, "DescribeQueue", json!({"QueueARN": arn})).await?;
    let exists = status == 200;
    if !exists {
        if due.has(|a| matches!(a, Ack::QueueExists)) {
            return Err(format!("the acknowledged queue is lost: {status} {v}"));
        }
        return Ok(());
    }
    let mut got: BTreeSet<String> = BTreeSet::new();
    // An empty receive waits a second (the shortest long poll): stop once every record the
    // queue must hold came out and a batch came short of the limit (nothing more visible).
    let must_hold: Vec<&String> = due
        .acks
        .iter()
        .filter_map(|a| match a {
            Ack::Record {
                stream: ON_DEMAND,
                data,
                ..
            } if due.rec.delete_asked.get(data).is_none_or(|&p| p >= due.c) => Some(data),
            _ => None,
        })
        .collect();
    let mut last_batch = RECEIVE_LIMIT;
    for _ in 0..MAX_POLLS {
        if last_batch < RECEIVE_LIMIT && must_hold.iter().all(|d| got.contains(*d)) {
            break;
        }
        let (status, v) = try_call(
            addr,
            "ReceiveQueueRecords",
            json!({"QueueARN": arn, "WaitTimeSeconds": 1, "Limit": RECEIVE_LIMIT}),
        )
        .await?;
        if status != 200 {
            return Err(format!("ReceiveQueueRecords: {status} {v}"));
        }
        let batch = v["QueueRecords"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            break;
        }
        last_batch = batch.len();
        for r in &batch {
            let data = data_of(r);
            let answered = due
                .acks
                .iter()
                .filter(|a| matches!(a, Ack::QueueReceived(d) if *d == data))
                .count() as u64;
            let count = r["ReceiveCount"].as_u64().unwrap_or(0);
            if count <= answered {
                return Err(format!(
                    "queue delivered {:?} with receive count {count} after answering {answered} receives of it",
                    &data[..data.len().min(24)]
                ));
            }
            if !got.insert(data.clone()) {
                return Err(format!(
                    "queue delivered {:?} twice in one drain",
                    &data[..data.len().min(24)]
                ));
            }
        }
    }
    for a in &due.acks {
        match a {
            Ack::QueueDeleted(d) if got.contains(d) => {
                return Err(format!(
                    "queue delivered {:?} again after acknowledging its deletion",
                    &d[..d.len().min(24)]
                ));
            }
            Ack::Record {
                stream: ON_DEMAND,
                data,
                ..
            } if !got.contains(data)
                && due.rec.delete_asked.get(data).is_none_or(|&p| p >= due.c) =>
            {
                return Err(format!(
                    "queue lost {:?}: acknowledged written, never asked deleted ({} delivered)",
                    &data[..data.len().min(24)],
                    got.len()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// An event without its file contents.
fn short(e: &Event) -> String {
    match e {
        Event::Content { uid, bytes } => format!("content of file {uid}: {} bytes", bytes.len()),
        Event::FileSync { uid, bytes, .. } => {
            format!("fsync of file {uid} ({} bytes)", bytes.len())
        }
        Event::Link { dir, name, uid } => {
            format!("{}/{} -> {uid:?}", dir.display(), name.to_string_lossy())
        }
        Event::DirSync { dir, .. } => format!("fsync of dir {}", dir.display()),
        Event::Note(n) => format!("{n:?}"),
    }
}

fn state_tmp() -> tempfile::TempDir {
    let base = std::env::var_os("CRASH_TMP")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()));
    match base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

/// Checks `states` crash states spread over the recording's points; `lie` takes every
/// acknowledgement as given when its request was sent. Returns how many were checked and
/// the failures.
fn explore(states: usize, seed: u64, lie: bool) -> (usize, Vec<String>) {
    let rec = recorded();
    if std::env::var_os("CRASH_DUMP").is_some() {
        for (i, e) in rec.events.iter().enumerate() {
            eprintln!("{i}: {}", short(e));
        }
        for (at, a) in &rec.acks {
            let text = format!("{a:?}");
            eprintln!("ack at {at}: {}", &text[..text.len().min(160)]);
        }
    }
    let started = Instant::now();
    let rt = runtime();
    let tmp = state_tmp();
    let mut rng = Rng(seed ^ 0xC0FFEE);
    let mut model = DiskModel::default();
    let points = rec.events.len() + 1;
    let span = points - rec.first_point;
    let mut explored = 0;
    let mut failures = Vec::new();
    for c in 0..points {
        if c > 0 {
            model.apply(c - 1, &rec.events[c - 1]);
        }
        if c < rec.first_point {
            continue;
        }
        let i = c - rec.first_point;
        let here = (i + 1) * states / span - i * states / span;
        for k in 0..here {
            let flavor = match rng.below(8) {
                0 => Flavor::Newest,
                1 => Flavor::Durable,
                _ => Flavor::Mixed,
            };
            let (files, why) = model.crash_state(&mut rng, flavor);
            let dir = tmp.path().join(format!("s{c}-{k}"));
            materialize(&dir, &[], &files);
            let acks = rec
                .acks
                .iter()
                .zip(&rec.sent)
                .filter(|((at, _), sent)| if lie { **sent <= c } else { *at <= c })
                .map(|((_, a), _)| a)
                .collect();
            let due = Due { rec, acks, c };
            explored += 1;
            let t = Instant::now();
            let outcome = rt.block_on(check_state(&dir, &due));
            if std::env::var_os("CRASH_VERBOSE").is_some() {
                eprintln!("point {c}: {:?} {:?}", t.elapsed(), outcome.as_ref().err());
            }
            if let Err(e) = outcome {
                failures.push(format!(
                    "seed {seed} crash point {c} of {points} {flavor:?}: {e}\n{why}"
                ));
                if std::env::var_os("CRASH_KEEP").is_some() {
                    let _ = std::fs::rename(
                        &dir,
                        std::env::temp_dir().join(format!("power-cut-fail-{seed}-{c}-{k}")),
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    eprintln!(
        "power-cut states (lie: {lie}): {explored} explored over {points} points of one recording, {} failed, {:.1?}",
        failures.len(),
        started.elapsed()
    );
    (explored, failures)
}

#[test]
fn power_cut_keeps_what_the_broker_acknowledged() {
    let states = env_u64("CRASH_STATES", 200) as usize;
    let seed = env_u64("CRASH_SEED", 1);
    let (explored, failures) = explore(states, seed, false);
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(5).map(String::as_str).collect();
        panic!(
            "{} of {explored} crash states failed; first ones:\n{}",
            failures.len(),
            shown.join("\n")
        );
    }
}

/// The checks are not vacuous: taking each acknowledgement as given when its request left
/// (before the broker made it durable) is caught losing records.
#[test]
fn power_cut_checks_catch_a_false_acknowledgement() {
    let (_, failures) = explore(60, 7, true);
    assert!(
        failures
            .iter()
            .any(|f| f.contains("acknowledged record lost")),
        "{failures:#?}"
    );
}
