//! A latency histogram made of relaxed atomics: observing takes no lock, so it can sit on
//! the request path of every PutRecords (prometheus-client's own `Histogram` takes a mutex).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus' unit for durations): from half a
/// millisecond, below any request that touches a disk, to 10 s, beyond any bounded wait.
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counts of observations per bucket (not cumulative; the exporter adds them up), their sum
/// in microseconds and their number.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

/// What [`LatencyHistogram::snapshot`] reads: sum in seconds, count, and the cumulative
/// buckets as the text format wants them (`+Inf` last).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of the observations, seconds.
    pub sum_s: f64,
    /// Number of observations.
    pub count: u64,
    /// (upper bound, observations at or below it).
    pub cumulative: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS_S.partition_point(|&upper| upper < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The histogram as it is now. Loads are not atomic together: a scrape racing an
    /// observation may see it in one field and not yet in another, as with any lock-free
    /// Prometheus client.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        for (i, bucket) in self.buckets.iter().enumerate() {
            running += bucket.load(Ordering::Relaxed);
            let upper = LATENCY_BUCKETS_S.get(i).copied().unwrap_or(f64::INFINITY);
            cumulative.push((upper, running));
        }
        HistogramSnapshot {
            sum_s: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            count: running,
            cumulative,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(300)); // ≤ 0.5 ms
        h.observe(Duration::from_millis(1)); // exactly 1 ms: in the 1 ms bucket
        h.observe(Duration::from_millis(7)); // ≤ 10 ms
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(h.count(), 4);
        assert_eq!(s.cumulative[0], (0.0005, 1));
        assert_eq!(s.cumulative[1], (0.001, 2));
        assert_eq!(s.cumulative[3], (0.005, 2));
        assert_eq!(s.cumulative[4], (0.01, 3));
        assert_eq!(s.cumulative.last().unwrap().1, 4);
        assert!(s.cumulative.last().unwrap().0.is_infinite());
        assert!((s.sum_s - 60.0083).abs() < 1e-9, "{}", s.sum_s);
    }
}
