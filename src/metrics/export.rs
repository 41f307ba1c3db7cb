//! `GET /metrics`: a `prometheus-client` collector that reads the broker's counters at
//! scrape time. Stream-level metrics carry CloudWatch's Kinesis metric names in their HELP
//! text; shard-level ones appear only for the metrics a stream enabled with
//! EnableEnhancedMonitoring, as CloudWatch publishes them only then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::histogram::HistogramSnapshot;
use super::server::ServerMetrics;
use super::stream::StreamMetrics;
use crate::broker::Broker;
use crate::broker::channel::delivery::Cursor;
use crate::broker::channel::gauges::ChannelGauge;
use crate::broker::stream::{Shard, Stream};

/// The `Content-Type` of the Prometheus text format.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, String)>;

/// A stream with enhanced monitoring on: its labels, the metrics enabled, its shards.
type Enabled<'a> = (&'a Labels, Vec<String>, Vec<Arc<Shard>>);

/// Renders every metric of `broker` and `server` in the Prometheus text format.
pub fn render(broker: &Arc<Broker>, server: &Arc<ServerMetrics>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector {
        broker: Arc::downgrade(broker),
        server: server.clone(),
    }));
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would be a bug in a name.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding /metrics failed");
    }
    out
}

#[derive(Debug)]
struct BrokerCollector {
    broker: Weak<Broker>,
    server: Arc<ServerMetrics>,
}

/// A shard-level metric: its CloudWatch name (as EnableEnhancedMonitoring names it), the
/// Prometheus name, help, and how to read it.
struct ShardMetric {
    cloudwatch: &'static str,
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    read: fn(&Shard, i64) -> Option<u64>,
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

const SHARD_METRICS: [ShardMetric; 7] = [
    ShardMetric {
        cloudwatch: "IncomingBytes",
        name: "kinesis_shard_incoming_bytes",
        help: "IncomingBytes (shard-level): bytes successfully put to the shard.",
        kind: MetricType::Counter,
        read: |s, _| Some(load(&s.metrics.incoming_bytes)),
    },
    ShardMetric {
        cloudwatch: "IncomingRecords",
        name: "kinesis_shard_incoming_records",
        help: "IncomingRecords (shard-level): records successfully put to the shard.",
        kind: MetricType::Counter,
        read: |s, _| Some(load(&s.metrics.incoming_records)),
    },
    ShardMetric {
        cloudwatch: "OutgoingBytes",
        name: "kinesis_shard_outgoing_bytes",
        help: "OutgoingBytes (shard-level): bytes retrieved from the shard (GetRecords and SubscribeToShard).",
        kind: MetricType::Counter,
        read: |s, _| Some(load(&s.metrics.outgoing_bytes)),
    },
    ShardMetric {
        cloudwatch: "OutgoingRecords",
        name: "kinesis_shard_outgoing_records",
        help: "OutgoingRecords (shard-level): records retrieved from the shard.",
        kind: MetricType::Counter,
        read: |s, _| Some(load(&s.metrics.outgoing_records)),
    },
    ShardMetric {
        cloudwatch: "WriteProvisionedThroughputExceeded",
        name: "kinesis_shard_write_provisioned_throughput_exceeded",
        help: "WriteProvisionedThroughputExceeded (shard-level): records rejected due to throttling for the shard.",
        kind: MetricType::Counter,
        read: |s, _| Some(load(&s.metrics.write_throttled)),
    },
    ShardMetric {
        cloudwatch: "ReadProvisionedThroughputExceeded",
        name: "kinesis_shard_read_provisioned_throughput_exceeded",
        help: "ReadProvisionedThroughputExceeded (shard-level): GetRecords calls throttled for the shard.",
        kind: MetricType::Counter,
        read: |s, _| Some(load(&s.metrics.read_throttled)),
    },
    ShardMetric {
        cloudwatch: "IteratorAgeMilliseconds",
        name: "kinesis_shard_iterator_age_milliseconds",
        help: "IteratorAgeMilliseconds (shard-level): age of the last record returned by the shard's last GetRecords call in the last minute (0: caught up).",
        kind: MetricType::Gauge,
        read: |s, now| s.metrics.current_iterator_age(now).map(|a| a as u64),
    },
];

/// A stream-level counter: Prometheus name (without `_total`), help with the CloudWatch
/// name, reader.
type StreamCounter = (&'static str, &'static str, fn(&StreamMetrics) -> u64);

const STREAM_COUNTERS: [StreamCounter; 19] = [
    (
        "kinesis_incoming_bytes",
        "IncomingBytes: bytes successfully put to the stream (PutRecord and PutRecords).",
        |m| load(&m.incoming_bytes),
    ),
    (
        "kinesis_incoming_records",
        "IncomingRecords: records successfully put to the stream (PutRecord and PutRecords).",
        |m| load(&m.incoming_records),
    ),
    (
        "kinesis_put_record_bytes",
        "PutRecord.Bytes: bytes put to the stream with PutRecord.",
        |m| load(&m.put_record_bytes),
    ),
    (
        "kinesis_put_record_success",
        "PutRecord.Success: successful PutRecord operations (kinesis_put_record_latency_seconds_count counts them all).",
        |m| load(&m.put_record_success),
    ),
    (
        "kinesis_put_records_bytes",
        "PutRecords.Bytes: bytes put to the stream with PutRecords.",
        |m| load(&m.put_records_bytes),
    ),
    (
        "kinesis_put_records_success",
        "PutRecords.Success: PutRecords operations in which at least one record succeeded.",
        |m| load(&m.put_records_success),
    ),
    (
        "kinesis_put_records_total_records",
        "PutRecords.TotalRecords: records sent in PutRecords operations.",
        |m| load(&m.put_records_total_records),
    ),
    (
        "kinesis_put_records_successful_records",
        "PutRecords.SuccessfulRecords: records put successfully by PutRecords operations.",
        |m| load(&m.put_records_successful_records),
    ),
    (
        "kinesis_put_records_failed_records",
        "PutRecords.FailedRecords: records rejected by PutRecords operations because of internal failures.",
        |m| load(&m.put_records_failed_records),
    ),
    (
        "kinesis_put_records_throttled_records",
        "PutRecords.ThrottledRecords: records rejected by PutRecords operations because of throttling.",
        |m| load(&m.put_records_throttled_records),
    ),
    (
        "kinesis_get_records_bytes",
        "GetRecords.Bytes: bytes retrieved from the stream by GetRecords.",
        |m| load(&m.get_records_bytes),
    ),
    (
        "kinesis_get_records_records",
        "GetRecords.Records: records retrieved from the stream by GetRecords.",
        |m| load(&m.get_records_records),
    ),
    (
        "kinesis_get_records_success",
        "GetRecords.Success: successful GetRecords operations (kinesis_get_records_latency_seconds_count counts them all).",
        |m| load(&m.get_records_success),
    ),
    (
        "kinesis_read_provisioned_throughput_exceeded",
        "ReadProvisionedThroughputExceeded: GetRecords calls throttled for the stream.",
        |m| load(&m.read_throttled),
    ),
    (
        "kinesis_write_provisioned_throughput_exceeded",
        "WriteProvisionedThroughputExceeded: records rejected due to throttling for the stream (PutRecord and PutRecords).",
        |m| load(&m.write_throttled),
    ),
    (
        "kinesis_subscribe_to_shard_success",
        "SubscribeToShard.Success: SubscribeToShard subscriptions successfully established.",
        |m| load(&m.subscribe_success),
    ),
    (
        "kinesis_subscribe_to_shard_rate_exceeded",
        "SubscribeToShard.RateExceeded: subscription attempts refused because the consumer already had an active subscription to the shard (or one less than 5 seconds ago).",
        |m| load(&m.subscribe_rate_exceeded),
    ),
    (
        "kinesis_subscribe_to_shard_event_success",
        "SubscribeToShardEvent.Success: events published successfully to subscriptions.",
        |m| load(&m.event_success),
    ),
    (
        "kinesis_subscribe_to_shard_event_records",
        "SubscribeToShardEvent.Records: records delivered in SubscribeToShard events.",
        |m| load(&m.event_records),
    ),
];

type StreamHistogram = (
    &'static str,
    &'static str,
    fn(&StreamMetrics) -> HistogramSnapshot,
);

const STREAM_HISTOGRAMS: [StreamHistogram; 3] = [
    (
        "kinesis_put_record_latency_seconds",
        "PutRecord.Latency: time taken per PutRecord operation.",
        |m| m.put_record_latency.snapshot(),
    ),
    (
        "kinesis_put_records_latency_seconds",
        "PutRecords.Latency: time taken per PutRecords operation.",
        |m| m.put_records_latency.snapshot(),
    ),
    (
        "kinesis_get_records_latency_seconds",
        "GetRecords.Latency: time taken per GetRecords operation.",
        |m| m.get_records_latency.snapshot(),
    ),
];

fn stream_labels(stream: &Stream) -> Labels {
    vec![
        ("stream", stream.key.name.clone()),
        ("account", stream.key.account.clone()),
        ("region", stream.key.region.clone()),
    ]
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn float_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

fn histograms(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, HistogramSnapshot)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        metric
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(h.sum_s, h.count, &h.cumulative, None)?;
    }
    Ok(())
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_server(&mut encoder)?;
        let Some(broker) = self.broker.upgrade() else {
            return Ok(());
        };
        let now_ms = broker.clock().now_ms();
        let streams = broker.streams();
        encode_streams(&mut encoder, &streams, now_ms)?;
        let labelled: Vec<(Labels, &Arc<Stream>)> =
            streams.iter().map(|s| (stream_labels(s), s)).collect();
        self.encode_storage(&mut encoder, &broker, &labelled)?;
        self.encode_consumers(&mut encoder, &broker, now_ms)?;
        encode_channels(&mut encoder, &broker.channel_gauges())
    }
}

/// A channel-level counter: its name, help (with the CloudWatch `DeliveryToS3` metric it
/// stands for, where there is one) and how to read it from the cursor.
type ChannelCounter = (&'static str, &'static str, fn(&Cursor) -> u64);

const CHANNEL_COUNTERS: [ChannelCounter; 5] = [
    (
        "kinesis_broker_channel_objects",
        "Objects a channel wrote to S3, dead-letter objects included.",
        |c| c.objects,
    ),
    (
        "kinesis_broker_channel_bytes",
        "Bytes of the objects a channel wrote, as stored (compressed), dead-letter objects included (DeliveryToS3.BytesOut).",
        |c| c.bytes,
    ),
    (
        "kinesis_broker_channel_records",
        "Records a channel delivered in objects (DeliveryToS3.SuccessfulRecordCount).",
        |c| c.records,
    ),
    (
        "kinesis_broker_channel_dead_letter_records",
        "Records a channel wrote to its dead-letter prefix instead (DeliveryToS3.FailedRecordCount).",
        |c| c.dead_letters,
    ),
    (
        "kinesis_broker_channel_failed_writes",
        "Object writes that failed or the store refused; each is retried, and after 5 refusals in a row its records are dead-lettered.",
        |c| c.failed_writes,
    ),
];

/// Every channel's lag and counters, labelled `channel`, `stream`, `account`.
fn encode_channels(
    encoder: &mut DescriptorEncoder,
    channels: &[ChannelGauge],
) -> Result<(), std::fmt::Error> {
    let labels = |g: &ChannelGauge| -> Labels {
        vec![
            ("channel", g.name.clone()),
            ("stream", g.stream.clone()),
            ("account", g.account.clone()),
        ]
    };
    let lag_records: Vec<(Labels, i64)> = channels
        .iter()
        .map(|g| (labels(g), g.lag_records as i64))
        .collect();
    gauges(
        encoder,
        "kinesis_broker_channel_lag_records",
        "Records of the stream a channel has not delivered yet (nor dead-lettered), summed over shards.",
        &lag_records,
    )?;
    let lag_ms: Vec<(Labels, i64)> = channels
        .iter()
        .filter_map(|g| g.lag_ms.map(|ms| (labels(g), ms)))
        .collect();
    gauges(
        encoder,
        "kinesis_broker_channel_lag_milliseconds",
        "Age of the oldest record a channel has not delivered yet, 0 when caught up (DeliveryToS3.DataFreshness, in ms).",
        &lag_ms,
    )?;
    for (name, help, read) in CHANNEL_COUNTERS {
        let rows: Vec<(Labels, u64)> = channels
            .iter()
            .map(|g| (labels(g), read(&g.cursor)))
            .collect();
        counters(encoder, name, help, &rows)?;
    }
    Ok(())
}

/// The stream-level metrics of `streams`, and the shard-level ones they enabled.
fn encode_streams(
    encoder: &mut DescriptorEncoder,
    streams: &[Arc<Stream>],
    now_ms: i64,
) -> Result<(), std::fmt::Error> {
    let labelled: Vec<(Labels, &Arc<Stream>)> =
        streams.iter().map(|s| (stream_labels(s), s)).collect();
    for (name, help, read) in STREAM_COUNTERS {
        let rows: Vec<(Labels, u64)> = labelled
            .iter()
            .map(|(l, s)| (l.clone(), read(&s.metrics)))
            .collect();
        counters(encoder, name, help, &rows)?;
    }
    for (name, help, read) in STREAM_HISTOGRAMS {
        let rows: Vec<_> = labelled
            .iter()
            .map(|(l, s)| (l.clone(), read(&s.metrics)))
            .collect();
        histograms(encoder, name, help, &rows)?;
    }
    let bytes: Vec<(Labels, u64)> = labelled
        .iter()
        .map(|(l, s)| (l.clone(), load(&s.metrics.event_bytes)))
        .collect();
    counters(
        encoder,
        "kinesis_subscribe_to_shard_event_bytes",
        "SubscribeToShardEvent.Bytes: bytes delivered in SubscribeToShard events.",
        &bytes,
    )?;
    // Worst current readers: a gauge, absent for a stream nobody reads.
    let mut iterator_age = Vec::new();
    let mut behind = Vec::new();
    for (labels, stream) in &labelled {
        let shards = stream.state().shards.clone();
        if let Some(age) = shards
            .iter()
            .filter_map(|s| s.metrics.current_iterator_age(now_ms))
            .max()
        {
            iterator_age.push((labels.clone(), age));
        }
        if let Some(lag) = stream.metrics.worst_consumer_lag(now_ms) {
            behind.push((labels.clone(), lag));
        }
    }
    gauges(
        encoder,
        "kinesis_get_records_iterator_age_milliseconds",
        "GetRecords.IteratorAgeMilliseconds: age of the last record returned by GetRecords, worst shard read in the last minute (0: caught up).",
        &iterator_age,
    )?;
    gauges(
        encoder,
        "kinesis_subscribe_to_shard_event_millis_behind_latest",
        "SubscribeToShardEvent.MillisBehindLatest: worst MillisBehindLatest of the fan-out consumers' events in the last minute.",
        &behind,
    )?;
    encode_shard_level(encoder, &labelled, now_ms)
}

impl BrokerCollector {
    fn encode_server(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauges(
            encoder,
            "kinesis_broker_open_connections",
            "Client connections open now.",
            &[(
                Vec::new(),
                self.server.open_connections.load(Ordering::Relaxed),
            )],
        )?;
        gauges(
            encoder,
            "kinesis_broker_connection_limit",
            "Client connections served at once (--max-connections, after fitting the open-files limit); at the limit the longest-idle connection is closed for a new client.",
            &[(
                Vec::new(),
                self.server.connection_limit.load(Ordering::Relaxed),
            )],
        )?;
        counters(
            encoder,
            "kinesis_broker_idle_connections_evicted",
            "Idle keep-alive connections closed to make room for a new client at the connection limit.",
            &[(
                Vec::new(),
                self.server.idle_connections_evicted.load(Ordering::Relaxed),
            )],
        )?;
        let rows: Vec<(Labels, u64)> = self
            .server
            .requests()
            .into_iter()
            .map(|(op, err, n)| {
                let err = if err.is_empty() { "none" } else { err };
                (
                    vec![("operation", op.to_string()), ("error", err.to_string())],
                    n,
                )
            })
            .collect();
        counters(
            encoder,
            "kinesis_broker_requests",
            "Requests answered, by operation (the X-Amz-Target operation, or the endpoint) and error type (none: success).",
            &rows,
        )?;
        counters(
            encoder,
            "kinesis_broker_tls_handshake_failures",
            "TLS handshakes on the HTTPS listener that failed or timed out.",
            &[(
                Vec::new(),
                self.server.tls_handshake_failures.load(Ordering::Relaxed),
            )],
        )?;
        if let Some(secs) = self.server.recovery_seconds() {
            float_gauge(
                encoder,
                "kinesis_broker_recovery_seconds",
                "Time the broker took at start-up to open its data directory and recover every log.",
                secs,
            )?;
        }
        let ready = i64::from(self.server.readiness().is_ok());
        gauges(
            encoder,
            "kinesis_broker_ready",
            "1 when GET /ready answers 200 (storage recovered, writes accepted), else 0.",
            &[(Vec::new(), ready)],
        )?;
        let flush = storage::flush_latency();
        let snapshot = HistogramSnapshot {
            sum_s: flush.sum_s,
            count: flush.count,
            cumulative: flush.cumulative,
        };
        histograms(
            encoder,
            "kinesis_broker_flush_latency_seconds",
            "Time of each fdatasync/fsync round of the shard logs' flusher.",
            &[(Vec::new(), snapshot)],
        )
    }
}

/// Shard-level series, only for the metrics each stream enabled.
fn encode_shard_level(
    encoder: &mut DescriptorEncoder,
    labelled: &[(Labels, &Arc<Stream>)],
    now_ms: i64,
) -> Result<(), std::fmt::Error> {
    // Only streams with enhanced monitoring on pay for per-shard series.
    let enabled: Vec<Enabled<'_>> = labelled
        .iter()
        .filter_map(|(labels, stream)| {
            let st = stream.state();
            let on = st.extras.shard_level_metrics.clone();
            (!on.is_empty()).then(|| (labels, on, st.listed_shards(now_ms).cloned().collect()))
        })
        .collect();
    for metric in &SHARD_METRICS {
        let mut counter_rows = Vec::new();
        let mut gauge_rows = Vec::new();
        for (labels, on, shards) in &enabled {
            if !on.iter().any(|m| m == metric.cloudwatch) {
                continue;
            }
            for shard in shards {
                let Some(value) = (metric.read)(shard, now_ms) else {
                    continue;
                };
                let mut l = (*labels).clone();
                l.push(("shard", shard.id.clone()));
                match metric.kind {
                    MetricType::Gauge => gauge_rows.push((l, value as i64)),
                    _ => counter_rows.push((l, value)),
                }
            }
        }
        if !counter_rows.is_empty() {
            counters(encoder, metric.name, metric.help, &counter_rows)?;
        }
        if !gauge_rows.is_empty() {
            gauges(encoder, metric.name, metric.help, &gauge_rows)?;
        }
    }
    Ok(())
}

/// Event-source mapping counters (`broker::esm::stats`): the JSON member, the Prometheus
/// name, the help (Lambda's CloudWatch metric where there is one).
const MAPPING_COUNTERS: [(&str, &str, &str); 8] = [
    (
        "Invocations",
        "kinesis_broker_esm_invocations",
        "Invocations (Lambda): function invocations by the mapping, retries and split halves included.",
    ),
    (
        "Errors",
        "kinesis_broker_esm_errors",
        "Errors (Lambda): invocations that ended in a function error, a timeout or a lost runtime.",
    ),
    (
        "Retries",
        "kinesis_broker_esm_retries",
        "Failed batches tried again.",
    ),
    (
        "Bisections",
        "kinesis_broker_esm_bisections",
        "Failing batches split in two (BisectBatchOnFunctionError).",
    ),
    (
        "DiscardedBatches",
        "kinesis_broker_esm_discarded_batches",
        "Batches given up on by the mapping's retry or age policy.",
    ),
    (
        "DiscardedRecords",
        "kinesis_broker_esm_discarded_records",
        "Records given up on by the mapping's retry or age policy.",
    ),
    (
        "DeliveredRecords",
        "kinesis_broker_esm_delivered_records",
        "Records delivered successfully.",
    ),
    (
        "FilteredOutRecords",
        "kinesis_broker_esm_filtered_out_records",
        "Records matching none of the mapping's filters.",
    ),
];

impl BrokerCollector {
    fn encode_mappings(
        &self,
        encoder: &mut DescriptorEncoder,
        broker: &Arc<Broker>,
    ) -> Result<(), std::fmt::Error> {
        let Some(all) = broker.mapping_stats(None) else {
            return Ok(());
        };
        let mappings = all["EventSourceMappings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (member, name, help) in MAPPING_COUNTERS {
            let rows: Vec<(Labels, u64)> = mappings
                .iter()
                .map(|m| {
                    let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                    (
                        vec![("uuid", text("UUID")), ("function", text("FunctionName"))],
                        m[member].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            counters(encoder, name, help, &rows)?;
        }
        Ok(())
    }

    fn encode_storage(
        &self,
        encoder: &mut DescriptorEncoder,
        broker: &Arc<Broker>,
        labelled: &[(Labels, &Arc<Stream>)],
    ) -> Result<(), std::fmt::Error> {
        let mut bytes = Vec::new();
        let mut segments = Vec::new();
        for (labels, stream) in labelled {
            let usage = broker.disk_usage(stream);
            bytes.push((labels.clone(), usage.bytes as i64));
            segments.push((labels.clone(), usage.segments as i64));
        }
        gauges(
            encoder,
            "kinesis_broker_stream_disk_bytes",
            "Bytes of the stream's segment and index files on disk.",
            &bytes,
        )?;
        gauges(
            encoder,
            "kinesis_broker_stream_segments",
            "Segment files of the stream on disk.",
            &segments,
        )
    }

    fn encode_consumers(
        &self,
        encoder: &mut DescriptorEncoder,
        broker: &Arc<Broker>,
        now_ms: i64,
    ) -> Result<(), std::fmt::Error> {
        let mut in_flight = Vec::new();
        let mut dead = Vec::new();
        for q in broker.queue_gauges() {
            let labels = vec![
                ("queue", q.name),
                ("stream", q.stream),
                ("account", q.account),
            ];
            in_flight.push((labels.clone(), q.in_flight as i64));
            dead.push((labels, q.dead_letters as i64));
        }
        gauges(
            encoder,
            "kinesis_broker_queue_in_flight_records",
            "Queue records received and not yet acknowledged (or waiting to be received again).",
            &in_flight,
        )?;
        gauges(
            encoder,
            "kinesis_broker_queue_dead_letter_records",
            "Queue records in the dead-letter queue.",
            &dead,
        )?;
        self.encode_mappings(encoder, broker)?;
        let mut lag = Vec::new();
        for reader in broker.readers_all(now_ms) {
            if let Some(ms) = reader.lag_ms {
                lag.push((
                    vec![
                        ("kind", reader.kind.to_string()),
                        ("name", reader.name),
                        ("stream", reader.stream),
                        ("account", reader.account),
                    ],
                    ms,
                ));
            }
        }
        gauges(
            encoder,
            "kinesis_broker_reader_lag_milliseconds",
            "How far behind its stream each reader is: fan-out consumers (MillisBehindLatest), event-source mappings (IteratorAge), queues (age of the oldest record not yet handed out).",
            &lag,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::catalog::{StreamExtras, StreamMode, StreamStatus};
    use crate::broker::stream::{StreamKey, StreamState, shard_id};

    /// The stream part of the exporter alone, over streams built by hand.
    #[derive(Debug)]
    struct Streams(Vec<Arc<Stream>>);

    impl Collector for Streams {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_streams(&mut encoder, &self.0, 0)
        }
    }

    fn render_streams(streams: &[Arc<Stream>]) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Streams(streams.to_vec())));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    /// A stream of `shards` shards whose logs are tiny (64-byte segments), so that a
    /// thousand of them cost a thousand small files rather than gigabytes of preallocation.
    fn stream(dir: &std::path::Path, uid: u64, name: &str, shards: u32) -> Arc<Stream> {
        let options = storage::LogOptions {
            segment_bytes: 64,
            ..Default::default()
        };
        let ranges = crate::broker::hash::even_split(shards);
        let shards = ranges
            .into_iter()
            .enumerate()
            .map(|(i, range)| {
                let log =
                    storage::Log::open(dir.join(name).join(shard_id(i as u32)), options.clone())
                        .unwrap();
                Arc::new(Shard {
                    index: i as u32,
                    id: shard_id(i as u32),
                    range,
                    parent: None,
                    adjacent_parent: None,
                    created_ms: 0,
                    closed: Default::default(),
                    log: Arc::new(log),
                    throttle: Default::default(),
                    demand: Default::default(),
                    tail: Default::default(),
                    metrics: Default::default(),
                })
            })
            .collect();
        let mut state = StreamState {
            status: StreamStatus::Active,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            max_record_size_kib: 1024,
            tags: Default::default(),
            shards,
            open: Vec::new(),
            extras: StreamExtras::default(),
            consumers: Vec::new(),
        };
        state.reindex();
        let key = StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: name.into(),
        };
        Arc::new(Stream::new(uid, key, "id".into(), 0, state))
    }

    fn series_of(text: &str, stream: &str) -> usize {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("stream=\"{stream}\"")))
            .count()
    }

    #[derive(Debug)]
    struct Channels(Vec<ChannelGauge>);

    impl Collector for Channels {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_channels(&mut encoder, &self.0)
        }
    }

    #[test]
    fn channels_show_their_lag_and_counters_under_their_labels() {
        let cursor = Cursor {
            objects: 3,
            bytes: 4_096,
            records: 250,
            dead_letters: 2,
            failed_writes: 1,
            ..Default::default()
        };
        let delivering = ChannelGauge {
            name: "lake".into(),
            stream: "orders".into(),
            account: "000000000000".into(),
            status: "ACTIVE",
            lag_records: 17,
            lag_ms: Some(1_500),
            cursor,
        };
        let orphan = ChannelGauge {
            name: "old".into(),
            stream: "gone".into(),
            lag_ms: None,
            lag_records: 0,
            cursor: Cursor::default(),
            ..delivering.clone()
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Channels(vec![delivering, orphan])));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        let labels = |c: &str, s: &str| {
            format!("{{channel=\"{c}\",stream=\"{s}\",account=\"000000000000\"}}")
        };
        let lake = labels("lake", "orders");
        for line in [
            format!("kinesis_broker_channel_lag_records{lake} 17"),
            format!("kinesis_broker_channel_lag_milliseconds{lake} 1500"),
            format!("kinesis_broker_channel_objects_total{lake} 3"),
            format!("kinesis_broker_channel_bytes_total{lake} 4096"),
            format!("kinesis_broker_channel_records_total{lake} 250"),
            format!("kinesis_broker_channel_dead_letter_records_total{lake} 2"),
            format!("kinesis_broker_channel_failed_writes_total{lake} 1"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        // A channel whose stream is gone has no age to show, but its counters stay.
        let old = labels("old", "gone");
        assert!(!text.contains(&format!("kinesis_broker_channel_lag_milliseconds{old}")));
        assert!(text.contains(&format!("kinesis_broker_channel_objects_total{old} 0")));
        let typed = |name: &str, kind: &str| {
            text.lines()
                .any(|l| l.starts_with(&format!("# TYPE {name}")) && l.ends_with(kind))
        };
        assert!(typed("kinesis_broker_channel_bytes", " counter"), "{text}");
        assert!(
            typed("kinesis_broker_channel_lag_records", " gauge"),
            "{text}"
        );
    }

    #[test]
    fn a_thousand_shards_add_no_series_until_enhanced_monitoring_enables_one() {
        let dir = tempfile::tempdir().unwrap();
        let small = stream(dir.path(), 1, "small", 1);
        let big = stream(dir.path(), 2, "big", 1_000);
        let text = render_streams(&[small.clone(), big.clone()]);
        assert!(series_of(&text, "small") > 20);
        assert_eq!(series_of(&text, "big"), series_of(&text, "small"));
        assert!(!text.contains("shard=\""));

        big.state_mut().extras.shard_level_metrics = vec!["IncomingRecords".into()];
        let text = render_streams(&[small, big.clone()]);
        let shard_series = text
            .lines()
            .filter(|l| l.starts_with("kinesis_shard_incoming_records_total{stream=\"big\""))
            .count();
        assert_eq!(
            shard_series, 1_000,
            "one series per shard of the enabled metric only"
        );
        assert!(!text.contains("kinesis_shard_incoming_bytes"));
    }
}
