//! The sparse index persisted beside each segment (`<base>.idx`).
//!
//! # Index file format (version 1)
//!
//! ```text
//! +----------------------+----------+----------+-----+
//! | header (16 bytes)    | entry 0  | entry 1  | ... |   entries are 24 bytes each
//! +----------------------+----------+----------+-----+
//! ```
//!
//! | Bytes  | Field        | Encoding | Meaning                                  |
//! |--------|--------------|----------|------------------------------------------|
//! | 0..4   | magic        | `KBIX`   | identifies an index file                 |
//! | 4..6   | version      | u16 LE   | 1                                        |
//! | 6..8   | reserved     | u16 LE   | 0                                        |
//! | 8..16  | base offset  | u64 LE   | must match the segment's file name       |
//!
//! Each entry:
//!
//! | Bytes  | Field        | Encoding | Meaning                                        |
//! |--------|--------------|----------|------------------------------------------------|
//! | 0..8   | offset       | u64 LE   | offset of an indexed record                    |
//! | 8..16  | arrival_ms   | i64 LE   | its arrival time                               |
//! | 16..20 | position     | u32 LE   | byte position of its frame in the segment      |
//! | 20..24 | crc          | u32 LE   | CRC-32 of bytes 0..20 of this entry            |
//!
//! Entry 0 is always the segment's first record (at position 16, right after the segment
//! header); after that, a record is indexed when it starts at least
//! [`LogOptions::index_interval_bytes`](crate::LogOptions::index_interval_bytes) after the previous
//! entry. Offsets and positions strictly increase, arrival times never decrease (they are
//! monotonic per log), so both "offset → position" and "time → offset" are binary searches.
//!
//! The index is a *hint*: the segment is the truth. Entries are appended by the log's flusher
//! only after the fsync that covers the frames they point at (an entry on disk never skips over
//! frames a power cut could have lost, so recovery may trust the last one and scan only after
//! it), so after a crash the file may lack entries, end in a torn entry, or (after power loss)
//! be garbage. Loading keeps the longest prefix of entries that pass their CRC and ordering
//! checks; the caller verifies the last one against the segment and scans the rest, or rebuilds
//! the file from the segment when it is missing or wrong.
//!
//! Once a sealed segment is fsynced, its index ends with a *seal mark* (see [`seal_mark`]): an
//! entry-shaped record whose position is the segment's length (where no frame starts) and whose
//! offset is the next segment's base. Recovery's search for holes among the newest segments
//! stops at the first marked one; [`load`] skips the mark.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"KBIX";
const VERSION: u16 = 1;
/// Size of the index file header.
pub(crate) const INDEX_HEADER_BYTES: usize = 16;
/// Size of one index entry.
pub(crate) const ENTRY_BYTES: usize = 24;

/// One index entry: the record at `offset` starts at `position` and arrived at `arrival_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub offset: u64,
    pub arrival_ms: i64,
    pub position: u32,
}

impl IndexEntry {
    pub(crate) fn encode(&self) -> [u8; ENTRY_BYTES] {
        let mut b = [0u8; ENTRY_BYTES];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.arrival_ms.to_le_bytes());
        b[16..20].copy_from_slice(&self.position.to_le_bytes());
        let crc = crc32fast::hash(&b[0..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<IndexEntry> {
        let field = |r: std::ops::Range<usize>| b.get(r);
        let crc = u32::from_le_bytes(field(20..24)?.try_into().ok()?);
        if crc32fast::hash(field(0..20)?) != crc {
            return None;
        }
        Some(IndexEntry {
            offset: u64::from_le_bytes(field(0..8)?.try_into().ok()?),
            arrival_ms: i64::from_le_bytes(field(8..16)?.try_into().ok()?),
            position: u32::from_le_bytes(field(16..20)?.try_into().ok()?),
        })
    }
}

/// The 16-byte header of the index of the segment based at `base`.
pub(crate) fn header(base: u64) -> [u8; INDEX_HEADER_BYTES] {
    let mut h = [0u8; INDEX_HEADER_BYTES];
    h[0..4].copy_from_slice(MAGIC);
    h[4..6].copy_from_slice(&VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&base.to_le_bytes());
    h
}

/// What [`load`] found.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The longest valid prefix of entries.
    pub entries: Vec<IndexEntry>,
    /// False when the file was missing, had a bad header, or had bytes after the valid prefix.
    pub clean: bool,
    /// The file exists and its header is right for this segment: it can be cut and appended to
    /// in place ([`reopen_for_append`]).
    pub header_ok: bool,
}

/// Reads the index at `path` for the segment based at `base` whose file is `segment_len` bytes.
///
/// Never fails on bad contents (it returns the valid prefix and `clean: false`); fails only on
/// I/O errors other than "not found".
pub(crate) fn load(path: &Path, base: u64, segment_len: u64) -> Result<Loaded> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| Error::io("reading index", path, e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Loaded {
                entries: Vec::new(),
                clean: false,
                header_ok: false,
            });
        }
        Err(e) => return Err(Error::io("opening index", path, e)),
    }
    if bytes.len() < INDEX_HEADER_BYTES || bytes[..INDEX_HEADER_BYTES] != header(base) {
        return Ok(Loaded {
            entries: Vec::new(),
            clean: false,
            header_ok: false,
        });
    }
    let body = &bytes[INDEX_HEADER_BYTES..];
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(body.len() / ENTRY_BYTES);
    let mut clean = body.len() % ENTRY_BYTES == 0;
    let chunks = body.len().div_ceil(ENTRY_BYTES);
    for (i, chunk) in body.chunks(ENTRY_BYTES).enumerate() {
        let Some(e) = IndexEntry::decode(chunk) else {
            clean = false;
            break;
        };
        if i + 1 == chunks && u64::from(e.position) == segment_len {
            break; // the seal mark, not an entry
        }
        let ordered = match entries.last() {
            None => e.offset == base && e.position as usize == crate::segment::SEGMENT_HEADER_BYTES,
            Some(p) => {
                e.offset > p.offset && e.position > p.position && e.arrival_ms >= p.arrival_ms
            }
        };
        if !ordered || u64::from(e.position) >= segment_len {
            clean = false;
            break;
        }
        entries.push(e);
    }
    Ok(Loaded {
        entries,
        clean,
        header_ok: true,
    })
}

/// The seal mark: the last "entry" of a sealed segment's index, pointing at the segment's end
/// (where no frame can start) with the offset of the next segment. Appended, and the index
/// fsynced, only after the segment itself was fsynced, so finding it at recovery proves the
/// segment and every older one complete on disk: the search for holes a power cut left
/// among the newest segments stops there. [`load`] skips it.
pub(crate) fn seal_mark(next_offset: u64, end: u64) -> IndexEntry {
    IndexEntry {
        offset: next_offset,
        arrival_ms: i64::MIN,
        // Segment positions fit 32 bits (segment_bytes is capped at u32::MAX).
        position: u32::try_from(end).unwrap_or(u32::MAX),
    }
}

/// Whether the index at `path` ends with the seal mark of a segment `segment_len` bytes long
/// followed by offset `next_offset`.
pub(crate) fn has_seal_mark(path: &Path, next_offset: u64, segment_len: u64) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    let body = bytes.get(INDEX_HEADER_BYTES..).unwrap_or(&[]);
    if body.is_empty() || body.len() % ENTRY_BYTES != 0 {
        return false;
    }
    IndexEntry::decode(&body[body.len() - ENTRY_BYTES..])
        .is_some_and(|e| e == seal_mark(next_offset, segment_len))
}

/// Writes a complete index file (used after a rebuild): temp file, then rename.
/// Not fsynced: the index is a hint and can always be rebuilt.
pub(crate) fn write_whole(path: &Path, base: u64, entries: &[IndexEntry]) -> Result<()> {
    let tmp = path.with_extension("idx.tmp");
    let mut buf = Vec::with_capacity(INDEX_HEADER_BYTES + entries.len() * ENTRY_BYTES);
    buf.extend_from_slice(&header(base));
    for e in entries {
        buf.extend_from_slice(&e.encode());
    }
    fs::write(&tmp, &buf).map_err(|e| Error::io("writing index", &tmp, e))?;
    crate::crashsim::created(&tmp);
    fs::rename(&tmp, path).map_err(|e| Error::io("renaming index into place", path, e))?;
    crate::crashsim::renamed(&tmp, path);
    Ok(())
}

/// Opens the index of the active segment for appending, first cutting it to `keep` entries
/// (recovery may have dropped some) and writing the header if the file is new or bad.
pub(crate) fn open_for_append(path: &Path, base: u64, entries: &[IndexEntry]) -> Result<File> {
    // Rewriting the whole (small) file is simpler than patching it and is bounded by one segment.
    write_whole(path, base, entries)?;
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io("opening index for append", path, e))
}

/// Opens the index of the active segment for appending when its header is known to be right:
/// the file is cut after its first `kept` entries (the ones recovery verified) and
/// `entries[kept..]` (found by the tail scan) appended, in place. Replacing the file instead, as
/// [`open_for_append`] does, frees the old one's blocks at every open, which costs a synchronous
/// discard on file systems mounted with `discard`. A crash in between leaves a valid prefix,
/// which is all the index ever promises.
pub(crate) fn reopen_for_append(path: &Path, kept: usize, entries: &[IndexEntry]) -> Result<File> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io("opening index for append", path, e))?;
    let keep_len = (INDEX_HEADER_BYTES + kept * ENTRY_BYTES) as u64;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of", path, e))?
        .len();
    if len != keep_len {
        file.set_len(keep_len)
            .inspect(|_| crate::crashsim::wrote(&file))
            .map_err(|e| Error::io("cutting index", path, e))?;
    }
    if let Some(new) = entries.get(kept..).filter(|n| !n.is_empty()) {
        append(&mut file, &mut Vec::new(), new).map_err(|e| Error::io("writing index", path, e))?;
    }
    Ok(file)
}

/// Appends entries to the active segment's index with one `write`.
pub(crate) fn append(file: &mut File, buf: &mut Vec<u8>, entries: &[IndexEntry]) -> io::Result<()> {
    buf.clear();
    for e in entries {
        buf.extend_from_slice(&e.encode());
    }
    let written = file.write_all(buf);
    crate::crashsim::wrote(file);
    written
}

/// Index of the entry to start a scan from for `offset`: the last entry with `entry.offset <= offset`.
pub(crate) fn floor_by_offset(entries: &[IndexEntry], offset: u64) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.offset <= offset);
    i.checked_sub(1).map(|i| entries[i])
}

/// The entry to start a scan from for time `t_ms`: the last entry that arrived before `t_ms`
/// (the first record at or after `t_ms` lies after it), or the first entry.
pub(crate) fn floor_by_time(entries: &[IndexEntry], t_ms: i64) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.arrival_ms < t_ms);
    entries.get(i.saturating_sub(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                offset: 10,
                arrival_ms: 5,
                position: crate::segment::SEGMENT_HEADER_BYTES as u32,
            },
            IndexEntry {
                offset: 20,
                arrival_ms: 5,
                position: 5000,
            },
            IndexEntry {
                offset: 30,
                arrival_ms: 9,
                position: 9000,
            },
        ]
    }

    #[test]
    fn index_load_rejects_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.idx");
        write_whole(&p, 10, &entries()).unwrap();
        let l = load(&p, 10, 100_000).unwrap();
        assert!(l.clean);
        assert_eq!(l.entries, entries());
    }

    #[test]
    fn index_load_keeps_entries_after_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.idx");
        write_whole(&p, 10, &entries()).unwrap();
        let mut b = fs::read(&p).unwrap();
        b[INDEX_HEADER_BYTES + ENTRY_BYTES + 3] ^= 1; // damage entry 1
        fs::write(&p, &b).unwrap();
        let l = load(&p, 10, 100_000).unwrap();
        assert!(!l.clean);
        assert_eq!(l.entries, entries()[..1]);
        // Torn last entry.
        write_whole(&p, 10, &entries()).unwrap();
        let b = fs::read(&p).unwrap();
        fs::write(&p, &b[..b.len() - 5]).unwrap();
        let l = load(&p, 10, 100_000).unwrap();
        assert!(!l.clean);
        assert_eq!(l.entries, entries()[..2]);
        // Wrong base offset in the header.
        write_whole(&p, 11, &entries()).unwrap();
        assert!(load(&p, 10, 100_000).unwrap().entries.is_empty());
        // Entry pointing past the segment.
        write_whole(&p, 10, &entries()).unwrap();
        assert_eq!(load(&p, 10, 6000).unwrap().entries.len(), 2);
    }

    #[test]
    fn index_floor_searches_off_by_one() {
        let e = entries();
        assert_eq!(floor_by_offset(&e, 9), None);
        assert_eq!(floor_by_offset(&e, 10).unwrap().offset, 10);
        assert_eq!(floor_by_offset(&e, 29).unwrap().offset, 20);
        assert_eq!(floor_by_offset(&e, 30).unwrap().offset, 30);
        assert_eq!(floor_by_time(&e, 0).unwrap().offset, 10);
        assert_eq!(floor_by_time(&e, 5).unwrap().offset, 10);
        assert_eq!(floor_by_time(&e, 6).unwrap().offset, 20);
        assert_eq!(floor_by_time(&e, 9).unwrap().offset, 20);
        assert_eq!(floor_by_time(&e, 100).unwrap().offset, 30);
    }
}
