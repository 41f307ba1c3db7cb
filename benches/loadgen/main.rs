//! `kinesis-loadgen`: a load generator for any Kinesis-compatible endpoint.
//!
//! Speaks the Kinesis JSON 1.1 protocol with SigV4-signed requests (dummy credentials, real
//! signatures) over keep-alive HTTP/1.1 connections, one per client task. Every run is
//! bounded in time (`--duration`, and `--total` records where it applies) and, unless
//! `--allow-remote`, refuses endpoints that are not loopback addresses.
//!
//! ```text
//! cargo bench --bench kinesis-loadgen -- --endpoint http://127.0.0.1:4567 put-records \
//!     --shards 4 --concurrency 8 --batch-size 500 --record-size 1024 --duration 10s
//! ```
//!
//! Output: one JSON line per run on stdout (also appended to `--out FILE`), and a table on
//! stderr. See `benches/README.md` for every workload.

mod client;
mod connections;
mod esm;
mod jetstream;
mod queue;
mod stats;
mod subscribe;
mod workloads;

use clap::{Parser, Subcommand};
use client::{Client, Endpoint, Signer};
use std::sync::Arc;
use std::time::Duration;

/// Parses `10s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (10s, 500ms, 2m)"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("'{s}' is not a duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[derive(Debug, Parser)]
#[command(
    name = "kinesis-loadgen",
    about = "Load generator for Kinesis-compatible endpoints (loopback only unless --allow-remote)"
)]
pub struct Cli {
    /// Endpoint URL (plain HTTP).
    #[arg(long, global = true, default_value = "http://127.0.0.1:4567")]
    pub endpoint: String,
    /// Allow an endpoint that is not a loopback address.
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// Region signed into the credential scope.
    #[arg(long, global = true, default_value = "us-east-1")]
    pub region: String,
    /// Access key id (dummy; 12 digits selects that account on brokers that namespace by it).
    #[arg(long, global = true, default_value = "AKIDLOADGEN000000000")]
    pub access_key: String,
    /// Secret key (dummy).
    #[arg(long, global = true, default_value = "loadgen-secret-key")]
    pub secret_key: String,
    /// PID of the server: report its CPU seconds and peak resident memory for the run.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Name (or prefix, for several streams) of the stream(s); default loadgen-<pid>-<ms>.
    #[arg(long, global = true)]
    pub stream: Option<String>,
    /// Use existing streams: neither create nor delete them.
    #[arg(long, global = true)]
    pub use_existing: bool,
    /// Do not delete the streams created for the run.
    #[arg(long, global = true)]
    pub keep_streams: bool,
    /// Longest wait for one answer.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// How long a created stream may take to become ACTIVE.
    #[arg(long, global = true, default_value = "120s", value_parser = parse_duration)]
    pub create_timeout: Duration,
    /// A name for the target in the output (kinesalite, broker, ...).
    #[arg(long, global = true, default_value = "")]
    pub label: String,
    /// Also append the JSON line to this file.
    #[arg(long, global = true)]
    pub out: Option<std::path::PathBuf>,
    /// Spread the streams over this many accounts (12-digit access keys 100000000000,
    /// 100000000001, ...), for brokers that limit shards per account (AWS: 500).
    #[arg(long, global = true, default_value_t = 1)]
    pub accounts: usize,
    /// Worker threads of the client's runtime (default: the number of CPUs).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub workload: Workload,
}

/// What the full-speed writers put in each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// Random bytes (incompressible, not text).
    Random,
    /// A JSON object of event-like fields whose text pads it to the record size, with words
    /// drawn from a small vocabulary: it compresses about as well as real event JSON does.
    Json,
}

/// Options of every write workload.
#[derive(Debug, Clone, clap::Args)]
pub struct WriteOpts {
    /// Concurrent client tasks (one connection each).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Bytes of data per record.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Distinct partition keys (pk-0 … pk-N-1), picked at random.
    #[arg(long, default_value_t = 1000)]
    pub partition_keys: u32,
    /// Run for this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many records (rounded up to whole requests), if sooner.
    #[arg(long)]
    pub total: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Workload {
    /// PutRecords in batches at full speed.
    PutRecords {
        #[arg(long, default_value_t = 4)]
        shards: u32,
        /// Records per PutRecords request (1-500).
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Records/s over all writers; 0 writes at full speed. A producer at a fraction of
        /// the measured rate, for what runs beside it (channels, issue 22).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Each record's data: `random` bytes, or `json`: one JSON document of exactly
        /// --record-size bytes (what a channel's JSON format accepts).
        #[arg(long, value_enum, default_value_t = Payload::Random)]
        payload: Payload,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// PutRecord, one record per request, at full speed.
    PutRecord {
        #[arg(long, default_value_t = 4)]
        shards: u32,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Writes (PutRecords, untimed), then reads everything back from TRIM_HORIZON, all
    /// shards in parallel; the rate is the read phase's.
    GetRecordsDrain {
        #[arg(long, default_value_t = 4)]
        shards: u32,
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// GetRecords Limit.
        #[arg(long, default_value_t = 10000)]
        limit: u32,
        /// Longest the read phase may take.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// The write phase: --duration and --total bound it.
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Writers at a target rate while one consumer per shard polls; end-to-end latency from
    /// a timestamp embedded in each record to the moment a consumer reads it.
    ProduceConsume {
        #[arg(long, default_value_t = 4)]
        shards: u32,
        /// Target write rate, records/s over all writers.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Largest PutRecords batch a writer sends.
        #[arg(long, default_value_t = 500)]
        max_batch: usize,
        /// Pause between a consumer's GetRecords calls, in ms; 0 polls continuously.
        #[arg(long, default_value_t = 200)]
        poll_interval_ms: u64,
        /// GetRecords Limit.
        #[arg(long, default_value_t = 10000)]
        limit: u32,
        /// After writing stops, how long consumers may take to catch up.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Enhanced fan-out: `--consumers` registered consumers, each subscribed to every shard
    /// with SubscribeToShard (HTTP/1.1, one connection per subscription, resubscribing from
    /// the continuation when a subscription ends), while writers send PutRecords at `--rate`
    /// (0: as fast as they go). Delivered records/s per consumer, propagation latency from
    /// the write's acknowledgement to each consumer, end-to-end from the send time,
    /// duplicates and missing records.
    Subscribe {
        #[arg(long, default_value_t = 4)]
        shards: u32,
        /// Target write rate, records/s over all writers; 0 writes full batches back to
        /// back.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Registered consumers, each subscribed to every shard.
        #[arg(long, default_value_t = 1)]
        consumers: usize,
        /// Largest PutRecords batch a writer sends (every batch, at --rate 0).
        #[arg(long, default_value_t = 500)]
        max_batch: usize,
        /// Records written before the subscriptions start (untimed, full speed), which
        /// every consumer then reads from TRIM_HORIZON: with `--duration 0`, the fan-out
        /// counterpart of get-records-drain.
        #[arg(long, default_value_t = 0)]
        prefill: u64,
        /// Longest the prefill's writes may take (then what was written is read).
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        prefill_timeout: Duration,
        /// Consumer names are this prefix plus 0, 1, ...
        #[arg(long, default_value = "loadgen-consumer-")]
        consumer_prefix: String,
        /// After writing stops, how long consumers may take to receive everything.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Event-source mapping: a broker started with `--function NAME=runtime://ADDR` delivers
    /// the stream into `--handlers` processes of the `lambda_runtime` handler
    /// (`compat-tests/rust-handler`, noop mode; one per shard by default). In one run: the
    /// GetRecords drain rate of `--prefill` records, the mapping's delivery rate of the same
    /// records (TRIM_HORIZON, `--batch-size`, window 0), then writers at `--rate` and the
    /// latency from each write's acknowledgement to the handler receiving the record.
    Esm {
        #[arg(long, default_value_t = 4)]
        shards: u32,
        /// The function's name as declared to the broker (`--function NAME=runtime://…`).
        #[arg(long, default_value = "noop")]
        function: String,
        /// The function's Runtime API address (HOST:PORT of `runtime://HOST:PORT`).
        #[arg(long)]
        runtime_api: String,
        /// The handler binary (target/release/esm-rust-handler).
        #[arg(long)]
        handler: std::path::PathBuf,
        /// Handler processes; 0: one per shard.
        #[arg(long, default_value_t = 0)]
        handlers: usize,
        /// The mapping's BatchSize.
        #[arg(long, default_value_t = 100)]
        batch_size: u32,
        /// Records written first, drained with GetRecords, then delivered by the mapping.
        #[arg(long, default_value_t = 100_000)]
        prefill: u64,
        /// GetRecords Limit for the drain.
        #[arg(long, default_value_t = 10000)]
        limit: u32,
        /// Write rate of the latency phase, records/s over all writers.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Largest PutRecords batch a writer sends.
        #[arg(long, default_value_t = 500)]
        max_batch: usize,
        /// Longest the prefill, the drain and the mapping's delivery may each take.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// After writing stops, how long the handlers may take to receive everything.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Kinesis queues: on an ON_DEMAND stream, a queue (CreateQueue from TRIM_HORIZON,
    /// DescribeQueue until ACTIVE) and `--workers` tasks looping ReceiveQueueRecords then
    /// AcknowledgeQueueRecords of what they got. The drain rate of `--prefill` records
    /// (received and acknowledged per second), then writers at `--rate` and the latency from
    /// each write's acknowledgement to the long-polling worker's receipt; missing and
    /// duplicate records.
    Queue {
        /// Worker tasks, one connection each.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// ReceiveQueueRecords Limit (1-10).
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// ReceiveQueueRecords WaitTimeSeconds (1-20): the long poll.
        #[arg(long, default_value_t = 2)]
        wait_time_seconds: u32,
        /// Records written before the workers start, then drained by them.
        #[arg(long, default_value_t = 100_000)]
        prefill: u64,
        /// Write rate of the latency phase, records/s over all writers.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Largest PutRecords batch a writer sends.
        #[arg(long, default_value_t = 500)]
        max_batch: usize,
        /// The queue's name.
        #[arg(long, default_value = "loadgen-queue")]
        queue_name: String,
        /// Longest the prefill's writes, and then its drain, may each take.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// After writing stops, how long the workers may take to acknowledge everything.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// The `queue` workload's peer on NATS JetStream (issue 18): a work-queue stream (file
    /// storage) and a durable pull consumer with explicit acks, AckWait and MaxDeliver, over
    /// the NATS protocol at `--nats`. The drain rate of `--prefill` records pulled in batches
    /// of `--batch` by `--workers` tasks that acknowledge each record, then publishers at
    /// `--rate` and the latency from each PubAck to the record's arrival at a worker.
    QueueJetstream {
        /// The nats-server's client address (JetStream on).
        #[arg(long, default_value = "127.0.0.1:4222")]
        nats: String,
        /// Worker tasks, one connection each.
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Messages per pull request (`batch`), as ReceiveQueueRecords' Limit.
        #[arg(long, default_value_t = 10)]
        batch: u32,
        /// A pull's `expires`, in seconds (1-20): the long poll, as WaitTimeSeconds.
        #[arg(long, default_value_t = 2)]
        wait_time_seconds: u32,
        /// Records published before the workers start, then drained by them.
        #[arg(long, default_value_t = 100_000)]
        prefill: u64,
        /// Publish rate of the latency phase, records/s over all publishers (0 skips it).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// The consumer's `ack_wait`: the broker queue's default visibility timeout.
        #[arg(long, default_value_t = 30)]
        ack_wait_seconds: u32,
        /// The consumer's `max_deliver`: the broker queue's default MaxReceiveCount.
        #[arg(long, default_value_t = 6)]
        max_deliver: i64,
        /// How workers acknowledge: `async` publishes `+ACK` (nats.go `Ack()`), `sync` waits
        /// for the server's confirmation of each (nats.go `AckSync()`).
        #[arg(long, value_enum, default_value_t = jetstream::AckMode::Async)]
        ack: jetstream::AckMode,
        /// The JetStream stream's name (its subject is `<name>.records`).
        #[arg(long, default_value = "LOADGEN_QUEUE")]
        stream_name: String,
        /// Longest the prefill, and then its drain, may each take.
        #[arg(long, default_value = "120s", value_parser = parse_duration)]
        drain_timeout: Duration,
        /// After publishing stops, how long the workers may take to acknowledge everything.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        grace: Duration,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Issue 21: `--idle` keep-alive connections (one request each, then idle, refreshed
    /// every `--refresh`) and `--slowloris` clients trickling a request head, held for
    /// `--duration` while writers send PutRecord at `--rate` and fresh clients connect
    /// `--new-clients` times a second; latencies compared with a `--baseline` run of the
    /// same clients alone, the server's memory per connection (`--server-pid`), and the
    /// connections it evicted at its `--max-connections`.
    Connections {
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// Idle keep-alive connections held open.
        #[arg(long, default_value_t = 10_000)]
        idle: usize,
        /// Slowloris connections (a request head, one byte per --slowloris-interval).
        #[arg(long, default_value_t = 100)]
        slowloris: usize,
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        slowloris_interval: Duration,
        /// How often an idle connection makes a request (GET /_broker/health) to stay open.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        refresh: Duration,
        /// PutRecord requests/s over --concurrency keep-alive connections.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Fresh connections per second, each making one PutRecord.
        #[arg(long, default_value_t = 5.0)]
        new_clients: f64,
        /// How long the clients run alone first.
        #[arg(long, default_value = "20s", value_parser = parse_duration)]
        baseline: Duration,
        /// Connections being opened at once while the crowd gathers.
        #[arg(long, default_value_t = 200)]
        connect_concurrency: usize,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Many shards over several streams (default 10 × 100): creation time, the idle server
    /// (CPU and memory with no traffic), then PutRecords across all of them.
    ManyShards {
        #[arg(long, default_value_t = 10)]
        streams: u32,
        #[arg(long, default_value_t = 100)]
        shards_per_stream: u32,
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Idle period measured after creation.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        idle: Duration,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Many small streams (default 200 × 1 shard): creation time, idle server, then PutRecord
    /// round-robin over the streams.
    ManyStreams {
        #[arg(long, default_value_t = 200)]
        streams: u32,
        #[arg(long, default_value_t = 1)]
        shards_per_stream: u32,
        /// Records per request; 1 uses PutRecord, more uses PutRecords.
        #[arg(long, default_value_t = 1)]
        batch_size: usize,
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        idle: Duration,
        #[command(flatten)]
        write: WriteOpts,
    },
}

fn main() -> std::process::ExitCode {
    // `cargo bench` appends `--bench`; a bare `cargo bench` must not start a load.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() <= 1 {
        eprintln!(
            "kinesis-loadgen: nothing to do (run `cargo bench --bench kinesis-loadgen -- --help`)"
        );
        return std::process::ExitCode::SUCCESS;
    }
    if let Err(e) = client::self_check() {
        eprintln!("kinesis-loadgen: self-check failed: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse_from(args);
    let endpoint = match Endpoint::parse(&cli.endpoint, cli.allow_remote) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kinesis-loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = cli.threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = builder.build().expect("tokio runtime");
    let client = Arc::new(Client {
        endpoint,
        signers: if cli.accounts <= 1 {
            vec![Signer {
                access_key: cli.access_key.clone(),
                secret_key: cli.secret_key.clone(),
                region: cli.region.clone(),
                key_cache: Default::default(),
            }]
        } else {
            (0..cli.accounts)
                .map(|i| Signer {
                    access_key: format!("{:012}", 100_000_000_000u64 + i as u64),
                    secret_key: cli.secret_key.clone(),
                    region: cli.region.clone(),
                    key_cache: Default::default(),
                })
                .collect()
        },
        timeout: cli.request_timeout,
    });
    match runtime.block_on(workloads::run(&cli, client)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kinesis-loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
