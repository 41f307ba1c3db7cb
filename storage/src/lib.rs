//! Append-only, memory-mapped segment logs with crash recovery, for kinesis-broker.
//!
//! This crate knows nothing about Kinesis. It offers:
//!
//! * [`Log`]: one append-only log per directory (the broker uses one per shard). Records are
//!   appended in batches, get dense offsets starting at 0, and are read back as zero-copy views
//!   into the mapped segment files. Seeking by offset and by arrival time is `O(log n)` through
//!   a sparse index. Durability is per [`Durability`] mode, with group commit.
//! * [`MetaStore`]: a crash-safe store for one small blob (stream and shard definitions).
//!
//! See `storage/README.md` for the on-disk format and what each durability mode survives.
//!
//! ```
//! use storage::{Log, LogOptions, Record};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path().join("shard-0"), LogOptions::default())?;
//! let rec = Record { partition_key: b"user-1", explicit_hash_key: None, data: b"hello" };
//! let appended = log.append(1_700_000_000_000, &[rec, rec])?;
//! assert_eq!((appended.first_offset, appended.next_offset), (0, 2));
//! // In async code: `log.wait_durable(appended.next_offset).await?`.
//! storage::block_on(log.wait_durable(appended.next_offset))?;
//!
//! let batch = log.read(0, 100, 1 << 20)?;
//! assert_eq!(batch.len(), 2);
//! for r in batch.iter() {
//!     let r = r?;
//!     assert_eq!(r.data, b"hello");
//! }
//! assert_eq!(batch.next_offset(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::time::Duration;

mod crashsim;
mod error;
mod flusher;
mod frame;
mod index;
mod journal;
mod lock;
mod log;
mod meta;
mod recovery;
mod segment;

#[cfg(test)]
mod fuzz_tests;

pub use error::{Error, Result};
pub use flusher::{FlushLatency, WaitDurable, block_on, flush_latency};
pub use journal::{Journal, JournalSyncer, MAX_ENTRY_BYTES, Recovered, SyncTicket};
pub use lock::DirLock;
pub use log::{Appender, Log, ReadBatch, SharedData};
pub use meta::MetaStore;
/// A full disk for integration tests (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
pub use segment::disk_full;
/// The power-cut recorder and crash-state builder for users' tests (feature `crash-sim`).
#[cfg(feature = "crash-sim")]
#[doc(hidden)]
pub mod crash_sim {
    pub use crate::crashsim::{recorder, states};
}

/// When an append counts as durable, i.e. when [`Log::wait_durable`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Group commit: `wait_durable` resolves after an `fdatasync`/`fsync` that covers the records.
    /// Survives a process crash *and* a power loss or kernel crash. One flush serves every
    /// waiter queued before it started. The default.
    Flush,
    /// `wait_durable` resolves at once: the records are in the page cache, which survives a
    /// process crash (even `SIGKILL`) but not a power loss or kernel crash; a background flush
    /// every `interval` bounds what a power loss can take (roughly the last `interval` of appends).
    PageCache {
        /// Time between background flushes.
        interval: Duration,
    },
}

/// Options of a [`Log`]. Make the sizes tiny in tests to exercise rolls and index boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Size of a segment file, preallocated when the segment starts. Default: 64 MiB.
    /// Minimum: 64 bytes; maximum: `u32::MAX` (positions are 32-bit). A record whose frame
    /// (32 bytes + key + hash key + data) does not fit in an empty segment is refused with
    /// [`Error::RecordTooLarge`].
    pub segment_bytes: u64,
    /// The active segment is sealed and a new one started when an append arrives at least this
    /// long (by arrival time) after the segment's first record. Default: 1 hour. Retention
    /// deletes whole segments, so this bounds how long expired records linger on disk.
    pub max_segment_age: Duration,
    /// A record is indexed when it starts at least this many bytes after the previous index
    /// entry. Smaller: faster seeks, bigger index. Default: 4096. Minimum: 1.
    pub index_interval_bytes: u32,
    /// When appends are durable. Default: [`Durability::Flush`].
    pub durability: Durability,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            max_segment_age: Duration::from_secs(3600),
            index_interval_bytes: 4096,
            durability: Durability::Flush,
        }
    }
}

/// One record to append. Borrowed: `append` copies it into the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Partition key, at most 65535 bytes.
    pub partition_key: &'a [u8],
    /// Explicit hash key, at most 65534 bytes.
    pub explicit_hash_key: Option<&'a [u8]>,
    /// Payload.
    pub data: &'a [u8],
}

/// What [`Log::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub first_offset: u64,
    /// Offset after the batch's last record (pass it to [`Log::wait_durable`]).
    pub next_offset: u64,
    /// The arrival time stored for every record of the batch: the requested one, raised to the
    /// log's last arrival time if the clock stepped back.
    pub arrival_ms: i64,
}

/// Offsets and arrival times at the two ends of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Offset of the oldest retained record (equals `next_offset` if the log is empty).
    pub first_offset: u64,
    /// Offset the next append will get.
    pub next_offset: u64,
    /// Arrival of the oldest retained record, `None` if the log holds none.
    pub first_arrival_ms: Option<i64>,
    /// Arrival of the newest record, `None` if the log holds none.
    pub last_arrival_ms: Option<i64>,
}

/// A record read from a log: borrowed views into the mapped segment (no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's offset.
    pub offset: u64,
    /// Its arrival time (ms since the Unix epoch, as given to `append`, made monotonic).
    pub arrival_ms: i64,
    /// Partition key.
    pub partition_key: &'a [u8],
    /// Explicit hash key, if one was given.
    pub explicit_hash_key: Option<&'a [u8]>,
    /// Payload.
    pub data: &'a [u8],
}
