//! SubscribeToShard sessions: one registered consumer reading one shard by push.
//!
//! A [`Subscription`] is a cursor on a shard that waits at the shard's tail notifier
//! instead of polling. Each [`Subscription::next`] returns one event's worth of records as
//! soon as the log has any past the cursor (the producer's append wakes it), an empty
//! heartbeat when the shard has been quiet for [`HEARTBEAT_INTERVAL`], the shard's children
//! once a closed shard is read to its end, or the reason the session ended.
//!
//! AWS's rules, as its SubscribeToShard documentation states them:
//! - a subscription lasts 5 minutes (`Config::subscription_lifetime`), then ends cleanly
//!   and the client subscribes again from its continuation sequence number;
//! - a second subscription of the same consumer to the same shard within 5 seconds of a
//!   successful call is refused (`ResourceInUseException`); after that it takes over and
//!   the older one ends with that error;
//! - each consumer reads each shard at up to 2 MiB/s, independently of other consumers
//!   and of GetRecords.
//!
//! No session owns a task: the caller drives `next()`, so a client that goes away drops
//! the session and with it its slot's liveness; nothing is left behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::super::catalog::{StreamExtras, StreamStatus};
use super::super::read::Position;
use super::super::stream::{Shard, Stream};
use super::super::throttle::SHARD_READ_BYTES_PER_SEC;
use super::super::{Broker, Error};
use crate::policy::StandingAccess;

/// How long after a successful SubscribeToShard the same consumer and shard are refused.
pub const RESUBSCRIBE_WINDOW_MS: i64 = 5_000;
/// How often a quiet subscription gets an event with no records, so clients see it is
/// alive (and learn `MillisBehindLatest`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Most records in one event (GetRecords' own maximum).
pub const MAX_EVENT_RECORDS: usize = 10_000;
/// Most record bytes in one event: 1 MiB, half a second of a consumer's 2 MiB/s, so a
/// catching-up consumer gets steady events rather than a few huge ones.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Live subscriptions by (consumer ARN, stream uid, shard index).
#[derive(Debug, Default)]
pub struct Sessions {
    slots: Mutex<HashMap<SlotKey, Slot>>,
}

type SlotKey = (String, u64, u32);

#[derive(Debug)]
struct Slot {
    /// Steady-clock time of the successful call that made this slot.
    started_ms: i64,
    /// Set to true when a newer subscription takes over.
    taken_over: watch::Sender<bool>,
}

impl Sessions {
    /// Claims the (consumer, shard) pair for a new subscription at `now_ms`, ending the
    /// older one if it is past the 5-second window. `window_ms` is that window.
    fn claim(&self, key: SlotKey, now_ms: i64, window_ms: i64) -> Option<watch::Receiver<bool>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Forget slots whose window has passed and whose session is gone, so the table
        // holds only pairs subscribed to now or in the last few seconds.
        slots.retain(|_, s| now_ms - s.started_ms < window_ms || s.taken_over.receiver_count() > 0);
        if let Some(old) = slots.get(&key)
            && now_ms - old.started_ms < window_ms
        {
            return None;
        }
        let (taken_over, rx) = watch::channel(false);
        if let Some(old) = slots.insert(
            key,
            Slot {
                started_ms: now_ms,
                taken_over,
            },
        ) {
            old.taken_over.send_replace(true);
        }
        Some(rx)
    }

    /// Live subscriptions (receivers still held).
    pub fn live(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .values()
            .filter(|s| s.taken_over.receiver_count() > 0)
            .count()
    }
}

/// Why a subscription could not start or stopped.
#[derive(Debug)]
pub enum SessionError {
    /// Another subscription of this consumer to this shard started less than 5 s ago, or
    /// (for a running session) a newer one took over.
    InUse,
    /// The consumer was deregistered (or is no longer ACTIVE).
    ConsumerGone,
    /// The stream was deleted.
    StreamGone,
    /// Reading the shard failed.
    Broker(Error),
}

impl From<Error> for SessionError {
    fn from(e: Error) -> Self {
        SessionError::Broker(e)
    }
}

/// One event's worth of a subscription.
///
/// Shared (`Arc`) by every subscription that reads the same records of a shard at the same
/// time: consumers at the tail all wake on the same append and ask for the same range, and
/// the first one's read, and its wire encoding ([`Delivery::encoded`]), serve the others.
pub struct Delivery {
    /// The shard read.
    pub shard: Arc<Shard>,
    /// The records (empty for a heartbeat or the end of a closed shard).
    pub batch: Option<storage::ReadBatch>,
    /// The sequence number to resubscribe after (`AFTER_SEQUENCE_NUMBER`); `None` in the
    /// last event of a closed shard.
    pub continuation: Option<String>,
    /// How far behind the newest record the cursor is.
    pub millis_behind_latest: i64,
    /// At the end of a closed shard: its children.
    pub child_shards: Option<Vec<Arc<Shard>>>,
    /// The stream's settings (records report whether they were written encrypted).
    pub stream_extras: StreamExtras,
    /// The offsets read, `from..next` (equal for an event without records).
    pub from: u64,
    /// See [`Delivery::from`].
    pub next: u64,
    /// Record bytes (data and partition keys) charged to each reader's budget.
    pub bytes: usize,
    /// The event as upper layers put it on the wire, by their own format tag, so that
    /// sharing the delivery shares its encoding too. The broker never looks inside.
    encoded: Mutex<Vec<(u8, bytes::Bytes)>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("shard", &self.shard.id)
            .field("from", &self.from)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// The encoding stored under `tag` by [`Delivery::set_encoded`], if any.
    pub fn encoded(&self, tag: u8) -> Option<bytes::Bytes> {
        let encoded = self.encoded.lock().unwrap_or_else(|e| e.into_inner());
        encoded
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, b)| b.clone())
    }

    /// Keeps `bytes` as this delivery's encoding under `tag` for its other readers.
    pub fn set_encoded(&self, tag: u8, bytes: bytes::Bytes) {
        let mut encoded = self.encoded.lock().unwrap_or_else(|e| e.into_inner());
        if !encoded.iter().any(|(t, _)| *t == tag) {
            encoded.push((tag, bytes));
        }
    }
}

/// The shard's most recent records event, kept while two or more subscriptions read the
/// shard (with one there is nobody to share with). At most one event per such shard: up to
/// 1 MiB of records (views of the mapped segments) and their encoding.
#[derive(Debug, Default)]
pub struct SharedDelivery {
    last: Mutex<Option<Arc<Delivery>>>,
    /// Live subscriptions to the shard.
    readers: std::sync::atomic::AtomicUsize,
}

impl SharedDelivery {
    /// The records event starting at `from`, if it is the one kept.
    fn at(&self, from: u64) -> Option<Arc<Delivery>> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().filter(|d| d.from == from).cloned()
    }

    fn keep(&self, delivery: &Arc<Delivery>) {
        if self.readers.load(std::sync::atomic::Ordering::Relaxed) > 1 {
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(delivery.clone());
        }
    }

    fn reader_started(&self) {
        self.readers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn reader_ended(&self) {
        let before = self
            .readers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if before <= 2 {
            // One reader left (or none): nothing to share, hold nothing.
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// What a subscription reads and who it serves.
#[derive(Debug, Clone)]
pub struct Target {
    /// The stream.
    pub stream: Arc<Stream>,
    /// The shard.
    pub shard: Arc<Shard>,
    /// The consumer's ARN.
    pub consumer_arn: String,
    /// The consumer's creation time: identifies this registration of its name.
    pub consumer_created_ms: i64,
    /// Where to start.
    pub position: Position,
    /// For a subscriber of another account: its right to the consumer, which the
    /// consumer's policy granted at SubscribeToShard and the owner may withdraw meanwhile.
    pub subscriber_access: Option<StandingAccess>,
}

/// A running subscription; see the module documentation.
pub struct Subscription {
    broker: Arc<Broker>,
    target: Target,
    next_offset: u64,
    /// The continuation sequence number (last record delivered, or the position before).
    continuation: String,
    tail: watch::Receiver<u64>,
    consumers: watch::Receiver<u64>,
    taken_over: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
    ends_at: Instant,
    next_heartbeat: Instant,
    bucket: Option<ReadBucket>,
    /// The first event goes out at once, records or not (clients learn the continuation).
    sent_first: bool,
    finished: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", &self.target.consumer_arn)
            .field("shard", &self.target.shard.id)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

/// Bytes a consumer may read from a shard: 2 MiB/s with one second of burst; a read may
/// overdraw it and the next waits until it is repaid (as GetRecords' bucket does).
#[derive(Debug)]
struct ReadBucket {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl ReadBucket {
    fn new(multiplier: f64) -> Self {
        let rate = SHARD_READ_BYTES_PER_SEC * multiplier;
        Self {
            rate,
            tokens: rate,
            refilled: Instant::now(),
        }
    }

    /// When reading may go on: now, or once the debt is repaid.
    fn ready_at(&mut self) -> Instant {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.refilled = now;
        if self.tokens > 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    fn charge(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

impl Broker {
    /// Starts a subscription of a consumer to a shard, or refuses it within the 5-second
    /// window of the previous one. The caller has checked the consumer is ACTIVE and the
    /// shard belongs to the stream.
    pub fn subscribe(self: &Arc<Self>, target: Target) -> Result<Subscription, SessionError> {
        // The 5-second window is a deadline: on the wall clock, a backward step would refuse
        // every resubscription for the length of the step.
        let now = self.clock.steady_ms();
        let lifetime = self.settings.subscription_lifetime;
        // A subscription shorter than the window (tests shorten it) could otherwise never
        // be renewed when it ends.
        let window = RESUBSCRIBE_WINDOW_MS.min(lifetime.as_millis() as i64);
        let next_offset = self.resolve_position(&target.stream, &target.shard, target.position)?;
        let continuation = self.sequence_before(&target.shard, next_offset)?;
        let key = (
            target.consumer_arn.clone(),
            target.stream.uid,
            target.shard.index,
        );
        let claimed = self.fanout.sessions.claim(key, now, window);
        target.stream.metrics.subscribe(claimed.is_some());
        let taken_over = claimed.ok_or(SessionError::InUse)?;
        let start = Instant::now();
        let limits = self.settings.limits;
        target.shard.tail.shared.reader_started();
        Ok(Subscription {
            broker: self.clone(),
            tail: target.shard.tail.watch(),
            consumers: self.fanout.watch_consumers(),
            shutdown: self.fanout.watch_closing(),
            taken_over,
            next_offset,
            continuation,
            ends_at: start + lifetime,
            next_heartbeat: start + HEARTBEAT_INTERVAL,
            bucket: limits.enabled.then(|| ReadBucket::new(limits.multiplier)),
            sent_first: false,
            finished: false,
            target,
        })
    }

    /// The sequence number just before `offset` in `shard`, for a continuation: the record
    /// at `offset - 1`, or the shard's starting sequence number when there is none.
    fn sequence_before(&self, shard: &Shard, offset: u64) -> Result<String, Error> {
        if offset == 0 {
            return Ok(shard.starting_sequence_number());
        }
        let batch = shard.log.read(offset - 1, 1, usize::MAX)?;
        let arrival = batch
            .iter()
            .filter_map(|r| r.ok())
            .find(|r| r.offset == offset - 1)
            .map(|r| r.arrival_ms)
            .unwrap_or(shard.created_ms);
        Ok(shard.sequence_number(arrival, offset - 1))
    }
}

impl Broker {
    /// Whether the stream with this uid is still in the registry (not deleted).
    fn stream_is_registered(&self, uid: u64) -> bool {
        self.registry().streams.contains_key(&uid)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.target.shard.tail.shared.reader_ended();
    }
}

impl Subscription {
    /// The shard this subscription reads.
    pub fn shard(&self) -> &Arc<Shard> {
        &self.target.shard
    }

    /// The next event, `None` once the subscription is over (its lifetime passed, the
    /// broker is stopping, or the last event of a closed shard was returned), or the error
    /// that ended it (returned once; `None` after).
    pub async fn next(&mut self) -> Option<Result<Arc<Delivery>, SessionError>> {
        loop {
            if self.finished {
                return None;
            }
            let now = Instant::now();
            if now >= self.ends_at || *self.shutdown.borrow() {
                self.finished = true;
                return None;
            }
            if *self.taken_over.borrow() {
                return self.fail(SessionError::InUse);
            }
            let policy = match self.check_still_there() {
                Ok(policy) => policy,
                Err(e) => return self.fail(e),
            };
            if let Some(access) = &mut self.target.subscriber_access
                && !access.allowed(policy.as_deref())
            {
                // The owner withdrew the grant. SubscribeToShard's event stream has no
                // access-denied event (the model's union lists none), so the session ends
                // cleanly, as when its lifetime is over, and the client's resubscription
                // gets the AccessDeniedException. Checked before every read: nothing more
                // is delivered after the change.
                self.finished = true;
                return None;
            }
            // Mark what the tail says now as seen: an append after this wakes `changed()`.
            self.tail.borrow_and_update();
            match self.read_now() {
                Err(e) => return self.fail(e.into()),
                Ok(Some(delivery)) => {
                    self.count_event(&delivery);
                    self.sent_first = true;
                    self.next_heartbeat = Instant::now() + HEARTBEAT_INTERVAL;
                    return Some(Ok(delivery));
                }
                Ok(None) => {}
            }
            if let Some(ready) = self.throttled_until() {
                tokio::select! {
                    _ = tokio::time::sleep_until(ready) => {}
                    _ = self.taken_over.changed() => {}
                    _ = self.consumers.changed() => {}
                    _ = self.shutdown.changed() => {}
                }
                continue;
            }
            let wake = self.next_heartbeat.min(self.ends_at);
            tokio::select! {
                _ = self.tail.changed() => {}
                _ = self.consumers.changed() => {}
                _ = self.taken_over.changed() => {}
                _ = self.shutdown.changed() => {}
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= self.next_heartbeat && Instant::now() < self.ends_at {
                        self.next_heartbeat = Instant::now() + HEARTBEAT_INTERVAL;
                        let event = Arc::new(self.empty_event());
                        self.count_event(&event);
                        return Some(Ok(event));
                    }
                }
            }
        }
    }

    /// Counts an event for SubscribeToShardEvent.* and the consumer's lag.
    fn count_event(&self, delivery: &Delivery) {
        let records = delivery.next.saturating_sub(delivery.from);
        let bytes = delivery.bytes as u64;
        let shard = &self.target.shard;
        shard.metrics.outgoing(records, bytes);
        self.target.stream.metrics.event(
            &self.target.consumer_arn,
            shard.index,
            records,
            bytes,
            delivery.millis_behind_latest,
            self.broker.clock.now_ms(),
        );
    }

    fn fail(&mut self, e: SessionError) -> Option<Result<Arc<Delivery>, SessionError>> {
        self.finished = true;
        Some(Err(e))
    }

    /// `Some(instant)` while this consumer's read budget on the shard is overdrawn.
    fn throttled_until(&mut self) -> Option<Instant> {
        let bucket = self.bucket.as_mut()?;
        let at = bucket.ready_at();
        (at > Instant::now()).then_some(at)
    }

    /// Errors when the consumer was deregistered or the stream deleted since the start;
    /// else the consumer's resource policy now.
    fn check_still_there(&self) -> Result<Option<String>, SessionError> {
        let stream = &self.target.stream;
        if !self.broker.stream_is_registered(stream.uid) {
            return Err(SessionError::StreamGone);
        }
        if stream.state().status == StreamStatus::Deleting {
            return Err(SessionError::StreamGone);
        }
        match self.broker.consumer_by_arn(
            &stream.key.account,
            &stream.key.region,
            &self.target.consumer_arn,
        ) {
            Ok((_, consumer))
                if consumer.created_ms == self.target.consumer_created_ms
                    && consumer.status == super::registry::ConsumerStatus::Active =>
            {
                Ok(consumer.policy)
            }
            _ => Err(SessionError::ConsumerGone),
        }
    }

    /// Reads what is past the cursor now, if there is anything to send: records, the end of
    /// a closed shard, or the first event of the session.
    fn read_now(&mut self) -> Result<Option<Arc<Delivery>>, Error> {
        let broker = self.broker.clone();
        let stream = self.target.stream.clone();
        let shard = self.target.shard.clone();
        let (stream, shard) = (&stream, &shard);
        let end = Broker::shard_end(shard);
        let from = self.next_offset.max(broker.trim_horizon(stream, shard)?);
        if from < end {
            if self.throttled_until().is_some() {
                return Ok(None);
            }
            if let Some(shared) = shard.tail.shared.at(from) {
                // Another consumer just read (and maybe encoded) exactly this.
                self.advance(&shared);
                return Ok(Some(shared));
            }
            let max_records = MAX_EVENT_RECORDS.min((end - from).try_into().unwrap_or(usize::MAX));
            let batch = shard.log.read(from, max_records, MAX_EVENT_BYTES)?;
            let mut bytes = 0;
            let mut last = None;
            for record in batch.iter().filter_map(|r| r.ok()) {
                bytes += record.data.len() + record.partition_key.len();
                last = Some((record.offset, record.arrival_ms));
            }
            let next = if batch.is_empty() {
                from
            } else {
                batch.next_offset()
            };
            let continuation = match last {
                Some((offset, arrival)) => shard.sequence_number(arrival, offset),
                None => self.continuation.clone(),
            };
            let millis_behind_latest = match last {
                Some((_, arrival)) if next < end => broker.clock.age_ms(arrival),
                _ => 0,
            };
            let delivery = Arc::new(Delivery {
                shard: shard.clone(),
                batch: Some(batch),
                continuation: Some(continuation),
                millis_behind_latest,
                child_shards: None,
                stream_extras: stream.state().extras.clone(),
                from,
                next,
                bytes,
                encoded: Mutex::default(),
            });
            shard.tail.shared.keep(&delivery);
            self.advance(&delivery);
            return Ok(Some(delivery));
        }
        self.next_offset = from;
        if shard.closed().is_some() {
            // Read to the end of a closed shard: the last event names the children, and the
            // subscription is over (the client subscribes to the children next).
            let children: Vec<Arc<Shard>> = stream.state().children_of(shard.index);
            self.finished = true;
            return Ok(Some(Arc::new(Delivery {
                shard: shard.clone(),
                batch: None,
                continuation: None,
                millis_behind_latest: 0,
                child_shards: Some(children),
                stream_extras: stream.state().extras.clone(),
                from,
                next: from,
                bytes: 0,
                encoded: Mutex::default(),
            })));
        }
        if !self.sent_first {
            return Ok(Some(Arc::new(self.empty_event())));
        }
        Ok(None)
    }

    /// Moves the cursor past a records event and charges it to this consumer's budget.
    fn advance(&mut self, delivery: &Delivery) {
        if let Some(bucket) = self.bucket.as_mut() {
            bucket.charge(delivery.bytes);
        }
        self.next_offset = delivery.next;
        if let Some(c) = &delivery.continuation {
            self.continuation = c.clone();
        }
    }

    fn empty_event(&self) -> Delivery {
        Delivery {
            shard: self.target.shard.clone(),
            batch: None,
            continuation: Some(self.continuation.clone()),
            millis_behind_latest: 0,
            child_shards: None,
            stream_extras: self.target.stream.state().extras.clone(),
            from: self.next_offset,
            next: self.next_offset,
            bytes: 0,
            encoded: Mutex::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::broker::catalog::StreamMode;
    use crate::broker::stream::StreamKey;
    use crate::broker::{MIN_SEGMENT_BYTES, PutEntry, hash};
    use crate::config::Config;

    fn config(dir: &std::path::Path, limits: bool) -> Config {
        let mut c = Config::new();
        c.data_dir = dir.to_path_buf();
        c.create_stream_delay = Duration::ZERO;
        c.register_consumer_delay = Duration::ZERO;
        c.segment_bytes = MIN_SEGMENT_BYTES;
        c.throughput_limits = limits;
        c
    }

    fn key() -> StreamKey {
        StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: "s".into(),
        }
    }

    /// Writes `records` records of `size` bytes into a new one-shard stream (limits off).
    async fn filled(dir: &std::path::Path, records: usize, size: usize) {
        let broker = Broker::open(&config(dir, false)).unwrap();
        broker
            .create_stream(key(), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key()).unwrap();
        let data = vec![7u8; size];
        for _ in 0..records {
            let entry = PutEntry {
                hash_key: hash::partition_key_hash(b"k"),
                partition_key: b"k",
                explicit_hash_key: None,
                data: &data,
            };
            broker.put(&stream, &[entry], 0).await.unwrap();
        }
        broker.shutdown().await;
    }

    async fn start(broker: &Arc<Broker>, name: &str, position: Position) -> Subscription {
        let stream = broker.stream(&key()).unwrap();
        let consumer = broker
            .register_consumer(&stream, name.into(), BTreeMap::new())
            .await
            .unwrap();
        let shard = stream.state().shards[0].clone();
        broker
            .subscribe(Target {
                consumer_arn: consumer.arn(&stream.arn()),
                consumer_created_ms: consumer.created_ms,
                stream,
                shard,
                position,
                subscriber_access: None,
            })
            .unwrap()
    }

    fn bytes_of(d: &Delivery) -> usize {
        d.batch
            .as_ref()
            .map(|b| {
                b.iter()
                    .filter_map(|r| r.ok())
                    .map(|r| r.data.len() + 1)
                    .sum()
            })
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn each_consumer_reads_a_shard_at_two_mib_per_second() {
        let dir = tempfile::tempdir().unwrap();
        // 7.8 MiB in 80 records of 100 KiB.
        filled(dir.path(), 80, 100 * 1024).await;
        let broker = Broker::open(&config(dir.path(), true)).unwrap();
        let total = 80 * (100 * 1024 + 1);
        let mut times = Vec::new();
        for name in ["a", "b"] {
            let mut sub = start(&broker, name, Position::TrimHorizon).await;
            let began = Instant::now();
            let mut read = 0;
            while read < total {
                let d = sub.next().await.unwrap().unwrap();
                read += bytes_of(&d);
            }
            times.push(began.elapsed());
        }
        // 7.8 MiB at 2 MiB/s after a one-second (2 MiB) burst, the last read overdrawing by
        // at most one event (1 MiB): (7.8 - 2 - 1) / 2 = 2.4 s at least, (7.8 - 2) / 2 =
        // 2.9 s at most, of (virtual) time, for each consumer on its own.
        for t in &times {
            assert!(*t >= Duration::from_millis(2_350), "{t:?}");
            assert!(*t <= Duration::from_millis(3_000), "{t:?}");
        }
        // GetRecords' own budget on the shard was not touched by either.
        let stream = broker.stream(&key()).unwrap();
        let shard = stream.state().shards[0].clone();
        assert!(shard.throttle.admit_read(broker.settings.limits));
    }

    #[tokio::test]
    async fn consumers_at_the_same_position_share_one_read_and_its_encoding() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 3, 10).await;
        let broker = Broker::open(&config(dir.path(), false)).unwrap();
        let mut a = start(&broker, "a", Position::TrimHorizon).await;
        let mut b = start(&broker, "b", Position::TrimHorizon).await;
        let mut c = start(&broker, "c", Position::AtOffset(1)).await;
        let first = a.next().await.unwrap().unwrap();
        first.set_encoded(7, bytes::Bytes::from_static(b"wire"));
        let second = b.next().await.unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "b read the same records again"
        );
        assert_eq!(second.encoded(7).as_deref(), Some(&b"wire"[..]));
        let other = c.next().await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!((other.from, other.next), (1, 3));
        // With one reader left, the shard's slot keeps nothing alive.
        drop((first, second, a, b));
        let mut d = start(&broker, "d", Position::TrimHorizon).await;
        let fresh = d.next().await.unwrap().unwrap();
        assert_eq!(fresh.encoded(7), None);
        assert_eq!((fresh.from, fresh.next), (0, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn without_limits_a_consumer_drains_at_once() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 80, 100 * 1024).await;
        let broker = Broker::open(&config(dir.path(), false)).unwrap();
        let mut sub = start(&broker, "a", Position::TrimHorizon).await;
        let began = Instant::now();
        let mut read = 0;
        while read < 80 * (100 * 1024 + 1) {
            read += bytes_of(&sub.next().await.unwrap().unwrap());
        }
        assert!(began.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_shard_gets_a_heartbeat_every_five_seconds_until_the_lifetime_ends() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 0, 1).await;
        let mut c = config(dir.path(), false);
        c.subscription_lifetime = Duration::from_secs(12);
        let broker = Broker::open(&c).unwrap();
        let mut sub = start(&broker, "a", Position::Latest).await;
        let began = Instant::now();
        let mut at = Vec::new();
        while let Some(d) = sub.next().await {
            let d = d.unwrap();
            assert!(bytes_of(&d) == 0 && d.continuation.is_some());
            at.push(began.elapsed().as_secs());
        }
        assert_eq!(at, vec![0, 5, 10]);
        assert_eq!(began.elapsed(), Duration::from_secs(12));
    }
}
