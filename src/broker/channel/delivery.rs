//! Delivery: one task per ACTIVE channel reads its stream (a cursor per shard, parents
//! before children, waiting on the shards' tail notifiers) and writes objects to S3.
//!
//! **Objects.** An object holds records of one shard, from a first record to an end offset.
//! It is written when its records reach `--channel-buffer-bytes`, when its oldest record is
//! `DataFreshnessInSeconds` old (by the broker's clock), or when a closed shard has been
//! read to its end. Layout by `RecordFormatType`:
//!
//! | format | bytes of each record in the object |
//! |---|---|
//! | JSON | the document on one line (re-encoded compactly if it spanned lines), then `\n` |
//! | STRING | the UTF-8 text, then `\n` (a record holding `\n` spans lines) |
//! | BYTE_ARRAY | its length as a 4-byte big-endian unsigned integer, then its bytes |
//!
//! then compressed as a whole (GZIP: one gzip member; ZSTD: one zstd frame). JSON records that do not parse and
//! STRING records that are not UTF-8 go to the dead-letter prefix instead, and so do the
//! records of an object the store refused [`MAX_REFUSALS`] times in a row (JSON lines of
//! `errorCode`, `errorMessage`, `shardId`, `sequenceNumber`, `partitionKey`,
//! `approximateArrivalTimestamp` (ms) and `data` (base64)).
//!
//! **Exactly once per object.** Before an object is written its range (shard, first
//! offset, end offset) is stored durably as the channel's pending object; after S3 accepted
//! it the cursor moves past it and the pending object is cleared. A restart writes a pending
//! object again from the same range, so it has the same bytes and the same key (the key is
//! derived from the shard and the first record's sequence number and arrival time): a
//! retried upload overwrites the object, and no record is ever written to two objects.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64_simd::STANDARD;
use serde::{Deserialize, Serialize};

use super::s3::{PutOptions, S3Sink};
use super::{Channel, ChannelMeta, ChannelStatus, Compression, RecordFormat};
use crate::broker::sequence::SequenceNumber;
use crate::broker::stream::{Shard, Stream};
use crate::broker::{Broker, Error, Result};

/// Most bytes one read of a shard returns.
const READ_BYTES: usize = 4 * 1024 * 1024;
/// Longest sleep between looks at a channel with records waiting: the broker's clock can be
/// moved forward (tests, `/_broker/clock`), which no timer notices.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Longest pause after a failed write before the same object is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most objects being built at once (in parallel, on blocking threads, ahead of their
/// upload): enough to keep both cores of a small machine compressing while one object
/// uploads, few enough that a backlog holds only this many objects in memory.
const BUILD_WAVE: usize = 4;
/// The most a channel sets aside for an object's uncompressed bytes before reading them
/// (`--channel-buffer-bytes` can be set far higher than objects usually grow).
const MAX_OBJECT_PREALLOCATION: usize = 64 * 1024 * 1024;
/// Refusals of an object after which its records go to the dead-letter prefix instead, with
/// the store's answer as the reason, and the channel goes on.
const MAX_REFUSALS: u32 = 5;

/// Where a channel is in its stream, stored with its settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cursor {
    /// The next offset to deliver, per shard (a shard absent starts at its beginning).
    pub next: BTreeMap<u32, u64>,
    /// Shards read to their closed end.
    pub finished: std::collections::BTreeSet<u32>,
    /// The object being written, written again after a restart.
    pub pending: Option<PendingObject>,
    /// Objects written (dead-letter objects included).
    pub objects: u64,
    /// Records delivered.
    pub records: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Bytes of the objects written (dead-letter objects included), as stored: compressed.
    #[serde(default)]
    pub bytes: u64,
    /// Writes the store refused or that failed (each is retried, or dead-lettered after
    /// [`MAX_REFUSALS`]).
    #[serde(default)]
    pub failed_writes: u64,
    /// Times in a row the store refused the pending object.
    #[serde(default)]
    pub refusals: u32,
}

/// An object whose range is fixed: records `first..end` of shard `shard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingObject {
    /// Shard index.
    pub shard: u32,
    /// First offset.
    pub first: u64,
    /// End offset (exclusive).
    pub end: u64,
}

/// Records read but not yet written, per shard: a range and what decides when it is written.
#[derive(Debug, Clone, Copy)]
struct Buffered {
    first: u64,
    end: u64,
    bytes: u64,
    first_arrival_ms: Option<i64>,
}

/// An object's bytes and names, built from its range.
struct Built {
    body: Vec<u8>,
    key: String,
    dead_letter: Option<(String, Vec<u8>)>,
    records: u64,
    dead_letters: u64,
}

impl Broker {
    /// Starts the delivery task of every channel that is ACTIVE or UPDATING (start-up).
    pub(crate) fn start_channels(self: &Arc<Self>) {
        for channel in self.channels.all() {
            self.start_channel(channel);
        }
    }

    /// Starts a channel's delivery task unless it runs already, the channel is not
    /// delivering or no S3 endpoint is configured.
    pub(super) fn start_channel(self: &Arc<Self>, channel: Arc<Channel>) {
        let Some(sink) = self.channels.sink.clone() else {
            return;
        };
        if !delivering(&channel.meta()) || channel.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let buffer_bytes = self.channels.buffer_bytes;
        tokio::spawn(async move {
            run(weak, channel.clone(), sink, buffer_bytes).await;
            channel.running.store(false, Ordering::Release);
        });
    }

    /// One look at a channel: writes the pending object, reads what is new, writes what is
    /// due. Returns how long until the oldest waiting record is due.
    ///
    /// Due objects are built (encoded and compressed: the CPU of delivery) in parallel on
    /// blocking threads, at most [`BUILD_WAVE`] at a time, and written one after the other,
    /// each stored as pending before its upload. Building runs ahead of writing: while one
    /// object uploads the next ones compress (waiting for each upload with nothing building
    /// left a third of a core idle; benches/RESULTS.md, issue 22). Building touches no durable
    /// state, so builds cut short by a failure are simply worked out again from the cursor.
    async fn channel_step(
        self: &Arc<Self>,
        channel: &Arc<Channel>,
        stream: &Arc<Stream>,
        sink: &S3Sink,
        buffers: &mut BTreeMap<u32, Buffered>,
        buffer_bytes: u64,
    ) -> Result<Option<Duration>> {
        let meta = channel.meta();
        if let Some(p) = meta.cursor.pending {
            self.write_object(channel, stream, sink, p, None).await?;
            buffers.remove(&p.shard);
        }
        // Where each shard's objects being built end: the cursor moves there only as they
        // are written, and reading goes on from there.
        let mut claimed = BTreeMap::new();
        let mut building = std::collections::VecDeque::new();
        let mut more_due = true;
        let mut wait = None;
        loop {
            if more_due && building.len() < BUILD_WAVE {
                let room = BUILD_WAVE - building.len();
                let (due, next_wait) = self
                    .due_objects(channel, stream, buffers, buffer_bytes, &mut claimed, room)
                    .await?;
                wait = next_wait;
                more_due = due.len() == room;
                let meta = Arc::new(channel.meta());
                for (p, shard) in due {
                    let (broker, meta, stream) = (self.clone(), meta.clone(), stream.clone());
                    let build = tokio::task::spawn_blocking(move || {
                        broker.build_object(&meta, &stream, &shard, p, None)
                    });
                    building.push_back((p, build));
                }
            }
            let Some((p, build)) = building.pop_front() else {
                return Ok(wait.map(|ms: i64| Duration::from_millis(ms.max(0) as u64)));
            };
            let built = build
                .await
                .map_err(|e| Error::Catalog(format!("building a channel object: {e}")))??;
            self.write_object(channel, stream, sink, p, Some(built))
                .await?;
        }
    }

    /// Reads what is new on every shard the channel may read, from the cursor or past the
    /// objects already `claimed` (being built), and returns the objects that are due (at most
    /// `limit`, in shard order, a shard's in offset order; each is claimed) and, in ms, how
    /// long until the oldest record still waiting is due. Marks shards read to their closed
    /// end, with nothing left to write, as finished.
    async fn due_objects(
        self: &Arc<Self>,
        channel: &Arc<Channel>,
        stream: &Arc<Stream>,
        buffers: &mut BTreeMap<u32, Buffered>,
        buffer_bytes: u64,
        claimed: &mut BTreeMap<u32, u64>,
        limit: usize,
    ) -> Result<(Vec<(PendingObject, Arc<Shard>)>, Option<i64>)> {
        let meta = channel.meta();
        let cursor = &meta.cursor;
        let freshness_ms = meta.destination.data_freshness_s as i64 * 1000;
        let shards = stream.state().shards.clone();
        let shard_of = |index: u32| shards.iter().find(|s| s.index == index);
        let mut wait: Option<i64> = None;
        let mut due = Vec::new();
        for shard in &shards {
            if due.len() >= limit {
                break;
            }
            if cursor.finished.contains(&shard.index) {
                continue;
            }
            let parents_done = [shard.parent, shard.adjacent_parent]
                .into_iter()
                .flatten()
                .all(|p| cursor.finished.contains(&p) || shard_of(p).is_none());
            if !parents_done {
                continue;
            }
            let written = cursor.next.get(&shard.index).copied().unwrap_or(0);
            let mut start = claimed
                .get(&shard.index)
                .copied()
                .unwrap_or(0)
                .max(written)
                .max(self.trim_horizon(stream, shard)?);
            let end = Broker::shard_end(shard);
            // Every object that is due is taken; only the last, partial one waits (for more
            // records, its freshness or the shard's close). Otherwise a backlog with no new
            // appends to wake the loop (after a restart, or a channel created on a full
            // stream) would go out one object per shard per idle period.
            while due.len() < limit {
                let buf = buffers.entry(shard.index).or_insert(Buffered {
                    first: start,
                    end: start,
                    bytes: 0,
                    first_arrival_ms: None,
                });
                if buf.first < start || buf.end < start {
                    *buf = Buffered {
                        first: start,
                        end: start,
                        bytes: 0,
                        first_arrival_ms: None,
                    };
                }
                while buf.end < end && buf.bytes < buffer_bytes {
                    let want = (end - buf.end).min(10_000) as usize;
                    let batch = shard.log.read(buf.end, want, READ_BYTES)?;
                    let mut progressed = false;
                    for item in batch.iter() {
                        let view = item?;
                        if view.offset >= end {
                            break;
                        }
                        buf.first_arrival_ms.get_or_insert(view.arrival_ms);
                        buf.bytes += view.data.len() as u64 + 1;
                        buf.end = view.offset + 1;
                        progressed = true;
                        if buf.bytes >= buffer_bytes {
                            break;
                        }
                    }
                    if !progressed {
                        break;
                    }
                }
                let closed = shard.closed().is_some();
                let read_to_close = closed && buf.end >= end;
                if buf.end > buf.first {
                    let first_arrival = buf.first_arrival_ms.unwrap_or_default();
                    let age = self.clock.now_ms() - first_arrival;
                    if buf.bytes >= buffer_bytes || read_to_close || age >= freshness_ms {
                        let p = PendingObject {
                            shard: shard.index,
                            first: buf.first,
                            end: buf.end,
                        };
                        buffers.remove(&shard.index);
                        claimed.insert(shard.index, p.end);
                        due.push((p, shard.clone()));
                        start = p.end;
                        if p.end < end {
                            continue;
                        }
                    } else {
                        let left = freshness_ms - age;
                        wait = Some(wait.map_or(left, |w| w.min(left)));
                    }
                } else if read_to_close && claimed.get(&shard.index).is_none_or(|&e| e <= written) {
                    // With an object still being built, writing it marks the shard finished:
                    // marking it here first would lose that object's records in a crash.
                    let index = shard.index;
                    buffers.remove(&index);
                    change_cursor(channel, move |c| {
                        c.finished.insert(index);
                    })
                    .await?;
                }
                break;
            }
        }
        Ok((due, wait))
    }

    /// Writes the object of range `p` (its dead letters first) and moves the cursor past it.
    async fn write_object(
        self: &Arc<Self>,
        channel: &Arc<Channel>,
        stream: &Arc<Stream>,
        sink: &S3Sink,
        p: PendingObject,
        built: Option<Built>,
    ) -> Result<()> {
        if channel.meta().cursor.pending != Some(p) {
            change_cursor(channel, move |c| {
                c.pending = Some(p);
                c.refusals = 0;
            })
            .await?;
        }
        let mut dead_lettered_instead = 0u64;
        let mut written_bytes = 0u64;
        // The last refusal, whose records went to the dead letters instead of a retry.
        let mut refused_writes = 0u64;
        let shard = stream
            .state()
            .shards
            .iter()
            .find(|s| s.index == p.shard)
            .cloned();
        let meta = channel.meta();
        let mut built = match (built, &shard) {
            (Some(built), Some(_)) => Some(built),
            (None, Some(shard)) => Some(self.build_object(&meta, stream, shard, p, None)?),
            // The shard is gone (retention dropped its stream's old shards): nothing to write.
            (_, None) => None,
        };
        if let Some(built) = &mut built {
            let d = &meta.destination;
            if let Some((key, body)) = &built.dead_letter {
                let options = PutOptions {
                    expected_owner: Some(d.dead_letter.expected_owner.clone()),
                    content_type: Some("application/json"),
                    ..Default::default()
                };
                if let Err(e) = sink
                    .put(d.dead_letter.name(), key, body.clone(), &options)
                    .await
                {
                    change_cursor(channel, |c| c.failed_writes += 1).await?;
                    return Err(Error::Catalog(format!("dead-letter object {key}: {e}")));
                }
                written_bytes += body.len() as u64;
            }
            if built.records > 0 {
                let options = PutOptions {
                    expected_owner: Some(d.bucket.expected_owner.clone()),
                    storage_class: d.storage_class,
                    kms_key_id: meta.encryption.as_ref().map(|e| e.key_id.clone()),
                    content_type: None,
                };
                let body_len = built.body.len() as u64;
                let put = sink
                    .put(
                        d.bucket.name(),
                        &built.key,
                        std::mem::take(&mut built.body),
                        &options,
                    )
                    .await;
                if put.is_ok() {
                    written_bytes += body_len;
                }
                if let Err(e) = put {
                    let refusals = meta.cursor.refusals + 1;
                    let failure = Error::Catalog(format!("object {}: {e}", built.key));
                    let shard = shard.as_ref().filter(|_| refusals >= MAX_REFUSALS);
                    let Some(shard) = shard else {
                        change_cursor(channel, move |c| {
                            c.refusals = refusals;
                            c.failed_writes += 1;
                        })
                        .await?;
                        return Err(failure);
                    };
                    let refused = self.build_object(&meta, stream, shard, p, Some(&e))?;
                    if let Some((key, body)) = refused.dead_letter {
                        let options = PutOptions {
                            expected_owner: Some(d.dead_letter.expected_owner.clone()),
                            content_type: Some("application/json"),
                            ..Default::default()
                        };
                        let len = body.len() as u64;
                        if let Err(e) = sink.put(d.dead_letter.name(), &key, body, &options).await {
                            change_cursor(channel, |c| c.failed_writes += 1).await?;
                            return Err(Error::Catalog(format!("dead-letter object {key}: {e}")));
                        }
                        written_bytes += len;
                    }
                    tracing::warn!(channel = %meta.name, key = %built.key, error = %e, "object refused; its records went to the dead-letter prefix");
                    dead_lettered_instead = refused.dead_letters;
                    refused_writes = 1;
                }
            }
        }
        let closed_end = shard
            .as_ref()
            .and_then(|s| s.closed().map(|c| c.end_offset));
        let (records, dead, objects) = built.as_ref().map_or((0, 0, 0), |b| {
            (
                b.records - dead_lettered_instead.min(b.records),
                b.dead_letters + dead_lettered_instead,
                u64::from(b.records > 0) + u64::from(b.dead_letter.is_some()),
            )
        });
        change_cursor(channel, move |c| {
            c.next.insert(p.shard, p.end);
            c.pending = None;
            c.refusals = 0;
            c.records += records;
            c.dead_letters += dead;
            c.objects += objects;
            c.bytes += written_bytes;
            c.failed_writes += refused_writes;
            if closed_end.is_some_and(|e| p.end >= e) {
                c.finished.insert(p.shard);
            }
        })
        .await?;
        tracing::debug!(channel = %meta.name, shard = p.shard, first = p.first, end = p.end, records, "channel object written");
        Ok(())
    }

    /// Reads range `p` of `shard` and encodes it (blocking reads of mapped segments: cheap).
    /// `refused`: the store's answer to the object, which sends its deliverable records to
    /// the dead letters instead (those already dead-lettered are not repeated).
    fn build_object(
        &self,
        meta: &ChannelMeta,
        stream: &Stream,
        shard: &Shard,
        p: PendingObject,
        refused: Option<&str>,
    ) -> Result<Built> {
        let from = p.first.max(self.trim_horizon(stream, shard)?);
        // Sized for a full object up front: growing a multi-megabyte buffer by doubling
        // copied each object's bytes once more (a tenth of a channel's CPU). Pages never
        // written to are never touched, so a small object costs no more than before.
        let mut raw = Vec::with_capacity(
            usize::try_from(self.channels.buffer_bytes)
                .unwrap_or(usize::MAX)
                .saturating_add(64 * 1024)
                .min(MAX_OBJECT_PREALLOCATION),
        );
        let mut dead = Vec::new();
        let mut records = 0u64;
        let mut dead_letters = 0u64;
        let mut first: Option<(u64, i64)> = None;
        let mut at = from;
        while at < p.end {
            let want = (p.end - at).min(10_000) as usize;
            let batch = shard.log.read(at, want, READ_BYTES)?;
            let mut progressed = false;
            for item in batch.iter() {
                let v = item?;
                if v.offset >= p.end {
                    break;
                }
                at = v.offset + 1;
                progressed = true;
                first.get_or_insert((v.offset, v.arrival_ms));
                let outcome = match (encode_record(meta.format, v.data, &mut raw), refused) {
                    (Ok(()), None) => Ok(()),
                    (Ok(()), Some(answer)) => Err(Some((
                        "S3PutFailed",
                        format!("The destination refused the object: {answer}"),
                    ))),
                    (Err(reason), None) => Err(Some(reason)),
                    (Err(_), Some(_)) => Err(None),
                };
                match outcome {
                    Ok(()) => records += 1,
                    Err(None) => {}
                    Err(Some(reason)) => {
                        dead_letters += 1;
                        let seq = SequenceNumber::record(
                            shard.created_ms,
                            shard.index,
                            v.offset,
                            v.arrival_ms,
                        )
                        .encode();
                        let line = serde_json::json!({
                            "errorCode": reason.0,
                            "errorMessage": reason.1,
                            "shardId": shard.id,
                            "sequenceNumber": seq,
                            "partitionKey": String::from_utf8_lossy(v.partition_key),
                            "approximateArrivalTimestamp": v.arrival_ms,
                            "data": STANDARD.encode_to_string(v.data),
                        });
                        serde_json::to_writer(&mut dead, &line)
                            .map_err(|e| Error::Catalog(format!("dead letter: {e}")))?;
                        dead.push(b'\n');
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        let (first_offset, first_arrival) = first.unwrap_or((p.first, self.clock.now_ms()));
        let seq =
            SequenceNumber::record(shard.created_ms, shard.index, first_offset, first_arrival)
                .encode();
        let suffix = format!("{}-{seq}", shard.id);
        let key = object_key(meta, first_arrival, &suffix);
        let dead_letter = (!dead.is_empty()).then(|| {
            let time = parts(first_arrival);
            (
                format!(
                    "{}{}/{}/{}/{}/{}/{}/{suffix}{}.json",
                    meta.destination.error_prefix,
                    meta.name,
                    meta.id,
                    time.yyyy,
                    time.mm_month,
                    time.dd,
                    time.hh,
                    if refused.is_some() { ".refused" } else { "" }
                ),
                dead,
            )
        });
        Ok(Built {
            body: compress(meta.destination.compression, raw)?,
            key,
            dead_letter,
            records,
            dead_letters,
        })
    }
}

fn delivering(meta: &ChannelMeta) -> bool {
    matches!(meta.status, ChannelStatus::Active | ChannelStatus::Updating)
}

async fn change_cursor(
    channel: &Arc<Channel>,
    change: impl FnOnce(&mut Cursor) + Send + 'static,
) -> Result<()> {
    let c = channel.clone();
    tokio::task::spawn_blocking(move || c.change_meta(|m| change(&mut m.cursor)).map(|_| ()))
        .await
        .map_err(|e| Error::Catalog(format!("channel checkpoint failed: {e}")))?
}

/// The delivery loop of one channel; ends when the channel stops delivering, its stream is
/// gone or the broker shuts down. Records read but not written when it ends are read again
/// by the next run (only written objects move the cursor).
async fn run(
    weak: std::sync::Weak<Broker>,
    channel: Arc<Channel>,
    sink: Arc<S3Sink>,
    buffer_bytes: u64,
) {
    let Some(mut shutdown) = weak.upgrade().map(|b| b.shutdown.subscribe()) else {
        return;
    };
    let mut buffers = BTreeMap::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(broker) = weak.upgrade() else {
            return;
        };
        let meta = channel.meta();
        if !delivering(&meta) {
            return;
        }
        let Some(stream) = broker.registry().streams.get(&meta.stream_uid).cloned() else {
            return;
        };
        // Watched before reading, so an append during the step wakes the wait below.
        let mut tails: Vec<_> = stream
            .state()
            .shards
            .iter()
            .map(|s| s.tail.watch())
            .collect();
        let wait = match broker
            .channel_step(&channel, &stream, &sink, &mut buffers, buffer_bytes)
            .await
        {
            Ok(wait) => {
                backoff = Duration::from_millis(100);
                wait.map_or(MAX_IDLE * 30, |w| w.min(MAX_IDLE))
            }
            Err(e) => {
                tracing::warn!(channel = %meta.name, error = %e, "channel delivery failed; retrying");
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                // A failed object stays pending: it is written again, same range and key.
                buffers.clear();
                pause
            }
        };
        drop(broker);
        let any_tail = async {
            if tails.is_empty() {
                return std::future::pending().await;
            }
            let changed = tails.iter_mut().map(|t| Box::pin(t.changed()));
            let _ = futures_select_all(changed).await;
        };
        tokio::select! {
            _ = any_tail => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Waits for the first of `futures` (a sender gone counts as a change, and is harmless: the
/// loop then waits on the timer).
async fn futures_select_all<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(|cx| {
        for f in futures.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Appends one record in the channel's format, or says why it cannot be delivered.
fn encode_record(
    format: RecordFormat,
    data: &[u8],
    out: &mut Vec<u8>,
) -> std::result::Result<(), (&'static str, String)> {
    match format {
        RecordFormat::Json => {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(data) {
                return Err(("InvalidJson", format!("The record is not valid JSON: {e}")));
            }
            // A byte-at-a-time scan here was 6% of a channel's broker's CPU.
            if memchr::memchr2(b'\n', b'\r', data).is_some() {
                let value: serde_json::Value = serde_json::from_slice(data)
                    .map_err(|e| ("InvalidJson", format!("The record is not valid JSON: {e}")))?;
                serde_json::to_writer(&mut *out, &value)
                    .map_err(|e| ("InvalidJson", e.to_string()))?;
            } else {
                out.extend_from_slice(data);
            }
            out.push(b'\n');
        }
        RecordFormat::String => {
            if std::str::from_utf8(data).is_err() {
                return Err(("InvalidString", "The record is not UTF-8 text.".into()));
            }
            out.extend_from_slice(data);
            out.push(b'\n');
        }
        RecordFormat::ByteArray => {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(data);
        }
    }
    Ok(())
}

fn compress(compression: Compression, raw: Vec<u8>) -> Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(raw),
        Compression::Gzip => {
            // Level 1: on 1 KiB JSON event records it compresses about 4x (level 6: 5.4x) at
            // several times the speed, and compressing is most of a channel's CPU; see
            // benches/RESULTS.md, "Channels (issue 22)".
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 3),
                flate2::Compression::fast(),
            );
            gz.write_all(&raw)
                .and_then(|_| gz.finish())
                .map_err(|e| Error::Catalog(format!("gzip: {e}")))
        }
        // One frame with a content checksum, at the level zstd calls 1: the only level
        // ruzstd implements besides "uncompressed", and delivery must keep up with producers.
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            raw.as_slice(),
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

/// A UTC time's key parts.
struct TimeParts {
    yyyy: String,
    yy: String,
    mm_month: String,
    dd: String,
    hh: String,
    minute: String,
}

fn parts(ms: i64) -> TimeParts {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    TimeParts {
        yyyy: format!("{:04}", t.year()),
        yy: format!("{:02}", t.year().rem_euclid(100)),
        mm_month: format!("{:02}", u8::from(t.month())),
        dd: format!("{:02}", t.day()),
        hh: format!("{:02}", t.hour()),
        minute: format!("{:02}", t.minute()),
    }
}

/// AWS's default key template (the developer guide's "S3 output key template").
pub const DEFAULT_KEY_TEMPLATE: &str = "kinesis-channel/!{channel-name}/!{channel-id}/!{yyyy}/!{MM}/!{dd}/!{HH}/!{channel-name}-!{channel-id}-!{yyyy}-!{MM}-!{dd}-!{HH}-!{mm}!{extension}";

/// The template variables AWS documents for channels.
pub const KEY_VARIABLES: &[&str] = &[
    "channel-name",
    "channel-id",
    "stream-name",
    "yyyy",
    "yy",
    "MM",
    "dd",
    "HH",
    "mm",
    "extension",
];

/// The file extension of a channel's objects (our choice: AWS does not document it).
fn extension(meta: &ChannelMeta) -> String {
    let base = match meta.format {
        RecordFormat::Json => ".json",
        RecordFormat::String => ".txt",
        RecordFormat::ByteArray => ".bin",
    };
    let compressed = match meta.destination.compression {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
    };
    format!("{base}{compressed}")
}

/// The key of an object whose first record arrived at `first_arrival_ms`: the template
/// rendered with that time, and the unique suffix AWS documents appending (here the shard
/// and the first record's sequence number, so a retry names the same object), placed before
/// a trailing `!{extension}` so the extension stays last.
pub fn object_key(meta: &ChannelMeta, first_arrival_ms: i64, suffix: &str) -> String {
    let template = meta
        .destination
        .output_key_template
        .as_deref()
        .unwrap_or(DEFAULT_KEY_TEMPLATE);
    let (body, ext) = match template.strip_suffix("!{extension}") {
        Some(body) => (body, extension(meta)),
        None => (template, String::new()),
    };
    let t = parts(first_arrival_ms);
    let mut out = String::with_capacity(template.len() + suffix.len() + 32);
    let mut rest = body;
    while let Some(start) = rest.find("!{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let value = match &after[..close] {
            "channel-name" => meta.name.clone(),
            "channel-id" => meta.id.clone(),
            "stream-name" => meta.stream_name.clone(),
            "yyyy" => t.yyyy.clone(),
            "yy" => t.yy.clone(),
            "MM" => t.mm_month.clone(),
            "dd" => t.dd.clone(),
            "HH" => t.hh.clone(),
            "mm" => t.minute.clone(),
            "extension" => extension(meta),
            // Refused by CreateChannel; kept literally if it ever gets here.
            other => format!("!{{{other}}}"),
        };
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    format!("{out}-{suffix}{ext}")
}

/// Checks an `OutputKeyTemplate`: balanced `!{…}` of documented variables only.
pub fn check_key_template(template: &str) -> std::result::Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("!{") {
        let after = &rest[start + 2..];
        let Some(close) = after.find('}') else {
            return Err("an unclosed !{ variable".into());
        };
        let name = &after[..close];
        if !KEY_VARIABLES.contains(&name) {
            return Err(format!("unknown variable !{{{name}}}"));
        }
        rest = &after[close + 1..];
    }
    if template.starts_with('/') || template.ends_with('/') || template.contains("..") {
        return Err("it must not start or end with / or contain ..".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_array_layout_is_length_then_bytes() {
        let mut out = Vec::new();
        encode_record(RecordFormat::ByteArray, b"abc", &mut out).unwrap();
        encode_record(RecordFormat::ByteArray, b"", &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0]);
    }

    #[test]
    fn json_records_are_one_line_each_and_invalid_ones_are_refused() {
        let mut out = Vec::new();
        encode_record(RecordFormat::Json, b"{\"a\":1}", &mut out).unwrap();
        encode_record(RecordFormat::Json, b"{\n \"b\": [1,\n2]\n}", &mut out).unwrap();
        assert_eq!(out, b"{\"a\":1}\n{\"b\":[1,2]}\n");
        assert!(encode_record(RecordFormat::Json, b"{nope", &mut out).is_err());
        assert!(encode_record(RecordFormat::String, &[0xff, 0xfe], &mut out).is_err());
    }

    #[test]
    fn zstd_objects_are_one_standard_frame_with_a_checksum() {
        let raw: Vec<u8> = (0..2_000)
            .flat_map(|i| format!("{{\"n\":{i},\"pad\":\"abcabcabc\"}}\n").into_bytes())
            .collect();
        let body = compress(Compression::Zstd, raw.clone()).unwrap();
        assert!(
            body.len() < raw.len() / 4,
            "{} of {}",
            body.len(),
            raw.len()
        );
        // RFC 8878: the magic number, then a frame header whose descriptor sets
        // Content_Checksum_flag (bit 2), so readers verify what they decompress.
        assert_eq!(body[..4], [0x28, 0xb5, 0x2f, 0xfd]);
        assert_ne!(body[4] & 0b100, 0, "no content checksum");
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(body.as_slice()).unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut decoder, &mut back).unwrap();
        assert_eq!(back, raw);
        // Empty objects (every record dead-lettered) are still valid frames.
        let empty = compress(Compression::Zstd, Vec::new()).unwrap();
        let mut decoder = ruzstd::decoding::StreamingDecoder::new(empty.as_slice()).unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut decoder, &mut back).unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn key_templates_are_checked() {
        assert!(check_key_template(DEFAULT_KEY_TEMPLATE).is_ok());
        assert!(check_key_template("x/!{stream-name}/!{yyyy}").is_ok());
        assert!(check_key_template("!{nope}/x").is_err());
        assert!(check_key_template("!{yyyy").is_err());
        assert!(check_key_template("a/").is_err());
    }
}
