//! A stream's and a shard's counters, named after CloudWatch's Kinesis metrics (the
//! "Monitoring the Amazon Kinesis Data Streams Service with Amazon CloudWatch" page).
//!
//! Every count is a relaxed atomic add, made once per request or per shard group, never per
//! record: the request has the stream (`Stream::metrics`) and each group its shard
//! (`Shard::metrics`) in hand, so no label is looked up on the write path.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::LatencyHistogram;
use super::throughput::{Counts, Ring};

/// A reader's lag is shown while its last report is at most this old (a GetRecords poller
/// or a fan-out session reports at least every 5 s; one gone quiet for a minute has gone).
pub const READER_STALE_MS: i64 = 60_000;

/// Shard index → (MillisBehindLatest of the last event, when it was sent, ms).
type ShardLags = HashMap<u32, (i64, i64)>;

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Stream-level counters (CloudWatch's stream-level metrics, always on, as on AWS).
#[derive(Debug, Default)]
pub struct StreamMetrics {
    /// IncomingBytes: bytes (data and partition keys) successfully put, by either operation.
    pub incoming_bytes: AtomicU64,
    /// IncomingRecords: records successfully put.
    pub incoming_records: AtomicU64,
    /// PutRecord.Bytes.
    pub put_record_bytes: AtomicU64,
    /// PutRecord.Success: successful PutRecord calls (the latency count is every call).
    pub put_record_success: AtomicU64,
    /// PutRecord.Latency.
    pub put_record_latency: LatencyHistogram,
    /// PutRecords.Bytes: bytes of the records successfully put with PutRecords.
    pub put_records_bytes: AtomicU64,
    /// PutRecords.Success: PutRecords calls with at least one record put.
    pub put_records_success: AtomicU64,
    /// PutRecords.Latency.
    pub put_records_latency: LatencyHistogram,
    /// PutRecords.TotalRecords.
    pub put_records_total_records: AtomicU64,
    /// PutRecords.SuccessfulRecords.
    pub put_records_successful_records: AtomicU64,
    /// PutRecords.FailedRecords: records refused by an internal failure.
    pub put_records_failed_records: AtomicU64,
    /// PutRecords.ThrottledRecords.
    pub put_records_throttled_records: AtomicU64,
    /// GetRecords.Bytes.
    pub get_records_bytes: AtomicU64,
    /// GetRecords.Records.
    pub get_records_records: AtomicU64,
    /// GetRecords.Success.
    pub get_records_success: AtomicU64,
    /// GetRecords.Latency.
    pub get_records_latency: LatencyHistogram,
    /// ReadProvisionedThroughputExceeded: GetRecords calls throttled.
    pub read_throttled: AtomicU64,
    /// WriteProvisionedThroughputExceeded: records rejected by throttling.
    pub write_throttled: AtomicU64,
    /// SubscribeToShard.Success: subscriptions established.
    pub subscribe_success: AtomicU64,
    /// SubscribeToShard.RateExceeded: subscriptions refused because the consumer already
    /// has one on the shard (or had one less than 5 s ago).
    pub subscribe_rate_exceeded: AtomicU64,
    /// SubscribeToShardEvent.Success: events published.
    pub event_success: AtomicU64,
    /// SubscribeToShardEvent.Records.
    pub event_records: AtomicU64,
    /// SubscribeToShardEvent.Bytes.
    pub event_bytes: AtomicU64,
    /// The fan-out consumers' lag, for SubscribeToShardEvent.MillisBehindLatest and the
    /// console: consumer ARN → shard index → (MillisBehindLatest, reported at ms).
    consumer_lag: Mutex<HashMap<String, ShardLags>>,
    /// Throughput history for the console, one point per sampling interval.
    ring: Mutex<Ring>,
}

/// What a PutRecords call did, counted once per call.
#[derive(Debug, Default, Clone, Copy)]
pub struct PutRecordsOutcome {
    /// Records in the request.
    pub total: u64,
    /// Records put.
    pub successful: u64,
    /// Bytes of the records put.
    pub successful_bytes: u64,
    /// Records refused for throttling.
    pub throttled: u64,
    /// Records refused for any other reason.
    pub failed: u64,
}

impl StreamMetrics {
    /// Counts one PutRecord call that reached the stream.
    pub fn put_record(&self, elapsed: Duration, put_bytes: Option<u64>) {
        self.put_record_latency.observe(elapsed);
        if let Some(bytes) = put_bytes {
            add(&self.put_record_success, 1);
            add(&self.put_record_bytes, bytes);
            add(&self.incoming_records, 1);
            add(&self.incoming_bytes, bytes);
        }
    }

    /// Counts one PutRecords call that reached the stream.
    pub fn put_records(&self, elapsed: Duration, outcome: &PutRecordsOutcome) {
        self.put_records_latency.observe(elapsed);
        add(&self.put_records_total_records, outcome.total);
        add(&self.put_records_successful_records, outcome.successful);
        add(&self.put_records_failed_records, outcome.failed);
        add(&self.put_records_throttled_records, outcome.throttled);
        add(&self.put_records_bytes, outcome.successful_bytes);
        add(&self.incoming_records, outcome.successful);
        add(&self.incoming_bytes, outcome.successful_bytes);
        if outcome.successful > 0 {
            add(&self.put_records_success, 1);
        }
    }

    /// Counts records refused by a shard's write limit (both operations).
    pub fn write_throttled(&self, records: u64) {
        add(&self.write_throttled, records);
    }

    /// Counts one GetRecords call: `Some((records, bytes))` when it succeeded.
    pub fn get_records(&self, elapsed: Duration, read: Option<(u64, u64)>) {
        self.get_records_latency.observe(elapsed);
        if let Some((records, bytes)) = read {
            add(&self.get_records_success, 1);
            add(&self.get_records_records, records);
            add(&self.get_records_bytes, bytes);
        }
    }

    /// Counts a SubscribeToShard call that was answered: established or refused by the rate
    /// rule.
    pub fn subscribe(&self, established: bool) {
        add(
            if established {
                &self.subscribe_success
            } else {
                &self.subscribe_rate_exceeded
            },
            1,
        );
    }

    /// Counts one SubscribeToShardEvent sent to `consumer_arn` from shard `shard`.
    pub fn event(
        &self,
        consumer_arn: &str,
        shard: u32,
        records: u64,
        bytes: u64,
        millis_behind: i64,
        now_ms: i64,
    ) {
        add(&self.event_success, 1);
        add(&self.event_records, records);
        add(&self.event_bytes, bytes);
        let mut lags = self.consumer_lag.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shards) = lags.get_mut(consumer_arn) {
            shards.insert(shard, (millis_behind, now_ms));
        } else {
            lags.insert(
                consumer_arn.to_string(),
                HashMap::from([(shard, (millis_behind, now_ms))]),
            );
        }
    }

    /// A consumer's current lag: the worst MillisBehindLatest among its shards' recent
    /// events, `None` without a recent event.
    pub fn consumer_lag(&self, consumer_arn: &str, now_ms: i64) -> Option<i64> {
        let lags = self.consumer_lag.lock().unwrap_or_else(|e| e.into_inner());
        lags.get(consumer_arn)?
            .values()
            .filter(|(_, at)| now_ms - at <= READER_STALE_MS)
            .map(|(lag, _)| *lag)
            .max()
    }

    /// SubscribeToShardEvent.MillisBehindLatest now: the worst of every consumer's.
    pub fn worst_consumer_lag(&self, now_ms: i64) -> Option<i64> {
        let mut lags = self.consumer_lag.lock().unwrap_or_else(|e| e.into_inner());
        // Forget what went stale, so the map does not keep every consumer ever seen.
        lags.retain(|_, shards| {
            shards.retain(|_, (_, at)| now_ms - *at <= READER_STALE_MS);
            !shards.is_empty()
        });
        lags.values()
            .flat_map(|s| s.values().map(|(lag, _)| *lag))
            .max()
    }

    /// The counters the throughput history follows.
    pub fn counts(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            incoming_records: get(&self.incoming_records),
            incoming_bytes: get(&self.incoming_bytes),
            outgoing_records: get(&self.get_records_records) + get(&self.event_records),
            outgoing_bytes: get(&self.get_records_bytes) + get(&self.event_bytes),
            read_throttles: get(&self.read_throttled),
            write_throttles: get(&self.write_throttled),
        }
    }

    /// Closes the interval that started at `interval_start_s` (see [`Ring::sample`]).
    pub fn sample(&self, interval_start_s: i64) {
        let counts = self.counts();
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(interval_start_s, counts);
    }

    /// The throughput history, oldest first.
    pub fn history(&self) -> Vec<super::throughput::Point> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).points()
    }
}

/// Shard-level counters (CloudWatch's enhanced shard-level metrics). Always counted (a
/// relaxed add per shard group); exported only for the metrics the stream enabled with
/// EnableEnhancedMonitoring.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    /// IncomingBytes.
    pub incoming_bytes: AtomicU64,
    /// IncomingRecords.
    pub incoming_records: AtomicU64,
    /// OutgoingBytes (GetRecords and SubscribeToShard events).
    pub outgoing_bytes: AtomicU64,
    /// OutgoingRecords.
    pub outgoing_records: AtomicU64,
    /// ReadProvisionedThroughputExceeded: GetRecords calls throttled.
    pub read_throttled: AtomicU64,
    /// WriteProvisionedThroughputExceeded: records rejected by throttling.
    pub write_throttled: AtomicU64,
    /// IteratorAgeMilliseconds of the last GetRecords on the shard.
    iterator_age_ms: AtomicI64,
    /// When it was reported (broker clock, ms); 0: never.
    iterator_age_at_ms: AtomicI64,
}

impl ShardMetrics {
    /// Counts records appended to the shard.
    pub fn incoming(&self, records: u64, bytes: u64) {
        add(&self.incoming_records, records);
        add(&self.incoming_bytes, bytes);
    }

    /// Counts records read from the shard.
    pub fn outgoing(&self, records: u64, bytes: u64) {
        add(&self.outgoing_records, records);
        add(&self.outgoing_bytes, bytes);
    }

    /// Records the age of the last record a GetRecords call returned (0: caught up).
    pub fn iterator_age(&self, age_ms: i64, now_ms: i64) {
        self.iterator_age_ms.store(age_ms.max(0), Ordering::Relaxed);
        self.iterator_age_at_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The iterator age of the shard's recent GetRecords reader, if one read lately.
    pub fn current_iterator_age(&self, now_ms: i64) -> Option<i64> {
        let at = self.iterator_age_at_ms.load(Ordering::Relaxed);
        (at != 0 && now_ms - at <= READER_STALE_MS)
            .then(|| self.iterator_age_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_records_counts_each_cloudwatch_metric_once_per_call() {
        let m = StreamMetrics::default();
        m.put_records(
            Duration::from_millis(2),
            &PutRecordsOutcome {
                total: 5,
                successful: 3,
                successful_bytes: 300,
                throttled: 1,
                failed: 1,
            },
        );
        m.put_records(
            Duration::from_millis(2),
            &PutRecordsOutcome {
                total: 2,
                throttled: 2,
                ..Default::default()
            },
        );
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!(get(&m.put_records_total_records), 7);
        assert_eq!(get(&m.put_records_successful_records), 3);
        assert_eq!(get(&m.put_records_throttled_records), 3);
        assert_eq!(get(&m.put_records_failed_records), 1);
        assert_eq!(
            get(&m.put_records_success),
            1,
            "a call with no record put is no success"
        );
        assert_eq!(m.put_records_latency.count(), 2);
        assert_eq!(get(&m.incoming_records), 3);
        assert_eq!(get(&m.incoming_bytes), 300);
    }

    #[test]
    fn consumer_lag_is_the_worst_recent_shard() {
        let m = StreamMetrics::default();
        m.event("arn:c", 0, 1, 10, 500, 1_000);
        m.event("arn:c", 1, 1, 10, 90, 1_000);
        assert_eq!(m.consumer_lag("arn:c", 2_000), Some(500));
        assert_eq!(m.consumer_lag("arn:other", 2_000), None);
        // Shard 0's report goes stale, shard 1 reports again.
        m.event("arn:c", 1, 0, 0, 0, 70_000);
        assert_eq!(m.consumer_lag("arn:c", 70_000), Some(0));
        assert_eq!(m.worst_consumer_lag(70_000), Some(0));
        assert_eq!(m.worst_consumer_lag(200_000), None);
    }

    #[test]
    fn iterator_age_is_forgotten_once_stale() {
        let s = ShardMetrics::default();
        assert_eq!(s.current_iterator_age(5), None);
        s.iterator_age(1234, 10_000);
        assert_eq!(s.current_iterator_age(10_000 + READER_STALE_MS), Some(1234));
        assert_eq!(s.current_iterator_age(10_001 + READER_STALE_MS), None);
    }
}
