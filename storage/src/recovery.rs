//! Opening segments: tail recovery of the newest segment, lazy loading of sealed ones, and the
//! frame scan both share.
//!
//! Recovery policy (after raft-engine's `TolerateTailCorruption`): only the *newest* segment can
//! have a torn tail, because only it was being written. Its tail is scanned from the last index
//! entry that verifies (so the work is bounded by the index interval plus whatever the index
//! missed, never by the data stored); the first frame with a bad length, CRC, offset or time ends
//! the log, a `warn!` names what was cut, and everything after it is zeroed (in place with
//! `FALLOC_FL_ZERO_RANGE`, or truncate and preallocate again where the file system cannot; see
//! [`segment::zero_tail`]). Sealed segments are never truncated: damage found in them is kept as
//! [`Segment::damage`] and reported as [`Error::Corrupt`] by the read that reaches it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::Mmap;

use crate::frame::{self, Decoded};
use crate::index::{self, IndexEntry};
use crate::segment::{self, Header, Published, SEGMENT_HEADER_BYTES, Segment};
use crate::{Error, Result};

/// Result of scanning frames forward from a known-good position.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Position after the last good frame.
    pub end: u64,
    /// Offset after the last good frame.
    pub next_offset: u64,
    /// Arrival of the last good frame (or the one passed in).
    pub last_arrival: Option<i64>,
    /// Index entries for the frames scanned, by the writer's rule.
    pub new_entries: Vec<IndexEntry>,
    /// Where and why the scan stopped, if it stopped at a bad frame rather than at the end.
    pub stop: Option<(u64, &'static str)>,
}

/// Whether the writer indexes a frame at `pos`, given the position of the last entry.
/// Recovery and the writer must agree, so both call this.
#[inline]
pub(crate) fn wants_index_entry(last_entry_pos: Option<u64>, pos: u64, interval: u64) -> bool {
    match last_entry_pos {
        None => true,
        Some(last) => pos - last >= interval,
    }
}

/// Scans frames in `buf` from `pos`, expecting offset `offset` there, until the end of the
/// written data or the first bad frame.
pub(crate) fn scan(
    buf: &[u8],
    mut pos: u64,
    mut offset: u64,
    mut last_entry_pos: Option<u64>,
    mut last_arrival: Option<i64>,
    interval: u64,
) -> Scan {
    let mut new_entries = Vec::new();
    let mut stop = None;
    while let Some(rest) = buf.get(pos as usize..) {
        match frame::decode(rest, true) {
            Decoded::End => break,
            Decoded::Bad(reason) => {
                stop = Some((pos, reason));
                break;
            }
            Decoded::Frame(v, len) => {
                if v.offset != offset {
                    stop = Some((pos, "frame offset out of sequence"));
                    break;
                }
                if last_arrival.is_some_and(|t| v.arrival_ms < t) {
                    stop = Some((pos, "arrival time goes backwards"));
                    break;
                }
                if wants_index_entry(last_entry_pos, pos, interval) {
                    // Positions fit u32: segment_bytes is capped at u32::MAX by LogOptions checks.
                    new_entries.push(IndexEntry {
                        offset,
                        arrival_ms: v.arrival_ms,
                        position: pos as u32,
                    });
                    last_entry_pos = Some(pos);
                }
                last_arrival = Some(v.arrival_ms);
                offset += 1;
                pos += len as u64;
            }
        }
    }
    Scan {
        end: pos,
        next_offset: offset,
        last_arrival,
        new_entries,
        stop,
    }
}

/// Drops trailing entries that do not point at a verifying frame with their offset, and returns
/// where a scan should resume: (position, offset, last entry position, arrival).
fn trust_entries(
    buf: &[u8],
    base: u64,
    entries: &mut Vec<IndexEntry>,
) -> (u64, u64, Option<u64>, Option<i64>) {
    while let Some(e) = entries.last().copied() {
        let ok = buf.get(e.position as usize..).is_some_and(|rest| {
            matches!(frame::decode(rest, true), Decoded::Frame(v, _) if v.offset == e.offset && v.arrival_ms == e.arrival_ms)
        });
        if ok {
            return (
                u64::from(e.position),
                e.offset,
                Some(u64::from(e.position)),
                Some(e.arrival_ms),
            );
        }
        entries.pop();
    }
    (SEGMENT_HEADER_BYTES as u64, base, None, None)
}

fn map_read_only(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: the segment is not shared with any reader or writer yet (we are opening it), this
    // process owns the log directory, and the map is dropped before the file is modified
    // (recovery truncates only after dropping it). The file is at least one header long.
    unsafe { Mmap::map(file) }.map_err(|e| Error::io("mapping segment", path, e))
}

/// Recovers the newest segment of a log and returns it ready to use: writable, with room to grow
/// to `capacity` (or trimmed and read-only if the log is sealed), the index file opened for
/// appending (active case), and the time floor from the segment header. The file's length, which
/// is how far disk space is reserved, is kept (whatever step the writer had reached, or the
/// whole segment as older versions preallocated it) unless it exceeds `capacity`.
pub(crate) fn recover_newest(
    dir: &Path,
    base: u64,
    capacity: u64,
    interval: u64,
    log_sealed: bool,
) -> Result<(Segment, Option<File>, Option<i64>)> {
    let (path, idx_path) = Segment::paths(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening segment", &path, e))?;
    let mut len = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", &path, e))?
        .len();
    let mut hdr = [0u8; SEGMENT_HEADER_BYTES];
    let n = read_up_to(&file, &path, &mut hdr)?;
    let floor = match segment::check_header(&path, &hdr[..n], base)? {
        Header::Valid { floor } => floor,
        Header::Missing => {
            // Creation was interrupted before the header reached the disk: an empty segment.
            tracing::warn!(path = %path.display(), "segment header missing (interrupted creation); starting it empty");
            file.write_all_at(&segment::header(base, None), 0)
                .map_err(|e| Error::io("writing segment header", &path, e))?;
            crate::crashsim::wrote(&file);
            len = len.max(SEGMENT_HEADER_BYTES as u64);
            None
        }
    };
    let map = map_read_only(&file, &path)?;
    let loaded = index::load(&idx_path, base, len)?;
    let mut entries = loaded.entries;
    let (pos, off, last_pos, arrival) = trust_entries(&map, base, &mut entries);
    let s = scan(&map, pos, off, last_pos, arrival, interval);
    drop(map);
    if let Some((at, reason)) = s.stop {
        tracing::warn!(
            path = %path.display(),
            position = at,
            reason,
            kept_records_up_to_offset = s.next_offset,
            cut_bytes_at_most = len - at,
            "truncating the torn tail of the newest segment"
        );
    }
    let kept_entries = entries.len();
    entries.extend_from_slice(&s.new_entries);
    let published = Published {
        end: s.end,
        next_offset: s.next_offset,
        last_arrival: s.last_arrival,
    };
    // Zero everything after the last good frame so no stale bytes can ever be read as a frame.
    // Active segment: zero the range in place (metadata only, keeps the allocation), or
    // truncate where the file system cannot (the writer allocates again as it goes). Sealed: trim.
    let keep = len.min(capacity.max(s.end));
    let zeroed = !log_sealed && segment::zero_tail(&file, &path, s.end, len, keep)?;
    if !zeroed {
        file.set_len(s.end)
            .map_err(|e| Error::io("truncating segment", &path, e))?;
        crate::crashsim::wrote(&file);
    }
    if log_sealed {
        // Frames first: an index entry must never reach the disk before its frames.
        let sync = crate::crashsim::fsync(&file);
        file.sync_all()
            .map_err(|e| Error::io("fsyncing segment", &path, e))?;
        sync.done();
        if !loaded.clean || !s.new_entries.is_empty() {
            index::write_whole(&idx_path, base, &entries)?;
        }
        let seg = Segment::sealed_from(base, path, idx_path, file, published, entries, None)?;
        return Ok((seg, None, floor));
    }
    if !zeroed {
        segment::preallocate(&file, &path, s.end)?;
    }
    if s.stop.is_some() || !s.new_entries.is_empty() {
        // A tail was cut (only ever after a crash, so the cost does not matter): make the cut
        // durable before new records are written over it, so a power loss cannot bring the old
        // bytes back behind them. (Metadata only otherwise, which the file system may write back
        // in any order.) Frames the index lacked (a crash before the flusher wrote their
        // entries): they must be on disk before the entries that skip over them are.
        let sync = crate::crashsim::fsync(&file);
        file.sync_data()
            .map_err(|e| Error::io("fsyncing segment", &path, e))?;
        sync.done();
    }
    let idx_file = if loaded.header_ok {
        index::reopen_for_append(&idx_path, kept_entries, &entries)?
    } else {
        index::open_for_append(&idx_path, base, &entries)?
    };
    let seg = Segment::active_from(base, path, idx_path, file, capacity, published, entries)?;
    Ok((seg, Some(idx_file), floor))
}

/// Opens a sealed segment (not the newest) read-only. `expected_next` is the base offset of the
/// following segment. The index is loaded and its last entry verified; if it is missing or
/// damaged it is rebuilt from the segment (and rewritten, best effort).
pub(crate) fn load_sealed(
    dir: &Path,
    base: u64,
    expected_next: u64,
    interval: u64,
) -> Result<Segment> {
    let (path, idx_path) = Segment::paths(dir, base);
    let file = File::open(&path).map_err(|e| Error::io("opening sealed segment", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", &path, e))?
        .len();
    if len < SEGMENT_HEADER_BYTES as u64 {
        return Err(Error::corrupt(
            &path,
            len,
            "sealed segment shorter than its header",
        ));
    }
    let map = map_read_only(&file, &path)?;
    if segment::check_header(&path, &map, base)? == Header::Missing {
        return Err(Error::corrupt(
            &path,
            0,
            "sealed segment has an all-zero header",
        ));
    }
    let loaded = index::load(&idx_path, base, len)?;
    let mut entries = loaded.entries;
    let clean = loaded.clean && !entries.is_empty();
    let s = if clean {
        let (pos, off, last_pos, arrival) = trust_entries(&map, base, &mut entries);
        let s = scan(&map, pos, off, last_pos, arrival, interval);
        entries.extend_from_slice(&s.new_entries);
        s
    } else {
        entries.clear();
        // The rebuilt entries must not reach the disk before the frames they skip over.
        let sync = crate::crashsim::fsync(&file);
        file.sync_all()
            .map_err(|e| Error::io("fsyncing segment", &path, e))?;
        sync.done();
        let s = scan(
            &map,
            SEGMENT_HEADER_BYTES as u64,
            base,
            None,
            None,
            interval,
        );
        entries.extend_from_slice(&s.new_entries);
        tracing::warn!(path = %idx_path.display(), entries = entries.len(), "index missing or damaged; rebuilt from the segment");
        if let Err(e) = index::write_whole(&idx_path, base, &entries) {
            tracing::warn!(error = %e, "could not rewrite the rebuilt index; it will be rebuilt again next time");
        }
        s
    };
    drop(map);
    let mut damage = s.stop.map(|(at, reason)| (at, reason.to_string()));
    // Zeros after the last frame are fine (a crash between creating the next segment and
    // trimming this one leaves its preallocated tail); a missing record is not.
    if damage.is_none() && s.next_offset != expected_next {
        damage = Some((
            s.end,
            format!(
                "segment ends at offset {} but the next segment starts at offset {expected_next}",
                s.next_offset
            ),
        ));
    }
    if let Some((at, reason)) = &damage {
        tracing::warn!(path = %path.display(), position = at, reason, "sealed segment is damaged; reads reaching it will fail");
    }
    let published = Published {
        end: s.end,
        next_offset: s.next_offset,
        last_arrival: s.last_arrival,
    };
    Segment::sealed_from(base, path, idx_path, file, published, entries, damage)
}

fn read_up_to(file: &File, path: &Path, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("reading segment header", path, e)),
        }
    }
    Ok(n)
}

/// Cuts the log where power loss left a hole: walking back from the newest segment, while the
/// segment before it does not reach the newest one's base offset and looks *torn* (short or
/// zero header, or frames ending in bytes that were never written back), the newer segments
/// are unreachable (a read stops at the hole), so they are deleted and the torn one becomes the
/// newest, whose tail recovery then cuts as usual.
///
/// Why it happens: in `PageCache` mode the kernel writes pages back in any order and the file
/// system may persist a new segment's name before an older one's data, so after a power cut
/// a newer segment can hold records while the one before it lost its last pages. No flush
/// covered those records (a flush round fsyncs every sealed segment before the newer ones'
/// data counts as durable), so nothing acknowledged as durable is dropped. Damage that does
/// not look torn (a bit flip in the middle) is left alone: reads report it as before.
///
/// The walk stops at the first segment whose index holds the seal mark
/// ([`index::seal_mark`]): it and every older segment were fsynced. So a clean open reads one
/// small index file more; after a crash, the segments sealed since the last flush are
/// checked, and the complete ones fsynced and marked. (Logs written before seal marks existed
/// are walked once, the first time they are opened.)
pub(crate) fn cut_unreachable_tail(dir: &Path, bases: &mut Vec<u64>, interval: u64) -> Result<()> {
    let before = bases.len();
    let mut to_mark = Vec::new();
    let mut j = bases.len().saturating_sub(1);
    while j >= 1 {
        let (prev, next) = (bases[j - 1], bases[j]);
        let (path, idx_path) = Segment::paths(dir, prev);
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io("reading metadata of", &path, e))?
            .len();
        if index::has_seal_mark(&idx_path, next, len) {
            break;
        }
        let torn = sealed_is_torn(dir, prev, next, interval)?;
        if torn == Some(true) {
            for &newer in &bases[j..] {
                let (path, idx_path) = Segment::paths(dir, newer);
                tracing::warn!(path = %path.display(), torn = prev, "a segment before this one is torn (power loss): its records are unreachable, deleting it");
                for p in [&path, &idx_path] {
                    match std::fs::remove_file(p) {
                        Ok(()) => crate::crashsim::removed(p),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io("deleting unreachable segment", p, e)),
                    }
                }
            }
            bases.truncate(j);
        } else if torn == Some(false) {
            to_mark.push((prev, path, idx_path, next, len));
        }
        j -= 1;
    }
    if bases.len() < before || !to_mark.is_empty() {
        // The deletions must be durable before new records take those offsets again, and
        // the names of the segments before a seal mark before the mark.
        let _sync = crate::crashsim::fsync_dir(dir);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsyncing directory", dir, e))?;
    }
    // Only segments still followed by their next one: a torn segment found further back
    // deleted the others.
    for (base, path, idx_path, next, len) in to_mark {
        if bases.last().is_some_and(|&newest| base < newest) {
            mark_sealed(&path, &idx_path, next, len)?;
        }
    }
    Ok(())
}

/// Fsyncs a sealed segment found complete, then appends its seal mark to its index (which
/// `sealed_is_torn` left clean: loading rebuilds a damaged one).
fn mark_sealed(path: &Path, idx_path: &Path, next: u64, len: u64) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io("opening sealed segment", path, e))?;
    let sync = crate::crashsim::fsync(&file);
    file.sync_all()
        .map_err(|e| Error::io("fsyncing segment", path, e))?;
    sync.done();
    let marked = OpenOptions::new()
        .append(true)
        .open(idx_path)
        .and_then(|mut f| index::append(&mut f, &mut Vec::new(), &[index::seal_mark(next, len)]));
    if let Err(e) = marked {
        // Only a hint: the next open checks the segment again.
        tracing::warn!(path = %idx_path.display(), error = %e, "could not mark the sealed segment complete");
    }
    Ok(())
}

/// Whether the sealed segment `base` ends before `expected_next` the way an interrupted
/// writeback leaves it (see [`cut_unreachable_tail`]); `None` when it cannot be loaded.
fn sealed_is_torn(
    dir: &Path,
    base: u64,
    expected_next: u64,
    interval: u64,
) -> Result<Option<bool>> {
    let (path, _) = Segment::paths(dir, base);
    let file = File::open(&path).map_err(|e| Error::io("opening sealed segment", &path, e))?;
    let mut hdr = [0u8; SEGMENT_HEADER_BYTES];
    let n = read_up_to(&file, &path, &mut hdr)?;
    if n < SEGMENT_HEADER_BYTES || hdr.iter().all(|&b| b == 0) {
        return Ok(Some(true));
    }
    // Foreign or unreadable files are reported by the read that reaches them, as before.
    let Ok(seg) = load_sealed(dir, base, expected_next, interval) else {
        return Ok(None);
    };
    let Some((at, _)) = seg.damage else {
        return Ok(Some(false));
    };
    drop(seg);
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", &path, e))?
        .len();
    let mut tail = vec![0u8; len.saturating_sub(at) as usize];
    file.read_exact_at(&mut tail, at)
        .map_err(|e| Error::io("reading segment tail", &path, e))?;
    // Sectors are written whole, so unwritten bytes come as zero sectors (the last one cut
    // short by the end of the file).
    let first_sector = (at as usize).next_multiple_of(SECTOR) - at as usize;
    let unwritten_sector = tail
        .get(first_sector..)
        .unwrap_or(&[])
        .chunks(SECTOR)
        .any(|s| s.iter().all(|&b| b == 0));
    // A file that ends inside the frame at `at` lost its last size change: segments grow in
    // steps as they are written, and a power cut can keep an older, shorter length.
    let cut_by_end_of_file = tail.len() >= 4 && {
        let body_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
        body_len.saturating_add(8) > tail.len() as u64
    };
    Ok(Some(
        tail.len() < 4 || tail[..4] == [0; 4] || unwritten_sector || cut_by_end_of_file,
    ))
}

/// Unit of a torn write: a device writes whole sectors.
const SECTOR: usize = 512;
