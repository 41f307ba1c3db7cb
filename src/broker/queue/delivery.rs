//! A queue's delivery state: where it stands in each shard and what it knows about every
//! record it has handed out and not yet seen acknowledged. Pure bookkeeping, no I/O: the
//! broker reads the records ([`super::receive`]) and the journal persists each change
//! ([`super::persist`]).
//!
//! A record is in one of four places:
//!
//! ```text
//!   past the frontier ──receive──▶ visible/in flight ──MaxReceiveCount reached──▶ dying
//!   (never handed out)             (normal path)                                   │ its visibility
//!                                      ▲    │ ack: forgotten                       ▼ timeout ends
//!                                      └────┴──────────── restore ◀──────── dead letter
//! ```
//!
//! Each record handed out has an [`Entry`], indexed by when it is next visible in exactly one
//! of three ordered sets (`visible`, `dying`, `dead`), so a receive takes the visible ones
//! in O(log n) each and waking a long poll at the next visibility deadline is a look at the
//! first element. Memory follows the in-flight set, not the history: an acknowledged
//! record leaves no trace, and the frontier is one offset per shard.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::receipt::Path;

/// A record of the queue's stream: its shard and its offset there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordRef {
    /// Shard index.
    pub shard: u32,
    /// Log offset in that shard.
    pub offset: u64,
}

/// What the queue knows about one record it has delivered and not seen acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Receives on the normal path since it was first received or last restored.
    pub receive_count: u32,
    /// When it was first received (ms).
    pub first_receive_ms: i64,
    /// When it is visible again (ms); in the past for a visible record.
    pub visible_at_ms: i64,
    /// The delivery number of the last handle issued; only that handle is honoured.
    pub delivery: u64,
    /// A dead-letter record (served by the dead-letter operations only).
    pub dead: bool,
}

/// Why an entry of a batch operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleError {
    /// The handle names a record this queue no longer tracks (acknowledged, or past the
    /// stream's retention), or an older delivery of one it does.
    Stale,
    /// The handle was issued by the other path (a dead-letter handle given to a normal
    /// operation, or the reverse).
    WrongPath,
}

/// One change of the state, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A record's entry is now this.
    Upsert(RecordRef, Entry),
    /// The queue forgets a record (acknowledged or expired).
    Remove(RecordRef),
    /// The next offset to hand out in a shard.
    Frontier(u32, u64),
    /// A closed shard was handed out to its end (its children may start).
    Finished(u32),
}

/// A queue's delivery state. Guarded by its queue's mutex; never held across `.await`.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Next offset to hand out for the first time, per shard index. A shard absent here
    /// and not finished has not started: it starts at its first retained record.
    pub frontier: BTreeMap<u32, u64>,
    /// Closed shards handed out to their end.
    pub finished: BTreeSet<u32>,
    entries: HashMap<RecordRef, Entry>,
    visible: BTreeSet<(i64, RecordRef)>,
    dying: BTreeSet<(i64, RecordRef)>,
    dead: BTreeSet<(i64, RecordRef)>,
    next_delivery: u64,
    /// `MaxReceiveCount`, or `None` when dead-letter handling is off.
    max_receive: Option<u32>,
}

/// Which ordered set an entry belongs in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Visible,
    Dying,
    Dead,
}

impl Delivery {
    /// An empty state under a dead-letter setting.
    pub fn new(max_receive: Option<u32>) -> Self {
        Self {
            max_receive,
            next_delivery: 1,
            ..Self::default()
        }
    }

    /// The entries tracked now (acknowledged records excluded).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No record is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, for a snapshot.
    pub fn entries(&self) -> impl Iterator<Item = (&RecordRef, &Entry)> {
        self.entries.iter()
    }

    /// The entry of a record, if it is tracked.
    pub fn entry(&self, r: RecordRef) -> Option<Entry> {
        self.entries.get(&r).copied()
    }

    fn place(&self, e: &Entry) -> Place {
        if e.dead {
            Place::Dead
        } else if self.max_receive.is_some_and(|m| e.receive_count >= m) {
            Place::Dying
        } else {
            Place::Visible
        }
    }

    fn set_of(&mut self, place: Place) -> &mut BTreeSet<(i64, RecordRef)> {
        match place {
            Place::Visible => &mut self.visible,
            Place::Dying => &mut self.dying,
            Place::Dead => &mut self.dead,
        }
    }

    fn unindex(&mut self, r: RecordRef) -> Option<Entry> {
        let e = self.entries.remove(&r)?;
        let place = self.place(&e);
        self.set_of(place).remove(&(e.visible_at_ms, r));
        Some(e)
    }

    /// Sets a record's entry (replacing any), indexed where it belongs.
    pub fn upsert(&mut self, r: RecordRef, e: Entry) {
        self.unindex(r);
        self.next_delivery = self.next_delivery.max(e.delivery + 1);
        let place = self.place(&e);
        self.set_of(place).insert((e.visible_at_ms, r));
        self.entries.insert(r, e);
    }

    /// Forgets a record.
    pub fn remove(&mut self, r: RecordRef) -> Option<Entry> {
        self.unindex(r)
    }

    /// Applies a journal change.
    pub fn apply(&mut self, change: &Change) {
        match *change {
            Change::Upsert(r, e) => {
                self.upsert(r, e);
                // A tracked record was handed out from its shard's frontier, in offset
                // order, and the receive journals the frontier after its records. A power
                // cut can keep a prefix of that write: the records without the frontier
                // past them, which would otherwise be handed out once more as new, beside
                // their own redelivery.
                let frontier = self.frontier.entry(r.shard).or_insert(0);
                *frontier = (*frontier).max(r.offset.saturating_add(1));
            }
            Change::Remove(r) => {
                self.remove(r);
            }
            Change::Frontier(shard, offset) => {
                self.frontier.insert(shard, offset);
            }
            Change::Finished(shard) => {
                self.finished.insert(shard);
            }
        }
    }

    /// A new dead-letter setting: entries move between the sets it decides.
    pub fn set_max_receive(&mut self, max_receive: Option<u32>) {
        if self.max_receive == max_receive {
            return;
        }
        let all: Vec<(RecordRef, Entry)> = self.entries.drain().collect();
        self.visible.clear();
        self.dying.clear();
        self.dead.clear();
        self.max_receive = max_receive;
        for (r, e) in all {
            self.upsert(r, e);
        }
    }

    /// Turns every dying record whose visibility timeout has ended into a dead letter
    /// (visible on the dead-letter path from that moment). Returns the changes.
    pub fn settle(&mut self, now_ms: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some(&(t, r)) = self.dying.first() {
            if t > now_ms {
                break;
            }
            if let Some(mut e) = self.entries.get(&r).copied() {
                e.dead = true;
                self.upsert(r, e);
                changes.push(Change::Upsert(r, e));
            } else {
                self.dying.remove(&(t, r));
            }
        }
        changes
    }

    /// Up to `limit` records visible now on `path`, soonest-visible first (not yet
    /// delivered: the caller reads each and then calls [`Delivery::redeliver`] or
    /// [`Delivery::remove`]).
    pub fn due(&self, path: Path, now_ms: i64, limit: usize) -> Vec<RecordRef> {
        let set = match path {
            Path::Normal => &self.visible,
            Path::DeadLetter => &self.dead,
        };
        set.iter()
            .take_while(|(t, _)| *t <= now_ms)
            .take(limit)
            .map(|(_, r)| *r)
            .collect()
    }

    /// When the next record becomes visible on `path` (ms), if one is waiting.
    pub fn next_visible(&self, path: Path) -> Option<i64> {
        match path {
            Path::Normal => self.visible.first().map(|(t, _)| *t),
            Path::DeadLetter => [self.dead.first(), self.dying.first()]
                .into_iter()
                .flatten()
                .map(|(t, _)| *t)
                .min(),
        }
    }

    /// Hands out a tracked record again: a new delivery number, invisible until
    /// `now + visibility`, and on the normal path one more receive. `None` if untracked.
    pub fn redeliver(
        &mut self,
        r: RecordRef,
        path: Path,
        now_ms: i64,
        visibility_ms: i64,
    ) -> Option<Entry> {
        let mut e = self.entries.get(&r).copied()?;
        if path == Path::Normal {
            e.receive_count = e.receive_count.saturating_add(1);
        }
        e.visible_at_ms = now_ms.saturating_add(visibility_ms);
        e.delivery = self.next_delivery;
        self.upsert(r, e);
        Some(e)
    }

    /// Hands out a record for the first time.
    pub fn deliver_new(&mut self, r: RecordRef, now_ms: i64, visibility_ms: i64) -> Entry {
        let e = Entry {
            receive_count: 1,
            first_receive_ms: now_ms,
            visible_at_ms: now_ms.saturating_add(visibility_ms),
            delivery: self.next_delivery,
            dead: false,
        };
        self.upsert(r, e);
        e
    }

    /// The entry a handle names, if the handle is its latest delivery on `path`.
    pub fn check(&self, r: RecordRef, delivery: u64, path: Path) -> Result<Entry, HandleError> {
        let e = self.entries.get(&r).ok_or(HandleError::Stale)?;
        if e.delivery != delivery {
            return Err(HandleError::Stale);
        }
        if e.dead != (path == Path::DeadLetter) {
            return Err(HandleError::WrongPath);
        }
        Ok(*e)
    }

    /// Acknowledges a delivery: the record is forgotten.
    pub fn acknowledge(
        &mut self,
        r: RecordRef,
        delivery: u64,
        path: Path,
    ) -> Result<Change, HandleError> {
        self.check(r, delivery, path)?;
        self.remove(r);
        Ok(Change::Remove(r))
    }

    /// Changes when a delivered record is visible again.
    pub fn set_visible_at(
        &mut self,
        r: RecordRef,
        delivery: u64,
        path: Path,
        visible_at_ms: i64,
    ) -> Result<Change, HandleError> {
        let mut e = self.check(r, delivery, path)?;
        e.visible_at_ms = visible_at_ms;
        self.upsert(r, e);
        Ok(Change::Upsert(r, e))
    }

    /// Returns a dead letter to the normal path, visible now, its receive count reset.
    pub fn restore(
        &mut self,
        r: RecordRef,
        delivery: u64,
        now_ms: i64,
    ) -> Result<Change, HandleError> {
        let mut e = self.check(r, delivery, Path::DeadLetter)?;
        e.dead = false;
        e.receive_count = 0;
        e.visible_at_ms = now_ms;
        self.upsert(r, e);
        Ok(Change::Upsert(r, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(offset: u64) -> RecordRef {
        RecordRef { shard: 0, offset }
    }

    #[test]
    fn in_flight_record_is_not_due_until_its_visibility_ends() {
        let mut d = Delivery::new(Some(6));
        d.deliver_new(r(1), 1_000, 30_000);
        assert!(d.due(Path::Normal, 30_999, 10).is_empty());
        assert_eq!(d.due(Path::Normal, 31_000, 10), [r(1)]);
        assert_eq!(d.next_visible(Path::Normal), Some(31_000));
    }

    #[test]
    fn a_new_delivery_makes_the_old_handle_stale() {
        let mut d = Delivery::new(Some(6));
        let first = d.deliver_new(r(1), 0, 0);
        let second = d.redeliver(r(1), Path::Normal, 0, 10).unwrap();
        assert_ne!(first.delivery, second.delivery);
        assert_eq!(second.receive_count, 2);
        assert_eq!(
            d.acknowledge(r(1), first.delivery, Path::Normal),
            Err(HandleError::Stale)
        );
        assert!(d.acknowledge(r(1), second.delivery, Path::Normal).is_ok());
        assert_eq!(
            d.acknowledge(r(1), second.delivery, Path::Normal),
            Err(HandleError::Stale)
        );
        assert!(d.is_empty());
    }

    #[test]
    fn record_received_max_times_becomes_dead_letter_when_visibility_ends() {
        let mut d = Delivery::new(Some(2));
        d.deliver_new(r(1), 0, 10);
        d.redeliver(r(1), Path::Normal, 10, 10).unwrap();
        // Received twice: not on the normal path any more, dead once its timeout ends.
        assert!(d.due(Path::Normal, 100, 10).is_empty());
        assert!(d.settle(19).is_empty());
        assert_eq!(d.settle(20).len(), 1);
        assert_eq!(d.due(Path::DeadLetter, 20, 10), [r(1)]);
        let e = d.entry(r(1)).unwrap();
        assert!(e.dead);
        assert_eq!(
            d.acknowledge(r(1), e.delivery, Path::Normal),
            Err(HandleError::WrongPath)
        );
    }

    #[test]
    fn restore_resets_receive_count_and_returns_record_to_normal_path() {
        let mut d = Delivery::new(Some(1));
        d.deliver_new(r(1), 0, 0);
        d.settle(0);
        let dead = d.redeliver(r(1), Path::DeadLetter, 0, 50).unwrap();
        assert_eq!(
            dead.receive_count, 1,
            "a dead-letter receive is not a receive"
        );
        assert!(d.restore(r(1), dead.delivery, 5).is_ok());
        assert_eq!(d.entry(r(1)).unwrap().receive_count, 0);
        assert_eq!(d.due(Path::Normal, 5, 10), [r(1)]);
    }

    #[test]
    fn without_dead_letter_handling_records_are_redelivered_forever() {
        let mut d = Delivery::new(None);
        d.deliver_new(r(1), 0, 0);
        for i in 0..100 {
            d.redeliver(r(1), Path::Normal, i, 0).unwrap();
        }
        assert!(d.settle(1_000).is_empty());
        assert_eq!(d.due(Path::Normal, 1_000, 10), [r(1)]);
    }

    #[test]
    fn lowering_max_receive_count_moves_entries_to_dying() {
        let mut d = Delivery::new(Some(6));
        d.deliver_new(r(1), 0, 0);
        d.redeliver(r(1), Path::Normal, 0, 0).unwrap();
        d.set_max_receive(Some(2));
        assert!(d.due(Path::Normal, 10, 10).is_empty());
        assert_eq!(d.settle(10).len(), 1);
    }

    #[test]
    fn replaying_changes_rebuilds_the_same_state() {
        let mut d = Delivery::new(Some(3));
        let mut log = Vec::new();
        let e = d.deliver_new(r(1), 0, 5);
        log.push(Change::Upsert(r(1), e));
        let e2 = d.deliver_new(r(2), 0, 5);
        log.push(Change::Upsert(r(2), e2));
        log.push(d.acknowledge(r(1), e.delivery, Path::Normal).unwrap());
        log.push(Change::Frontier(0, 3));
        let mut replayed = Delivery::new(Some(3));
        for c in &log {
            replayed.apply(c);
        }
        assert_eq!(replayed.entry(r(2)), d.entry(r(2)));
        assert_eq!(replayed.entry(r(1)), None);
        assert_eq!(replayed.frontier.get(&0), Some(&3));
        // The replayed state never reissues a delivery number already handed out.
        assert!(replayed.deliver_new(r(3), 0, 0).delivery > e2.delivery);
    }

    #[test]
    fn a_replayed_record_without_its_frontier_is_not_new_again() {
        let mut d = Delivery::new(Some(3));
        let e1 = d.deliver_new(r(4), 0, 5);
        let e2 = d.deliver_new(r(5), 0, 5);
        // The write was [Upsert 4, Upsert 5, Frontier 6]; the power cut kept the first one.
        let mut replayed = Delivery::new(Some(3));
        replayed.apply(&Change::Upsert(r(4), e1));
        assert_eq!(replayed.frontier.get(&0), Some(&5));
        // The whole write replays to the frontier it wrote.
        replayed.apply(&Change::Upsert(r(5), e2));
        replayed.apply(&Change::Frontier(0, 6));
        assert_eq!(replayed.frontier.get(&0), Some(&6));
        // A record of a shard whose frontier is already past it leaves the frontier alone.
        replayed.apply(&Change::Upsert(r(4), e1));
        assert_eq!(replayed.frontier.get(&0), Some(&6));
    }
}
