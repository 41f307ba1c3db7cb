//! Per-shard throughput limits, enforced as AWS enforces them: token buckets refilled
//! continuously, holding at most one second's worth (the burst AWS allows).
//!
//! | bucket                      | rate (×multiplier) | AWS limit it mirrors              |
//! |-----------------------------|--------------------|-----------------------------------|
//! | shard writes, records       | 1,000 records/s    | PutRecord(s) per shard            |
//! | shard writes, bytes         | 1 MiB/s            | data plus partition key per shard |
//! | shard reads, calls          | 5 calls/s          | GetRecords per shard              |
//! | shard reads, bytes          | 2 MiB/s            | GetRecords data per shard         |
//! | shard iterators             | 5 calls/s          | GetShardIterator per shard        |
//!
//! The read-bytes bucket may go into debt: a GetRecords call is allowed while the bucket
//! is positive and then pays for everything it returned, so one large read makes the
//! following calls throttle until the debt is repaid — what AWS documents for GetRecords.
//!
//! Each shard has its own `std::sync::Mutex` around its buckets: a critical section is a
//! few float operations, never spans an `.await`, and shards never share a lock, so there
//! is no global lock on the write path. With limits off nothing is locked at all.

use std::sync::Mutex;

use tokio::time::Instant;

/// Writes per shard per second: 1,000 records.
pub const SHARD_WRITE_RECORDS_PER_SEC: f64 = 1000.0;
/// Writes per shard per second: 1 MiB of data plus partition keys.
pub const SHARD_WRITE_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
/// GetRecords calls per shard per second: 5.
pub const SHARD_READ_CALLS_PER_SEC: f64 = 5.0;
/// GetRecords data per shard per second: 2 MiB.
pub const SHARD_READ_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;
/// GetShardIterator calls per shard per second: 5.
pub const SHARD_ITERATOR_CALLS_PER_SEC: f64 = 5.0;

/// Whether limits apply, and how much to scale them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Off: nothing is ever throttled (benchmarks, bulk loads).
    pub enabled: bool,
    /// Multiplies every rate (2.0 doubles them). Must be positive.
    pub multiplier: f64,
}

impl Default for Limits {
    /// On, at AWS's rates.
    fn default() -> Self {
        Limits {
            enabled: true,
            multiplier: 1.0,
        }
    }
}

/// A token bucket holding one second's worth of its rate, and never less than one token
/// (a rate scaled below one call per second still lets a call through now and then).
#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        let capacity = rate.max(1.0);
        Bucket {
            rate,
            capacity,
            tokens: capacity,
            refilled: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled = now;
    }

    /// Takes `n` tokens if there are that many.
    fn try_take(&mut self, n: f64) -> bool {
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Buckets {
    write_records: Bucket,
    write_bytes: Bucket,
    read_calls: Bucket,
    read_bytes: Bucket,
    iterator_calls: Bucket,
}

/// One shard's buckets.
#[derive(Debug)]
pub struct ShardThrottle {
    buckets: Mutex<Option<Buckets>>,
}

impl Default for ShardThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl ShardThrottle {
    /// Buckets created on first use, full.
    pub fn new() -> Self {
        ShardThrottle {
            buckets: Mutex::new(None),
        }
    }

    fn with<T>(&self, limits: Limits, f: impl FnOnce(&mut Buckets) -> T) -> T {
        let now = Instant::now();
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let m = limits.multiplier;
        let b = guard.get_or_insert_with(|| Buckets {
            write_records: Bucket::new(SHARD_WRITE_RECORDS_PER_SEC * m, now),
            write_bytes: Bucket::new(SHARD_WRITE_BYTES_PER_SEC * m, now),
            read_calls: Bucket::new(SHARD_READ_CALLS_PER_SEC * m, now),
            read_bytes: Bucket::new(SHARD_READ_BYTES_PER_SEC * m, now),
            iterator_calls: Bucket::new(SHARD_ITERATOR_CALLS_PER_SEC * m, now),
        });
        for bucket in [
            &mut b.write_records,
            &mut b.write_bytes,
            &mut b.read_calls,
            &mut b.read_bytes,
            &mut b.iterator_calls,
        ] {
            bucket.refill(now);
        }
        f(b)
    }

    /// Admits a record of `bytes` (data plus partition key) for writing, or refuses it
    /// without taking anything.
    pub fn admit_write(&self, limits: Limits, bytes: usize) -> bool {
        self.admit_writes(limits, std::iter::once(bytes))
            .first()
            .copied()
            .unwrap_or(true)
    }

    /// [`ShardThrottle::admit_write`] for each record of a batch, in order, under one
    /// lock. Empty when limits are off (everything admitted).
    pub fn admit_writes(&self, limits: Limits, sizes: impl Iterator<Item = usize>) -> Vec<bool> {
        if !limits.enabled {
            return Vec::new();
        }
        self.with(limits, |b| {
            sizes
                .map(|bytes| {
                    let bytes = bytes as f64;
                    // A record larger than a second's worth could never pass; a full
                    // bucket lets it through (and into debt).
                    let fits_bytes = b.write_bytes.tokens >= bytes.min(b.write_bytes.capacity);
                    if b.write_records.tokens >= 1.0 && fits_bytes {
                        b.write_records.tokens -= 1.0;
                        b.write_bytes.tokens -= bytes;
                        true
                    } else {
                        false
                    }
                })
                .collect()
        })
    }

    /// Admits a GetRecords call; it must then [`ShardThrottle::charge_read`] what it read.
    pub fn admit_read(&self, limits: Limits) -> bool {
        if !limits.enabled {
            return true;
        }
        self.with(limits, |b| {
            b.read_bytes.tokens > 0.0 && b.read_calls.try_take(1.0)
        })
    }

    /// Charges a GetRecords call for the bytes it returned (may leave a debt).
    pub fn charge_read(&self, limits: Limits, bytes: usize) {
        if limits.enabled {
            self.with(limits, |b| b.read_bytes.tokens -= bytes as f64);
        }
    }

    /// Admits a GetShardIterator call.
    pub fn admit_iterator(&self, limits: Limits) -> bool {
        if !limits.enabled {
            return true;
        }
        self.with(limits, |b| b.iterator_calls.try_take(1.0))
    }
}

/// Per-account rates of control-plane operations (AWS's documented transactions per
/// second), as token buckets keyed by account, region and operation.
#[derive(Debug, Default)]
pub struct ControlPlaneRates {
    buckets: Mutex<std::collections::HashMap<String, Bucket>>,
}

/// AWS's documented per-account rate of a control-plane operation, in calls per second.
pub fn control_plane_rate(operation: &str) -> Option<f64> {
    Some(match operation {
        "CreateStream"
        | "DeleteStream"
        | "ListStreams"
        | "AddTagsToStream"
        | "RemoveTagsFromStream"
        | "ListTagsForStream"
        | "MergeShards"
        | "SplitShard"
        | "IncreaseStreamRetentionPeriod"
        | "DecreaseStreamRetentionPeriod"
        | "UpdateAccountSettings"
        | "DescribeAccountSettings"
        | "RegisterStreamConsumer"
        | "DeregisterStreamConsumer"
        | "ListStreamConsumers" => 5.0,
        "DescribeStream" => 10.0,
        "DescribeStreamSummary" | "DescribeStreamConsumer" => 20.0,
        "DescribeLimits" => 1.0,
        "ListShards" => 1000.0,
        _ => return None,
    })
}

/// True for operations AWS limits per stream rather than per account.
pub fn limited_per_stream(operation: &str) -> bool {
    matches!(
        operation,
        "ListShards" | "ListStreamConsumers" | "DescribeStreamConsumer"
    )
}

impl ControlPlaneRates {
    /// Admits one call of `operation` for `scope` (account and region, and the stream for
    /// operations AWS limits per stream), or refuses it.
    pub fn admit(&self, limits: Limits, scope: &str, operation: &str) -> bool {
        let Some(rate) = control_plane_rate(operation) else {
            return true;
        };
        if !limits.enabled {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets
            .entry(format!("{scope}/{operation}"))
            .or_insert_with(|| Bucket::new(rate * limits.multiplier, now));
        bucket.refill(now);
        bucket.try_take(1.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const ON: Limits = Limits {
        enabled: true,
        multiplier: 1.0,
    };

    #[tokio::test(start_paused = true)]
    async fn a_shard_takes_a_thousand_records_then_refuses_until_refilled() {
        let t = ShardThrottle::new();
        let admitted = (0..1500).filter(|_| t.admit_write(ON, 10)).count();
        assert_eq!(admitted, 1000);
        tokio::time::advance(Duration::from_millis(100)).await;
        let admitted = (0..500).filter(|_| t.admit_write(ON, 10)).count();
        assert_eq!(admitted, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_mebibyte_per_second_caps_large_records() {
        let t = ShardThrottle::new();
        let admitted = (0..10).filter(|_| t.admit_write(ON, 200 * 1024)).count();
        assert_eq!(admitted, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_big_read_makes_following_reads_throttle() {
        let t = ShardThrottle::new();
        assert!(t.admit_read(ON));
        t.charge_read(ON, 6 * 1024 * 1024);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            !t.admit_read(ON),
            "2 MiB repaid of a 6 MiB read: still in debt"
        );
        tokio::time::advance(Duration::from_millis(2100)).await;
        assert!(t.admit_read(ON));
    }

    #[tokio::test(start_paused = true)]
    async fn five_reads_per_second() {
        let t = ShardThrottle::new();
        assert_eq!((0..8).filter(|_| t.admit_read(ON)).count(), 5);
        assert_eq!((0..8).filter(|_| t.admit_iterator(ON)).count(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn describe_stream_is_limited_to_ten_per_second_per_account() {
        let r = ControlPlaneRates::default();
        assert_eq!(
            (0..20)
                .filter(|_| r.admit(ON, "a/us-east-1", "DescribeStream"))
                .count(),
            10
        );
        assert!(
            r.admit(ON, "b/us-east-1", "DescribeStream"),
            "another account has its own budget"
        );
        assert!(
            r.admit(ON, "a/us-east-1", "PutRecords"),
            "data plane is not rate limited here"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn multiplier_scales_and_off_admits_everything() {
        let t = ShardThrottle::new();
        let double = Limits {
            enabled: true,
            multiplier: 2.0,
        };
        assert_eq!((0..3000).filter(|_| t.admit_write(double, 1)).count(), 2000);
        let off = Limits {
            enabled: false,
            multiplier: 1.0,
        };
        assert_eq!((0..3000).filter(|_| t.admit_write(off, 1)).count(), 3000);
    }
}
