//! One segment file (`<base>.log`): its name, its header, its mapping and its published end.
//!
//! # Segment file format (version 1)
//!
//! ```text
//! +------------------+---------+---------+-----+---------+----------------------------+
//! | header, 24 bytes | frame 0 | frame 1 | ... | frame n | zeros (active segment only) |
//! +------------------+---------+---------+-----+---------+----------------------------+
//!                                                        ^ published end
//! ```
//!
//! | Bytes  | Field       | Encoding | Meaning                                           |
//! |--------|-------------|----------|---------------------------------------------------|
//! | 0..4   | magic       | `KBSG`   | identifies a segment file                         |
//! | 4..6   | version     | u16 LE   | frame format version, 1 (see [`crate::frame`])    |
//! | 6..8   | flags       | u16 LE   | 0; reserved                                       |
//! | 8..16  | base offset | u64 LE   | offset of the first frame; equals the file name   |
//! | 16..24 | time floor  | i64 LE   | the log's last arrival time (ms) when the segment |
//! |        |             |          | was created; `i64::MIN` if none. Keeps arrival    |
//! |        |             |          | times monotonic across a restart even when the    |
//! |        |             |          | newest segment is empty and older ones are gone.  |
//!
//! The magic lets the format change later (a reader that meets an unknown version refuses the
//! file with [`Error::Corrupt`] naming the version instead of misreading it) and guarantees no
//! frame starts at position 0. The active segment's file is allocated with `fallocate` ahead of
//! the writer, in steps that grow with the write rate ([`Growth`]): the file's length is how far
//! disk space is reserved, and no byte is written past it, so a full disk is reported before a
//! batch is written (as [`Error::NoSpace`], nothing appended), never as `ENOSPC` halfway through
//! a batch or as `SIGBUS`. A new segment reserves one page, so an idle log costs a few KiB of
//! disk, not a whole segment. Recovery treats whatever length it finds (a full segment written
//! by older versions, or any step) the same way: frames, then zeros up to the file's length.
//! A sealed segment is trimmed to its published end.
//!
//! The map of the active segment spans the whole segment (`segment_bytes`) from the start,
//! beyond the file's end: address space only, so the file can grow without remapping, and
//! readers never touch a byte at or past the published end, which is always inside the file.
//!
//! # Mapped pages are released behind readers
//!
//! Pages of the map that a reader touched stay in the process's resident set (as file-backed
//! `RssFile`) until unmapped, so a drain of gigabytes made the broker look gigabytes big to
//! `top` and to container memory limits although the page cache, not the process, holds the
//! data. [`Segment::release_behind`] drops the pages a read has left behind from this process's
//! page tables (`MADV_DONTNEED`); the page cache keeps them, and a later read of the same bytes
//! maps them again (a minor fault).
//!
//! # Why the writer uses `pwrite` and readers use the map
//!
//! Every segment is mapped **read-only**; readers borrow frames straight from the map (zero
//! copy). The writer copies each batch into the same page cache with one `pwrite` (Linux's page
//! cache is unified, so the map sees the bytes). We first wrote through a writable map, as the
//! design proposed, and measured 1.16 GiB/s against a 3.1 GiB/s plain-`write` ceiling: 44% of
//! the time went to the kernel zero-filling every page on its first write fault
//! (`filemap_fault` → `ext4_mpage_readpages` → `memset`, because preallocated extents are
//! "unwritten"). `pwrite` of whole pages skips that zeroing. Numbers in `storage/README.md`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memmap2::{Mmap, MmapOptions, MmapRaw, UncheckedAdvice};

use crate::index::IndexEntry;
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"KBSG";
const VERSION: u16 = 1;
/// Size of the segment header; the first frame starts here.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 24;
/// Width of the zero-padded base offset in file names (`u64::MAX` has 20 digits).
const NAME_DIGITS: usize = 20;
/// Extension of segment files.
pub(crate) const LOG_EXT: &str = "log";
/// Extension of index files.
pub(crate) const INDEX_EXT: &str = "idx";
/// Disk reserved when a segment is created: one page, which holds the header. An idle log (a
/// shard nobody writes to) costs this, not a whole segment.
pub(crate) const INITIAL_ALLOCATION: u64 = 4096;
/// Allocations are rounded up to whole pages.
const ALLOCATION_ALIGN: u64 = 4096;
/// What the segment grows by when the writer reaches its end after a quiet spell.
pub(crate) const MIN_GROWTH_STEP: u64 = 64 * 1024;
/// Reaching the end again within this time doubles the step: the log is being written fast.
const FAST_GROWTH: Duration = Duration::from_secs(1);
/// Reaching the end after this long resets the step to [`MIN_GROWTH_STEP`]: the log went quiet.
const IDLE_GROWTH: Duration = Duration::from_secs(10);
/// Released pages are dropped in runs of at least this many bytes (one `madvise` each).
const RELEASE_MIN_BYTES: u64 = 1 << 20;
/// How far behind a read's start [`Segment::release_behind`] looks for pages to release. Larger
/// than the biggest batch a read returns (10 MiB of data for GetRecords), so a reader that
/// reads on from where its last batch ended releases that whole batch.
const RELEASE_LOOKBACK_BYTES: u64 = 16 << 20;

/// How much disk the writer reserves each time it reaches the end of the space allocated to the
/// active segment: a step that doubles while the end is reached again within [`FAST_GROWTH`]
/// (a hot log gets large, contiguous extents and few `fallocate` calls: from 64 KiB to 64 MiB
/// in 10 steps), stays while the pace is moderate and falls back to [`MIN_GROWTH_STEP`] once the
/// log was idle for [`IDLE_GROWTH`]. In the steady state a step is about one to two seconds of
/// writes, so what a log reserves beyond its data is bounded by its recent write rate.
#[derive(Debug, Clone)]
pub(crate) struct Growth {
    step: u64,
    last: Option<Instant>,
}

impl Default for Growth {
    fn default() -> Self {
        Growth {
            step: MIN_GROWTH_STEP,
            last: None,
        }
    }
}

impl Growth {
    /// The step for a growth happening at `now`, at most `max`; records `now`.
    pub(crate) fn next_step(&mut self, now: Instant, max: u64) -> u64 {
        if let Some(last) = self.last {
            let since = now.saturating_duration_since(last);
            if since < FAST_GROWTH {
                self.step = self.step.saturating_mul(2);
            } else if since >= IDLE_GROWTH {
                self.step = MIN_GROWTH_STEP;
            }
        }
        self.step = self.step.clamp(MIN_GROWTH_STEP, max.max(MIN_GROWTH_STEP));
        self.last = Some(now);
        self.step
    }

    /// What a segment created at `now` reserves at once: the current step while the log is
    /// being written fast (a roll of a hot log), else [`INITIAL_ALLOCATION`].
    pub(crate) fn initial(&self, now: Instant) -> u64 {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < FAST_GROWTH => self.step,
            _ => INITIAL_ALLOCATION,
        }
    }
}

/// `n` rounded up to a whole number of allocation pages.
fn align_up(n: u64) -> u64 {
    n.div_ceil(ALLOCATION_ALIGN)
        .saturating_mul(ALLOCATION_ALIGN)
}

/// The two kinds of per-segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `<base>.log`, the frames.
    Log,
    /// `<base>.idx`, the sparse index.
    Index,
}

/// Builds the file name of the segment (or its index) based at `base`: `00000000000000000042.log`.
/// [`parse_file_name`] is its inverse; keep the two together.
pub(crate) fn file_name(base: u64, kind: FileKind) -> String {
    let ext = match kind {
        FileKind::Log => LOG_EXT,
        FileKind::Index => INDEX_EXT,
    };
    format!("{base:0width$}.{ext}", width = NAME_DIGITS)
}

/// Parses a name built by [`file_name`]. `None` for anything else, including names with the right
/// extension but a wrong stem (the caller reports those with their path).
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, FileKind)> {
    let (stem, ext) = name.rsplit_once('.')?;
    let kind = match ext {
        LOG_EXT => FileKind::Log,
        INDEX_EXT => FileKind::Index,
        _ => return None,
    };
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, kind))
}

/// The header of the segment based at `base`, created when the log's last arrival was `floor`.
pub(crate) fn header(base: u64, floor: Option<i64>) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base.to_le_bytes());
    h[16..24].copy_from_slice(&floor.unwrap_or(i64::MIN).to_le_bytes());
    h
}

/// What [`check_header`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// All zeros or too short: the segment's creation was interrupted.
    Missing,
    /// A valid header, with its time floor.
    Valid { floor: Option<i64> },
}

/// Checks a segment header; `Err(Corrupt)` for anything that is neither valid nor missing.
pub(crate) fn check_header(path: &Path, bytes: &[u8], base: u64) -> Result<Header> {
    let Some(h) = bytes.get(..SEGMENT_HEADER_BYTES) else {
        return Ok(Header::Missing);
    };
    if h.iter().all(|&b| b == 0) {
        return Ok(Header::Missing);
    }
    if &h[0..4] != MAGIC {
        return Err(Error::corrupt(
            path,
            0,
            "bad segment magic (not a kinesis-broker segment)",
        ));
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(Error::corrupt(
            path,
            4,
            format!("unsupported segment format version {version} (this build reads {VERSION})"),
        ));
    }
    let in_header = u64::from_le_bytes(h[8..16].try_into().unwrap_or([0; 8]));
    if in_header != base {
        return Err(Error::corrupt(
            path,
            8,
            format!("header says base offset {in_header}, file name says {base}"),
        ));
    }
    let floor = i64::from_le_bytes(h[16..24].try_into().unwrap_or([0; 8]));
    Ok(Header::Valid {
        floor: (floor != i64::MIN).then_some(floor),
    })
}

/// Reserves the first `len` bytes of disk for `file` (extending it to `len` if shorter) so
/// later writes below `len` cannot hit `ENOSPC`.
pub(crate) fn preallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    allocate(file, path, 0, len)
}

/// Reserves `[from, to)` of `file`, extending it to `to` if shorter. `from` is where the space
/// is known to be reserved already (a hint: `fallocate` skips allocated blocks anyway).
pub(crate) fn allocate(file: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    let bytes = to.saturating_sub(from);
    #[cfg(any(test, feature = "fault-injection"))]
    if disk_full::is_full(path) {
        return Err(Error::NoSpace {
            path: path.to_owned(),
            bytes,
        });
    }
    #[cfg(test)]
    if crate::segment::fault::take_no_space() {
        return Err(Error::NoSpace {
            path: path.to_owned(),
            bytes,
        });
    }
    if bytes == 0 {
        return Ok(());
    }
    let (Ok(start), Ok(count)) = (libc::off_t::try_from(from), libc::off_t::try_from(bytes)) else {
        return Err(Error::InvalidOptions(format!(
            "segment size {to} too large"
        )));
    };
    let Err(err) = fallocate(file, 0, start, count) else {
        crate::crashsim::wrote(file);
        return Ok(());
    };
    match err.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(Error::NoSpace {
            path: path.to_owned(),
            bytes,
        }),
        // File systems without fallocate: fall back to set_len (sparse; documented risk).
        Some(libc::EOPNOTSUPP) => {
            tracing::warn!(path = %path.display(), "fallocate unsupported; segment is sparse and a full disk may fail a write halfway");
            let len = file
                .metadata()
                .map_err(|e| Error::io("reading metadata of", path, e))?
                .len();
            if len >= to {
                return Ok(());
            }
            file.set_len(to)
                .inspect(|_| crate::crashsim::wrote(file))
                .map_err(|e| Error::io("extending segment", path, e))
        }
        _ => Err(Error::io("preallocating segment", path, err)),
    }
}

/// `fallocate(2)` on `file`, retried when a signal interrupts it.
fn fallocate(
    file: &File,
    mode: libc::c_int,
    offset: libc::off_t,
    len: libc::off_t,
) -> std::io::Result<()> {
    loop {
        // SAFETY: plain syscall on a file descriptor we own for the duration of the call;
        // no memory is passed to the kernel.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Makes `[end, len)` of the newest segment read as zeros and keeps it allocated (extended to
/// `target` if shorter), the way recovery wants it, without giving the disk space back: `fallocate(FALLOC_FL_ZERO_RANGE)`
/// turns the range into unwritten extents (a metadata change, like the truncate it replaces, and
/// just as durable). Truncating and preallocating again frees and reallocates the blocks; on a
/// file system mounted with `discard` every freed extent is a synchronous discard, which made
/// opening 1,000 logs take seconds. Returns `Ok(false)` when the file system cannot zero a range
/// (tmpfs) or the file is longer than `target`: then the caller truncates and preallocates.
pub(crate) fn zero_tail(file: &File, path: &Path, end: u64, len: u64, target: u64) -> Result<bool> {
    if len > target {
        return Ok(false);
    }
    if len > end {
        #[cfg(test)]
        if crate::segment::fault::take_no_space() {
            return Err(Error::NoSpace {
                path: path.to_owned(),
                bytes: len - end,
            });
        }
        let (Ok(start), Ok(count)) = (libc::off_t::try_from(end), libc::off_t::try_from(len - end))
        else {
            return Ok(false);
        };
        let mode = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;
        let zeroed = fallocate(file, mode, start, count);
        crate::crashsim::wrote(file);
        if let Err(err) = zeroed {
            return match err.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(false),
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(Error::NoSpace {
                    path: path.to_owned(),
                    bytes: len - end,
                }),
                _ => Err(Error::io("zeroing the tail of segment", path, err)),
            };
        }
    }
    if len < target {
        preallocate(file, path, target)?;
    }
    Ok(true)
}

/// Maps `len` bytes of the active segment read-only, past the file's end if it is shorter
/// (address space only; see the module documentation).
fn map_active(file: &File, path: &Path, len: u64) -> Result<MmapRaw> {
    let len = usize::try_from(len)
        .map_err(|_| Error::InvalidOptions(format!("segment size {len} too large")))?;
    MmapOptions::new()
        .len(len)
        .map_raw_read_only(file)
        .map_err(|e| Error::io("mapping segment", path, e))
}

/// A full disk for the integration tests of the crate's users (feature `fault-injection`):
/// while a [`DiskFull`] guard lives, every allocation of a file under its directory fails with
/// [`Error::NoSpace`], in any thread. Scoped by directory so tests running in parallel in one
/// process do not see each other's full disks.
#[cfg(any(test, feature = "fault-injection"))]
pub mod disk_full {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static FULL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    /// Number of guards alive: no lock taken on allocations while it is 0.
    static ARMED: AtomicUsize = AtomicUsize::new(0);

    /// While alive, allocations of files under the directory fail with `NoSpace`.
    #[derive(Debug)]
    pub struct DiskFull {
        dir: PathBuf,
    }

    /// Makes the disk look full under `dir` until the guard is dropped.
    pub fn fill(dir: &Path) -> DiskFull {
        FULL.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dir.to_path_buf());
        ARMED.fetch_add(1, Ordering::AcqRel);
        DiskFull {
            dir: dir.to_path_buf(),
        }
    }

    impl Drop for DiskFull {
        fn drop(&mut self) {
            let mut full = FULL.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = full.iter().position(|d| *d == self.dir) {
                full.swap_remove(i);
                ARMED.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    pub(crate) fn is_full(path: &Path) -> bool {
        ARMED.load(Ordering::Acquire) > 0
            && FULL
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|d| path.starts_with(d))
    }
}

/// Test-only fault injection for preallocation.
#[cfg(test)]
pub(crate) mod fault {
    use std::cell::Cell;
    thread_local! { static NO_SPACE: Cell<u32> = const { Cell::new(0) }; }
    /// Makes the next `n` preallocations on this thread fail with `NoSpace`.
    pub(crate) fn inject_no_space(n: u32) {
        NO_SPACE.with(|c| c.set(n));
    }
    pub(super) fn take_no_space() -> bool {
        NO_SPACE.with(|c| {
            let n = c.get();
            if n > 0 {
                c.set(n - 1);
            }
            n > 0
        })
    }
}

/// The mapping of a segment.
enum Map {
    /// The active segment, mapped read-only over its whole capacity (`segment_bytes`, past the
    /// file's current end). Bytes at and after the published end change under it (the writer's
    /// `pwrite`s), so it is never turned into one slice: only `[0, end)` is ever borrowed.
    Active(MmapRaw),
    /// A sealed segment: trimmed and immutable.
    Sealed(Mmap),
}

/// One segment, shared by the writer, readers and the flusher through `Arc<Segment>`.
///
/// Who touches what: only the writer (under the log's writer mutex) writes frames and advances
/// `end`, `next_offset` and `last_arrival`, in that order, after the bytes are in place;
/// readers only load them (Acquire) and only read bytes below `end`. `index` is a std `RwLock`
/// because both sides hold it for microseconds (a push per append, a binary search per read).
pub(crate) struct Segment {
    /// Offset of the first record.
    pub base: u64,
    /// The `.log` file.
    pub path: PathBuf,
    /// The `.idx` file.
    pub idx_path: PathBuf,
    /// Open handle of the active segment, for writes, allocation, fsync and trimming. `None`
    /// for a sealed segment: nothing writes it again, its map stays valid without the
    /// descriptor (a mapping holds its own reference to the file), and a closed shard kept
    /// for its retention period must not cost one descriptor per segment (the soak counted
    /// them growing with every reshard).
    file: Option<File>,
    map: Map,
    /// Published end position: every byte in `[0, end)` is a complete, immutable frame
    /// (or the header). Stored with Release after the bytes are written, loaded with Acquire.
    end: AtomicU64,
    /// Offset after the last published record.
    next_offset: AtomicU64,
    /// Arrival of the last published record, `i64::MIN` if none.
    last_arrival: AtomicI64,
    /// Active segment: the file's length, up to which disk space is reserved; the writer never
    /// writes past it. Only the writer changes it. Sealed: the file's length.
    allocated: AtomicU64,
    /// Pages of the map below this position were released by [`Segment::release_behind`]
    /// (a hint to skip work: a reader may have faulted some back in since).
    released: AtomicU64,
    /// Sparse index of the published records (entries may briefly run ahead of `end`: readers
    /// ignore entries at or after the `end` they loaded).
    pub index: RwLock<Vec<IndexEntry>>,
    /// For a sealed segment: where a frame failed to verify when the segment was loaded, and why.
    /// A read that reaches this position reports [`Error::Corrupt`].
    pub damage: Option<(u64, String)>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("end", &self.end())
            .finish()
    }
}

/// What the published state of a segment is, built by recovery or by the writer.
pub(crate) struct Published {
    pub end: u64,
    pub next_offset: u64,
    pub last_arrival: Option<i64>,
}

impl Segment {
    /// Paths of the segment based at `base` in `dir`.
    pub(crate) fn paths(dir: &Path, base: u64) -> (PathBuf, PathBuf) {
        (
            dir.join(file_name(base, FileKind::Log)),
            dir.join(file_name(base, FileKind::Index)),
        )
    }

    /// Creates a new, empty active segment of `capacity` bytes: file, `initial` bytes of it
    /// allocated (at least the header, at most `capacity`), header, map. On failure the file is
    /// removed again.
    pub(crate) fn create(
        dir: &Path,
        base: u64,
        capacity: u64,
        initial: u64,
        floor: Option<i64>,
    ) -> Result<Segment> {
        let (path, idx_path) = Segment::paths(dir, base);
        let result = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io("creating segment", &path, e))?;
            let allocated = align_up(initial)
                .max(SEGMENT_HEADER_BYTES as u64)
                .min(capacity);
            crate::crashsim::created(&path);
            preallocate(&file, &path, allocated)?;
            file.write_all_at(&header(base, floor), 0)
                .map_err(|e| Error::io("writing segment header", &path, e))?;
            crate::crashsim::wrote(&file);
            let map = map_active(&file, &path, capacity)?;
            let seg = Segment {
                base,
                path: path.clone(),
                idx_path: idx_path.clone(),
                file: Some(file),
                map: Map::Active(map),
                end: AtomicU64::new(SEGMENT_HEADER_BYTES as u64),
                next_offset: AtomicU64::new(base),
                last_arrival: AtomicI64::new(i64::MIN),
                allocated: AtomicU64::new(allocated),
                released: AtomicU64::new(0),
                index: RwLock::new(Vec::new()),
                damage: None,
            };
            Ok(seg)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
            crate::crashsim::removed(&path);
        }
        result
    }

    /// Wraps an open, already recovered file as the writable active segment of `capacity`
    /// bytes (more if the file is longer: a segment written with a larger `segment_bytes`).
    #[allow(clippy::too_many_arguments)] // private constructor, one call site (recovery)
    pub(crate) fn active_from(
        base: u64,
        path: PathBuf,
        idx_path: PathBuf,
        file: File,
        capacity: u64,
        published: Published,
        index: Vec<IndexEntry>,
    ) -> Result<Segment> {
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", &path, e))?
            .len();
        let map = map_active(&file, &path, capacity.max(len))?;
        Ok(Segment::assemble(
            base,
            path,
            idx_path,
            Some(file),
            Map::Active(map),
            published,
            index,
            None,
        ))
    }

    /// Wraps a sealed (trimmed, immutable) file as a read-only segment, and closes `file`:
    /// the segment keeps only its map.
    pub(crate) fn sealed_from(
        base: u64,
        path: PathBuf,
        idx_path: PathBuf,
        file: File,
        published: Published,
        index: Vec<IndexEntry>,
        damage: Option<(u64, String)>,
    ) -> Result<Segment> {
        // SAFETY: a sealed segment file is never written again by this crate (the writer only
        // writes the active segment, and recovery only touches the newest segment before any
        // map of it exists); the log directory is owned by this process. Its length is at
        // least the header, so the map is not empty.
        //
        // Closing `file` below does not end the map: POSIX keeps a mapping valid after the
        // descriptor it came from is closed (`mmap(2)`: "closing the file descriptor does not
        // unmap the region"), and the kernel keeps the file's pages reachable through the map
        // even after the file is unlinked (retention). Tested by
        // `log::tests::sealed_logs_hold_no_file_descriptor`, which reads every record back
        // after the descriptors are gone.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| Error::io("mapping sealed segment", &path, e))?;
        let mut seg = Segment::assemble(
            base,
            path,
            idx_path,
            Some(file),
            Map::Sealed(map),
            published,
            index,
            damage,
        );
        seg.file = None;
        Ok(seg)
    }

    #[allow(clippy::too_many_arguments)] // private constructor shared by the three public ones
    fn assemble(
        base: u64,
        path: PathBuf,
        idx_path: PathBuf,
        file: Option<File>,
        map: Map,
        p: Published,
        index: Vec<IndexEntry>,
        damage: Option<(u64, String)>,
    ) -> Segment {
        // The file's length: the caller (recovery, sealing) has just set it.
        let allocated = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(p.end, |m| m.len());
        Segment {
            base,
            path,
            idx_path,
            file,
            map,
            end: AtomicU64::new(p.end),
            next_offset: AtomicU64::new(p.next_offset),
            last_arrival: AtomicI64::new(p.last_arrival.unwrap_or(i64::MIN)),
            allocated: AtomicU64::new(allocated),
            released: AtomicU64::new(0),
            index: RwLock::new(index),
            damage,
        }
    }

    /// True for the active segment (the one the writer appends to).
    pub(crate) fn is_active(&self) -> bool {
        matches!(self.map, Map::Active(_))
    }

    /// Size of the mapping: the capacity of the active segment (`segment_bytes`, however much of
    /// it is allocated yet), the file length of a sealed one.
    pub(crate) fn capacity(&self) -> u64 {
        match &self.map {
            Map::Active(m) => m.len() as u64,
            Map::Sealed(m) => m.len() as u64,
        }
    }

    /// The published end position (Acquire).
    pub(crate) fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Offset after the last published record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Arrival of the last published record.
    pub(crate) fn last_arrival(&self) -> Option<i64> {
        match self.last_arrival.load(Ordering::Acquire) {
            i64::MIN => None,
            t => Some(t),
        }
    }

    /// Arrival of the first record (entry 0 of the index is always the first record).
    pub(crate) fn first_arrival(&self) -> Option<i64> {
        let end = self.end();
        let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
        idx.first()
            .filter(|e| u64::from(e.position) < end)
            .map(|e| e.arrival_ms)
    }

    /// The published bytes `[0, end)`: header plus complete frames.
    pub(crate) fn published(&self) -> &[u8] {
        let end = self.end();
        match &self.map {
            Map::Active(m) => {
                // SAFETY: the published-end invariant. `end` was loaded with Acquire; the writer
                // stores it with Release only after its `pwrite` put every byte below it into
                // the page cache this map shares, and it never writes below the published end
                // again (it appends at or after it; recovery and trimming happen before the
                // segment is shared, or beyond `end`). So `[0, end)` is initialised and
                // immutable for as long as `self`, which owns the map, lives. `end <= len`:
                // `write_at` refuses writes past the capacity, so no larger end is published
                // (and `min` makes sure).
                unsafe { std::slice::from_raw_parts(m.as_ptr(), (end as usize).min(m.len())) }
            }
            Map::Sealed(m) => &m[..(end as usize).min(m.len())],
        }
    }

    /// How far disk space is reserved (the file's length).
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated.load(Ordering::Acquire)
    }

    /// Makes sure `[0, to)` of the active segment is allocated before the writer writes there:
    /// grows the file by `step` (or to `to` if that is further), within the capacity. If the disk
    /// cannot give the whole step, it tries for exactly what is needed before answering
    /// [`Error::NoSpace`] (then nothing was written). Only the writer calls it.
    pub(crate) fn allocate_to(&self, to: u64, step: u64) -> Result<()> {
        let have = self.allocated();
        if to <= have {
            return Ok(());
        }
        let cap = self.capacity();
        let needed = align_up(to).min(cap).max(to);
        let wanted = align_up(have.saturating_add(step)).min(cap).max(needed);
        let file = self.writable_file()?;
        let result = match allocate(file, &self.path, have, wanted) {
            Err(Error::NoSpace { .. }) if wanted > needed => {
                allocate(file, &self.path, have, needed).map(|()| needed)
            }
            other => other.map(|()| wanted),
        };
        self.allocated.store(result?, Ordering::Release);
        Ok(())
    }

    /// Writes `bytes` at `pos` of the active segment with one `pwrite`. Only the writer calls
    /// it (under the log's writer mutex), at or after the published end. Refuses writes to a
    /// sealed segment, below the published end, or past the allocated space (which is never
    /// more than the capacity: readers' slices must stay inside the map, and a write into
    /// unreserved space could fail halfway on a full disk).
    pub(crate) fn write_at(&self, pos: u64, bytes: &[u8]) -> Result<()> {
        let fits = pos
            .checked_add(bytes.len() as u64)
            .is_some_and(|e| e <= self.capacity() && e <= self.allocated());
        if !self.is_active() || !fits || pos < self.end() {
            let msg = format!(
                "refused write of {} bytes at {pos}: outside the writable range",
                bytes.len()
            );
            return Err(Error::io(
                "writing segment",
                &self.path,
                std::io::Error::other(msg),
            ));
        }
        let file = self.writable_file()?;
        let written = file.write_all_at(bytes, pos);
        crate::crashsim::wrote(file);
        written.map_err(|e| Error::io("writing segment", &self.path, e))
    }

    /// The descriptor of the active segment; an error for a sealed one, which has none.
    pub(crate) fn writable_file(&self) -> Result<&File> {
        self.file.as_ref().ok_or_else(|| {
            Error::io(
                "writing segment",
                &self.path,
                std::io::Error::other("the segment is sealed"),
            )
        })
    }

    /// Publishes frames written below `end`: the new end, next offset and last arrival.
    /// Only the writer calls this; the Release stores pair with the readers' Acquire loads.
    pub(crate) fn publish(&self, end: u64, next_offset: u64, last_arrival: i64) {
        debug_assert!(end <= self.capacity());
        self.last_arrival.store(last_arrival, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.end.store(end, Ordering::Release);
    }

    /// `fdatasync` of the segment file: makes every byte written so far durable. (It also
    /// writes the file's size when an allocation grew it: the size is needed to read the data
    /// back, which is what `fdatasync` guarantees.)
    pub(crate) fn sync_data(&self) -> std::io::Result<()> {
        match &self.file {
            Some(file) => {
                let _sync = crate::crashsim::fsync(file);
                file.sync_data()
            }
            None => self.sync_all(),
        }
    }

    /// `fsync` of the segment file, data and metadata (a segment just sealed). A sealed
    /// segment has no descriptor of its own and opens its file for the call.
    pub(crate) fn sync_all(&self) -> std::io::Result<()> {
        let opened;
        let file = match &self.file {
            Some(file) => file,
            None => {
                opened = File::open(&self.path)?;
                &opened
            }
        };
        let sync = crate::crashsim::fsync(file);
        file.sync_all()?;
        sync.done();
        Ok(())
    }

    /// Drops from this process's resident set the mapped pages a read starting at `pos` has
    /// left behind: those in `[pos - 16 MiB, pos)` not released yet, at least 1 MiB at a time.
    /// A reader that reads on from where its last batch ended so releases that batch; the
    /// pages of the batch being returned stay mapped until the next read. A reader behind
    /// another faults the pages back in (from the page cache, not the disk).
    pub(crate) fn release_behind(&self, pos: u64) {
        let page = ALLOCATION_ALIGN;
        let upto = (pos.min(self.end()) / page) * page;
        let floor = (upto.saturating_sub(RELEASE_LOOKBACK_BYTES) / page) * page;
        let released = self.released.load(Ordering::Relaxed);
        // A read starting below the watermark is a slower reader's (or a repeated one): it
        // releases its own lookback, which it faulted back in.
        let from = if released <= upto && released >= floor {
            released
        } else {
            floor
        };
        if upto < from.saturating_add(RELEASE_MIN_BYTES) {
            return;
        }
        self.released.store(upto, Ordering::Relaxed);
        let (Ok(offset), Ok(len)) = (usize::try_from(from), usize::try_from(upto - from)) else {
            return;
        };
        // SAFETY: MADV_DONTNEED on a shared, read-only, file-backed mapping (both maps are
        // `MAP_SHARED` of the segment file, never `MAP_PRIVATE` or anonymous) only removes the
        // pages from this process's page tables; the next access faults them in again from the
        // page cache (or the file), with the same contents. So slices borrowed from the map
        // (record data in batches, `SharedData`) stay valid and unchanged: the bytes below the
        // published end are never written again, and `upto <= end <= file length`, so no page
        // past the end of the file is touched. The range is inside the map: `upto <= end <=
        // capacity`. Tested by `log::tests::released_pages_read_back_unchanged`.
        let result = unsafe {
            match &self.map {
                Map::Active(m) => m.unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len),
                Map::Sealed(m) => m.unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len),
            }
        };
        if let Err(e) = result {
            tracing::debug!(path = %self.path.display(), error = %e, "could not release mapped pages");
        }
    }

    /// Whether [`Segment::release_behind`] released pages up to `pos` (tests).
    #[cfg(test)]
    pub(crate) fn released_up_to(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    /// A snapshot of the index entries that point below `end`.
    pub(crate) fn index_snapshot(&self) -> Vec<IndexEntry> {
        let end = self.end();
        let idx = self.index.read().unwrap_or_else(|p| p.into_inner());
        idx.iter()
            .copied()
            .filter(|e| u64::from(e.position) < end)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_round_trip_breaks() {
        for base in [0u64, 1, 42, 99_999_999_999, u64::MAX] {
            for kind in [FileKind::Log, FileKind::Index] {
                let n = file_name(base, kind);
                assert_eq!(n.len(), 24);
                assert_eq!(parse_file_name(&n), Some((base, kind)), "{n}");
            }
        }
        assert_eq!(file_name(42, FileKind::Log), "00000000000000000042.log");
        for bad in [
            "42.log",
            "0000000000000000004x.log",
            "00000000000000000042.tmp",
            "00000000000000000042",
            "99999999999999999999.log",
            "+0000000000000000042.log",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn disk_full_guard_fails_other_directories_or_outlives_its_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (full, other) = (dir.path().join("full"), dir.path().join("other"));
        std::fs::create_dir_all(&full).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let guard = disk_full::fill(&full);
        assert!(matches!(
            Segment::create(&full, 0, 1 << 20, 4096, None),
            Err(Error::NoSpace { .. })
        ));
        assert!(!full.join(file_name(0, FileKind::Log)).exists());
        Segment::create(&other, 0, 1 << 20, 4096, None).unwrap();
        drop(guard);
        Segment::create(&full, 0, 1 << 20, 4096, None).unwrap();
    }

    #[test]
    fn header_check_accepts_foreign_file() {
        let p = Path::new("x.log");
        assert_eq!(
            check_header(p, &header(5, Some(-7)), 5).unwrap(),
            Header::Valid { floor: Some(-7) }
        );
        assert_eq!(
            check_header(p, &header(5, None), 5).unwrap(),
            Header::Valid { floor: None }
        );
        assert_eq!(check_header(p, &[0u8; 24], 5).unwrap(), Header::Missing);
        assert_eq!(check_header(p, &[0u8; 3], 5).unwrap(), Header::Missing);
        assert!(check_header(p, &header(6, None), 5).is_err());
        let mut h = header(5, None);
        h[4] = 2;
        let e = check_header(p, &h, 5).unwrap_err().to_string();
        assert!(e.contains("unsupported segment format version 2"), "{e}");
        assert!(check_header(p, b"XXXXXXXXXXXXXXXXXXXXXXXX", 5).is_err());
    }
}
