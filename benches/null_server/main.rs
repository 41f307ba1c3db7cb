//! The null server: kinesis-broker's HTTP layer, decoding and validation, in front of a
//! `Kinesis` implementation that stores nothing and answers at once. What it reaches is the
//! transport ceiling of the real broker on the same machine.
//!
//! ```text
//! cargo bench --bench null-server -- --port 4599 [--host 127.0.0.1] [--shards 4]
//! ```
//!
//! It answers CreateStream, DeleteStream, DescribeStreamSummary, ListShards, PutRecord,
//! PutRecords, GetShardIterator and GetRecords with well-formed outputs: fake sequence
//! numbers, and for GetRecords as many fake records as were written to the shard (counted,
//! not kept), each as large as the average record written, so that a drain has something
//! to read. Every other operation answers NotImplementedException (the trait's default).

use clap::Parser;
use kinesis_broker::api::generated::*;
use kinesis_broker::api::{ApiError, Blob, RequestContext, Timestamp};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Parser)]
#[command(
    name = "null-server",
    about = "kinesis-broker's front end over a service that stores nothing"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port, printed on stdout).
    #[arg(long)]
    port: u16,
    /// Shards of a stream that was never created (a stream's own count otherwise).
    #[arg(long, default_value_t = 4)]
    shards: u32,
}

/// What the null server remembers of a stream: its shard count and, per shard, how many
/// records were written and how many bytes they held.
struct NullStream {
    shards: u32,
    created_ms: i64,
    written: Vec<AtomicU64>,
    bytes: Vec<AtomicU64>,
}

impl NullStream {
    fn new(shards: u32) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64;
        Self {
            shards,
            created_ms: now,
            written: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            bytes: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

struct NullService {
    default_shards: u32,
    streams: Mutex<HashMap<String, Arc<NullStream>>>,
    seq: AtomicU64,
}

impl NullService {
    fn stream(&self, name: Option<&str>, arn: Option<&str>) -> (String, Arc<NullStream>) {
        let name = name
            .or_else(|| arn.and_then(|a| a.rsplit('/').next()))
            .unwrap_or("null")
            .to_string();
        let s = self
            .streams
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_insert_with(|| Arc::new(NullStream::new(self.default_shards)))
            .clone();
        (name, s)
    }

    /// A 56-digit decimal sequence number, like AWS's, from a counter.
    fn next_seq(&self) -> String {
        let mut n = self.seq.fetch_add(1, Ordering::Relaxed);
        // Digits written by hand: `format!` pads with one `write_char` per zero, which
        // showed up in the null server's profile at 5%.
        let mut digits = *b"49600000000000000000000000000000000000000000000000000000";
        let mut i = digits.len();
        while n > 0 {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        String::from_utf8(digits.to_vec()).expect("ASCII digits")
    }
}

fn shard_id(i: u32) -> String {
    format!("shardId-{i:012}")
}

/// A cheap stand-in for routing: spreads records over shards by the partition key's bytes.
fn pick_shard(key: &str, shards: u32) -> u32 {
    let h = key
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    h % shards.max(1)
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFoundException,
        format!("Stream {name} under account 000000000000 not found."),
    )
}

impl Kinesis for NullService {
    async fn create_stream(
        &self,
        _ctx: &RequestContext,
        input: CreateStreamInput,
    ) -> Result<(), ApiError> {
        let name = input.stream_name.unwrap_or_default();
        let shards = input.shard_count.unwrap_or(4).max(1) as u32;
        self.streams
            .lock()
            .unwrap()
            .insert(name, Arc::new(NullStream::new(shards)));
        Ok(())
    }

    async fn delete_stream(
        &self,
        _ctx: &RequestContext,
        input: DeleteStreamInput,
    ) -> Result<(), ApiError> {
        let name = input.stream_name.unwrap_or_default();
        match self.streams.lock().unwrap().remove(&name) {
            Some(_) => Ok(()),
            None => Err(not_found(&name)),
        }
    }

    async fn describe_stream_summary(
        &self,
        _ctx: &RequestContext,
        input: DescribeStreamSummaryInput,
    ) -> Result<DescribeStreamSummaryOutput, ApiError> {
        let (name, s) = self.stream(input.stream_name.as_deref(), input.stream_arn.as_deref());
        Ok(DescribeStreamSummaryOutput {
            stream_description_summary: StreamDescriptionSummary {
                stream_arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}"),
                stream_name: name,
                stream_id: None,
                stream_status: StreamStatus::Active,
                stream_mode_details: Some(StreamModeDetails {
                    stream_mode: Some(StreamMode::Provisioned),
                }),
                retention_period_hours: 24,
                stream_creation_timestamp: Timestamp::from_millis(s.created_ms),
                enhanced_monitoring: vec![EnhancedMetrics {
                    shard_level_metrics: Some(Vec::new()),
                }],
                encryption_type: Some(EncryptionType::None),
                key_id: None,
                open_shard_count: s.shards as i32,
                consumer_count: Some(0),
                warm_throughput: None,
                max_record_size_in_kib: None,
                channel_count: None,
                record_distribution_strategy: None,
                queue_count: None,
            },
        })
    }

    async fn list_shards(
        &self,
        _ctx: &RequestContext,
        input: ListShardsInput,
    ) -> Result<ListShardsOutput, ApiError> {
        let (_, s) = self.stream(input.stream_name.as_deref(), input.stream_arn.as_deref());
        let n = u128::from(s.shards);
        let width = u128::MAX / n;
        let shards = (0..s.shards)
            .map(|i| {
                let start = width * u128::from(i);
                let end = if u128::from(i) == n - 1 {
                    u128::MAX
                } else {
                    start + width - 1
                };
                Shard {
                    shard_id: shard_id(i),
                    parent_shard_id: None,
                    adjacent_parent_shard_id: None,
                    hash_key_range: HashKeyRange {
                        starting_hash_key: start.to_string(),
                        ending_hash_key: end.to_string(),
                    },
                    sequence_number_range: SequenceNumberRange {
                        starting_sequence_number: format!("4960{:052}", 0),
                        ending_sequence_number: None,
                    },
                }
            })
            .collect();
        Ok(ListShardsOutput {
            shards: Some(shards),
            next_token: None,
        })
    }

    async fn put_record(
        &self,
        _ctx: &RequestContext,
        input: PutRecordInput,
    ) -> Result<PutRecordOutput, ApiError> {
        let (_, s) = self.stream(input.stream_name.as_deref(), input.stream_arn.as_deref());
        let shard = pick_shard(input.partition_key.as_deref().unwrap_or(""), s.shards);
        s.written[shard as usize].fetch_add(1, Ordering::Relaxed);
        let len = input.data.as_ref().map_or(0, Blob::len) as u64;
        s.bytes[shard as usize].fetch_add(len, Ordering::Relaxed);
        Ok(PutRecordOutput {
            shard_id: shard_id(shard),
            sequence_number: self.next_seq(),
            encryption_type: None,
        })
    }

    async fn put_records(
        &self,
        _ctx: &RequestContext,
        input: PutRecordsInput,
    ) -> Result<PutRecordsOutput, ApiError> {
        let (_, s) = self.stream(input.stream_name.as_deref(), input.stream_arn.as_deref());
        let records = input.records.unwrap_or_default();
        let out = records
            .iter()
            .map(|r| {
                let shard = pick_shard(r.partition_key.as_deref().unwrap_or(""), s.shards);
                s.written[shard as usize].fetch_add(1, Ordering::Relaxed);
                let len = r.data.as_ref().map_or(0, Blob::len) as u64;
                s.bytes[shard as usize].fetch_add(len, Ordering::Relaxed);
                PutRecordsResultEntry {
                    sequence_number: Some(self.next_seq()),
                    shard_id: Some(shard_id(shard)),
                    error_code: None,
                    error_message: None,
                }
            })
            .collect();
        Ok(PutRecordsOutput {
            failed_record_count: Some(0),
            records: out,
            encryption_type: None,
        })
    }

    async fn get_shard_iterator(
        &self,
        _ctx: &RequestContext,
        input: GetShardIteratorInput,
    ) -> Result<GetShardIteratorOutput, ApiError> {
        let (name, s) = self.stream(input.stream_name.as_deref(), input.stream_arn.as_deref());
        let shard = input
            .shard_id
            .as_deref()
            .and_then(|id| id.rsplit('-').next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        if shard >= s.shards {
            return Err(not_found(&name));
        }
        // TRIM_HORIZON reads from 0; every other type from the current end.
        let pos = match input.shard_iterator_type {
            Some(ShardIteratorType::TrimHorizon) => 0,
            _ => s.written[shard as usize].load(Ordering::Relaxed),
        };
        Ok(GetShardIteratorOutput {
            shard_iterator: Some(format!("{name}|{shard}|{pos}")),
        })
    }

    async fn get_records(
        &self,
        _ctx: &RequestContext,
        input: GetRecordsInput,
    ) -> Result<GetRecordsOutput, ApiError> {
        let iterator = input.shard_iterator.unwrap_or_default();
        let mut parts = iterator.rsplitn(3, '|');
        let (Some(pos), Some(shard), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ApiError::new(
                ErrorCode::InvalidArgumentException,
                "Invalid ShardIterator.",
            ));
        };
        let (Ok(pos), Ok(shard)) = (pos.parse::<u64>(), shard.parse::<u32>()) else {
            return Err(ApiError::new(
                ErrorCode::InvalidArgumentException,
                "Invalid ShardIterator.",
            ));
        };
        let s = self
            .streams
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))?;
        let Some(written) = s
            .written
            .get(shard as usize)
            .map(|w| w.load(Ordering::Relaxed))
        else {
            return Err(not_found(name));
        };
        let bytes = s.bytes[shard as usize].load(Ordering::Relaxed);
        let size = bytes.checked_div(written).unwrap_or(0) as usize;
        let limit = input.limit.unwrap_or(10_000).clamp(1, 10_000) as u64;
        let n = written.saturating_sub(pos).min(limit);
        let now = Timestamp::from_millis(s.created_ms);
        let records = (0..n)
            .map(|_| Record {
                sequence_number: self.next_seq(),
                approximate_arrival_timestamp: Some(now),
                data: Blob::from(vec![0x5a; size]),
                partition_key: Some("pk".into()),
                encryption_type: None,
            })
            .collect();
        Ok(GetRecordsOutput {
            records,
            next_shard_iterator: Some(format!("{name}|{shard}|{}", pos + n)),
            millis_behind_latest: Some(0),
            child_shards: None,
        })
    }
}

fn main() -> std::process::ExitCode {
    // `cargo bench` appends `--bench`; a bare `cargo bench` must not start a server.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() <= 1 {
        eprintln!(
            "null-server: nothing to do (run `cargo bench --bench null-server -- --port 4599`)"
        );
        return std::process::ExitCode::SUCCESS;
    }
    let args = Args::parse_from(args);
    let addr: SocketAddr = match format!("{}:{}", args.host, args.port).parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("null-server: bad address: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("null-server: cannot listen on {addr}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().expect("local address");
        println!("null-server listening on http://{local}");
        let service = NullService {
            default_shards: args.shards.max(1),
            streams: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
        };
        let (trigger, shutdown) = kinesis_broker::http::shutdown::channel();
        let server = tokio::spawn(kinesis_broker::http::serve(listener, service, shutdown));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm() => {}
        }
        trigger.trigger();
        let _ = server.await;
        std::process::ExitCode::SUCCESS
    })
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
