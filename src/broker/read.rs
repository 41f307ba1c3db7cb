//! The read path: shard iterators issued at a position, and GetRecords reading a shard
//! from an iterator up to the trim horizon and the shard's end.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::catalog::StreamStatus;
use super::iterator::{ITERATOR_TTL_MS, ShardIterator};
use super::stream::{self, Shard, Stream};
use super::{Broker, Error, Result, catalog, faults};

/// Where a new iterator points, before it is resolved to an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest record.
    Latest,
    /// At this offset.
    AtOffset(u64),
    /// Just after this offset. (A sequence number names its record's offset outright, or
    /// no record for a shard's starting number: AT and AFTER that are both offset 0, so
    /// positions need no sequence-number form; see `api::get_shard_iterator`.)
    AfterOffset(u64),
    /// The first record that arrived at or after this time (ms).
    AtTimestamp(i64),
}

/// What a GetRecords call read.
pub struct ReadResult {
    /// The shard read.
    pub shard: Arc<Shard>,
    /// The records (borrowed views into the mapped segments).
    pub batch: storage::ReadBatch,
    /// The next iterator; `None` at the end of a closed shard.
    pub next_iterator: Option<String>,
    /// How far behind the newest record the reader is.
    pub millis_behind_latest: i64,
    /// The children of a closed shard whose end was reached.
    pub child_shards: Vec<Arc<Shard>>,
    /// The stream's settings (records report whether they were written encrypted).
    pub stream_extras: catalog::StreamExtras,
    /// Bytes of the records read (data and partition keys).
    pub read_bytes: u64,
}

impl Broker {
    /// The shard with this id, for GetShardIterator. A stream being created or deleted
    /// has no readable shards, as on AWS.
    pub fn readable_shard(&self, stream: &Stream, shard_id: &str) -> Result<Arc<Shard>> {
        let st = stream.state();
        let readable = !matches!(st.status, StreamStatus::Creating | StreamStatus::Deleting);
        st.shard(shard_id)
            .filter(|_| readable)
            .cloned()
            .ok_or_else(|| Error::ShardNotFound {
                shard_id: stream::parse_shard_id(shard_id)
                    .map(stream::shard_id)
                    .unwrap_or_else(|| shard_id.to_string()),
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            })
    }

    /// The oldest offset a reader may see: the log's first offset, or later when records
    /// before it have outlived the retention period (they are never returned, even before
    /// their segment is deleted).
    pub(super) fn trim_horizon(&self, stream: &Stream, shard: &Shard) -> Result<u64> {
        let retention_ms = stream.state().retention_hours as i64 * 3_600_000;
        let first = shard.log.bounds().first_offset;
        // Ages by the earlier reading: a forward wall step must not hide records younger
        // than the retention period (a backward one delays trimming by at most the step).
        let by_time = shard
            .log
            .offset_at_time(self.clock.earliest_now_ms() - retention_ms)?;
        Ok(first.max(by_time))
    }

    /// The end of a shard for readers: its closing offset, or the log's end.
    pub(super) fn shard_end(shard: &Shard) -> u64 {
        match shard.closed() {
            Some(c) => c.end_offset,
            None => shard.log.bounds().next_offset,
        }
    }

    /// Issues an iterator for a position in a shard.
    pub fn issue_iterator(
        &self,
        stream: &Stream,
        shard: &Shard,
        position: Position,
    ) -> Result<String> {
        if !shard.throttle.admit_iterator(self.settings.limits) {
            return Err(Error::Throttled {
                shard_id: shard.id.clone(),
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            });
        }
        let offset = self.resolve_position(stream, shard, position)?;
        Ok(self.iterators.encode(&ShardIterator::issued_now(
            stream.uid,
            shard.index,
            offset,
            &self.clock,
        )))
    }

    /// The offset a position names in a shard, between its trim horizon and its end.
    pub(super) fn resolve_position(
        &self,
        stream: &Stream,
        shard: &Shard,
        position: Position,
    ) -> Result<u64> {
        let end = Self::shard_end(shard);
        let horizon = self.trim_horizon(stream, shard)?;
        let offset = match position {
            Position::TrimHorizon => horizon,
            Position::Latest => end,
            Position::AtOffset(o) => o.max(horizon).min(end),
            Position::AfterOffset(o) => o.saturating_add(1).max(horizon).min(end),
            Position::AtTimestamp(t) => shard.log.offset_at_time(t)?.max(horizon).min(end),
        };
        Ok(offset)
    }

    /// The stream a shard iterator was issued for, if the token is authentic and the stream
    /// still exists: the api layer authorizes GetRecords against that stream's owner.
    pub fn iterator_stream(&self, token: &str) -> Option<Arc<Stream>> {
        let it = self.iterators.decode(token)?;
        self.registry().streams.get(&it.stream_uid).cloned()
    }

    /// [`Broker::get_records`] after the faults configured for the iterator's stream.
    pub async fn read_records(
        &self,
        token: &str,
        limit: usize,
        max_bytes: usize,
    ) -> Result<ReadResult> {
        let started = std::time::Instant::now();
        let mut stream = None;
        if let Some(it) = self.iterators.decode(token) {
            stream = self.registry().streams.get(&it.stream_uid).cloned();
            let key = stream.as_ref().map(|s| s.key.clone());
            if let Some(key) = key {
                // An injected read refusal reads like a real one: AWS's message, naming
                // the shard.
                match self.inject(&key.name, true).await {
                    Err(Error::Injected(faults::RequestFault::ReadThrottled)) => {
                        if let Some(stream) = &stream {
                            stream.metrics.read_throttled.fetch_add(1, Relaxed);
                            if let Some(shard) = stream.state().shards.get(it.shard_index as usize)
                            {
                                shard.metrics.read_throttled.fetch_add(1, Relaxed);
                            }
                        }
                        return Err(Error::Throttled {
                            shard_id: stream::shard_id(it.shard_index),
                            name: key.name,
                            account: key.account,
                        });
                    }
                    other => other?,
                }
            }
        }
        let result = self.get_records(token, limit, max_bytes);
        if let Some(stream) = stream {
            let read = result
                .as_ref()
                .ok()
                .map(|r| (r.batch.len() as u64, r.read_bytes));
            stream.metrics.get_records(started.elapsed(), read);
        }
        result
    }

    /// Reads records at an iterator: up to `limit` records and `max_bytes` of data.
    pub fn get_records(&self, token: &str, limit: usize, max_bytes: usize) -> Result<ReadResult> {
        let it = self.iterators.decode(token).ok_or(Error::InvalidIterator)?;
        let now = self.clock.now_ms();
        let (stream, gone) = {
            let reg = self.registry();
            (
                reg.streams.get(&it.stream_uid).cloned(),
                reg.deleted.get(&it.stream_uid).cloned(),
            )
        };
        let Some(stream) = stream else {
            return Err(Error::IteratorStreamGone {
                shard_id: stream::shard_id(it.shard_index),
                name: gone.as_ref().map(|k| k.name.clone()),
                account: gone.map(|k| k.account),
            });
        };
        // Judged by the iterator's age on the steady timeline, not by wall times (see
        // `ShardIterator::age_ms`); the message shows the issue time that age implies.
        let age = it.age_ms(&self.clock);
        if age > ITERATOR_TTL_MS {
            return Err(Error::IteratorExpired {
                issued_ms: now.saturating_sub(age),
                now_ms: now,
            });
        }
        let shard = stream
            .state()
            .shards
            .get(it.shard_index as usize)
            .cloned()
            .ok_or(Error::InvalidIterator)?;
        if !shard.throttle.admit_read(self.settings.limits) {
            shard.metrics.read_throttled.fetch_add(1, Relaxed);
            stream.metrics.read_throttled.fetch_add(1, Relaxed);
            return Err(Error::Throttled {
                shard_id: shard.id.clone(),
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            });
        }
        let end = Self::shard_end(&shard);
        let from = it.offset.max(self.trim_horizon(&stream, &shard)?);
        let batch = if from >= end {
            shard.log.read(end, 0, 0)?
        } else {
            let max_records = limit.min((end - from).try_into().unwrap_or(usize::MAX));
            shard.log.read(from, max_records, max_bytes)?
        };
        let read_bytes: usize = batch
            .iter()
            .filter_map(|r| r.ok())
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        shard.throttle.charge_read(self.settings.limits, read_bytes);
        let next_offset = if batch.is_empty() {
            from.min(end)
        } else {
            batch.next_offset()
        };
        let bounds = shard.log.bounds();
        let caught_up = next_offset >= end;
        let millis_behind_latest = if caught_up {
            0
        } else {
            let last_seen = batch
                .iter()
                .filter_map(|r| r.ok())
                .last()
                .map(|r| r.arrival_ms);
            last_seen
                .or(bounds.first_arrival_ms)
                .map(|t| self.clock.age_ms(t))
                .unwrap_or(0)
        };
        let (next_iterator, child_shards) = if shard.closed().is_some() && caught_up {
            let children = stream.state().children_of(shard.index);
            (None, children)
        } else {
            let next = ShardIterator::issued_now(stream.uid, shard.index, next_offset, &self.clock);
            (Some(self.iterators.encode(&next)), Vec::new())
        };
        shard
            .metrics
            .outgoing(batch.len() as u64, read_bytes as u64);
        shard.metrics.iterator_age(millis_behind_latest, now);
        let stream_extras = stream.state().extras.clone();
        Ok(ReadResult {
            read_bytes: read_bytes as u64,
            stream_extras,
            shard,
            batch,
            next_iterator,
            millis_behind_latest,
            child_shards,
        })
    }
}
