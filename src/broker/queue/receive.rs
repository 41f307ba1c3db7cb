//! Receiving from a queue and answering for what was received: ReceiveQueueRecords and its
//! dead-letter twin (long polls woken by the shards' tail notifiers and the queue's own
//! notifier, never by a polling timer), and the batch operations that acknowledge, change
//! visibility or restore records by receipt handle.
//!
//! A receive first hands out again records whose visibility timeout has ended (oldest
//! deadline first), then records never handed out, shard by shard, a closed shard before
//! its children. A record the stream's retention has dropped is forgotten instead of
//! delivered. Every change is journaled before the call answers; in the flush durability
//! mode what a call answers for (records handed out, acknowledged, made visible, restored)
//! is also fsynced first, one group commit shared by the calls of the same moment.
//!
//! Visibility deadlines and first-receive times are on the clock's steady timeline
//! (`Clock::steady_ms`): a wall-clock step neither makes every record in flight visible at
//! once (forward) nor hides them for the extra hour (back). Across a restart the journal
//! carries them onto the next run's timeline (see [`super::persist`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::delivery::{Change, HandleError, RecordRef};
use super::receipt::{Path, Receipt};
use super::registry::Queue;
use super::{QueueError, QueueResult, QueueStatus};
use crate::broker::stream::{Shard, Stream};
use crate::broker::{Broker, Error, Result};

/// Bytes one receive reads from a shard at most (10 records of the largest size fit).
const MAX_READ_BYTES: usize = 16 * 1024 * 1024;

/// One record as a receive hands it out.
#[derive(Debug)]
pub struct ReceivedRecord {
    /// The receipt handle of this delivery.
    pub receipt_handle: String,
    /// The record's sequence number: the same in every queue of the stream.
    pub record_id: String,
    /// Partition key.
    pub partition_key: String,
    /// Payload (shared with the mapped segment, not copied).
    pub data: storage::SharedData,
    /// Arrival time in the stream (ms).
    pub arrival_ms: i64,
    /// First receive from this queue (ms).
    pub first_receive_ms: i64,
    /// Receives without acknowledgement so far (this one included on the normal path).
    pub receive_count: u32,
}

/// Why one entry of a batch operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFailure {
    /// Not a handle this broker issued (malformed, forged or altered).
    Malformed,
    /// A handle of another queue.
    Foreign,
    /// The record was acknowledged, delivered again since, or dropped by retention.
    Stale,
    /// A dead-letter handle given to a normal operation, or the reverse.
    WrongPath,
}

impl From<HandleError> for EntryFailure {
    fn from(e: HandleError) -> Self {
        match e {
            HandleError::Stale => EntryFailure::Stale,
            HandleError::WrongPath => EntryFailure::WrongPath,
        }
    }
}

/// What a batch operation does to each entry.
#[derive(Debug, Clone, Copy)]
pub enum BatchAction {
    /// Acknowledge (forget) the record.
    Acknowledge,
    /// Make it visible again this many seconds from now.
    Visibility(u32),
    /// Return a dead letter to the normal path.
    Restore,
}

impl Broker {
    /// Fails unless the queue delivers now (ACTIVE or UPDATING).
    fn check_delivering(&self, queue: &Queue) -> QueueResult<()> {
        let meta = queue.meta_ref();
        match meta.status {
            QueueStatus::Active | QueueStatus::Updating => Ok(()),
            status => Err(QueueError::NotActive {
                arn: meta.arn(),
                status,
            }),
        }
    }

    /// ReceiveQueueRecords (`path` Normal) or ReceiveDeadLetterQueueRecords (DeadLetter):
    /// up to `limit` records, waiting up to `wait` for one to become visible.
    pub async fn receive_queue_records(
        self: &Arc<Self>,
        queue: &Arc<Queue>,
        path: Path,
        limit: usize,
        wait: Duration,
        visibility_s: Option<u32>,
    ) -> QueueResult<Vec<ReceivedRecord>> {
        self.check_delivering(queue)?;
        let deadline = Instant::now() + wait;
        let mut shutdown = self.shutdown.subscribe();
        loop {
            // Subscribe before looking, so a change between the look and the wait wakes us.
            let notified = queue.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let stream = self.queue_stream(&queue.meta_ref());
            let mut tails: Vec<_> = match (&stream, path) {
                (Some(s), Path::Normal) => {
                    s.state().shards.iter().map(|sh| sh.tail.watch()).collect()
                }
                _ => Vec::new(),
            };
            let me = self.clone();
            let q = queue.clone();
            let (records, next_visible_ms) = tokio::task::spawn_blocking(move || {
                me.receive_now(&q, stream.as_deref(), path, limit, visibility_s)
            })
            .await
            .map_err(|e| Error::Catalog(format!("receive failed: {e}")))??;
            if !records.is_empty() || Instant::now() >= deadline || *shutdown.borrow() {
                return Ok(records);
            }
            let mut wake_at = deadline;
            if let Some(t) = next_visible_ms {
                let in_ms = (t - self.clock.steady_ms()).max(0) as u64;
                wake_at = wake_at.min(Instant::now() + Duration::from_millis(in_ms));
            }
            let any_tail = async {
                if tails.is_empty() {
                    std::future::pending::<()>().await;
                }
                // A tail whose sender is gone (its shard dropped) never wakes us: it
                // would otherwise answer at once, every time, and spin.
                let changed = tails.iter_mut().map(|t| {
                    Box::pin(async move {
                        if t.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    })
                });
                futures_select_all(changed).await;
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = any_tail => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = shutdown.changed() => {}
            }
            self.check_delivering(queue)?;
        }
    }

    /// One look at the queue (blocking): what can be handed out now, journaled (durable in
    /// the flush mode before it returns); and when the next record becomes visible if
    /// nothing could.
    fn receive_now(
        &self,
        queue: &Queue,
        stream: Option<&Stream>,
        path: Path,
        limit: usize,
        visibility_s: Option<u32>,
    ) -> Result<(Vec<ReceivedRecord>, Option<i64>)> {
        let mut state = queue.lock_state();
        let meta = queue.meta();
        let now = self.clock.steady_ms();
        let visibility_ms = visibility_s.unwrap_or(meta.attrs.visibility_timeout_s) as i64 * 1000;
        let mut changes = state.delivery.settle(now);
        let mut out = Vec::new();
        let Some(stream) = stream else {
            // The stream is gone (it cannot be deleted with queues; defensive).
            return Ok((out, None));
        };
        let shards = stream.state().shards.clone();
        let shard_of = |index: u32| shards.iter().find(|s| s.index == index);
        let encode = |r: RecordRef, delivery: u64| {
            self.queues.receipts.encode(&Receipt {
                queue_uid: meta.uid,
                shard_index: r.shard,
                offset: r.offset,
                delivery,
                path,
            })
        };
        // Records whose visibility ended. A record handed out by this call with a zero
        // visibility timeout is due again at once; `seen` keeps it to one delivery per call.
        let mut seen = std::collections::HashSet::new();
        while out.len() < limit {
            let fresh: Vec<RecordRef> = state
                .delivery
                .due(path, now, limit - out.len() + seen.len())
                .into_iter()
                .filter(|r| !seen.contains(r))
                .take(limit - out.len())
                .collect();
            if fresh.is_empty() {
                break;
            }
            for r in fresh {
                seen.insert(r);
                let view = match shard_of(r.shard) {
                    Some(shard) if r.offset >= self.trim_horizon(stream, shard)? => {
                        read_one(shard, r.offset)?.map(|v| (shard, v))
                    }
                    _ => None,
                };
                let Some((shard, view)) = view else {
                    // Past retention: the queue stops delivering it.
                    state.delivery.remove(r);
                    changes.push(Change::Remove(r));
                    continue;
                };
                if let Some(e) = state.delivery.redeliver(r, path, now, visibility_ms) {
                    changes.push(Change::Upsert(r, e));
                    out.push(view.into_received(shard, encode(r, e.delivery), &e));
                }
            }
        }
        // Records never handed out (normal path only), a parent shard before its children,
        // starting at a different shard on each call.
        if path == Path::Normal {
            let first = state.first_shard % shards.len().max(1);
            state.first_shard = state.first_shard.wrapping_add(1);
            let rotated = shards[first..].iter().chain(&shards[..first]);
            for shard in rotated {
                if out.len() >= limit {
                    break;
                }
                let delivery = &mut state.delivery;
                if delivery.finished.contains(&shard.index) {
                    continue;
                }
                let parents_done = [shard.parent, shard.adjacent_parent]
                    .into_iter()
                    .flatten()
                    .all(|p| delivery.finished.contains(&p) || shard_of(p).is_none());
                if !parents_done {
                    continue;
                }
                let start = delivery.frontier.get(&shard.index).copied().unwrap_or(0);
                let from = start.max(self.trim_horizon(stream, shard)?);
                let end = Broker::shard_end(shard);
                let mut next = from;
                if from < end {
                    let want = ((end - from) as usize).min(limit - out.len());
                    let batch = shard.log.read(from, want, MAX_READ_BYTES)?;
                    for item in batch.iter_shared() {
                        let (view, data) = item?;
                        if view.offset >= end {
                            break;
                        }
                        let r = RecordRef {
                            shard: shard.index,
                            offset: view.offset,
                        };
                        let e = delivery.deliver_new(r, now, visibility_ms);
                        changes.push(Change::Upsert(r, e));
                        next = view.offset + 1;
                        let record = OwnedView {
                            offset: view.offset,
                            arrival_ms: view.arrival_ms,
                            partition_key: String::from_utf8_lossy(view.partition_key).into_owned(),
                            data,
                        };
                        out.push(record.into_received(shard, encode(r, e.delivery), &e));
                    }
                }
                if next != start {
                    delivery.frontier.insert(shard.index, next);
                    changes.push(Change::Frontier(shard.index, next));
                }
                if next >= end && shard.closed().is_some() {
                    delivery.finished.insert(shard.index);
                    changes.push(Change::Finished(shard.index));
                }
            }
        }
        // What is handed out is promised to its reader for the visibility timeout, with a
        // receive count that decides when it becomes a dead letter: in the flush mode it is
        // durable before the answer, like an acknowledgement. A look that hands out nothing
        // promises nothing (dead-letter moves and retention removals are found again from
        // the durable entries), so an empty long poll never waits for an fsync.
        let promised = !out.is_empty();
        let (ticket, syncer) = {
            let st = &mut *state;
            let ticket = st
                .journal
                .write_changes(&changes, &meta, &st.delivery, promised)?;
            (ticket, st.journal.syncer())
        };
        let next_visible = if promised {
            None
        } else {
            state.delivery.next_visible(path)
        };
        // As in `batch_now`: the fsync runs after the queue's lock is released, so receivers
        // and acknowledgements of the same moment share it. Until it returns no other
        // receive can take these records (they are in flight in memory); if it fails, the
        // reader gets an error and the records come back when their timeout ends.
        drop(state);
        if let Some(t) = ticket {
            syncer.sync(t)?;
        }
        Ok((out, next_visible))
    }

    /// AcknowledgeQueueRecords, UpdateQueueRecordsVisibility and their dead-letter twins,
    /// RestoreDeadLetterQueueRecords: applies each entry's action to its handle, journals what
    /// succeeded (before answering), and reports each entry's outcome in order.
    pub async fn queue_batch(
        self: &Arc<Self>,
        queue: &Arc<Queue>,
        path: Path,
        entries: Vec<(String, BatchAction)>,
    ) -> QueueResult<Vec<std::result::Result<(), EntryFailure>>> {
        self.check_delivering(queue)?;
        let me = self.clone();
        let q = queue.clone();
        let (results, wake) = tokio::task::spawn_blocking(move || me.batch_now(&q, path, &entries))
            .await
            .map_err(|e| Error::Catalog(format!("queue operation failed: {e}")))??;
        if wake {
            queue.changed.notify_waiters();
        }
        Ok(results)
    }

    #[allow(clippy::type_complexity)]
    fn batch_now(
        &self,
        queue: &Queue,
        path: Path,
        entries: &[(String, BatchAction)],
    ) -> Result<(Vec<std::result::Result<(), EntryFailure>>, bool)> {
        let mut state = queue.lock_state();
        let meta = queue.meta();
        // Deadlines are steady-timeline times (see the module's comment).
        let now = self.clock.steady_ms();
        let mut changes = state.delivery.settle(now);
        let mut wake = !changes.is_empty();
        let mut results = Vec::with_capacity(entries.len());
        for (handle, action) in entries {
            let action = *action;
            let result = (|| -> std::result::Result<Change, EntryFailure> {
                let receipt = self
                    .queues
                    .receipts
                    .decode(handle)
                    .ok_or(EntryFailure::Malformed)?;
                if receipt.queue_uid != meta.uid {
                    return Err(EntryFailure::Foreign);
                }
                if receipt.path != path {
                    return Err(EntryFailure::WrongPath);
                }
                let r = RecordRef {
                    shard: receipt.shard_index,
                    offset: receipt.offset,
                };
                let d = &mut state.delivery;
                Ok(match action {
                    BatchAction::Acknowledge => d.acknowledge(r, receipt.delivery, path)?,
                    BatchAction::Visibility(s) => {
                        d.set_visible_at(r, receipt.delivery, path, now + s as i64 * 1000)?
                    }
                    BatchAction::Restore => d.restore(r, receipt.delivery, now)?,
                })
            })();
            match result {
                Ok(change) => {
                    if !matches!(action, BatchAction::Acknowledge) {
                        wake = true;
                    }
                    changes.push(change);
                    results.push(Ok(()));
                }
                Err(f) => results.push(Err(f)),
            }
        }
        let (ticket, syncer) = {
            let st = &mut *state;
            let ticket = st
                .journal
                .write_changes(&changes, &meta, &st.delivery, true)?;
            (ticket, st.journal.syncer())
        };
        // The fsync runs after the queue's lock is released: workers acknowledging at the
        // same time share it, and receives are not held up by it. Nothing is answered
        // before it returns.
        drop(state);
        if let Some(t) = ticket {
            syncer.sync(t)?;
        }
        Ok((results, wake))
    }
}

/// A record read from a shard, owned (its data shared with the map).
struct OwnedView {
    offset: u64,
    arrival_ms: i64,
    partition_key: String,
    data: storage::SharedData,
}

impl OwnedView {
    fn into_received(
        self,
        shard: &Shard,
        receipt_handle: String,
        e: &super::delivery::Entry,
    ) -> ReceivedRecord {
        ReceivedRecord {
            receipt_handle,
            record_id: shard.sequence_number(self.arrival_ms, self.offset),
            partition_key: self.partition_key,
            data: self.data,
            arrival_ms: self.arrival_ms,
            first_receive_ms: e.first_receive_ms,
            receive_count: e.receive_count,
        }
    }
}

/// The record at `offset` of a shard, if the log still has it.
fn read_one(shard: &Shard, offset: u64) -> Result<Option<OwnedView>> {
    let batch = shard.log.read(offset, 1, MAX_READ_BYTES)?;
    for item in batch.iter_shared() {
        let (view, data) = item?;
        if view.offset == offset {
            return Ok(Some(OwnedView {
                offset,
                arrival_ms: view.arrival_ms,
                partition_key: String::from_utf8_lossy(view.partition_key).into_owned(),
                data,
            }));
        }
    }
    Ok(None)
}

/// Resolves when the first of `futures` does (a small `select_all` without the futures crate).
async fn futures_select_all<F: std::future::Future + Unpin>(futures: impl Iterator<Item = F>) {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::broker::catalog::StreamMode;
    use crate::broker::queue::registry::NewQueue;
    use crate::broker::queue::{QueueAttrs, StartingPosition};
    use crate::broker::stream::StreamKey;
    use crate::broker::{MIN_SEGMENT_BYTES, PutEntry, hash};
    use crate::config::{Config, DurabilityMode};

    /// A broker in `durability` with one on-demand stream holding `records` records and a
    /// queue reading it from the start.
    async fn queue_with_records(
        dir: &std::path::Path,
        durability: DurabilityMode,
        records: usize,
    ) -> (Arc<Broker>, Arc<Queue>) {
        let mut c = Config::new();
        c.data_dir = dir.to_path_buf();
        c.create_stream_delay = Duration::ZERO;
        c.delete_stream_delay = Duration::ZERO;
        c.segment_bytes = MIN_SEGMENT_BYTES;
        c.durability = durability;
        // Long enough that the page-cache mode's background flush never runs in a test.
        c.flush_interval = Duration::from_secs(3_600);
        let broker = Broker::open(&c).unwrap();
        let key = StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: "s".into(),
        };
        broker
            .create_stream(key.clone(), 1, StreamMode::OnDemand, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key).unwrap();
        let entries: Vec<PutEntry<'static>> = (0..records)
            .map(|_| PutEntry {
                hash_key: hash::partition_key_hash(b"k"),
                partition_key: b"k",
                explicit_hash_key: None,
                data: b"x",
            })
            .collect();
        for written in broker.put(&stream, &entries, 0).await.unwrap() {
            written.unwrap();
        }
        let meta = broker
            .create_queue(NewQueue {
                name: "q".into(),
                stream: key,
                start: StartingPosition::TrimHorizon,
                attrs: QueueAttrs::default(),
                tags: BTreeMap::new(),
            })
            .await
            .unwrap();
        let queue = broker.queue(&meta.account, &meta.arn()).unwrap();
        (broker, queue)
    }

    fn syncer_of(queue: &Queue) -> storage::JournalSyncer {
        queue.lock_state().journal.syncer()
    }

    async fn receive(broker: &Arc<Broker>, queue: &Arc<Queue>, limit: usize) -> usize {
        let received = tokio::time::timeout(
            Duration::from_secs(10),
            broker.receive_queue_records(queue, Path::Normal, limit, Duration::ZERO, None),
        )
        .await
        .expect("a receive without a wait answers at once")
        .unwrap();
        received.len()
    }

    #[tokio::test]
    async fn a_receive_is_on_disk_before_it_answers_in_flush_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, queue) = queue_with_records(dir.path(), DurabilityMode::Flush, 5).await;
        let syncer = syncer_of(&queue);
        let before = syncer.fsync_count();
        assert_eq!(receive(&broker, &queue, 3).await, 3);
        // A power cut now must not forget that three records are promised to a reader.
        assert!(syncer.all_durable().unwrap());
        assert_eq!(syncer.fsync_count(), before + 1);
        // An empty look promises nothing and waits for no fsync.
        assert_eq!(receive(&broker, &queue, 10).await, 2);
        let before = syncer.fsync_count();
        assert_eq!(receive(&broker, &queue, 10).await, 0);
        assert_eq!(syncer.fsync_count(), before);
    }

    #[tokio::test]
    async fn a_receive_in_page_cache_mode_answers_without_an_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, queue) = queue_with_records(dir.path(), DurabilityMode::PageCache, 5).await;
        let syncer = syncer_of(&queue);
        let before = syncer.fsync_count();
        assert_eq!(receive(&broker, &queue, 3).await, 3);
        assert_eq!(syncer.fsync_count(), before);
        assert!(!syncer.all_durable().unwrap());
    }

    /// The cost of durable receives: receivers of the same moment share fsyncs. Prints the
    /// measured fsyncs per receive (`--nocapture`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_receivers_share_fsyncs() {
        const RECEIVERS: usize = 16;
        const ROUNDS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let (broker, queue) =
            queue_with_records(dir.path(), DurabilityMode::Flush, RECEIVERS * ROUNDS).await;
        let syncer = syncer_of(&queue);
        let before = syncer.fsync_count();
        let mut tasks = Vec::new();
        for _ in 0..RECEIVERS {
            let (broker, queue) = (broker.clone(), queue.clone());
            tasks.push(tokio::spawn(async move {
                let mut got = 0;
                for _ in 0..ROUNDS {
                    got += receive(&broker, &queue, 1).await;
                }
                got
            }));
        }
        let mut received = 0;
        for t in tasks {
            received += t.await.unwrap();
        }
        let fsyncs = syncer.fsync_count() - before;
        eprintln!(
            "{RECEIVERS} concurrent receivers: {received} receives, {fsyncs} fsyncs ({:.2} per receive)",
            fsyncs as f64 / received as f64
        );
        assert_eq!(received, RECEIVERS * ROUNDS);
        assert!(syncer.all_durable().unwrap());
        // Never more than one fsync per receive, and at least one for all of them.
        assert!((1..=received as u64).contains(&fsyncs), "{fsyncs} fsyncs");
    }
}
