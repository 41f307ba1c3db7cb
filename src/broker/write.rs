//! The write path: PutRecord(s) routed by hash key, grouped by shard, appended under each
//! shard's write gate and throughput limits, acknowledged once durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::catalog::{RecordDistribution, StreamStatus};
use super::stream::{Shard, Stream};
use super::{Broker, Error, Result, faults};

/// One record of a PutRecord(s) call, already validated and hashed.
#[derive(Debug)]
pub struct PutEntry<'a> {
    /// The hash key that routes it: MD5 of the partition key, or the explicit hash key.
    pub hash_key: u128,
    /// Partition key bytes.
    pub partition_key: &'a [u8],
    /// The explicit hash key as sent, if any.
    pub explicit_hash_key: Option<&'a [u8]>,
    /// The data.
    pub data: &'a [u8],
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The shard id.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
}

/// One put request as `append_group` needs it.
#[derive(Clone, Copy)]
struct PutBatch<'a, 'b> {
    entries: &'a [PutEntry<'b>],
    /// Per record: the fault injection decided for it, if any.
    injected: &'a [Option<faults::RecordFault>],
    /// The arrival time to give the records.
    now: i64,
}

/// Record positions of one request grouped by shard index, with the shard.
type ShardGroups = BTreeMap<u32, (Arc<Shard>, Vec<usize>)>;

/// What became of one shard's group of a PutRecords call.
enum GroupAppend {
    /// Written; acknowledged once `next_offset` is durable. `written` are the positions.
    Appended {
        next_offset: u64,
        written: Vec<usize>,
    },
    /// Nothing written; every position's result says why (fault, throttle, write error).
    Failed,
    /// The shard's writer was held by another request (only when not waiting); nothing decided.
    Busy,
    /// The shard was closed by a reshard since routing; nothing decided: route again.
    Closed,
}

/// How many times a PutRecords call routes records again after reshards closed their
/// shards under it; each reshard needs one more, so this is never reached in practice.
const MAX_ROUTING_ATTEMPTS: usize = 8;

impl Broker {
    /// Appends records to the stream's shards: grouped by shard, one append per shard,
    /// then one wait for durability per shard. Results come back in request order.
    ///
    /// A failed append fails only the records of that shard. Records routed to a shard
    /// that a concurrent reshard closed are routed again to its children.
    ///
    /// `not_before_ms` is the earliest arrival time the records may get (PutRecord's
    /// SequenceNumberForOrdering); 0 for none.
    pub async fn put(
        &self,
        stream: &Stream,
        entries: &[PutEntry<'_>],
        not_before_ms: i64,
    ) -> Result<Vec<Result<Written>>> {
        let now = self.clock.now_ms().max(not_before_ms);
        let mut results: Vec<Option<Result<Written>>> = (0..entries.len()).map(|_| None).collect();
        let mut pending = Vec::new();
        // Records failed by fault injection are decided up front (one draw per record, in
        // request order, so a seed reproduces them) and are never written.
        let injected = self.faults.on_records(&stream.key.name, entries.len());
        let mut unrouted: Vec<usize> = (0..entries.len()).collect();
        for _attempt in 0..MAX_ROUTING_ATTEMPTS {
            if unrouted.is_empty() {
                break;
            }
            let mut groups: Vec<_> = self
                .route(stream, entries, &unrouted)?
                .into_values()
                .collect();
            // Concurrent requests spread over the same shards would all append in shard
            // order and queue behind one another on every shard's writer lock, idling a
            // core each time; starting each request at another shard lets them append to
            // different shards at once. (Records of different shards have no order.)
            let first = self
                .put_rotation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let len = groups.len().max(1);
            groups.rotate_left(first % len);
            unrouted.clear();
            let batch = PutBatch {
                entries,
                injected: &injected,
                now,
            };
            // First pass: only shards whose writer is free. A shard another request is
            // appending to is left for the second pass, which waits for it: by then the other
            // append has usually finished, and the worker thread kept busy meanwhile instead of
            // parking (with two workers, a parked worker is half the machine idle).
            let mut busy = Vec::new();
            for wait in [false, true] {
                let todo = if wait {
                    std::mem::take(&mut busy)
                } else {
                    std::mem::take(&mut groups)
                };
                for (shard, positions) in todo {
                    match self.append_group(stream, &shard, &batch, &positions, &mut results, wait)
                    {
                        GroupAppend::Appended {
                            next_offset,
                            written,
                        } => pending.push((shard, written, next_offset)),
                        GroupAppend::Failed => {}
                        GroupAppend::Busy => busy.push((shard, positions)),
                        // Closed by a reshard since routing: route these again.
                        GroupAppend::Closed => unrouted.extend(positions),
                    }
                }
            }
        }
        for (shard, positions, next_offset) in pending {
            if let Err(e) = shard.log.wait_durable(next_offset).await {
                tracing::error!(shard = %shard.id, error = %e, "flush failed; records not acknowledged");
                let msg = e.to_string();
                for &p in positions.iter() {
                    results[p] = Some(Err(Error::Catalog(msg.clone())));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::Catalog(
                        "record could not be routed to an open shard".into(),
                    ))
                })
            })
            .collect())
    }

    /// Groups the records at `positions` by the open shard owning their hash key, keeping
    /// request order inside a group.
    fn route(
        &self,
        stream: &Stream,
        entries: &[PutEntry<'_>],
        positions: &[usize],
    ) -> Result<ShardGroups> {
        let st = stream.state();
        // AWS answers writes to a stream that is not ACTIVE or UPDATING as if it did not
        // exist (pinned by kinesalite's tests against AWS).
        if !matches!(st.status, StreamStatus::Active | StreamStatus::Updating) {
            return Err(Error::StreamNotFound {
                name: stream.key.name.clone(),
                account: stream.key.account.clone(),
            });
        }
        let mut groups = ShardGroups::new();
        let auto = st.extras.record_distribution == RecordDistribution::Auto;
        for &p in positions {
            // AUTO ignores the keys: the records go round the open shards in turn, which
            // spreads them evenly whatever the producers send.
            let placed = if auto && !st.open.is_empty() {
                st.open.get(stream.next_auto_placement(st.open.len()))
            } else {
                st.route(entries[p].hash_key)
            };
            let shard = placed.ok_or_else(|| {
                Error::Catalog(format!(
                    "stream {} has no open shard for a hash key",
                    stream.key.name
                ))
            })?;
            groups
                .entry(shard.index)
                .or_insert_with(|| (shard.clone(), Vec::new()))
                .1
                .push(p);
        }
        Ok(groups)
    }

    /// Appends one shard's group under the shard's write gate, holding the shard's writer
    /// from before the throttle's admission to the append. Without `wait`, a writer held by
    /// another request gives [`GroupAppend::Busy`] before anything is decided or written.
    fn append_group(
        &self,
        stream: &Stream,
        shard: &Arc<Shard>,
        batch: &PutBatch<'_, '_>,
        positions: &[usize],
        results: &mut [Option<Result<Written>>],
        wait: bool,
    ) -> GroupAppend {
        let PutBatch {
            entries,
            injected,
            now,
        } = *batch;
        let gate = shard.closed.read().unwrap_or_else(|e| e.into_inner());
        if gate.is_some() {
            return GroupAppend::Closed;
        }
        let mut appender = if wait {
            shard.log.appender()
        } else {
            match shard.log.try_appender() {
                Some(a) => a,
                None => return GroupAppend::Busy,
            }
        };
        let limits = self.settings.limits;
        let demand: usize = positions
            .iter()
            .map(|&p| entries[p].data.len() + entries[p].partition_key.len())
            .sum();
        shard.demand.add(demand as u64, positions.len() as u64);
        // Injected faults first (decided per record up front), then the shard's limits.
        let mut candidates: Vec<usize> = Vec::with_capacity(positions.len());
        let mut throttled = 0u64;
        for &p in positions {
            match injected[p] {
                Some(fault) => {
                    throttled += u64::from(fault == faults::RecordFault::Throttled);
                    results[p] = Some(Err(match fault {
                        faults::RecordFault::Throttled => Error::Throttled {
                            shard_id: shard.id.clone(),
                            name: stream.key.name.clone(),
                            account: stream.key.account.clone(),
                        },
                        other => Error::InjectedRecord(other),
                    }));
                }
                None => candidates.push(p),
            }
        }
        let admitted = shard.throttle.admit_writes(
            limits,
            candidates
                .iter()
                .map(|&p| entries[p].data.len() + entries[p].partition_key.len()),
        );
        let positions: Vec<usize> = if admitted.is_empty() {
            candidates
        } else {
            let mut kept = Vec::with_capacity(candidates.len());
            for (&p, ok) in candidates.iter().zip(admitted) {
                if ok {
                    kept.push(p);
                } else {
                    throttled += 1;
                    results[p] = Some(Err(Error::Throttled {
                        shard_id: shard.id.clone(),
                        name: stream.key.name.clone(),
                        account: stream.key.account.clone(),
                    }));
                }
            }
            kept
        };
        if throttled > 0 {
            shard.metrics.write_throttled.fetch_add(throttled, Relaxed);
            stream.metrics.write_throttled(throttled);
        }
        if positions.is_empty() {
            return GroupAppend::Failed;
        }
        let mut bytes = 0u64;
        let records: Vec<storage::Record<'_>> = positions
            .iter()
            .map(|&p| {
                bytes += (entries[p].data.len() + entries[p].partition_key.len()) as u64;
                storage::Record {
                    partition_key: entries[p].partition_key,
                    explicit_hash_key: entries[p].explicit_hash_key,
                    data: entries[p].data,
                }
            })
            .collect();
        let appended = appender.append(now.max(shard.created_ms), &records);
        drop(appender);
        drop(gate);
        match appended {
            Ok(appended) => {
                shard.tail.published(appended.next_offset);
                shard.metrics.incoming(positions.len() as u64, bytes);
                self.server_metrics.disk_has_space();
                for (k, &p) in positions.iter().enumerate() {
                    results[p] = Some(Ok(Written {
                        shard_id: shard.id.clone(),
                        sequence_number: shard
                            .sequence_number(appended.arrival_ms, appended.first_offset + k as u64),
                    }));
                }
                GroupAppend::Appended {
                    next_offset: appended.next_offset,
                    written: positions,
                }
            }
            Err(e) => {
                tracing::error!(shard = %shard.id, stream = %stream.key.name, error = %e, "append failed");
                if is_disk_full(&e) {
                    self.server_metrics.disk_full(format!(
                        "append to {} of stream {}: {e}",
                        shard.id, stream.key.name
                    ));
                }
                let msg = e.to_string();
                for &p in &positions {
                    results[p] = Some(Err(Error::Catalog(msg.clone())));
                }
                GroupAppend::Failed
            }
        }
    }
}

/// Whether an append failed for lack of disk space (`GET /ready` then says so).
pub(super) fn is_disk_full(e: &storage::Error) -> bool {
    match e {
        storage::Error::NoSpace { .. } => true,
        storage::Error::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_disk_full;

    #[test]
    fn no_space_and_enospc_are_disk_full_other_errors_are_not() {
        let no_space = storage::Error::NoSpace {
            path: "s.log".into(),
            bytes: 64,
        };
        let enospc = storage::Error::Io {
            op: "writing",
            path: "s.log".into(),
            source: std::io::Error::from_raw_os_error(28), // ENOSPC
        };
        let eio = storage::Error::Io {
            op: "writing",
            path: "s.log".into(),
            source: std::io::Error::from_raw_os_error(5), // EIO
        };
        assert!(is_disk_full(&no_space));
        assert!(is_disk_full(&enospc));
        assert!(!is_disk_full(&eio));
        assert!(!is_disk_full(&storage::Error::Sealed));
    }
}
