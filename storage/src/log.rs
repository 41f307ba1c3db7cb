//! [`Log`]: the segments of one log, the single writer, readers, retention and sealing.
//!
//! ```text
//!  dir/
//!    00000000000000000000.log  .idx   sealed   (read-only map, loaded lazily on first use)
//!    00000000000000004711.log  .idx   sealed
//!    00000000000000009000.log  .idx   active   (allocated ahead of the writer in growing steps; written with pwrite, read through a read-only map)
//!    SEALED                           present once Log::seal was called
//!    LOCK                             exclusively flock'ed while the log can be written
//!
//!  active segment:
//!  | header | frame | frame | ... | frame |  zeros ...                              |
//!                                         ^ published end (Release by the writer,
//!                                           Acquire by readers; readers stay below,
//!                                           the writer stays at or above)
//! ```
//!
//! Locks, and why these: `writer` (std `Mutex`) serialises appends, rolls, retention and
//! sealing; it is held for an encode + one pwrite per append and never across an `.await` (there are none in
//! this crate) or an fsync (the flusher thread does those). `segments` (std `RwLock`) is the
//! list of segments; readers hold it only to clone one `Arc`, the writer takes it for writing
//! only on a roll or a deletion. Readers never take `writer`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::flusher::{FlushShared, WaitDurable};
use crate::frame::{self, Decoded};
use crate::index::{self, IndexEntry};
use crate::lock::{Claim, DirLock};
use crate::recovery;
use crate::segment::{self, FileKind, Growth, Published, SEGMENT_HEADER_BYTES, Segment};
use crate::{Appended, Bounds, Error, LogOptions, Record, RecordView, Result};

/// Name of the marker file written by [`Log::seal`].
const SEALED_MARKER: &str = "SEALED";
/// Smallest accepted [`LogOptions::segment_bytes`].
const MIN_SEGMENT_BYTES: u64 = 64;

/// An append-only log of records in one directory. `Send + Sync`: share it as `Arc<Log>`.
///
/// One writer at a time (appends serialise on an internal mutex); any number of concurrent
/// readers, which never block the writer and never see a partial record. Dropping the log does
/// a last flush and stops its flusher thread.
///
/// ```
/// use std::time::Duration;
/// use storage::{Durability, Log, LogOptions, Record};
///
/// let dir = tempfile::tempdir()?;
/// let opts = LogOptions { durability: Durability::PageCache { interval: Duration::from_millis(50) }, ..LogOptions::default() };
/// let log = Log::open(dir.path(), opts.clone())?;
/// for t in [1000, 2000, 3000] {
///     log.append(t, &[Record { partition_key: b"k", explicit_hash_key: Some(b"42"), data: b"x" }])?;
/// }
/// assert_eq!(log.offset_at_time(1500)?, 1);
/// assert_eq!(log.offset_at_time(9999)?, 3);
/// let b = log.bounds();
/// assert_eq!((b.first_offset, b.next_offset, b.first_arrival_ms, b.last_arrival_ms), (0, 3, Some(1000), Some(3000)));
/// drop(log);
/// // Reopening recovers the tail and carries on.
/// let log = Log::open(dir.path(), opts)?;
/// assert_eq!(log.append(500, &[Record { partition_key: b"k", explicit_hash_key: None, data: b"y" }])?.arrival_ms, 3000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Log {
    shared: Arc<Shared>,
    /// `None` once the log is sealed: a sealed log has nothing left to flush, so a closed
    /// shard (kept until retention deletes it) costs no thread.
    flusher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .field("bounds", &self.bounds())
            .finish()
    }
}

struct Shared {
    dir: PathBuf,
    /// Keeps a second `Log` of this directory out of this process, sealed or not.
    _claim: Claim,
    /// `<dir>/LOCK`, keeping other processes off the directory while the log can be written.
    /// `None` once sealed: what a second process could corrupt is the writer's tail, and a
    /// descriptor per closed shard adds up (see `crate::lock`).
    dir_lock: Mutex<Option<DirLock>>,
    opts: LogOptions,
    writer: Mutex<Writer>,
    /// Oldest first; the last one is the newest (active unless the log is sealed). Never empty.
    segments: RwLock<Vec<Arc<Slot>>>,
    /// Offset after the last published record (Release by the writer after the segment's end).
    next_offset: AtomicU64,
    /// Arrival of the last published record, `i64::MIN` if none ever.
    last_arrival: AtomicI64,
    flush: Arc<FlushShared>,
}

/// A segment in the list: loaded, or (sealed segments after open) loaded on first use.
struct Slot {
    base: u64,
    /// Base of the following segment, known for every segment loaded lazily.
    next_base: u64,
    seg: OnceLock<Arc<Segment>>,
    load_lock: Mutex<()>,
}

impl Slot {
    fn loaded(seg: Arc<Segment>) -> Slot {
        let slot = Slot {
            base: seg.base,
            next_base: u64::MAX,
            seg: OnceLock::new(),
            load_lock: Mutex::new(()),
        };
        let _ = slot.seg.set(seg);
        slot
    }

    fn lazy(base: u64, next_base: u64) -> Slot {
        Slot {
            base,
            next_base,
            seg: OnceLock::new(),
            load_lock: Mutex::new(()),
        }
    }

    fn get(&self, shared: &Shared) -> Result<Arc<Segment>> {
        if let Some(s) = self.seg.get() {
            return Ok(s.clone());
        }
        let _g = self.load_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = self.seg.get() {
            return Ok(s.clone());
        }
        let seg = Arc::new(recovery::load_sealed(
            &shared.dir,
            self.base,
            self.next_base,
            u64::from(shared.opts.index_interval_bytes),
        )?);
        let _ = self.seg.set(seg.clone());
        Ok(seg)
    }
}

/// State only the writer touches (under `Shared::writer`).
struct Writer {
    /// The active segment; `None` once the log is sealed.
    active: Option<Arc<Segment>>,
    /// Write position in the active segment (== its published end between appends).
    pos: u64,
    /// Next offset to assign.
    next: u64,
    /// Arrival of the last record appended (to keep arrival times monotonic).
    last_arrival: Option<i64>,
    /// Arrival of the active segment's first record (for `max_segment_age`).
    active_first_arrival: Option<i64>,
    /// Position of the active segment's last index entry.
    last_entry_pos: Option<u64>,
    sealed: bool,
    /// How much disk the next allocation of the active segment reserves (follows the write rate).
    growth: Growth,
    /// Reused buffers: no allocation per append in the steady state.
    frame_buf: Vec<u8>,
    new_entries: Vec<IndexEntry>,
}

/// A batch of records returned by [`Log::read`]. Holds `Arc`s to the mapped segments, so the
/// views stay valid even if retention deletes the files meanwhile. Iterate with [`ReadBatch::iter`].
pub struct ReadBatch {
    spans: Vec<Span>,
    len: usize,
    next_offset: u64,
}

impl std::fmt::Debug for ReadBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadBatch")
            .field("len", &self.len)
            .field("next_offset", &self.next_offset)
            .finish()
    }
}

/// Frames `[start, end)` of one segment, all verified by `read`.
struct Span {
    seg: Arc<Segment>,
    start: usize,
    end: usize,
}

impl Span {
    fn frames(&self) -> FrameIter<'_> {
        FrameIter {
            buf: self
                .seg
                .published()
                .get(self.start..self.end)
                .unwrap_or(&[]),
            pos: self.start as u64,
            path: &self.seg.path,
            done: false,
        }
    }
}

impl ReadBatch {
    /// The records, oldest first, as borrowed views into the map. Each frame was CRC-checked by
    /// [`Log::read`]; an `Err` item can only come from a defect in this crate, and ends the
    /// iteration.
    pub fn iter(&self) -> impl Iterator<Item = Result<RecordView<'_>>> + '_ {
        self.spans.iter().flat_map(Span::frames)
    }

    /// The records as [`ReadBatch::iter`] gives them, each with its data as a [`SharedData`]
    /// that outlives the batch: a reader can hand the bytes on (into a response body) without
    /// copying them out of the map.
    pub fn iter_shared(&self) -> impl Iterator<Item = Result<(RecordView<'_>, SharedData)>> + '_ {
        self.spans.iter().flat_map(|sp| {
            let base = sp.seg.published().as_ptr() as usize;
            sp.frames().map(move |r| {
                r.map(|v| {
                    // `v.data` lies inside the published bytes (the frame was decoded from them), so the
                    // difference of the addresses is its position in the segment.
                    let start = v.data.as_ptr() as usize - base;
                    let shared = SharedData {
                        seg: sp.seg.clone(),
                        start,
                        end: start + v.data.len(),
                    };
                    (v, shared)
                })
            })
        })
    }

    /// Offset after the last returned record: where the next read continues. For an empty
    /// batch, the offset the read started from (raised to the log's first offset).
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no record was returned.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One record's data, holding its segment (and so its map) alive: the bytes stay valid after
/// the [`ReadBatch`] is dropped, and after retention or deletion removed the file. From
/// [`ReadBatch::iter_shared`].
#[derive(Clone)]
pub struct SharedData {
    seg: Arc<Segment>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for SharedData {
    fn as_ref(&self) -> &[u8] {
        // Below the published end when the batch was read, and the published end only grows;
        // published bytes never change.
        self.seg
            .published()
            .get(self.start..self.end)
            .unwrap_or(&[])
    }
}

impl std::fmt::Debug for SharedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedData({} bytes)", self.end - self.start)
    }
}

struct FrameIter<'a> {
    buf: &'a [u8],
    pos: u64,
    path: &'a Path,
    done: bool,
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<RecordView<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match frame::decode(self.buf, false) {
            Decoded::End => None,
            Decoded::Frame(v, len) => {
                self.buf = &self.buf[len..];
                self.pos += len as u64;
                Some(Ok(v))
            }
            Decoded::Bad(reason) => {
                self.done = true;
                Some(Err(Error::corrupt(self.path, self.pos, reason)))
            }
        }
    }
}

/// Exclusive use of a [`Log`]'s writer, from [`Log::appender`] or [`Log::try_appender`]
/// until dropped.
pub struct Appender<'a> {
    log: &'a Log,
    writer: MutexGuard<'a, Writer>,
}

impl Appender<'_> {
    /// Appends as [`Log::append`] does.
    pub fn append(&mut self, arrival_ms: i64, records: &[Record<'_>]) -> Result<Appended> {
        self.log
            .append_locked(&mut self.writer, arrival_ms, records)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State behind these mutexes is updated in an order that stays consistent if a holder
    // panics between steps, so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn validate(opts: &LogOptions) -> Result<()> {
    if opts.segment_bytes < MIN_SEGMENT_BYTES || opts.segment_bytes > u64::from(u32::MAX) {
        return Err(Error::InvalidOptions(format!(
            "segment_bytes must be between {MIN_SEGMENT_BYTES} and {} (got {})",
            u32::MAX,
            opts.segment_bytes
        )));
    }
    if opts.index_interval_bytes == 0 {
        return Err(Error::InvalidOptions(
            "index_interval_bytes must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each one it creates: a new
/// directory's entry is durable only once its parent is fsynced, and a power cut would lose
/// it with every file in it, fsynced or not (the broker's power-cut test lost every record
/// acknowledged in a new stream's shards). Costs nothing when `dir` exists.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.is_dir())
        .collect();
    fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    for created in missing.iter().rev() {
        match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => fsync_dir(parent)?,
            _ => fsync_dir(Path::new("."))?,
        }
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<()> {
    let _sync = crate::crashsim::fsync_dir(dir);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsyncing directory", dir, e))
}

impl Log {
    /// Opens the log in `dir`, creating the directory and a first segment if absent.
    ///
    /// Recovery: only the tail of the newest segment is scanned (from its last valid index
    /// entry); a torn or corrupt tail is cut with a `warn!`. Older segments are not read until
    /// used, so opening takes time proportional to the tail, not to the data stored. Blocks on
    /// disk I/O: call from a blocking context. Starts the log's flusher thread.
    pub fn open(dir: impl AsRef<Path>, opts: LogOptions) -> Result<Log> {
        validate(&opts)?;
        let dir = dir.as_ref().to_path_buf();
        create_dir_durably(&dir)?;
        let claim = Claim::take(&dir)?;
        // Also taken for a sealed log, during recovery: another process may still be writing it.
        let dir_lock = DirLock::acquire(&dir)?;
        let mut bases = Vec::new();
        let mut indexes = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("listing log directory", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("listing log directory", &dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path()); // an interrupted index rewrite
                crate::crashsim::removed(&entry.path());
                continue;
            }
            let has_our_ext = name.ends_with(&format!(".{}", segment::LOG_EXT))
                || name.ends_with(&format!(".{}", segment::INDEX_EXT));
            match segment::parse_file_name(&name) {
                Some((base, FileKind::Log)) => bases.push(base),
                Some((base, FileKind::Index)) => indexes.push(base),
                None if has_our_ext => return Err(Error::BadFileName { path: entry.path() }),
                None => {}
            }
        }
        bases.sort_unstable();
        for orphan in indexes.iter().filter(|b| bases.binary_search(b).is_err()) {
            // Retention deletes the .log first; finish its work.
            let _ = fs::remove_file(dir.join(segment::file_name(*orphan, FileKind::Index)));
            crate::crashsim::removed(&dir.join(segment::file_name(*orphan, FileKind::Index)));
        }
        let sealed = dir.join(SEALED_MARKER).exists();
        let interval = u64::from(opts.index_interval_bytes);
        recovery::cut_unreachable_tail(&dir, &mut bases, interval)?;

        let (newest, floor) = match bases.last() {
            Some(&base) => {
                let (seg, _, floor) =
                    recovery::recover_newest(&dir, base, opts.segment_bytes, interval, sealed)?;
                (Arc::new(seg), floor)
            }
            None => {
                let seg = Segment::create(
                    &dir,
                    0,
                    opts.segment_bytes,
                    segment::INITIAL_ALLOCATION,
                    None,
                )?;
                index::open_for_append(&seg.idx_path, 0, &[])?;
                fsync_dir(&dir)?;
                (Arc::new(seg), None)
            }
        };
        let mut slots: Vec<Arc<Slot>> = bases
            .windows(2)
            .map(|w| Arc::new(Slot::lazy(w[0], w[1])))
            .collect();
        slots.push(Arc::new(Slot::loaded(newest.clone())));

        let next = newest.next_offset();
        let end = newest.end();
        let last_entry_pos = newest
            .index_snapshot()
            .last()
            .map(|e| u64::from(e.position));
        let active_first_arrival = newest.first_arrival();
        let shared_partial = (dir.clone(), opts.clone());
        // The monotonic clock continues from the newest record, else from the time floor the
        // newest segment's header recorded when it was created.
        let mut last_arrival = newest.last_arrival().or(floor);
        if last_arrival.is_none() && slots.len() > 1 {
            // The header was lost (interrupted creation): fall back to the previous segment,
            // whose tail we load (bounded work).
            let prev = &slots[slots.len() - 2];
            match recovery::load_sealed(&shared_partial.0, prev.base, prev.next_base, interval) {
                Ok(seg) => {
                    last_arrival = seg.last_arrival();
                    let _ = prev.seg.set(Arc::new(seg));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the previous segment's last arrival time")
                }
            }
        }

        let active = (!sealed).then(|| newest.clone());
        let flush = Arc::new(FlushShared::new(
            opts.durability,
            dir.clone(),
            next,
            end,
            active.clone(),
        ));
        let writer = Writer {
            active,
            pos: end,
            next,
            last_arrival,
            active_first_arrival,
            last_entry_pos,
            sealed,
            growth: Growth::default(),
            frame_buf: Vec::new(),
            new_entries: Vec::new(),
        };
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            _claim: claim,
            dir_lock: Mutex::new(Some(dir_lock)),
            opts,
            writer: Mutex::new(writer),
            segments: RwLock::new(slots),
            next_offset: AtomicU64::new(next),
            last_arrival: AtomicI64::new(last_arrival.unwrap_or(i64::MIN)),
            flush: flush.clone(),
        });
        let flusher = std::thread::Builder::new()
            .name("storage-flush".into())
            .spawn(move || flush.run())
            .map_err(|e| Error::io("spawning the flusher thread for", &dir, e))?;
        let log = Log {
            shared,
            flusher: Mutex::new(Some(flusher)),
        };
        if sealed {
            // Whatever recovery left pending is flushed before the thread goes, and the
            // directory lock with it.
            log.sync()?;
            log.stop_flusher();
            lock(&log.shared.dir_lock).take();
        }
        Ok(log)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Appends a batch of records, all with the same arrival time, and returns their offsets.
    ///
    /// `arrival_ms` is raised to the log's last arrival time if it is older (the clock stepped
    /// back), so arrival times never decrease. Returns once the records are in the page cache
    /// and visible to readers, **not** once durable: await [`Log::wait_durable`] with
    /// `next_offset` before acknowledging. Cost: encoding (a memcpy and a CRC per record) into a
    /// reused buffer, one `pwrite` of the batch into the page cache (no disk wait: the space is
    /// preallocated), one small index `write`, and every `segment_bytes` a roll; so it is fine to
    /// call from an async task.
    ///
    /// A batch that does not fit in the rest of the active segment starts a new segment (so a
    /// batch is normally in one segment, published at once). Only a batch larger than a whole
    /// segment is split across segments; if creating a segment then fails, the records before
    /// it stay appended and the error is returned.
    ///
    /// Errors: [`Error::Sealed`] after [`Log::seal`]; [`Error::RecordTooLarge`],
    /// [`Error::FieldTooLong`] (nothing appended); [`Error::NoSpace`] when a new segment cannot
    /// be preallocated (nothing appended, retry later); [`Error::FlushFailed`] after a failed
    /// flush.
    pub fn append(&self, arrival_ms: i64, records: &[Record<'_>]) -> Result<Appended> {
        self.appender().append(arrival_ms, records)
    }

    /// The log's single writer, waiting for it if another thread holds it. Appends through
    /// the returned [`Appender`] behave as [`Log::append`]; holding it keeps every other writer
    /// out, so a caller can decide what to append knowing nobody appends in between.
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            log: self,
            writer: lock(&self.shared.writer),
        }
    }

    /// The log's writer if nobody holds it now, without waiting. A caller with other work
    /// (other logs to append to) does that first instead of parking its thread: on a server
    /// with few worker threads a parked worker is an idle core.
    pub fn try_appender(&self) -> Option<Appender<'_>> {
        let writer = match self.shared.writer.try_lock() {
            Ok(g) => g,
            // Poisoning is ignored, as in `lock`.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(Appender { log: self, writer })
    }

    fn append_locked(
        &self,
        w: &mut Writer,
        arrival_ms: i64,
        records: &[Record<'_>],
    ) -> Result<Appended> {
        let sh = &*self.shared;
        if w.sealed {
            return Err(Error::Sealed);
        }
        sh.flush.check_failed()?;
        let arrival = w.last_arrival.map_or(arrival_ms, |t| arrival_ms.max(t));
        let first = w.next;
        if records.is_empty() {
            return Ok(Appended {
                first_offset: first,
                next_offset: first,
                arrival_ms: arrival,
            });
        }
        let room = sh.opts.segment_bytes - SEGMENT_HEADER_BYTES as u64;
        let mut total = 0u64;
        for r in records {
            frame::validate(r)?;
            let len = frame::frame_len(r) as u64;
            if len > room {
                return Err(Error::RecordTooLarge {
                    frame_bytes: len,
                    segment_bytes: sh.opts.segment_bytes,
                });
            }
            total += len;
        }
        let max_age = i64::try_from(sh.opts.max_segment_age.as_millis()).unwrap_or(i64::MAX);
        let too_old = w
            .active_first_arrival
            .is_some_and(|f| arrival.saturating_sub(f) >= max_age);
        let capacity = w.active.as_ref().map_or(0, |a| a.capacity());
        let nonempty = w.pos > SEGMENT_HEADER_BYTES as u64;
        if nonempty && (too_old || (w.pos + total > capacity && total <= room)) {
            self.roll(w)?;
        }

        let mut i = 0;
        while i < records.len() {
            let Some(seg) = w.active.clone() else {
                return Err(Error::Sealed); // unreachable: checked above and rolls keep an active segment
            };
            let cap = seg.capacity();
            let start = w.pos;
            let mut end = start;
            let mut j = i;
            while j < records.len() {
                let len = frame::frame_len(&records[j]) as u64;
                if end + len > cap {
                    break;
                }
                end += len;
                j += 1;
            }
            if j == i {
                // Not even one more record fits: only reachable for batches bigger than a segment.
                self.roll(w)?;
                continue;
            }
            if end > seg.allocated() {
                // Reserve the disk before writing: a full disk fails here, nothing written.
                let step = w.growth.next_step(Instant::now(), cap);
                seg.allocate_to(end, step)?;
            }
            let mut out = std::mem::take(&mut w.frame_buf);
            out.clear();
            out.reserve((end - start) as usize);
            let interval = u64::from(sh.opts.index_interval_bytes);
            let mut p = 0usize;
            let mut next = w.next;
            let mut last_entry_pos = w.last_entry_pos;
            let mut entries = std::mem::take(&mut w.new_entries);
            entries.clear();
            for r in &records[i..j] {
                let len = frame::frame_len(r);
                frame::encode(&mut out, next, arrival, r);
                let pos = start + p as u64;
                if recovery::wants_index_entry(last_entry_pos, pos, interval) {
                    // pos < segment_bytes <= u32::MAX (validated), so the cast is exact.
                    entries.push(IndexEntry {
                        offset: next,
                        arrival_ms: arrival,
                        position: pos as u32,
                    });
                    last_entry_pos = Some(pos);
                }
                p += len;
                next += 1;
            }
            // One pwrite for the whole chunk, at the published end. On error nothing is
            // published: the next append overwrites those bytes.
            let written = seg.write_at(start, &out);
            w.frame_buf = out;
            if let Err(e) = written {
                w.new_entries = entries;
                return Err(e);
            }
            if !entries.is_empty() {
                // The flusher writes the entries to the index file once the frames they point
                // at are on disk (see `FlushShared`), never before: recovery trusts them.
                lock_write(&seg.index).extend_from_slice(&entries);
            }
            w.new_entries = entries;
            // Publish: segment end first, then the log-wide next offset (both Release).
            seg.publish(end, next, arrival);
            sh.last_arrival.store(arrival, Ordering::Release);
            sh.next_offset.store(next, Ordering::Release);
            sh.flush.written(next, end);
            if w.active_first_arrival.is_none() {
                w.active_first_arrival = Some(arrival);
            }
            w.pos = end;
            w.next = next;
            w.last_entry_pos = last_entry_pos;
            w.last_arrival = Some(arrival);
            i = j;
        }
        Ok(Appended {
            first_offset: first,
            next_offset: w.next,
            arrival_ms: arrival,
        })
    }

    /// Seals the active segment and starts a new one at the current next offset.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let sh = &*self.shared;
        let Some(old) = w.active.clone() else {
            return Err(Error::Sealed);
        };
        // Create the new segment first: if the disk is full, nothing has changed.
        let create = |initial| {
            Segment::create(
                &sh.dir,
                w.next,
                sh.opts.segment_bytes,
                initial,
                w.last_arrival,
            )
        };
        let initial = w.growth.initial(Instant::now());
        let smaller = |n: u64| n.min(sh.opts.segment_bytes);
        let new = match create(initial) {
            // A hot log asks for a large first step; a nearly full disk may still have a page.
            Err(Error::NoSpace { .. })
                if smaller(initial) > smaller(segment::INITIAL_ALLOCATION) =>
            {
                create(segment::INITIAL_ALLOCATION)
            }
            other => other,
        };
        let new = Arc::new(new?);
        if let Err(e) = index::open_for_append(&new.idx_path, new.base, &[]) {
            let _ = fs::remove_file(&new.path);
            crate::crashsim::removed(&new.path);
            return Err(e);
        }
        let sealed = match seal_segment(&old, w.pos) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                let _ = fs::remove_file(&new.path);
                let _ = fs::remove_file(&new.idx_path);
                crate::crashsim::removed(&new.path);
                crate::crashsim::removed(&new.idx_path);
                return Err(e);
            }
        };
        {
            let mut segs = lock_write(&sh.segments);
            if let Some(last) = segs.last_mut() {
                *last = Arc::new(Slot::loaded(sealed));
            }
            segs.push(Arc::new(Slot::loaded(new.clone())));
        }
        sh.flush
            .rolled(old, Some(new.clone()), SEGMENT_HEADER_BYTES as u64, true);
        w.active = Some(new);
        w.pos = SEGMENT_HEADER_BYTES as u64;
        w.active_first_arrival = None;
        w.last_entry_pos = None;
        Ok(())
    }

    /// A future that resolves when every offset below `next_offset` is durable per the log's
    /// [`Durability`](crate::Durability): in `Flush` mode after the group-commit flush that covers it (one flush
    /// serves all waiters queued before it started), in `PageCache` mode at once.
    ///
    /// It never blocks the polling thread: the flush runs on the log's flusher thread, which
    /// wakes the future. Offsets not appended yet are not waited for (the target is clamped to
    /// the log's next offset when the future is created), so it also resolves after
    /// [`Log::seal`]. Errors: [`Error::FlushFailed`] if the covering flush failed,
    /// [`Error::Closed`] if the log was dropped first. Needs no particular async runtime.
    ///
    /// ```
    /// # use storage::{Log, LogOptions, Record};
    /// # let dir = tempfile::tempdir()?;
    /// let log = std::sync::Arc::new(Log::open(dir.path(), LogOptions::default())?);
    /// let r = Record { partition_key: b"k", explicit_hash_key: None, data: b"v" };
    /// // From an async task: append (a copy into the page cache), then await durability.
    /// let acked = async {
    ///     let a = log.append(1_000, &[r])?;
    ///     log.wait_durable(a.next_offset).await?;
    ///     Ok::<u64, storage::Error>(a.next_offset)
    /// };
    /// assert_eq!(storage::block_on(acked)?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_durable(&self, next_offset: u64) -> WaitDurable {
        self.shared.flush.wait(next_offset)
    }

    /// [`Log::wait_durable`] for synchronous callers: blocks the calling thread.
    pub fn wait_durable_blocking(&self, next_offset: u64) -> Result<()> {
        crate::block_on(self.wait_durable(next_offset))
    }

    /// Reads records with offset `>= from_offset`, oldest first, up to `max_records` records and
    /// `max_bytes` bytes, counting the partition key and data of each record. At least one
    /// record is returned if any exists at `from_offset`, even if it is bigger than `max_bytes`
    /// (unless `max_records` is 0). Reads may cross segments.
    ///
    /// `from_offset` below the first retained offset starts at the first offset; at or after
    /// the next offset gives an empty batch. Only published (complete) records are returned,
    /// each after its CRC is checked; a record that fails the check is reported as
    /// [`Error::Corrupt`] with its file and position when it is the first one of the batch
    /// (records before it are returned first, and the next read fails). Never blocks the writer.
    ///
    /// ```
    /// # use storage::{Log, LogOptions, Record};
    /// # let dir = tempfile::tempdir()?;
    /// # let log = Log::open(dir.path(), LogOptions::default())?;
    /// let r = Record { partition_key: b"k", explicit_hash_key: None, data: b"0123456789" };
    /// log.append(1_000, &[r; 5])?;
    /// // At most 100 bytes of key + data: 9 records' worth, but only 5 exist.
    /// let b = log.read(0, 1_000, 100)?;
    /// assert_eq!((b.len(), b.next_offset()), (5, 5));
    /// // At least one record, even over the byte limit.
    /// assert_eq!(log.read(2, 1_000, 1)?.len(), 1);
    /// // Following a shard: keep reading from `next_offset`.
    /// assert!(log.read(b.next_offset(), 1_000, 100)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(
        &self,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch> {
        // Retention may delete a not-yet-loaded segment between choosing and opening it; the
        // data is expired then, so start again from the new first offset.
        let mut attempts = 0;
        loop {
            match self.read_once(from_offset, max_records, max_bytes) {
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempts < 3 =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn read_once(
        &self,
        from_offset: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch> {
        let sh = &*self.shared;
        let next = sh.next_offset.load(Ordering::Acquire);
        let (mut slot, first) = {
            let segs = read_lock(&sh.segments);
            let i = segs
                .partition_point(|s| s.base <= from_offset)
                .saturating_sub(1);
            (segs[i].clone(), segs[0].base)
        };
        let mut cur = from_offset.max(first).max(slot.base);
        let mut batch = ReadBatch {
            spans: Vec::new(),
            len: 0,
            next_offset: cur,
        };
        if cur >= next || max_records == 0 {
            // A reader at the tail has read everything up to here: its last batch is behind it.
            if let Some(seg) = slot.seg.get() {
                seg.release_behind(seg.end());
            }
            return Ok(batch);
        }
        let mut bytes = 0usize;
        let mut first_segment = true;
        'segments: loop {
            let seg = slot.get(sh)?;
            let data = seg.published();
            let (mut pos, mut at) = start_position(&seg, cur, data.len() as u64);
            if first_segment {
                first_segment = false;
                // What this reader read before is most likely just behind where it starts now,
                // in this segment and, when its last batch crossed into this one, at the end
                // of the previous one (a no-op without a syscall once that is released).
                seg.release_behind(pos);
                if let Some(prev) = previous_loaded(sh, seg.base) {
                    prev.release_behind(prev.end());
                }
            }
            // Walk from the index entry to `cur` (at most one index interval).
            while at < cur {
                match decode_at(data, pos) {
                    Decoded::Frame(v, len) if v.offset == at => {
                        pos += len as u64;
                        at += 1;
                    }
                    Decoded::Frame(..) => {
                        return Err(Error::corrupt(
                            &seg.path,
                            pos,
                            "frame offset out of sequence",
                        ));
                    }
                    Decoded::Bad(reason) => return Err(Error::corrupt(&seg.path, pos, reason)),
                    Decoded::End => break,
                }
            }
            let span_start = pos;
            let mut stop = false;
            if at == cur {
                while batch.len < max_records {
                    match decode_at(data, pos) {
                        Decoded::Frame(v, len) if v.offset == cur => {
                            let size = v.data.len() + v.partition_key.len();
                            if batch.len > 0 && bytes + size > max_bytes {
                                stop = true;
                                break;
                            }
                            bytes += size;
                            batch.len += 1;
                            cur += 1;
                            pos += len as u64;
                        }
                        Decoded::End => break,
                        other => {
                            let reason = match other {
                                Decoded::Bad(r) => r,
                                _ => "frame offset out of sequence",
                            };
                            if batch.len == 0 {
                                return Err(Error::corrupt(&seg.path, pos, reason));
                            }
                            stop = true;
                            break;
                        }
                    }
                }
            }
            if pos > span_start {
                batch.spans.push(Span {
                    seg: seg.clone(),
                    start: span_start as usize,
                    end: pos as usize,
                });
            }
            if stop || batch.len >= max_records || seg.is_active() {
                break 'segments;
            }
            if let Some((at_pos, reason)) = &seg.damage
                && pos >= *at_pos
            {
                if batch.len == 0 {
                    return Err(Error::corrupt(&seg.path, *at_pos, reason.clone()));
                }
                break 'segments;
            }
            // On to the next segment, if any.
            let segs = read_lock(&sh.segments);
            match segs.iter().find(|s| s.base > seg.base) {
                Some(s) => slot = s.clone(),
                None => break 'segments,
            }
            if slot.base != cur {
                if batch.len == 0 {
                    return Err(Error::corrupt(
                        &seg.path,
                        pos,
                        format!(
                            "segment ends at offset {cur} but the next segment starts at offset {}",
                            slot.base
                        ),
                    ));
                }
                break 'segments;
            }
        }
        batch.next_offset = cur;
        Ok(batch)
    }

    /// The first offset whose arrival time is `>= t_ms`, or the next offset if there is none.
    /// `O(log segments + log index)` plus a scan of at most one index interval.
    pub fn offset_at_time(&self, t_ms: i64) -> Result<u64> {
        let sh = &*self.shared;
        let next = sh.next_offset.load(Ordering::Acquire);
        let slots: Vec<Arc<Slot>> = read_lock(&sh.segments).clone();
        // First segment whose last record arrived at or after t (arrival times are monotonic,
        // and empty segments only occur at the end).
        let (mut lo, mut hi) = (0usize, slots.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let seg = slots[mid].get(sh)?;
            if seg.last_arrival().is_none_or(|a| a < t_ms) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let Some(slot) = slots.get(lo) else {
            return Ok(next);
        };
        let seg = slot.get(sh)?;
        let data = seg.published();
        let start = {
            let idx = read_lock(&seg.index);
            let end = data.len() as u64;
            let usable = idx.partition_point(|e| u64::from(e.position) < end);
            index::floor_by_time(&idx[..usable], t_ms)
        };
        let (mut pos, mut at) = start.map_or((SEGMENT_HEADER_BYTES as u64, seg.base), |e| {
            (u64::from(e.position), e.offset)
        });
        loop {
            match decode_at(data, pos) {
                Decoded::Frame(v, len) => {
                    if v.arrival_ms >= t_ms {
                        return Ok(v.offset);
                    }
                    pos += len as u64;
                    at += 1;
                }
                Decoded::Bad(reason) => return Err(Error::corrupt(&seg.path, pos, reason)),
                // Raced with nothing: last_arrival >= t guarantees a hit; be safe anyway.
                Decoded::End => return Ok(at),
            }
        }
    }

    /// First and next offset and the arrival times at both ends.
    pub fn bounds(&self) -> Bounds {
        let sh = &*self.shared;
        let next = sh.next_offset.load(Ordering::Acquire);
        let first_slot = read_lock(&sh.segments)[0].clone();
        let first = first_slot.base;
        if first >= next {
            return Bounds {
                first_offset: first,
                next_offset: next,
                first_arrival_ms: None,
                last_arrival_ms: None,
            };
        }
        let first_arrival = match first_slot.get(sh) {
            Ok(seg) => seg.first_arrival(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the first segment for its arrival time");
                None
            }
        };
        let last = match sh.last_arrival.load(Ordering::Acquire) {
            i64::MIN => None,
            t => Some(t),
        };
        Bounds {
            first_offset: first,
            next_offset: next,
            first_arrival_ms: first_arrival,
            last_arrival_ms: last,
        }
    }

    /// Retention: deletes, oldest first, every segment whose newest record arrived before `t_ms`,
    /// and returns how many. The newest segment is never deleted; if it is the active one, holds
    /// records, and all of them are older than `t_ms`, it is first sealed and a new (empty)
    /// active segment started, so an idle log does not keep expired data forever. Then
    /// `bounds().first_offset` moves forward. Readers holding a [`ReadBatch`] keep their data
    /// (the maps outlive the files). Blocks on disk I/O; takes the writer lock.
    ///
    /// Retention needs readers' help: records older than `t_ms` that share a segment with newer
    /// ones stay readable, so a reader that must not see expired records starts at
    /// `offset_at_time(t_ms)` or later.
    ///
    /// ```
    /// # use storage::{Log, LogOptions, Record};
    /// # let dir = tempfile::tempdir()?;
    /// let opts = LogOptions { segment_bytes: 4096, ..LogOptions::default() };
    /// let log = Log::open(dir.path(), opts)?;
    /// let r = Record { partition_key: b"k", explicit_hash_key: None, data: &[0; 1000] };
    /// for t in 0..10 {
    ///     log.append(t * 1_000, &[r])?; // three records per segment
    /// }
    /// let deleted = log.drop_older_than(5_000)?;
    /// assert!(deleted >= 1);
    /// let b = log.bounds();
    /// assert!(b.first_offset <= 5 && b.first_arrival_ms.unwrap() < 5_000);
    /// assert_eq!(log.offset_at_time(5_000)?, 5); // where a reader skipping expired data starts
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drop_older_than(&self, t_ms: i64) -> Result<usize> {
        let sh = &*self.shared;
        let mut w = lock(&sh.writer);
        let mut removed = 0;
        loop {
            let (slot, count) = {
                let segs = read_lock(&sh.segments);
                (segs[0].clone(), segs.len())
            };
            if count <= 1 {
                let expired_active = !w.sealed
                    && w.pos > SEGMENT_HEADER_BYTES as u64
                    && w.last_arrival.is_some_and(|a| a < t_ms);
                if expired_active {
                    match self.roll(&mut w) {
                        Ok(()) => continue,
                        // The disk is full: the expired active segment stays until the next sweep.
                        Err(e @ Error::NoSpace { .. }) if removed > 0 => {
                            tracing::warn!(error = %e, "retention could not start a new segment; the expired active segment stays for now");
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
                break;
            }
            let seg = slot.get(sh)?;
            if seg.last_arrival().is_some_and(|a| a >= t_ms) {
                break;
            }
            if removed == 0 {
                // Once the older segments are gone, the time floor in the newest segment's
                // header is all that keeps arrival times from going back after a restart: it
                // must be on disk first (a power cut lost it in the crash test).
                sh.flush.wait_blocking()?;
            }
            lock_write(&sh.segments).remove(0);
            // No need to fsync a deleted file; dropping our last references frees its space.
            sh.flush.forget(seg.base);
            fs::remove_file(&seg.path).map_err(|e| Error::io("deleting segment", &seg.path, e))?;
            crate::crashsim::removed(&seg.path);
            let idx_removed = fs::remove_file(&seg.idx_path);
            crate::crashsim::removed(&seg.idx_path);
            match idx_removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("deleting index", &seg.idx_path, e)),
            }
            tracing::debug!(path = %seg.path.display(), "retention deleted segment");
            removed += 1;
            // One directory fsync per segment, oldest first: a power cut must not keep an
            // older segment while a newer one is gone, which would leave a hole at the front.
            fsync_dir(&sh.dir)?;
        }
        Ok(removed)
    }

    /// Flushes everything appended so far to disk, whatever the durability mode, and waits for
    /// it (blocking the calling thread). For shutdown and tests.
    pub fn sync(&self) -> Result<()> {
        self.shared.flush.wait_blocking()
    }

    /// Seals the log (e.g. a closed shard): the active segment is trimmed, mapped read-only and
    /// flushed, and the flusher thread stops; the segment files are closed (their maps stay)
    /// and the directory's `LOCK` is released. A sealed log runs no thread and holds no file
    /// descriptor, also when reopened (a second `Log` of it in this process is still refused;
    /// other processes are kept off by the owner's lock on a directory above, see
    /// [`crate::DirLock`]). Later appends fail with [`Error::Sealed`]. Persistent: a reopened log stays
    /// sealed. Idempotent. Reads, retention and `wait_durable` keep working. Blocks on disk I/O.
    ///
    /// ```
    /// # use storage::{Error, Log, LogOptions, Record};
    /// # let dir = tempfile::tempdir()?;
    /// # let log = Log::open(dir.path(), LogOptions::default())?;
    /// let r = Record { partition_key: b"k", explicit_hash_key: None, data: b"v" };
    /// log.append(1, &[r])?;
    /// log.seal()?;
    /// assert!(matches!(log.append(2, &[r]), Err(Error::Sealed)));
    /// assert_eq!(log.read(0, 10, 1 << 20)?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seal(&self) -> Result<()> {
        let sh = &*self.shared;
        let mut w = lock(&sh.writer);
        if !w.sealed {
            let Some(old) = w.active.clone() else {
                return Err(Error::Sealed);
            };
            let sealed = Arc::new(seal_segment(&old, w.pos)?);
            if let Some(last) = lock_write(&sh.segments).last_mut() {
                *last = Arc::new(Slot::loaded(sealed));
            }
            sh.flush.rolled(old, None, 0, false);
            let marker = sh.dir.join(SEALED_MARKER);
            File::create(&marker)
                .inspect(|_| crate::crashsim::created(&marker))
                .and_then(|f| {
                    let _sync = crate::crashsim::fsync(&f);
                    f.sync_all()
                })
                .map_err(|e| Error::io("creating seal marker", &marker, e))?;
            w.active = None;
            w.sealed = true;
        }
        drop(w);
        self.sync()?;
        fsync_dir(&sh.dir)?;
        // Everything is durable and nothing more can be appended: the flusher's work is done,
        // and the directory lock's too.
        self.stop_flusher();
        lock(&sh.dir_lock).take();
        Ok(())
    }

    /// Whether the log still runs its flusher thread (false once sealed). For tests.
    #[doc(hidden)]
    pub fn has_flusher_thread(&self) -> bool {
        lock(&self.flusher).is_some()
    }

    /// True once [`Log::seal`] was called (now or before the last reopen).
    pub fn is_sealed(&self) -> bool {
        lock(&self.shared.writer).sealed
    }

    /// Removes the log's files and directory, after stopping the flusher thread. Pending
    /// `wait_durable` futures resolve (the last flush still runs) or fail with [`Error::Closed`].
    pub fn delete(self) -> Result<()> {
        self.stop_flusher();
        let dir = self.shared.dir.clone();
        fs::remove_dir_all(&dir).map_err(|e| Error::io("deleting log directory", &dir, e))
    }

    fn stop_flusher(&self) {
        let handle = lock(&self.flusher).take();
        if let Some(h) = handle {
            self.shared.flush.shutdown();
            if h.join().is_err() {
                tracing::error!(dir = %self.shared.dir.display(), "flusher thread panicked");
            }
        }
    }
}

impl Drop for Log {
    /// Does a last flush (in every mode) and stops the flusher thread; blocks until both finish.
    fn drop(&mut self) {
        self.stop_flusher();
    }
}

/// The segment before the one based at `base`, if it is loaded (an unloaded one has no pages
/// mapped).
fn previous_loaded(sh: &Shared, base: u64) -> Option<Arc<Segment>> {
    let segs = read_lock(&sh.segments);
    let i = segs.partition_point(|s| s.base < base);
    let slot = segs.get(i.checked_sub(1)?)?;
    slot.seg.get().cloned()
}

/// Trims the active segment `old` to `end` and returns it as a sealed, read-only segment.
fn seal_segment(old: &Segment, end: u64) -> Result<Segment> {
    let old_file = old.writable_file()?;
    old_file
        .set_len(end)
        .inspect(|_| crate::crashsim::wrote(old_file))
        .map_err(|e| Error::io("trimming segment", &old.path, e))?;
    // Only to map it: `sealed_from` closes the duplicate once mapped.
    let file = old_file
        .try_clone()
        .map_err(|e| Error::io("duplicating handle of", &old.path, e))?;
    let published = Published {
        end,
        next_offset: old.next_offset(),
        last_arrival: old.last_arrival(),
    };
    Segment::sealed_from(
        old.base,
        old.path.clone(),
        old.idx_path.clone(),
        file,
        published,
        old.index_snapshot(),
        None,
    )
}

/// Where to start reading segment `seg` (published end `end`) to reach `offset`: the last
/// usable index entry at or before it, else the first frame. Returns (position, its offset).
fn start_position(seg: &Segment, offset: u64, end: u64) -> (u64, u64) {
    let idx = read_lock(&seg.index);
    let usable = idx.partition_point(|e| u64::from(e.position) < end);
    index::floor_by_offset(&idx[..usable], offset)
        .map_or((SEGMENT_HEADER_BYTES as u64, seg.base), |e| {
            (u64::from(e.position), e.offset)
        })
}

fn decode_at(data: &[u8], pos: u64) -> Decoded<'_> {
    match data.get(pos as usize..) {
        Some(rest) => frame::decode(rest, true),
        None => Decoded::End,
    }
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock_write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
