//! What the broker reports about itself for `/metrics` and the console: its streams' disk
//! usage, its readers and their lag, and the throughput sampler feeding each stream's
//! history (`metrics::throughput`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Broker;
use super::stream::{Stream, StreamKey};
use crate::metrics::throughput::{self, INTERVAL_S};

/// A stream's files on disk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes of every file (segments and their indexes).
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
}

/// A queue's delivery figures.
#[derive(Debug, Clone)]
pub struct QueueGauge {
    /// Queue name.
    pub name: String,
    /// Its stream's name.
    pub stream: String,
    /// Account.
    pub account: String,
    /// Records received and not acknowledged (or waiting to be received again).
    pub in_flight: u64,
    /// Dead-letter records.
    pub dead_letters: u64,
}

/// Someone reading a stream, and how far behind they are.
#[derive(Debug, Clone)]
pub struct Reader {
    /// `consumer`, `queue`, `event-source-mapping` or `channel` (the console's names).
    pub kind: &'static str,
    /// Consumer, queue or channel name, or mapping UUID.
    pub name: String,
    /// The stream's name.
    pub stream: String,
    /// The stream's account.
    pub account: String,
    /// Milliseconds behind the stream's newest record; `None` when unknown (a consumer
    /// with no recent subscription, a deleting channel).
    pub lag_ms: Option<i64>,
    /// Records not yet delivered, for channels (whose delivery waits for a size or an age,
    /// so a lag in records says more than its age); `None` for the other kinds.
    pub lag_records: Option<u64>,
}

impl Broker {
    /// Every stream, in uid order.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        let mut streams: Vec<Arc<Stream>> = self.registry().streams.values().cloned().collect();
        streams.sort_by_key(|s| s.uid);
        streams
    }

    /// The stream's files on disk (read from the file system: cheap enough per scrape, and
    /// it counts what really is there, retention and resharding included).
    pub fn disk_usage(&self, stream: &Stream) -> DiskUsage {
        let mut usage = DiskUsage::default();
        let Ok(shards) = std::fs::read_dir(self.stream_dir(stream.uid)) else {
            return usage;
        };
        for shard in shards.flatten() {
            add_dir(&shard.path(), &mut usage);
        }
        usage
    }

    /// Every queue's in-flight and dead-letter counts.
    pub fn queue_gauges(&self) -> Vec<QueueGauge> {
        self.queues
            .all()
            .into_iter()
            .map(|q| {
                let meta = q.meta();
                let (in_flight, dead_letters) = q.delivery_counts();
                QueueGauge {
                    name: meta.name,
                    stream: meta.stream_name,
                    account: meta.account,
                    in_flight,
                    dead_letters,
                }
            })
            .collect()
    }

    /// The readers of one stream: its fan-out consumers, queues, event-source mappings and
    /// channels.
    pub fn readers(&self, stream: &Arc<Stream>, now_ms: i64) -> Vec<Reader> {
        let mut readers = self.readers_among(stream, now_ms, &self.mapping_list());
        // Channels here and not in `readers_among`: `/metrics` already has their lag
        // (`kinesis_broker_channel_lag_*`, from the same gauges), which `readers_all` would
        // read a second time on every scrape.
        readers.extend(self.channel_readers(stream, now_ms));
        readers
    }

    /// The channels delivering `stream`, with the lag their gauges report.
    fn channel_readers(&self, stream: &Stream, now_ms: i64) -> Vec<Reader> {
        self.channels
            .all()
            .into_iter()
            .filter(|channel| channel.meta().stream_uid == stream.uid)
            .map(|channel| {
                let gauge = self.channel_gauge(&channel, now_ms);
                Reader {
                    kind: "channel",
                    name: gauge.name,
                    stream: gauge.stream,
                    account: gauge.account,
                    // A deleting channel has no lag at all, not one of zero records.
                    lag_records: gauge.lag_ms.map(|_| gauge.lag_records),
                    lag_ms: gauge.lag_ms,
                }
            })
            .collect()
    }

    /// Every mapping's figures (`mapping_stats`), read once for all streams.
    fn mapping_list(&self) -> Vec<Value> {
        match self.mapping_stats(None) {
            Some(Value::Object(mut all)) => match all.remove("EventSourceMappings") {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// [`Broker::readers`], with the mappings' figures already read.
    fn readers_among(&self, stream: &Arc<Stream>, now_ms: i64, mappings: &[Value]) -> Vec<Reader> {
        let arn = stream.arn();
        let reader = |kind, name: String, lag_ms| Reader {
            kind,
            name,
            stream: stream.key.name.clone(),
            account: stream.key.account.clone(),
            lag_ms,
            lag_records: None,
        };
        let mut out = Vec::new();
        for consumer in stream.state().consumers.clone() {
            let lag = stream.metrics.consumer_lag(&consumer.arn(&arn), now_ms);
            out.push(reader("consumer", consumer.name.clone(), lag));
        }
        for q in self.queues.all() {
            let meta = q.meta();
            if meta.stream_uid == stream.uid {
                let lag = self.queue_lag(stream, &q.frontier());
                out.push(reader("queue", meta.name, lag));
            }
        }
        for m in mappings {
            if m.get("EventSourceArn").and_then(Value::as_str) != Some(arn.as_str()) {
                continue;
            }
            let uuid = m.get("UUID").and_then(Value::as_str).unwrap_or_default();
            let lag = m.get("IteratorAgeMilliseconds").and_then(Value::as_i64);
            out.push(reader("event-source-mapping", uuid.to_string(), lag));
        }
        out
    }

    /// The readers of every stream.
    pub fn readers_all(&self, now_ms: i64) -> Vec<Reader> {
        let mappings = self.mapping_list();
        self.streams()
            .iter()
            .flat_map(|s| self.readers_among(s, now_ms, &mappings))
            .collect()
    }

    /// A queue's lag: the age of the oldest record it has not handed out yet, over the
    /// stream's shards (0 when it has handed out everything).
    fn queue_lag(
        &self,
        stream: &Stream,
        frontier: &std::collections::BTreeMap<u32, u64>,
    ) -> Option<i64> {
        let shards = stream.state().shards.clone();
        let mut lag = 0;
        for shard in shards {
            let end = Self::shard_end(&shard);
            let horizon = self.trim_horizon(stream, &shard).ok()?;
            let next = frontier
                .get(&shard.index)
                .copied()
                .unwrap_or(horizon)
                .max(horizon);
            if next >= end {
                continue;
            }
            let batch = shard.log.read(next, 1, 1).ok()?;
            if let Some(Ok(first)) = batch.iter().next() {
                // Ages on the earlier clock reading: a wall step neither adds an hour
                // to the lag nor makes it negative.
                lag = lag.max(self.clock.age_ms(first.arrival_ms));
            }
        }
        Some(lag)
    }

    /// `GET /_broker/throughput?StreamARN=…` for the console: the stream's throughput
    /// history and its readers, or `None` for an unknown stream.
    pub fn throughput(&self, stream_arn: &str) -> Option<Value> {
        let key = StreamKey::from_arn(stream_arn)?;
        let stream = self.stream(&key).ok()?;
        let now_ms = self.clock.now_ms();
        let readers: Vec<Value> = self
            .readers(&stream, now_ms)
            .into_iter()
            .map(|r| {
                let mut reader =
                    json!({"Kind": r.kind, "Name": r.name, "LagMilliseconds": r.lag_ms});
                if let Some(records) = r.lag_records {
                    reader["LagRecords"] = json!(records);
                }
                reader
            })
            .collect();
        Some(json!({
            "StreamARN": stream.arn(),
            "IntervalSeconds": INTERVAL_S,
            "Points": stream.metrics.history(),
            "Readers": readers,
        }))
    }

    /// Closes the throughput interval that just ended on every stream.
    pub fn sample_throughput(&self) {
        let start = throughput::closing_interval_start(self.clock.now_ms());
        for stream in self.streams() {
            stream.metrics.sample(start);
        }
    }

    /// Runs [`Broker::sample_throughput`] at every interval boundary until shutdown.
    pub(super) fn start_throughput_sampler(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    Some(b) => throughput::until_next_boundary_ms(b.clock.now_ms()),
                    None => return,
                };
                // A little past the boundary, so that a timer firing early still lands in
                // the new interval.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait + 20)) => {}
                    _ = stop.changed() => return,
                }
                let Some(broker) = weak.upgrade() else { return };
                broker.sample_throughput();
            }
        });
    }
}

/// Adds the files under `dir` (one shard's log) to `usage`.
fn add_dir(dir: &Path, usage: &mut DiskUsage) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            usage.bytes += meta.len();
            if entry.file_name().to_string_lossy().ends_with(".log") {
                usage.segments += 1;
            }
        }
    }
}
