//! Resharding: SplitShard, MergeShards and UpdateShardCount change a stream's shards;
//! UpdateStreamMode its capacity mode.
//!
//! Every reshard is one atomic step under the persist lock and the stream's write lock:
//! parents are closed through their write gate (so their end offset is final: no append
//! can land after it), children are created, and the catalog is written. If the catalog
//! cannot be written, the step is undone. A restart therefore sees either the stream
//! before the reshard or after it, never half of it. The stream then stays UPDATING for
//! the configured delay, as on AWS.
//!
//! Lineage: a split closes one parent and creates two children covering exactly its
//! range; a merge closes two adjacent parents and creates one child covering both.
//! UpdateShardCount reaches the uniform layout through such splits and merges, so a
//! consumer that reads parents before children sees every record once, in order per key.

use std::sync::{Arc, RwLock};

use super::catalog::{ClosedShard, StreamMode, StreamStatus};
use super::hash::{HashRange, even_split};
use super::stream::{Shard, Stream, StreamState, shard_id};
use super::{Broker, Error, Result};

/// One change of the shard layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reshard {
    /// Split the open shard at `index` so the second child starts at `at`.
    Split {
        /// The parent.
        index: u32,
        /// First hash key of the second child.
        #[serde(with = "crate::broker::hash::u128_string")]
        at: u128,
    },
    /// Merge two adjacent open shards (`left` ends just before `right` starts).
    Merge {
        /// The shard with the lower hash keys.
        left: u32,
        /// The shard with the higher hash keys.
        right: u32,
    },
}

impl Broker {
    /// Applies `steps` in order as one atomic change of `stream`'s shards.
    ///
    /// `plan` runs first, under the stream's write lock: it may refuse the change, and may
    /// record bookkeeping in the state (undone with everything else on failure).
    pub async fn reshard(
        self: &Arc<Self>,
        stream: &Arc<Stream>,
        plan: impl FnOnce(&mut StreamState) -> Result<Vec<Reshard>> + Send + 'static,
    ) -> Result<()> {
        let me = self.clone();
        let stream2 = stream.clone();
        let deferred = tokio::task::spawn_blocking(move || me.begin_reshard(&stream2, plan))
            .await
            .map_err(|e| Error::Catalog(format!("reshard failed: {e}")))??;
        if deferred {
            let uid = stream.uid;
            self.after(self.settings.update_delay, move |broker| {
                broker.finish_reshard(uid)
            });
        }
        Ok(())
    }

    /// Checks the plan and either applies it now (no update delay) or records it and puts
    /// the stream in UPDATING: as on AWS, the shards change when the update ends
    /// ([`Broker::finish_reshard`]). Returns whether it was deferred.
    fn begin_reshard(
        &self,
        stream: &Arc<Stream>,
        plan: impl FnOnce(&mut StreamState) -> Result<Vec<Reshard>>,
    ) -> Result<bool> {
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = stream.state_mut();
        if st.status != StreamStatus::Active {
            return Err(Error::StreamNotActive {
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
                status: st.status,
            });
        }
        let before = st.clone();
        let planned =
            plan(&mut st).and_then(|steps| check_steps(stream, &st, &steps).map(|()| steps));
        let steps = match planned {
            Ok(steps) => steps,
            Err(e) => {
                *st = before;
                return Err(e);
            }
        };
        if self.settings.update_delay.is_zero() {
            self.apply_locked(stream, st, before, steps)?;
            return Ok(false);
        }
        st.status = StreamStatus::Updating;
        st.extras.pending_reshard = steps;
        drop(st);
        if let Err(e) = self.persist_locked() {
            *stream.state_mut() = before;
            return Err(e);
        }
        Ok(true)
    }

    /// Applies the reshard a stream is UPDATING for, and makes it ACTIVE again. Also run
    /// when the broker opens a stream that was stopped in the middle of one.
    pub(super) fn finish_reshard(&self, uid: u64) -> Result<()> {
        let Some(stream) = self.registry().streams.get(&uid).cloned() else {
            return Ok(());
        };
        let _order = self.persist_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = stream.state_mut();
        if st.status != StreamStatus::Updating || st.extras.pending_reshard.is_empty() {
            return Ok(());
        }
        let steps = std::mem::take(&mut st.extras.pending_reshard);
        st.status = StreamStatus::Active;
        let before = st.clone();
        let result = self.apply_locked(&stream, st, before, steps);
        if let Err(e) = &result {
            // The stream stays as it was, ACTIVE, without the reshard.
            tracing::error!(stream = %stream.key.name, error = %e, "reshard could not be applied");
            if let Err(e) = self.persist_locked() {
                tracing::error!(stream = %stream.key.name, error = %e, "catalog write failed");
            }
        }
        result
    }

    /// Applies `steps` to the locked state and writes the catalog; on any failure puts
    /// everything back as `before` (parents reopened, children's files removed).
    /// The caller holds the persist lock.
    fn apply_locked(
        &self,
        stream: &Arc<Stream>,
        mut st: std::sync::RwLockWriteGuard<'_, StreamState>,
        before: StreamState,
        steps: Vec<Reshard>,
    ) -> Result<()> {
        let mut created: Vec<u32> = Vec::new();
        let mut closed: Vec<Arc<Shard>> = Vec::new();
        let applied = (|| -> Result<()> {
            for step in steps {
                let now = self.clock.now_ms();
                match step {
                    Reshard::Split { index, at } => {
                        let parent = open_shard(stream, &st, index)?;
                        let end = close(&parent, now);
                        closed.push(parent.clone());
                        let born = now.max(end.last_arrival_ms);
                        let left = HashRange {
                            start: parent.range.start,
                            end: at - 1,
                        };
                        let right = HashRange {
                            start: at,
                            end: parent.range.end,
                        };
                        for range in [left, right] {
                            let child =
                                self.new_shard(stream, &st, range, Some(index), None, born)?;
                            created.push(child.index);
                            st.shards.push(child);
                        }
                    }
                    Reshard::Merge { left, right } => {
                        let a = open_shard(stream, &st, left)?;
                        let b = open_shard(stream, &st, right)?;
                        let end_a = close(&a, now);
                        closed.push(a.clone());
                        let end_b = close(&b, now);
                        closed.push(b.clone());
                        let born = now.max(end_a.last_arrival_ms).max(end_b.last_arrival_ms);
                        let range = HashRange {
                            start: a.range.start,
                            end: b.range.end,
                        };
                        let child =
                            self.new_shard(stream, &st, range, Some(left), Some(right), born)?;
                        created.push(child.index);
                        st.shards.push(child);
                    }
                }
                st.reindex();
            }
            Ok(())
        })();
        let result = applied.and_then(|()| {
            drop(st);
            self.persist_locked()
        });
        if let Err(e) = result {
            // Undo: reopen the parents, forget the children and their files.
            for shard in &closed {
                *shard.closed.write().unwrap_or_else(|e| e.into_inner()) = None;
            }
            *stream.state_mut() = before;
            for index in created {
                let _ = std::fs::remove_dir_all(self.shard_dir(stream.uid, index));
            }
            return Err(e);
        }
        // Readers waiting at the parents' tails learn that their shard ended and has children.
        for shard in &closed {
            shard.tail.changed();
        }
        for shard in &closed {
            seal_closed(shard);
        }
        tracing::info!(stream = %stream.key.name, "resharded");
        Ok(())
    }

    /// A new open shard with the next index, its log opened.
    fn new_shard(
        &self,
        stream: &Stream,
        st: &StreamState,
        range: HashRange,
        parent: Option<u32>,
        adjacent_parent: Option<u32>,
        created_ms: i64,
    ) -> Result<Arc<Shard>> {
        let index = st.shards.len() as u32;
        let dir = self.shard_dir(stream.uid, index);
        let log = storage::Log::open(&dir, self.settings.log_options.clone()).map_err(|e| {
            // The caller undoes only the shards it got: this one's directory goes here.
            let _ = std::fs::remove_dir_all(&dir);
            super::lifecycle::disk_full_as_limit(
                e,
                || format!("add shards to stream {}", stream.key.name),
                index,
            )
        })?;
        Ok(Arc::new(Shard {
            index,
            id: shard_id(index),
            range,
            parent,
            adjacent_parent,
            created_ms,
            closed: RwLock::new(None),
            log: Arc::new(log),
            throttle: Default::default(),
            demand: Default::default(),
            tail: Default::default(),
            metrics: Default::default(),
        }))
    }

    /// Switches a stream between PROVISIONED and ON_DEMAND.
    pub async fn set_mode(self: &Arc<Self>, stream: &Arc<Stream>, mode: StreamMode) -> Result<()> {
        self.update_stream_in_background(stream, move |st| {
            st.mode = mode;
            Ok(())
        })
        .await
    }
}

/// Checks, before anything changes, that `steps` can be applied to the layout in order:
/// every shard they split or merge is open at that point (shards created by earlier
/// steps count, with the indexes they will get), split points lie strictly inside, and
/// merged shards are adjacent. So a deferred reshard fails at request time, not later.
fn check_steps(stream: &Stream, st: &StreamState, steps: &[Reshard]) -> Result<()> {
    let mut open: std::collections::BTreeMap<u32, HashRange> =
        st.open.iter().map(|s| (s.index, s.range)).collect();
    let mut next = st.shards.len() as u32;
    let take = |open: &mut std::collections::BTreeMap<u32, HashRange>, index: u32| {
        open.remove(&index)
            .ok_or_else(|| match st.shards.get(index as usize) {
                Some(s) => Error::ShardClosed {
                    shard_id: s.id.clone(),
                    name: stream.key.name.clone(),
                    account: stream.key.account.clone(),
                },
                None => Error::NoSuchShard {
                    shard_id: shard_id(index),
                    name: stream.key.name.clone(),
                    account: stream.key.account.clone(),
                },
            })
    };
    for step in steps {
        match *step {
            Reshard::Split { index, at } => {
                let r = take(&mut open, index)?;
                if !(r.start < at && at <= r.end) {
                    return Err(Error::InvalidReshard(format!(
                        "split point {at} is not inside {}",
                        shard_id(index)
                    )));
                }
                open.insert(
                    next,
                    HashRange {
                        start: r.start,
                        end: at - 1,
                    },
                );
                open.insert(
                    next + 1,
                    HashRange {
                        start: at,
                        end: r.end,
                    },
                );
                next += 2;
            }
            Reshard::Merge { left, right } => {
                let a = take(&mut open, left)?;
                let b = take(&mut open, right)?;
                if a.end.checked_add(1) != Some(b.start) {
                    return Err(Error::InvalidReshard(format!(
                        "{} and {} are not adjacent",
                        shard_id(left),
                        shard_id(right)
                    )));
                }
                open.insert(
                    next,
                    HashRange {
                        start: a.start,
                        end: b.end,
                    },
                );
                next += 1;
            }
        }
    }
    Ok(())
}

fn open_shard(stream: &Stream, st: &StreamState, index: u32) -> Result<Arc<Shard>> {
    let shard = st
        .shards
        .get(index as usize)
        .cloned()
        .ok_or_else(|| Error::NoSuchShard {
            shard_id: shard_id(index),
            name: stream.key.name.clone(),
            account: stream.key.account.clone(),
        })?;
    if !shard.is_open() {
        return Err(Error::ShardClosed {
            shard_id: shard.id.clone(),
            name: stream.key.name.clone(),
            account: stream.key.account.clone(),
        });
    }
    Ok(shard)
}

/// Seals the log of a closed shard: its active segment is trimmed to its records, its
/// flusher thread stops and its files are closed (the segments stay mapped), so a closed
/// shard kept for its retention period costs disk but no thread, no file descriptor and no
/// preallocated space (the soak found a thread and two open files per closed shard otherwise).
/// Blocks on disk I/O. A failure only costs that thread: the write gate already refuses
/// appends.
pub(super) fn seal_closed(shard: &Shard) {
    if let Err(e) = shard.log.seal() {
        tracing::warn!(shard = %shard.id, error = %e, "could not seal the log of a closed shard");
    }
}

/// Closes a shard through its write gate: once the write lock is held no append is in
/// progress, so the log's end is the shard's final end.
fn close(shard: &Shard, now: i64) -> ClosedShard {
    let mut gate = shard.closed.write().unwrap_or_else(|e| e.into_inner());
    let bounds = shard.log.bounds();
    let end = ClosedShard {
        end_offset: bounds.next_offset,
        last_arrival_ms: bounds.last_arrival_ms.unwrap_or(shard.created_ms),
        closed_ms: now,
    };
    *gate = Some(end);
    end
}

/// The splits and merges that turn the open layout `open` (sorted by starting hash key,
/// covering the key space) into `target` uniform shards.
///
/// First every boundary of the target layout that falls inside an open shard splits it;
/// then the shards inside each target range are merged left to right. Every step is a
/// real split or merge of open shards, so lineage stays consistent: each child has at
/// most two parents, and each split parent's range is exactly its children's. Indexes
/// of the shards created are predicted from `next_index`, as `reshard` assigns them.
pub fn uniform_plan(open: &[(u32, HashRange)], target: u32, next_index: u32) -> Vec<Reshard> {
    let goal = even_split(target);
    let mut layout: Vec<(u32, HashRange)> = open.to_vec();
    let mut next = next_index;
    let mut steps = Vec::new();
    for boundary in goal.iter().skip(1).map(|r| r.start) {
        if let Some(pos) = layout
            .iter()
            .position(|(_, r)| r.start < boundary && boundary <= r.end)
        {
            let (index, range) = layout[pos];
            steps.push(Reshard::Split {
                index,
                at: boundary,
            });
            let left = (
                next,
                HashRange {
                    start: range.start,
                    end: boundary - 1,
                },
            );
            let right = (
                next + 1,
                HashRange {
                    start: boundary,
                    end: range.end,
                },
            );
            next += 2;
            layout.splice(pos..=pos, [left, right]);
        }
    }
    for range in &goal {
        loop {
            let inside: Vec<usize> = layout
                .iter()
                .enumerate()
                .filter(|(_, (_, r))| range.start <= r.start && r.end <= range.end)
                .map(|(i, _)| i)
                .collect();
            if inside.len() < 2 {
                break;
            }
            let (i, j) = (inside[0], inside[1]);
            let (left, lr) = layout[i];
            let (right, rr) = layout[j];
            steps.push(Reshard::Merge { left, right });
            layout.splice(
                i..=j,
                [(
                    next,
                    HashRange {
                        start: lr.start,
                        end: rr.end,
                    },
                )],
            );
            next += 1;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(n: u32) -> Vec<(u32, HashRange)> {
        even_split(n)
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i as u32, r))
            .collect()
    }

    /// Applies a plan to a layout the way `reshard` does, returning the final open layout.
    fn apply(
        mut open: Vec<(u32, HashRange)>,
        steps: &[Reshard],
        mut next: u32,
    ) -> Vec<(u32, HashRange)> {
        for step in steps {
            match *step {
                Reshard::Split { index, at } => {
                    let pos = open
                        .iter()
                        .position(|(i, _)| *i == index)
                        .expect("split parent is open");
                    let (_, r) = open[pos];
                    assert!(
                        r.start < at && at <= r.end,
                        "split point strictly inside the parent"
                    );
                    open.splice(
                        pos..=pos,
                        [
                            (
                                next,
                                HashRange {
                                    start: r.start,
                                    end: at - 1,
                                },
                            ),
                            (
                                next + 1,
                                HashRange {
                                    start: at,
                                    end: r.end,
                                },
                            ),
                        ],
                    );
                    next += 2;
                }
                Reshard::Merge { left, right } => {
                    let i = open
                        .iter()
                        .position(|(x, _)| *x == left)
                        .expect("left parent is open");
                    let j = open
                        .iter()
                        .position(|(x, _)| *x == right)
                        .expect("right parent is open");
                    assert_eq!(j, i + 1);
                    assert_eq!(
                        open[i].1.end + 1,
                        open[j].1.start,
                        "merged shards are adjacent"
                    );
                    let r = HashRange {
                        start: open[i].1.start,
                        end: open[j].1.end,
                    };
                    open.splice(i..=j, [(next, r)]);
                    next += 1;
                }
            }
        }
        open
    }

    #[test]
    fn uniform_plan_reaches_even_layout_for_many_shapes() {
        for from in 1..=9u32 {
            for to in 1..=9u32 {
                let start = layout(from);
                let steps = uniform_plan(&start, to, from);
                let end = apply(start, &steps, from);
                let ranges: Vec<HashRange> = end.iter().map(|(_, r)| *r).collect();
                assert_eq!(ranges, even_split(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn uniform_plan_is_empty_when_already_uniform() {
        assert!(uniform_plan(&layout(4), 4, 4).is_empty());
    }

    #[test]
    fn doubling_splits_every_shard_once() {
        let steps = uniform_plan(&layout(2), 4, 2);
        assert_eq!(
            steps
                .iter()
                .filter(|s| matches!(s, Reshard::Split { .. }))
                .count(),
            2
        );
        assert!(steps.iter().all(|s| matches!(s, Reshard::Split { .. })));
    }
}

#[cfg(test)]
mod broker_tests {
    use std::collections::{BTreeMap, HashMap};
    use std::time::Duration;

    use super::*;
    use crate::broker::stream::StreamKey;
    use crate::broker::{MIN_SEGMENT_BYTES, Position, PutEntry, hash};
    use crate::config::Config;

    fn config(dir: &std::path::Path) -> Config {
        let mut c = Config::new();
        c.data_dir = dir.to_path_buf();
        c.create_stream_delay = Duration::ZERO;
        c.delete_stream_delay = Duration::ZERO;
        c.update_stream_delay = Duration::ZERO;
        c.segment_bytes = MIN_SEGMENT_BYTES;
        c
    }

    fn key() -> StreamKey {
        StreamKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: "s".into(),
        }
    }

    /// Reads every shard, parents before children (as the KCL does), and returns the
    /// data of each partition key in the order read.
    fn read_by_lineage(broker: &Broker, stream: &Stream) -> HashMap<String, Vec<u32>> {
        let shards = stream.state().shards.clone();
        let mut done = vec![false; shards.len()];
        let mut out: HashMap<String, Vec<u32>> = HashMap::new();
        while done.iter().any(|d| !d) {
            for s in &shards {
                let ready = [s.parent, s.adjacent_parent]
                    .iter()
                    .flatten()
                    .all(|p| done[*p as usize]);
                if done[s.index as usize] || !ready {
                    continue;
                }
                let mut it = broker
                    .issue_iterator(stream, s, Position::TrimHorizon)
                    .unwrap();
                loop {
                    let read = broker.get_records(&it, 10_000, usize::MAX).unwrap();
                    for r in read.batch.iter() {
                        let r = r.unwrap();
                        let pk = String::from_utf8(r.partition_key.to_vec()).unwrap();
                        out.entry(pk)
                            .or_default()
                            .push(u32::from_be_bytes(r.data.try_into().unwrap()));
                    }
                    match read.next_iterator {
                        Some(next) if !read.batch.is_empty() => it = next,
                        _ => break,
                    }
                }
                done[s.index as usize] = true;
            }
        }
        out
    }

    #[tokio::test]
    async fn writes_during_reshards_are_read_once_in_key_order_through_lineage() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(&config(dir.path())).unwrap();
        broker
            .create_stream(key(), 4, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key()).unwrap();
        let keys: Vec<String> = (0..32).map(|i| format!("key-{i}")).collect();
        let mut next = vec![0u32; keys.len()];
        let mut write_round = |broker: Arc<Broker>, stream: Arc<Stream>| {
            let batch: Vec<(String, [u8; 4])> = keys
                .iter()
                .cloned()
                .zip(next.iter().map(|n| n.to_be_bytes()))
                .collect();
            for n in next.iter_mut() {
                *n += 1;
            }
            async move {
                let entries: Vec<PutEntry<'_>> = batch
                    .iter()
                    .map(|(k, d)| PutEntry {
                        hash_key: hash::partition_key_hash(k.as_bytes()),
                        partition_key: k.as_bytes(),
                        explicit_hash_key: None,
                        data: d,
                    })
                    .collect();
                let r = broker.put(&stream, &entries, 0).await.unwrap();
                assert!(r.iter().all(|w| w.is_ok()));
            }
        };
        for target in [8u32, 3, 6] {
            write_round(broker.clone(), stream.clone()).await;
            let writer = tokio::spawn(write_round(broker.clone(), stream.clone()));
            broker
                .reshard(&stream, move |st| {
                    let layout: Vec<_> = st.open.iter().map(|s| (s.index, s.range)).collect();
                    Ok(uniform_plan(&layout, target, st.shards.len() as u32))
                })
                .await
                .unwrap();
            writer.await.unwrap();
            assert_eq!(stream.state().open.len() as u32, target);
        }
        write_round(broker.clone(), stream.clone()).await;
        // Every closed shard's range is covered exactly by its children's union (splits)
        // or contained in its single child (merges); no child has more than two parents.
        {
            let st = stream.state();
            for s in st.shards.iter().filter(|s| !s.is_open()) {
                let children: Vec<_> = st
                    .shards
                    .iter()
                    .filter(|c| c.parent == Some(s.index) || c.adjacent_parent == Some(s.index))
                    .collect();
                assert!(!children.is_empty(), "{} has children", s.id);
                let lo = children.iter().map(|c| c.range.start).min().unwrap();
                let hi = children.iter().map(|c| c.range.end).max().unwrap();
                assert!(lo <= s.range.start && s.range.end <= hi);
            }
        }
        let read = read_by_lineage(&broker, &stream);
        for (k, got) in &read {
            let expected: Vec<u32> = (0..next_len(&read, k)).collect();
            assert_eq!(got, &expected, "key {k}: every record once, in order");
        }
        assert_eq!(read.len(), keys.len());
        // And the same after a restart.
        broker.shutdown().await;
        // The logs close (and unlock their directories) with the last reference.
        drop(stream);
        drop(broker);
        let broker = Broker::open(&config(dir.path())).unwrap();
        let stream = broker.stream(&key()).unwrap();
        assert_eq!(read_by_lineage(&broker, &stream), read);
    }

    fn next_len(read: &HashMap<String, Vec<u32>>, k: &str) -> u32 {
        read[k].len() as u32
    }

    #[tokio::test]
    async fn closed_shard_ends_with_child_shards_and_no_next_iterator() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(&config(dir.path())).unwrap();
        broker
            .create_stream(key(), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key()).unwrap();
        let e = PutEntry {
            hash_key: 5,
            partition_key: b"k",
            explicit_hash_key: None,
            data: b"x",
        };
        broker.put(&stream, &[e], 0).await.unwrap();
        broker
            .reshard(&stream, |_| {
                Ok(vec![Reshard::Split {
                    index: 0,
                    at: 1 << 127,
                }])
            })
            .await
            .unwrap();
        let parent = stream.state().shards[0].clone();
        // The closed parent's log is sealed: no flusher thread kept for its retention period.
        assert!(parent.log.is_sealed());
        assert!(!parent.log.has_flusher_thread());
        assert!(stream.state().shards[1].log.has_flusher_thread());
        let it = broker
            .issue_iterator(&stream, &parent, Position::TrimHorizon)
            .unwrap();
        let read = broker.get_records(&it, 100, usize::MAX).unwrap();
        assert_eq!(read.batch.len(), 1);
        assert!(read.next_iterator.is_none());
        let children: Vec<u32> = read.child_shards.iter().map(|c| c.index).collect();
        assert_eq!(children, vec![1, 2]);
        assert!(parent.ending_sequence_number().is_some());
        // The children's sequence numbers are larger than the parent's.
        let e = PutEntry {
            hash_key: 5,
            partition_key: b"k",
            explicit_hash_key: None,
            data: b"y",
        };
        let w = broker
            .put(&stream, &[e], 0)
            .await
            .unwrap()
            .pop()
            .unwrap()
            .unwrap();
        assert_eq!(w.shard_id, "shardId-000000000001");
        let parent_end = parent.ending_sequence_number().unwrap();
        assert!(crate::broker::sequence::compare(&w.sequence_number, &parent_end).is_gt());
    }

    #[tokio::test]
    async fn splitting_a_closed_shard_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(&config(dir.path())).unwrap();
        broker
            .create_stream(key(), 1, StreamMode::Provisioned, BTreeMap::new())
            .await
            .unwrap();
        let stream = broker.stream(&key()).unwrap();
        broker
            .reshard(&stream, |_| {
                Ok(vec![Reshard::Split {
                    index: 0,
                    at: 1 << 127,
                }])
            })
            .await
            .unwrap();
        let err = broker
            .reshard(&stream, |_| {
                Ok(vec![Reshard::Split {
                    index: 0,
                    at: 1 << 126,
                }])
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ShardClosed { .. }));
        assert_eq!(stream.state().shards.len(), 3);
    }
}
