//! The console's throughput history: every [`INTERVAL_S`] seconds a background sampler
//! closes an interval on every stream, turning its counters into one point of what moved
//! during it. Each stream keeps the last [`HISTORY_POINTS`] points in a ring that lives and
//! dies with the stream, so nothing grows with time or with deleted streams.

use std::collections::VecDeque;

use serde::Serialize;

/// Length of an interval, seconds.
pub const INTERVAL_S: i64 = 5;
/// Points kept per stream: 15 minutes.
pub const HISTORY_POINTS: usize = (15 * 60 / INTERVAL_S) as usize;

/// The counters a point is the difference of.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// IncomingRecords.
    pub incoming_records: u64,
    /// IncomingBytes.
    pub incoming_bytes: u64,
    /// Records read (GetRecords and SubscribeToShard events).
    pub outgoing_records: u64,
    /// Bytes read.
    pub outgoing_bytes: u64,
    /// GetRecords calls throttled.
    pub read_throttles: u64,
    /// Records refused by throttling.
    pub write_throttles: u64,
}

/// One interval, as `GET /_broker/throughput` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Point {
    /// Start of the interval, seconds since the epoch.
    pub timestamp: i64,
    /// Records put during it.
    pub incoming_records: u64,
    /// Bytes put.
    pub incoming_bytes: u64,
    /// Records read.
    pub outgoing_records: u64,
    /// Bytes read.
    pub outgoing_bytes: u64,
    /// GetRecords calls throttled.
    pub read_throttles: u64,
    /// Records refused by throttling.
    pub write_throttles: u64,
}

/// The last [`HISTORY_POINTS`] points of a stream, and the counters at the last sample.
#[derive(Debug, Default)]
pub struct Ring {
    points: VecDeque<Point>,
    last: Counts,
}

impl Ring {
    /// Closes the interval starting at `interval_start_s` with the counters now.
    pub fn sample(&mut self, interval_start_s: i64, now: Counts) {
        // Counters only grow; `saturating_sub` keeps a point at 0 rather than wrapping if
        // a relaxed load ever saw one behind another.
        let d = |now: u64, last: u64| now.saturating_sub(last);
        let point = Point {
            timestamp: interval_start_s,
            incoming_records: d(now.incoming_records, self.last.incoming_records),
            incoming_bytes: d(now.incoming_bytes, self.last.incoming_bytes),
            outgoing_records: d(now.outgoing_records, self.last.outgoing_records),
            outgoing_bytes: d(now.outgoing_bytes, self.last.outgoing_bytes),
            read_throttles: d(now.read_throttles, self.last.read_throttles),
            write_throttles: d(now.write_throttles, self.last.write_throttles),
        };
        self.last = now;
        if self
            .points
            .back()
            .is_some_and(|p| p.timestamp >= interval_start_s)
        {
            // A clock moved back (POST /_broker/clock cannot, a system clock can): keep the
            // history in time order by folding the interval into the last point.
            if let Some(last) = self.points.back_mut() {
                last.incoming_records += point.incoming_records;
                last.incoming_bytes += point.incoming_bytes;
                last.outgoing_records += point.outgoing_records;
                last.outgoing_bytes += point.outgoing_bytes;
                last.read_throttles += point.read_throttles;
                last.write_throttles += point.write_throttles;
            }
            return;
        }
        if self.points.len() == HISTORY_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// The points, oldest first.
    pub fn points(&self) -> Vec<Point> {
        self.points.iter().copied().collect()
    }
}

/// The start of the interval that ends at the boundary at or before `now_ms`.
pub fn closing_interval_start(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000).div_euclid(INTERVAL_S) * INTERVAL_S - INTERVAL_S
}

/// Milliseconds from `now_ms` to the next interval boundary (at least 1).
pub fn until_next_boundary_ms(now_ms: i64) -> u64 {
    let period = INTERVAL_S * 1000;
    (period - now_ms.rem_euclid(period)).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(records: u64) -> Counts {
        Counts {
            incoming_records: records,
            incoming_bytes: records * 10,
            ..Default::default()
        }
    }

    #[test]
    fn points_are_differences_and_the_ring_is_bounded() {
        let mut ring = Ring::default();
        for i in 0..(HISTORY_POINTS as u64 + 20) {
            ring.sample(i as i64 * INTERVAL_S, counts(i * 3));
        }
        let points = ring.points();
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(points[0].timestamp, 20 * INTERVAL_S, "oldest dropped first");
        assert!(points.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        assert!(
            points
                .iter()
                .all(|p| p.incoming_records == 3 && p.incoming_bytes == 30)
        );
    }

    #[test]
    fn a_clock_going_back_folds_into_the_last_point() {
        let mut ring = Ring::default();
        ring.sample(100, counts(1));
        ring.sample(95, counts(4));
        assert_eq!(ring.points().len(), 1);
        assert_eq!(ring.points()[0].incoming_records, 4);
    }

    #[test]
    fn boundaries_are_multiples_of_the_interval() {
        assert_eq!(closing_interval_start(1_000_005_000), 1_000_000);
        assert_eq!(closing_interval_start(1_000_009_999), 1_000_000);
        assert_eq!(until_next_boundary_ms(1_000_009_999), 1);
        assert_eq!(until_next_boundary_ms(1_000_005_000), 5_000);
    }

    #[test]
    fn points_serialize_with_the_console_contract_names() {
        let p = Point {
            timestamp: 5,
            incoming_records: 1,
            incoming_bytes: 2,
            outgoing_records: 3,
            outgoing_bytes: 4,
            read_throttles: 5,
            write_throttles: 6,
        };
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            serde_json::json!({"Timestamp":5,"IncomingRecords":1,"IncomingBytes":2,
                "OutgoingRecords":3,"OutgoingBytes":4,"ReadThrottles":5,"WriteThrottles":6})
        );
    }
}
