//! The broker's queues and their lifecycle: CreateQueue (CREATING → ACTIVE), UpdateQueue
//! (UPDATING → ACTIVE), DeleteQueue (DELETING → gone), each after the stream lifecycle
//! delay of the same kind, on the broker's lifecycle timers.
//!
//! A queue belongs to one stream incarnation, lives only on on-demand streams, and counts
//! against the stream's registered-consumer limit together with fan-out consumers; a
//! stream with queues cannot be deleted or switched to provisioned mode (the stream paths
//! ask [`Queues::count_on_stream`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use tokio::sync::Notify;

use super::delivery::{Change, Delivery};
use super::persist::{QueueJournal, journal_path};
use super::receipt::ReceiptCodec;
use super::{QueueAttrs, QueueError, QueueMeta, QueueResult, QueueStatus, StartingPosition};
use crate::broker::fanout::registry::MAX_CONSUMERS_PER_STREAM;
use crate::broker::resources::{
    self, ByArn, Owner, Resource, random_bytes, require_active_on_demand, resource_id, stored_files,
};
use crate::broker::stream::{Stream, StreamKey};
use crate::broker::{Broker, Position, Result};

const QUEUES_DIR: &str = "queues";

/// One queue: its settings, its delivery state with its journal, and the notifier that
/// wakes its long polls when something other than a shard append makes a record visible
/// (a visibility set to 0, a restore, an update, a deletion).
#[derive(Debug)]
pub struct Queue {
    meta: RwLock<QueueMeta>,
    /// Delivery state and journal under one `std` lock: every change is journaled in the
    /// same critical section that makes it, so the journal's order is the state's. Never
    /// held across `.await`; taken on blocking threads only (the journal may fsync).
    pub(super) state: Mutex<QueueState>,
    pub(super) changed: Notify,
}

/// A queue's mutable delivery state and the journal that persists it.
#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) delivery: Delivery,
    pub(super) journal: QueueJournal,
    /// Which shard the next receive looks at first for new records, so a busy shard does
    /// not starve the others (not persisted: any start is correct).
    pub(super) first_shard: usize,
}

impl Queue {
    /// The settings now.
    pub fn meta(&self) -> QueueMeta {
        self.meta_ref().clone()
    }

    pub(super) fn meta_ref(&self) -> RwLockReadGuard<'_, QueueMeta> {
        self.meta.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lock_state(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records currently tracked (in flight, waiting for redelivery, or dead letters).
    pub fn tracked_records(&self) -> usize {
        self.lock_state().delivery.len()
    }

    /// The records it tracks, for the metrics: (in flight or waiting to be received
    /// again, dead letters).
    pub fn delivery_counts(&self) -> (u64, u64) {
        let state = self.lock_state();
        let dead = state.delivery.entries().filter(|(_, e)| e.dead).count() as u64;
        (state.delivery.len() as u64 - dead, dead)
    }

    /// The next offset to hand out for the first time, per shard that has started.
    pub fn frontier(&self) -> BTreeMap<u32, u64> {
        self.lock_state().delivery.frontier.clone()
    }
}

impl Resource for Queue {
    type Meta = QueueMeta;
    const KIND: &'static str = "queue";

    fn meta_ref(&self) -> RwLockReadGuard<'_, QueueMeta> {
        Queue::meta_ref(self)
    }

    /// Journals the settings; undone when the journal cannot be written.
    fn change_meta<T>(&self, change: impl FnOnce(&mut QueueMeta) -> T) -> Result<(QueueMeta, T)> {
        let mut state = self.lock_state();
        let mut meta = self.meta.write().unwrap_or_else(|e| e.into_inner());
        let before = meta.clone();
        let out = change(&mut meta);
        if let Err(e) = state.journal.write_meta(&meta) {
            *meta = before;
            return Err(e);
        }
        let max = meta.attrs.dead_letter.max_receive_count();
        state.delivery.set_max_receive(max);
        Ok((meta.clone(), out))
    }

    fn owner(meta: &QueueMeta) -> Owner<'_> {
        Owner {
            name: &meta.name,
            account: &meta.account,
            region: &meta.region,
            stream_uid: meta.stream_uid,
        }
    }

    fn arn(meta: &QueueMeta) -> String {
        meta.arn()
    }

    fn tags_mut(meta: &mut QueueMeta) -> &mut BTreeMap<String, String> {
        &mut meta.tags
    }

    fn is_deleting(meta: &QueueMeta) -> bool {
        meta.status == QueueStatus::Deleting
    }

    fn set_deleting(meta: &mut QueueMeta) {
        meta.status = QueueStatus::Deleting;
    }

    fn forget(broker: &Broker, arn: &str) -> Result<()> {
        broker.forget_queue(arn)
    }

    fn finish_deleting(broker: &Broker, arn: &str) -> Result<()> {
        broker.finish_queue_transition(arn, QueueStatus::Deleting)
    }
}

/// Every queue of the broker, by ARN.
#[derive(Debug)]
pub struct Queues {
    dir: PathBuf,
    pub(super) receipts: ReceiptCodec,
    durability: storage::Durability,
    by_arn: ByArn<Queue>,
    /// Serialises creations, so the name and consumer-limit checks and the insert they
    /// guard are atomic.
    create_lock: Mutex<()>,
}

impl Queues {
    /// Loads the queues kept in `data_dir`, finishing the transitions a stop interrupted:
    /// CREATING and UPDATING are over, DELETING queues are gone. `durability`: the
    /// broker's (flush: journal writes are fsynced before operations answer; page cache:
    /// flushed in the background every interval).
    pub fn open(
        data_dir: &Path,
        secret: &[u8; 32],
        durability: storage::Durability,
        clock: &crate::broker::Clock,
    ) -> Result<Queues> {
        let dir = data_dir.join(QUEUES_DIR);
        let mut by_arn = BTreeMap::new();
        for path in stored_files(&dir, "journal")? {
            let (mut journal, meta, delivery) = QueueJournal::open(&path, durability, clock)?;
            let Some(mut meta) = meta else {
                // Created but its first entry never written: CreateQueue never answered.
                storage::Journal::remove(&path)?;
                continue;
            };
            match meta.status {
                QueueStatus::Deleting => {
                    storage::Journal::remove(&path)?;
                    continue;
                }
                QueueStatus::Creating | QueueStatus::Updating => {
                    meta.status = QueueStatus::Active;
                    if let Some(p) = meta.pending_attrs.take() {
                        meta.attrs = p;
                    }
                    journal.write_meta(&meta)?;
                }
                QueueStatus::Active => {}
            }
            let mut delivery = delivery;
            delivery.set_max_receive(meta.attrs.dead_letter.max_receive_count());
            // Start each run from a snapshot: recovery time follows the in-flight set, and
            // every time in the journal is on this run's steady timeline from here on.
            journal.compact(&meta, &delivery)?;
            by_arn.insert(
                meta.arn(),
                Arc::new(Queue {
                    meta: RwLock::new(meta),
                    state: Mutex::new(QueueState {
                        delivery,
                        journal,
                        first_shard: 0,
                    }),
                    changed: Notify::new(),
                }),
            );
        }
        Ok(Queues {
            dir,
            receipts: ReceiptCodec::new(secret),
            durability,
            by_arn: ByArn::new(by_arn),
            create_lock: Mutex::new(()),
        })
    }

    /// Queues (any status) on stream incarnation `stream_uid`.
    pub fn count_on_stream(&self, stream_uid: u64) -> usize {
        self.by_arn.count_on_stream(stream_uid)
    }

    /// Every queue, in any status.
    pub fn all(&self) -> Vec<Arc<Queue>> {
        self.by_arn.all()
    }

    /// The queue with this ARN.
    pub fn get(&self, arn: &str) -> Option<Arc<Queue>> {
        self.by_arn.get(arn)
    }

    /// Every queue of an account and region, sorted by name.
    pub fn list(&self, account: &str, region: &str) -> Vec<QueueMeta> {
        self.by_arn.list(account, region)
    }

    /// Wakes every long poll (shutdown: they answer with what they have).
    pub fn wake_all(&self) {
        for q in self.by_arn.all() {
            q.changed.notify_waiters();
        }
    }
}

/// What CreateQueue asks for, validated by `api`.
#[derive(Debug, Clone)]
pub struct NewQueue {
    /// `QueueName`.
    pub name: String,
    /// The stream.
    pub stream: StreamKey,
    /// Where delivery begins.
    pub start: StartingPosition,
    /// Attributes.
    pub attrs: QueueAttrs,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A new random id: the ARN's resource id (20 lowercase letters and digits) and the uid.
fn new_identity() -> Result<(String, u64)> {
    let id = resource_id(&random_bytes("queue")?);
    Ok((id, u64::from_be_bytes(random_bytes("queue")?)))
}

impl Broker {
    /// The broker's queues.
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// The queue an ARN names, in any status.
    pub fn queue(&self, account: &str, arn: &str) -> QueueResult<Arc<Queue>> {
        self.queues.get(arn).ok_or_else(|| QueueError::NotFound {
            arn: arn.to_string(),
            account: account.to_string(),
        })
    }

    /// The stream a queue reads, if that incarnation still exists.
    pub fn queue_stream(&self, meta: &QueueMeta) -> Option<Arc<Stream>> {
        self.registry().streams.get(&meta.stream_uid).cloned()
    }

    /// CreateQueue: checks the stream and the limits, fixes the starting frontier, writes
    /// the journal, and answers CREATING (ACTIVE at once when the creation delay is zero).
    pub async fn create_queue(self: &Arc<Self>, new: NewQueue) -> QueueResult<QueueMeta> {
        let stream = self.stream(&new.stream)?;
        let delay = self.settings.create_delay;
        let me = self.clone();
        let meta = resources::blocking("queue creation", move || {
            me.create_queue_now(&stream, new, delay)
        })
        .await??;
        if !delay.is_zero() {
            let arn = meta.arn();
            self.after(delay, move |broker| {
                broker.finish_queue_transition(&arn, QueueStatus::Creating)
            });
        }
        tracing::info!(queue = %meta.name, stream = %meta.stream_name, "queue created");
        Ok(meta)
    }

    fn create_queue_now(
        &self,
        stream: &Arc<Stream>,
        new: NewQueue,
        delay: std::time::Duration,
    ) -> QueueResult<QueueMeta> {
        let _one_at_a_time = self
            .queues
            .create_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let key = &stream.key;
        let (consumers, shards) = {
            let st = stream.state();
            require_active_on_demand(key, &st, not_on_demand)?;
            (st.consumers.len(), st.shards.clone())
        };
        if self
            .queues
            .by_arn
            .has_named(&new.name, &key.account, &key.region)
        {
            return Err(QueueError::Exists {
                name: new.name,
                account: key.account.clone(),
            });
        }
        if consumers + self.queues.count_on_stream(stream.uid) >= MAX_CONSUMERS_PER_STREAM {
            return Err(QueueError::TooManyConsumers {
                name: key.name.clone(),
                account: key.account.clone(),
                limit: MAX_CONSUMERS_PER_STREAM,
            });
        }
        let now = self.clock.now_ms();
        // The starting frontier is fixed now, so LATEST means "after this request".
        let mut delivery = Delivery::new(new.attrs.dead_letter.max_receive_count());
        let mut changes = Vec::new();
        for shard in &shards {
            let change = match new.start {
                // Absent from the frontier: starts at its oldest retained record.
                StartingPosition::TrimHorizon => None,
                StartingPosition::Latest if shard.closed().is_some() => {
                    Some(Change::Finished(shard.index))
                }
                StartingPosition::Latest => {
                    Some(Change::Frontier(shard.index, Broker::shard_end(shard)))
                }
                StartingPosition::AtTimestamp(t) => Some(Change::Frontier(
                    shard.index,
                    self.resolve_position(stream, shard, Position::AtTimestamp(t))?,
                )),
            };
            if let Some(c) = change {
                delivery.apply(&c);
                changes.push(c);
            }
        }
        let (id, uid) = new_identity()?;
        let mut meta = QueueMeta {
            uid,
            id,
            name: new.name,
            account: key.account.clone(),
            region: key.region.clone(),
            stream_name: key.name.clone(),
            stream_uid: stream.uid,
            stream_created_ms: stream.created_ms,
            created_ms: now,
            status: QueueStatus::Creating,
            attrs: new.attrs,
            pending_attrs: None,
            start: new.start,
            effective_start_ms: None,
            tags: new.tags,
            policy: None,
        };
        if delay.is_zero() {
            meta.status = QueueStatus::Active;
            meta.effective_start_ms = Some(self.effective_start_ms(stream, &meta));
        }
        let path = journal_path(&self.queues.dir, &meta.id);
        let (mut journal, _, _) = QueueJournal::open(&path, self.queues.durability, &self.clock)?;
        let written = journal
            .write_meta(&meta)
            .and_then(|_| journal.write_changes(&changes, &meta, &delivery, true))
            .and_then(|ticket| match ticket {
                Some(t) => Ok(journal.syncer().sync(t)?),
                None => Ok(()),
            });
        if let Err(e) = written {
            let _ = storage::Journal::remove(&path);
            return Err(e.into());
        }
        let queue = Arc::new(Queue {
            meta: RwLock::new(meta.clone()),
            state: Mutex::new(QueueState {
                delivery,
                journal,
                first_shard: 0,
            }),
            changed: Notify::new(),
        });
        self.queues.by_arn.insert(meta.arn(), queue);
        // DeleteStream and the switch to PROVISIONED count queues under the stream's write
        // lock; a queue registered after such a count sees the change here and is undone, so
        // no queue outlives its stream's refusal.
        let refusal = require_active_on_demand(key, &stream.state(), not_on_demand);
        if let Err(refusal) = refusal {
            self.queues.by_arn.remove(&meta.arn());
            let _ = storage::Journal::remove(&path);
            return Err(refusal);
        }
        Ok(meta)
    }

    /// The starting time a queue reports once ACTIVE: creation time for LATEST, the
    /// earliest readable time for TRIM_HORIZON, the later of the two for AT_TIMESTAMP.
    fn effective_start_ms(&self, stream: &Stream, meta: &QueueMeta) -> i64 {
        let retention_ms = stream.state().retention_hours as i64 * 3_600_000;
        let earliest = (self.clock.earliest_now_ms() - retention_ms).max(stream.created_ms);
        match meta.start {
            StartingPosition::Latest => meta.created_ms,
            StartingPosition::TrimHorizon => earliest,
            StartingPosition::AtTimestamp(t) => t.max(earliest),
        }
    }

    /// A lifecycle timer of a queue: CREATING → ACTIVE, UPDATING → ACTIVE (the pending
    /// attributes apply from now), DELETING → gone; nothing unless the queue is still in
    /// state `from` (a queue deleted while CREATING keeps its own deletion delay). Blocking.
    fn finish_queue_transition(&self, arn: &str, from: QueueStatus) -> Result<()> {
        let Some(queue) = self.queues.get(arn) else {
            return Ok(());
        };
        let status = queue.meta_ref().status;
        if status != from {
            return Ok(());
        }
        match status {
            QueueStatus::Creating => {
                let stream = self.queue_stream(&queue.meta_ref());
                let effective = stream.map(|s| self.effective_start_ms(&s, &queue.meta_ref()));
                queue.change_meta(|m| {
                    m.status = QueueStatus::Active;
                    m.effective_start_ms = effective.or(Some(m.created_ms));
                })?;
            }
            QueueStatus::Updating => {
                queue.change_meta(|m| {
                    m.status = QueueStatus::Active;
                    if let Some(p) = m.pending_attrs.take() {
                        m.attrs = p;
                    }
                })?;
            }
            QueueStatus::Deleting => self.forget_queue(arn)?,
            QueueStatus::Active => return Ok(()),
        }
        queue.changed.notify_waiters();
        Ok(())
    }

    fn forget_queue(&self, arn: &str) -> Result<()> {
        if let Some(q) = self.queues.by_arn.remove(arn) {
            // Long polls still holding the queue see it is gone and stop delivering.
            q.meta.write().unwrap_or_else(|e| e.into_inner()).status = QueueStatus::Deleting;
            let id = q.meta_ref().id.clone();
            q.changed.notify_waiters();
            storage::Journal::remove(journal_path(&self.queues.dir, &id))?;
            tracing::info!(queue = %q.meta_ref().name, "queue deleted");
        }
        Ok(())
    }

    /// UpdateQueue: the attributes given replace the queue's, the others stay. UPDATING
    /// for the update delay (the new attributes apply when it ends), ACTIVE at once
    /// without one. Only an ACTIVE queue can be updated.
    pub async fn update_queue(
        self: &Arc<Self>,
        queue: &Arc<Queue>,
        change: impl FnOnce(QueueAttrs) -> QueueAttrs + Send + 'static,
    ) -> QueueResult<QueueMeta> {
        let delay = self.settings.update_delay;
        let q = queue.clone();
        let meta = resources::blocking("queue update", move || -> QueueResult<QueueMeta> {
            let current = q.meta();
            if current.status != QueueStatus::Active {
                return Err(QueueError::NotActive {
                    arn: current.arn(),
                    status: current.status,
                });
            }
            let next = change(current.attrs);
            let (meta, ()) = q.change_meta(|m| {
                if delay.is_zero() {
                    m.attrs = next;
                } else {
                    m.status = QueueStatus::Updating;
                    m.pending_attrs = Some(next);
                }
            })?;
            Ok(meta)
        })
        .await??;
        if !delay.is_zero() {
            let arn = meta.arn();
            self.after(delay, move |broker| {
                broker.finish_queue_transition(&arn, QueueStatus::Updating)
            });
        }
        queue.changed.notify_waiters();
        Ok(meta)
    }

    /// Applies `change` to a queue's tags and journals them (TagResource, UntagResource).
    /// `change` must leave the tags alone when it refuses (its result says so).
    pub async fn update_queue_tags<T: Send + 'static>(
        self: &Arc<Self>,
        queue: &Arc<Queue>,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> T + Send + 'static,
    ) -> QueueResult<T> {
        Ok(resources::update_tags(queue, change).await?)
    }

    /// Sets (or, with `None`, removes) a queue's resource policy and journals it; returns
    /// whether one was set before.
    pub async fn replace_queue_policy(
        self: &Arc<Self>,
        queue: &Arc<Queue>,
        policy: Option<String>,
    ) -> QueueResult<bool> {
        let q = queue.clone();
        let (_, had) = resources::blocking("queue policy update", move || {
            q.change_meta(|m| std::mem::replace(&mut m.policy, policy).is_some())
        })
        .await??;
        Ok(had)
    }

    /// DeleteQueue: DELETING at once (no more deliveries, handles stop working), gone
    /// after the deletion delay. Deleting a queue already DELETING changes nothing.
    pub async fn delete_queue(self: &Arc<Self>, queue: &Arc<Queue>) -> QueueResult<()> {
        if self.delete_resource(queue).await? {
            queue.changed.notify_waiters();
        }
        Ok(())
    }
}

/// Queues need an on-demand stream.
fn not_on_demand(name: String, account: String) -> QueueError {
    QueueError::NotOnDemand { name, account }
}
