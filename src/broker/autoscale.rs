//! The on-demand autoscaler: ON_DEMAND streams get more shards when their write traffic
//! outgrows the shards they have, as AWS's on-demand mode does.
//!
//! Every interval (configurable; AWS reacts within minutes, tests use milliseconds) it
//! reads each open shard's write demand since the last look — records and bytes that
//! producers tried to write, admitted or throttled — and splits, at the middle of its
//! hash range, every shard whose demand exceeds [`HOT_FRACTION`] of a shard's write
//! limit. A stream at most doubles per step (AWS: up to double the previous peak), never
//! exceeds the account's shard limit, and is never scaled below its 4 initial shards
//! (nothing here scales down).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::catalog::{StreamMode, StreamStatus};
use super::reshard::Reshard;
use super::throttle::{SHARD_WRITE_BYTES_PER_SEC, SHARD_WRITE_RECORDS_PER_SEC};
use super::{Broker, Stream};

/// A shard is hot when producers try to write more than this fraction of its limit.
pub const HOT_FRACTION: f64 = 0.9;

/// Write demand on one shard since the autoscaler last looked: bumped by every put
/// (relaxed atomics, one pair per shard group of a request), swapped to zero by the
/// autoscaler.
#[derive(Debug, Default)]
pub struct Demand {
    bytes: AtomicU64,
    records: AtomicU64,
}

impl Demand {
    /// Counts an attempted write.
    pub fn add(&self, bytes: u64, records: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.records.fetch_add(records, Ordering::Relaxed);
    }

    /// What was counted since the last call, resetting the counters.
    pub fn take(&self) -> (u64, u64) {
        (
            self.bytes.swap(0, Ordering::Relaxed),
            self.records.swap(0, Ordering::Relaxed),
        )
    }
}

impl Broker {
    /// Runs [`Broker::autoscale_once`] every `interval` until shutdown.
    pub(super) fn start_autoscaler(self: &Arc<Self>, interval: Duration) {
        let weak = Arc::downgrade(self);
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.changed() => return,
                }
                let Some(broker) = weak.upgrade() else { return };
                broker.autoscale_once(interval).await;
            }
        });
    }

    /// One look at every ON_DEMAND stream; returns how many shards were split.
    pub async fn autoscale_once(self: &Arc<Self>, interval: Duration) -> usize {
        let streams: Vec<Arc<Stream>> = self.registry().streams.values().cloned().collect();
        let secs = interval.as_secs_f64().max(0.001);
        let m = self.settings.limits.multiplier;
        let mut split = 0;
        for stream in streams {
            let (hot, open) = {
                let st = stream.state();
                let demands: Vec<(u32, u128, (u64, u64))> = st
                    .open
                    .iter()
                    .map(|s| {
                        (
                            s.index,
                            s.range.start + (s.range.end - s.range.start) / 2 + 1,
                            s.demand.take(),
                        )
                    })
                    .collect();
                if st.mode != StreamMode::OnDemand || st.status != StreamStatus::Active {
                    continue;
                }
                let mut hot: Vec<(f64, u32, u128)> = demands
                    .into_iter()
                    .map(|(index, mid, (bytes, records))| {
                        let load = (bytes as f64 / secs / (SHARD_WRITE_BYTES_PER_SEC * m))
                            .max(records as f64 / secs / (SHARD_WRITE_RECORDS_PER_SEC * m));
                        (load, index, mid)
                    })
                    .filter(|(load, _, _)| *load > HOT_FRACTION)
                    .collect();
                hot.sort_by(|a, b| b.0.total_cmp(&a.0));
                (hot, st.open.len())
            };
            if hot.is_empty() {
                continue;
            }
            let (current, _) = self.usage(&stream.key.account, &stream.key.region);
            let room = (self.settings.shard_limit as usize).saturating_sub(current);
            let n = hot.len().min(open).min(room);
            if n == 0 {
                tracing::warn!(stream = %stream.key.name, "on-demand stream is hot but the shard limit leaves no room");
                continue;
            }
            let steps: Vec<Reshard> = hot[..n]
                .iter()
                .map(|&(_, index, at)| Reshard::Split { index, at })
                .collect();
            match self.reshard(&stream, move |_| Ok(steps)).await {
                Ok(()) => {
                    tracing::info!(stream = %stream.key.name, split = n, "on-demand stream scaled up");
                    split += n;
                }
                Err(e) => {
                    tracing::warn!(stream = %stream.key.name, error = %e, "on-demand scale-up failed")
                }
            }
        }
        split
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::broker::stream::StreamKey;
    use crate::broker::{Error, MIN_SEGMENT_BYTES, PutEntry, hash};
    use crate::config::Config;

    // Real time, not paused: paused time auto-advances to the broker's own timers (the
    // autoscaler itself) whenever the test waits on a flush. The new shards start with
    // full buckets, so the second round needs no waiting.
    #[tokio::test]
    async fn hot_on_demand_stream_doubles_and_throttling_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::for_tests(dir.path());
        c.throughput_limits = true;
        c.segment_bytes = MIN_SEGMENT_BYTES;
        // Driven by hand below, not by the timer.
        c.on_demand_scale_interval = Duration::from_secs(3600);
        let broker = Broker::open(&c).unwrap();
        let key = StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: "od".into(),
        };
        broker
            .create_stream(key.clone(), 4, StreamMode::OnDemand, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key).unwrap();
        let keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
        let data = vec![7u8; 3000];
        let round = |broker: Arc<Broker>, stream: Arc<Stream>| {
            let keys = keys.clone();
            let data = data.clone();
            async move {
                let entries: Vec<PutEntry<'_>> = keys
                    .iter()
                    .map(|k| PutEntry {
                        hash_key: hash::partition_key_hash(k.as_bytes()),
                        partition_key: k.as_bytes(),
                        explicit_hash_key: None,
                        data: &data,
                    })
                    .collect();
                let r = broker.put(&stream, &entries, 0).await.unwrap();
                r.iter()
                    .filter(|x| matches!(x, Err(Error::Throttled { .. })))
                    .count()
            }
        };
        // About 6 MB in one second against 4 MiB/s of capacity.
        let throttled_before = round(broker.clone(), stream.clone()).await;
        assert!(throttled_before > 0, "4 shards cannot take 6 MB at once");
        let split = broker.autoscale_once(Duration::from_secs(1)).await;
        assert_eq!(split, 4, "every shard was hot");
        assert_eq!(stream.state().open.len(), 8);
        let throttled_after = round(broker.clone(), stream.clone()).await;
        assert_eq!(throttled_after, 0, "8 MiB/s of capacity takes 6 MB");
        // A quiet interval scales nothing.
        assert_eq!(broker.autoscale_once(Duration::from_secs(1)).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn provisioned_streams_are_never_autoscaled() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::for_tests(dir.path());
        c.segment_bytes = MIN_SEGMENT_BYTES;
        let broker = Broker::open(&c).unwrap();
        let key = StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: "p".into(),
        };
        broker
            .create_stream(key.clone(), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key).unwrap();
        stream.state().open[0].demand.add(100 << 20, 100_000);
        assert_eq!(broker.autoscale_once(Duration::from_secs(1)).await, 0);
        assert_eq!(stream.state().open.len(), 1);
    }
}
