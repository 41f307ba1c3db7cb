//! A queue's journal: one `storage::Journal` file per queue (`queues/<ID>.journal`) whose
//! entries are JSON [`Record`]s. The queue's settings are written as a `Meta` entry (the
//! last one wins), and every change of its delivery state as a `Change` entry, appended
//! (and, in the broker's flush durability mode, fsynced: receives included) before the
//! operation answers.
//!
//! When the journal has grown well past its last snapshot, it is rewritten as a snapshot:
//! the settings, one frontier per shard, the finished shards and one entry per tracked
//! record. Its size therefore follows the in-flight set, not the history.
//!
//! Visibility deadlines and first-receive times are steady-clock times of the run that
//! wrote them, and each run has its own steady timeline. So the journal also keeps a
//! `Mark` of the clock (first in every snapshot, and again before a change whenever the
//! clock's offset or the wall clock's distance to the steady one moved), and replay
//! carries every time onto the new run's timeline with `Clock::carry_ms`: on the same boot
//! exactly, whatever the wall clock did; after a reboot by the wall clock, never to a
//! deadline later than the time it had left at the last mark. Journals without a mark
//! (older brokers) read their times as wall times, a deadline at most
//! [`MAX_VISIBILITY_MS`] away.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::QueueMeta;
use super::delivery::{Change, Delivery};
use crate::broker::clock::{Clock, ClockMark};
use crate::broker::{Error, Result};

/// The longest visibility timeout the API grants (VisibilityTimeoutSeconds ≤ 43,200).
const MAX_VISIBILITY_MS: i64 = 43_200_000;
/// How far the wall clock may drift from the steady one before a new mark is written
/// (the two clocks are disciplined differently, so they drift slowly apart by design).
const MARK_DRIFT_MS: i64 = 1_000;

/// Compact when the journal exceeds this many times its last snapshot's size...
const COMPACT_FACTOR: u64 = 4;
/// ...and at least this many bytes (small journals are not worth rewriting).
const COMPACT_MIN_BYTES: u64 = 1024 * 1024;

/// One journal entry.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// Boxed: the settings are far larger than a change (serialised the same).
    Meta(Box<QueueMeta>),
    Change(Change),
    /// The clock when the changes that follow were made.
    Mark(ClockMark),
}

/// A queue's open journal and what it needs to decide when to compact.
#[derive(Debug)]
pub(super) struct QueueJournal {
    journal: storage::Journal,
    snapshot_bytes: u64,
    syncer: storage::JournalSyncer,
    clock: Clock,
    /// The last mark written by this run, if any.
    last_mark: Option<ClockMark>,
}

/// The journal file of queue `id` in `dir`.
pub(super) fn journal_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.journal"))
}

fn encode(record: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Catalog(format!("cannot encode a queue: {e}")))
}

impl QueueJournal {
    /// Opens a queue's journal and replays it: its latest settings (None for a journal
    /// that never got its first entry) and its delivery state. In the page-cache mode a
    /// background flusher fdatasyncs it within the broker's flush interval, like the
    /// segment logs, so a power loss takes no more than that interval of queue state.
    pub(super) fn open(
        path: &Path,
        durability: storage::Durability,
        clock: &Clock,
    ) -> Result<(Self, Option<QueueMeta>, Delivery)> {
        let sync = matches!(durability, storage::Durability::Flush);
        let (mut journal, entries, recovered) = storage::Journal::open(path, sync)?;
        if let storage::Durability::PageCache { interval } = durability {
            journal.flush_every(interval)?;
        }
        if recovered.truncated_bytes > 0 {
            tracing::warn!(path = %path.display(), cut = recovered.truncated_bytes, "queue journal: torn tail cut");
        }
        let mut meta: Option<QueueMeta> = None;
        let mut changes = Vec::new();
        let mut mark = None;
        for (i, bytes) in entries.iter().enumerate() {
            match serde_json::from_slice::<Record>(bytes) {
                Ok(Record::Meta(m)) => meta = Some(*m),
                Ok(Record::Change(c)) => changes.push(c),
                // Every change of a journal is on the timeline of the run that wrote its
                // last snapshot (each run starts with one), and the last mark is the
                // freshest view of that timeline.
                Ok(Record::Mark(m)) => mark = Some(m),
                Err(e) => {
                    return Err(Error::Catalog(format!(
                        "queue journal {} entry {i} does not decode: {e}",
                        path.display()
                    )));
                }
            }
        }
        let max = meta
            .as_ref()
            .and_then(|m| m.attrs.dead_letter.max_receive_count());
        let mut delivery = Delivery::new(max);
        for c in &mut changes {
            if let Change::Upsert(_, e) = c {
                carry(clock, mark.as_ref(), e);
            }
            delivery.apply(c);
        }
        let snapshot_bytes = journal.len_bytes();
        let syncer = journal.syncer();
        Ok((
            Self {
                journal,
                snapshot_bytes,
                syncer,
                clock: clock.clone(),
                last_mark: None,
            },
            meta,
            delivery,
        ))
    }

    /// Appends the settings.
    pub(super) fn write_meta(&mut self, meta: &QueueMeta) -> Result<()> {
        let bytes = encode(&Record::Meta(Box::new(meta.clone())))?;
        self.journal.append(&[bytes])?;
        Ok(())
    }

    /// Appends changes of the delivery state (one write), compacting afterwards when the
    /// journal has grown enough. `durable` (the changes an answer stands for: records
    /// handed out, acknowledgements, visibility changes, restores): in the flush
    /// durability mode, the returned ticket must be passed to [`QueueJournal::syncer`]'s
    /// `sync` before the operation answers; the caller can release the queue's lock first,
    /// so concurrent workers share one fsync (group commit). A receive is durable too: it
    /// promises the record to its reader for the visibility timeout, and its receive count
    /// decides when the record becomes a dead letter, so forgetting it in a power cut
    /// would hand the record to a second reader inside that timeout and let a poison
    /// record outlive `MaxReceiveCount`. Otherwise (changes no answer stands for, or the
    /// page-cache mode) the write is only in the page cache until the next fsync (a later
    /// durable write, or the page-cache mode's background flush): it survives kill -9, and
    /// in the page-cache mode a power cut can take the last flush interval's receives, so
    /// those records are delivered again with a lower receive count (at-least-once, as
    /// queues document).
    ///
    /// A power cut may keep a prefix of one write's entries; replay keeps that consistent
    /// (a record kept without the frontier after it still moves the frontier past it, see
    /// [`Delivery::apply`]).
    pub(super) fn write_changes(
        &mut self,
        changes: &[Change],
        meta: &QueueMeta,
        delivery: &Delivery,
        durable: bool,
    ) -> Result<Option<storage::SyncTicket>> {
        if changes.is_empty() {
            return Ok(None);
        }
        let mut encoded = Vec::with_capacity(changes.len() + 1);
        let mark = self.clock.mark();
        if self.needs_mark(&mark) {
            encoded.push(encode(&Record::Mark(mark.clone()))?);
            self.last_mark = Some(mark);
        }
        for c in changes {
            encoded.push(encode(&Record::Change(c.clone()))?);
        }
        let ticket = if durable && self.journal.syncs() {
            Some(self.journal.append_deferred(&encoded)?)
        } else {
            self.journal.append_unsynced(&encoded)?;
            None
        };
        let len = self.journal.len_bytes();
        if len > COMPACT_MIN_BYTES && len > self.snapshot_bytes.saturating_mul(COMPACT_FACTOR) {
            // The snapshot is fsynced before it replaces the journal: it covers the ticket.
            self.compact(meta, delivery)?;
        }
        Ok(ticket)
    }

    /// Whether the changes about to be written need a mark before them: none written yet
    /// by this run, or the offset or the wall clock moved against the steady timeline.
    fn needs_mark(&self, now: &ClockMark) -> bool {
        self.last_mark.as_ref().is_none_or(|last| {
            let wall_gap = |m: &ClockMark| m.wall_ms.saturating_sub(m.steady_ms);
            last.timeline != now.timeline
                || last.offset_ms != now.offset_ms
                || wall_gap(last).abs_diff(wall_gap(now)) > MARK_DRIFT_MS as u64
        })
    }

    /// The group-commit handle that makes tickets durable.
    pub(super) fn syncer(&self) -> storage::JournalSyncer {
        self.syncer.clone()
    }

    /// Rewrites the journal as a snapshot of `meta` and `delivery`.
    pub(super) fn compact(&mut self, meta: &QueueMeta, delivery: &Delivery) -> Result<()> {
        let mark = self.clock.mark();
        let mut records = vec![
            encode(&Record::Mark(mark.clone()))?,
            encode(&Record::Meta(Box::new(meta.clone())))?,
        ];
        for (&shard, &offset) in &delivery.frontier {
            records.push(encode(&Record::Change(Change::Frontier(shard, offset)))?);
        }
        for &shard in &delivery.finished {
            records.push(encode(&Record::Change(Change::Finished(shard)))?);
        }
        for (&r, &e) in delivery.entries() {
            records.push(encode(&Record::Change(Change::Upsert(r, e)))?);
        }
        self.journal.rewrite(&records)?;
        self.snapshot_bytes = self.journal.len_bytes();
        self.last_mark = Some(mark);
        Ok(())
    }
}

/// Carries an entry's times from the timeline `mark` describes onto `clock`'s.
fn carry(clock: &Clock, mark: Option<&ClockMark>, e: &mut super::delivery::Entry) {
    let now = clock.steady_ms();
    match mark {
        Some(then) => {
            e.visible_at_ms = clock.carry_ms(then, e.visible_at_ms);
            e.first_receive_ms = clock.carry_ms(then, e.first_receive_ms);
        }
        None => {
            // An older broker's steady times began at its start's wall time: read them
            // as wall times, the only link left between the runs.
            let wall_gap = clock.now_ms().saturating_sub(now);
            e.visible_at_ms = e
                .visible_at_ms
                .saturating_sub(wall_gap)
                .min(now.saturating_add(MAX_VISIBILITY_MS));
            e.first_receive_ms = e.first_receive_ms.saturating_sub(wall_gap).min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::delivery::RecordRef;
    use super::super::receipt::Path as ReceiptPath;
    use super::super::{QueueAttrs, QueueStatus, StartingPosition};
    use super::*;

    fn meta() -> QueueMeta {
        QueueMeta {
            uid: 7,
            id: "abc".into(),
            name: "q".into(),
            account: "000000000000".into(),
            region: "us-east-1".into(),
            stream_name: "s".into(),
            stream_uid: 1,
            stream_created_ms: 1,
            created_ms: 2,
            status: QueueStatus::Active,
            attrs: QueueAttrs::default(),
            pending_attrs: None,
            start: StartingPosition::Latest,
            effective_start_ms: Some(2),
            tags: Default::default(),
            policy: None,
        }
    }

    #[test]
    fn acknowledged_and_received_state_survives_reopen() {
        let clock = Clock::system();
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), "abc");
        let (mut j, none, _) =
            QueueJournal::open(&path, storage::Durability::Flush, &clock).unwrap();
        assert!(none.is_none());
        j.write_meta(&meta()).unwrap();
        let mut d = Delivery::new(Some(6));
        let r1 = RecordRef {
            shard: 0,
            offset: 1,
        };
        let r2 = RecordRef {
            shard: 0,
            offset: 2,
        };
        // Replay on the clock that wrote the times gives them back unchanged.
        let now = clock.steady_ms();
        let e1 = d.deliver_new(r1, now, 30_000);
        let e2 = d.deliver_new(r2, now, 30_000);
        let mut changes = vec![
            Change::Upsert(r1, e1),
            Change::Upsert(r2, e2),
            Change::Frontier(0, 3),
        ];
        changes.push(d.acknowledge(r1, e1.delivery, ReceiptPath::Normal).unwrap());
        if let Some(t) = j.write_changes(&changes, &meta(), &d, true).unwrap() {
            j.syncer().sync(t).unwrap();
        }
        drop(j);
        let (mut j, m, d2) = QueueJournal::open(&path, storage::Durability::Flush, &clock).unwrap();
        assert_eq!(m, Some(meta()));
        assert_eq!(d2.entry(r1), None);
        assert_eq!(d2.entry(r2), Some(e2));
        assert_eq!(d2.frontier.get(&0), Some(&3));
        // A snapshot holds the same state.
        j.compact(&meta(), &d2).unwrap();
        drop(j);
        let (_, m, d3) = QueueJournal::open(&path, storage::Durability::Flush, &clock).unwrap();
        assert_eq!(m, Some(meta()));
        assert_eq!(d3.entry(r2), Some(e2));
        assert_eq!(d3.len(), 1);
    }

    #[test]
    fn page_cache_journal_is_flushed_without_a_durable_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), "abc");
        let page_cache = storage::Durability::PageCache {
            interval: std::time::Duration::from_millis(20),
        };
        let (mut j, _, _) = QueueJournal::open(&path, page_cache, &Clock::system()).unwrap();
        j.write_meta(&meta()).unwrap();
        let mut d = Delivery::new(Some(6));
        let r = RecordRef {
            shard: 0,
            offset: 1,
        };
        let e = d.deliver_new(r, 0, 30_000);
        let syncer = j.syncer();
        let before = syncer.fsync_count();
        let mut changes = vec![Change::Upsert(r, e)];
        changes.push(d.acknowledge(r, e.delivery, ReceiptPath::Normal).unwrap());
        // No ticket: the acknowledgement answers without an fsync on the request path...
        assert!(
            j.write_changes(&changes, &meta(), &d, true)
                .unwrap()
                .is_none()
        );
        // ...and the flusher makes it durable within a bounded time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !syncer.all_durable().unwrap() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(syncer.all_durable().unwrap());
        assert!(syncer.fsync_count() > before);
    }

    #[test]
    fn every_prefix_of_a_receive_replays_without_a_record_past_its_frontier() {
        let clock = Clock::system();
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), "abc");
        let (mut j, _, _) = QueueJournal::open(&path, storage::Durability::Flush, &clock).unwrap();
        j.write_meta(&meta()).unwrap();
        let before = j.journal.len_bytes();
        // One receive as `receive_now` writes it: the records, then the frontier past them.
        let mut d = Delivery::new(Some(6));
        let mut changes = Vec::new();
        for offset in 0..3 {
            let r = RecordRef { shard: 0, offset };
            changes.push(Change::Upsert(r, d.deliver_new(r, 0, 30_000)));
        }
        changes.push(Change::Frontier(0, 3));
        if let Some(t) = j.write_changes(&changes, &meta(), &d, true).unwrap() {
            j.syncer().sync(t).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        drop(j);
        // A power cut keeps any prefix of the write (pages lost after a hole end the
        // journal just the same).
        let cut = journal_path(dir.path(), "cut");
        for len in before as usize..=full.len() {
            std::fs::write(&cut, &full[..len]).unwrap();
            let (_, _, d) = QueueJournal::open(&cut, storage::Durability::Flush, &clock).unwrap();
            for (r, _) in d.entries() {
                let frontier = d.frontier.get(&r.shard).copied().unwrap_or(0);
                assert!(
                    r.offset < frontier,
                    "cut at {len}: record {r:?} tracked, frontier {frontier}: it would be new again"
                );
            }
            std::fs::remove_file(&cut).unwrap();
        }
    }

    /// Writes one record received at `received_ms` with a 30 s visibility timeout.
    fn journal_with_one_in_flight(path: &Path, clock: &Clock, received_ms: i64) {
        let (mut j, _, _) = QueueJournal::open(path, storage::Durability::Flush, clock).unwrap();
        j.write_meta(&meta()).unwrap();
        let mut d = Delivery::new(None);
        let r = RecordRef {
            shard: 0,
            offset: 1,
        };
        let e = d.deliver_new(r, received_ms, 30_000);
        j.write_changes(&[Change::Upsert(r, e)], &meta(), &d, false)
            .unwrap();
    }

    fn only_entry(d: &Delivery) -> super::super::delivery::Entry {
        *d.entries().next().unwrap().1
    }

    #[test]
    fn deadlines_cross_a_restart_on_a_stepped_clock_unshifted() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), "abc");
        let hour = 3_600_000;
        for step in [hour, -hour] {
            let first_run = Clock::system();
            journal_with_one_in_flight(&path, &first_run, first_run.steady_ms());
            // The next process starts on a wall clock stepped while the broker was down.
            let next_run = Clock::system_stepped(step).unwrap();
            let (_, _, d) =
                QueueJournal::open(&path, storage::Durability::Flush, &next_run).unwrap();
            let left = only_entry(&d).visible_at_ms - next_run.steady_ms();
            assert!(
                (29_000..=30_000).contains(&left),
                "step {step}: {left} ms left"
            );
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn a_journal_without_marks_is_read_on_the_wall_clock_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(dir.path(), "abc");
        let clock = Clock::system();
        let r = RecordRef {
            shard: 0,
            offset: 1,
        };
        // As an older broker wrote it: no mark, a deadline far in the future.
        let far = clock.now_ms() + 100 * 3_600_000;
        let entry = Change::Upsert(
            r,
            super::super::delivery::Entry {
                receive_count: 1,
                first_receive_ms: clock.now_ms(),
                visible_at_ms: far,
                delivery: 1,
                dead: false,
            },
        );
        let (mut j, _) = storage::Journal::open(&path, true)
            .map(|(j, entries, _)| (j, entries))
            .unwrap();
        j.append(&[
            encode(&Record::Meta(Box::new(meta()))).unwrap(),
            encode(&Record::Change(entry)).unwrap(),
        ])
        .unwrap();
        drop(j);
        let (_, _, d) = QueueJournal::open(&path, storage::Durability::Flush, &clock).unwrap();
        let e = only_entry(&d);
        assert!(e.visible_at_ms <= clock.steady_ms() + MAX_VISIBILITY_MS);
        assert!(e.first_receive_ms <= clock.steady_ms());
    }
}
