//! What `/metrics` shows of each channel: how far behind its stream it is, and what it has
//! written. The counters come from the channel's durable cursor (they survive restarts);
//! the lag is computed at scrape time from the cursor and the shards' tips, one record read
//! per shard not yet delivered to its end, so a scrape costs no more than a few reads.

use std::sync::Arc;

use super::delivery::Cursor;
use super::{Channel, ChannelStatus};
use crate::broker::Broker;
use crate::broker::stream::Stream;

/// A channel's delivery figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelGauge {
    /// Channel name.
    pub name: String,
    /// Its stream's name.
    pub stream: String,
    /// Account.
    pub account: String,
    /// Lifecycle state (`ACTIVE`, …).
    pub status: &'static str,
    /// Records in the stream not yet in an object (nor dead-lettered), summed over shards.
    pub lag_records: u64,
    /// Age of the oldest record not yet delivered (AWS's `DeliveryToS3.DataFreshness`, in
    /// ms): the largest over shards; 0 when caught up. `None` when the stream is gone.
    pub lag_ms: Option<i64>,
    /// The cursor's durable counters.
    pub cursor: Cursor,
}

/// How far a channel is behind its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Records not yet delivered.
    pub records: u64,
    /// Age in ms of the oldest of them; 0 when there are none.
    pub ms: i64,
}

impl Broker {
    /// Every channel's figures, for `/metrics`.
    pub fn channel_gauges(&self) -> Vec<ChannelGauge> {
        let now_ms = self.clock.now_ms();
        self.channels
            .all()
            .into_iter()
            .map(|channel| self.channel_gauge(&channel, now_ms))
            .collect()
    }

    /// One channel's figures (also the console's reader row for it, `broker::metrics`).
    pub(crate) fn channel_gauge(&self, channel: &Arc<Channel>, now_ms: i64) -> ChannelGauge {
        let meta = channel.meta();
        let stream = (meta.status != ChannelStatus::Deleting)
            .then(|| self.registry().streams.get(&meta.stream_uid).cloned())
            .flatten();
        let lag = stream.map(|s| self.channel_lag(&s, &meta.cursor, now_ms));
        ChannelGauge {
            status: meta.status.name(),
            lag_records: lag.map_or(0, |l| l.records),
            lag_ms: lag.map(|l| l.ms),
            name: meta.name,
            stream: meta.stream_name,
            account: meta.account,
            cursor: meta.cursor,
        }
    }

    /// The records of `stream` past `cursor`: every shard not finished, from where the
    /// cursor stands (or the trim horizon, when retention passed it) to the shard's tip.
    /// Shards still waiting for their parents count in full.
    pub fn channel_lag(&self, stream: &Stream, cursor: &Cursor, now_ms: i64) -> Lag {
        let mut lag = Lag::default();
        for shard in stream.state().shards.iter() {
            if cursor.finished.contains(&shard.index) {
                continue;
            }
            // A shard whose log cannot be read shows no lag rather than failing the scrape.
            let Ok(horizon) = self.trim_horizon(stream, shard) else {
                continue;
            };
            let next = cursor
                .next
                .get(&shard.index)
                .copied()
                .unwrap_or(0)
                .max(horizon);
            let end = Broker::shard_end(shard);
            if next >= end {
                continue;
            }
            lag.records += end - next;
            let oldest = shard.log.read(next, 1, 1).ok().and_then(|batch| {
                batch
                    .iter()
                    .next()
                    .and_then(|r| r.ok())
                    .map(|r| r.arrival_ms)
            });
            if let Some(arrival_ms) = oldest {
                lag.ms = lag.ms.max((now_ms - arrival_ms).max(0));
            }
        }
        lag
    }
}
