//! A small append-only journal of opaque entries, compacted by rewriting it from a
//! snapshot: for state that changes often and must survive a crash, but whose size should
//! follow what is live rather than its history (a reader's in-flight table, say). The
//! crate knows nothing about what the entries mean.
//!
//! On-disk format of one journal file:
//!
//! | bytes         | encoding      | value                                             |
//! |---------------|---------------|---------------------------------------------------|
//! | 0..8          | ASCII         | magic `KBJRNL01` (the trailing `01` is the format version) |
//! | then, per entry:                                                                  |
//! | +0..4         | u32 LE        | payload length `n` (at most [`MAX_ENTRY_BYTES`])   |
//! | +4..8         | u32 LE        | CRC32 (crc32fast) of the payload                   |
//! | +8..8+n       | bytes         | payload                                           |
//!
//! Recovery reads entries from the start and stops at the first one that is incomplete
//! (a torn write: its length runs past the end of the file) or whose CRC does not match
//! (a write cut inside the payload, or damage); the file is truncated there, and the
//! count of bytes cut is reported. An entry is only ever appended after every entry
//! before it, so everything before the first bad entry is exactly what was written.
//!
//! Compaction writes a new file (`<name>.tmp`) holding the caller's snapshot entries,
//! fsyncs it, renames it over the journal and fsyncs the directory: a crash at any point
//! leaves either the old journal or the new one, never a mix. A file with another magic is
//! an error, not something to truncate: it is not ours.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"KBJRNL01";
const ENTRY_HEADER_BYTES: usize = 8;
/// The largest payload one entry may hold: 16 MiB. A length field above it is treated as
/// damage during recovery rather than an allocation request.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024 * 1024;

/// What recovery found when the journal was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Bytes cut from the end of the file (a torn or damaged tail); 0 when clean.
    pub truncated_bytes: u64,
}

/// An open journal: appends go to the end of one file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    sync: bool,
    /// Bumped by each [`Journal::rewrite`]: tickets of an older file are covered by the
    /// snapshot that replaced it.
    generation: u64,
    durable: Arc<Mutex<Durable>>,
    /// The background flush of a journal that does not sync its appends (see
    /// [`Journal::flush_every`]).
    flusher: Option<Flusher>,
}

/// How far the group commit has made the current file durable.
#[derive(Debug)]
struct Durable {
    generation: u64,
    synced_len: u64,
    /// A second handle on the current file, so syncing needs no access to the journal.
    file: File,
    /// fdatasyncs made so far (group commits and background flushes).
    fsyncs: u64,
}

/// Whether appends wait for the background flush, and whether it should stop. Kept apart
/// from [`Durable`], whose lock is held across an fsync: an append only ever takes this one,
/// so it never waits for the disk.
#[derive(Debug, Default)]
struct FlushSignal {
    state: Mutex<FlushState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct FlushState {
    dirty: bool,
    stop: bool,
}

/// The thread that fdatasyncs a page-cache journal at most `interval` after an append.
#[derive(Debug)]
struct Flusher {
    signal: Arc<FlushSignal>,
    thread: Option<JoinHandle<()>>,
}

impl FlushSignal {
    fn mark_dirty(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !s.dirty {
            s.dirty = true;
            self.wake.notify_one();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        {
            let mut s = self.signal.state.lock().unwrap_or_else(|e| e.into_inner());
            s.stop = true;
            self.signal.wake.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The flusher's loop: idle (no wake-up at all) until an append marks the journal dirty,
/// then one fdatasync `interval` later, covering every append made until it starts. On
/// stop, what is still dirty is flushed once more, so a clean shutdown loses nothing.
fn run_flusher(signal: Arc<FlushSignal>, syncer: JournalSyncer, interval: Duration) {
    loop {
        let mut s = signal.state.lock().unwrap_or_else(|e| e.into_inner());
        while !s.dirty && !s.stop {
            s = signal.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if !s.stop {
            // Let appends accumulate for one interval (group commit); a stop cuts it short.
            let (guard, _) = signal
                .wake
                .wait_timeout_while(s, interval, |s| !s.stop)
                .unwrap_or_else(|e| e.into_inner());
            s = guard;
        }
        let stop = s.stop;
        let dirty = std::mem::take(&mut s.dirty);
        drop(s);
        if dirty && let Err(e) = syncer.flush() {
            // The next append retries; nothing waits on this flush, so it can only be logged.
            tracing::warn!(path = %syncer.path.display(), error = %e, "journal: background flush failed");
        }
        if stop {
            return;
        }
    }
}

/// Names the end of an append made by [`Journal::append_deferred`]; hand it to
/// [`JournalSyncer::sync`] to wait until the entries are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTicket {
    generation: u64,
    len: u64,
}

/// Group commit for a journal: makes appended entries durable without holding whatever
/// lock guards the journal, and one fsync serves every ticket issued before it started.
///
/// What a waiter is promised when [`JournalSyncer::sync`] returns `Ok`: every entry
/// appended up to its ticket is on disk (fdatasync), or was replaced by a snapshot that was
/// fsynced before it was renamed into place.
#[derive(Debug, Clone)]
pub struct JournalSyncer {
    path: PathBuf,
    durable: Arc<Mutex<Durable>>,
}

impl JournalSyncer {
    /// Blocks until the entries of `ticket` are durable (one fdatasync at most).
    pub fn sync(&self, ticket: SyncTicket) -> Result<()> {
        let mut d = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        if d.generation > ticket.generation || d.synced_len >= ticket.len {
            return Ok(());
        }
        // Everything written to the file so far is in the page cache, and the ticket's
        // bytes are among it: the length read before the fsync is covered by it.
        let target = d
            .file
            .metadata()
            .map_err(|e| Error::io("reading journal length", &self.path, e))?
            .len();
        let sync = crate::crashsim::fsync(&d.file);
        d.file
            .sync_data()
            .map_err(|e| Error::io("fsyncing journal", &self.path, e))?;
        sync.done();
        d.fsyncs += 1;
        d.synced_len = d.synced_len.max(target);
        Ok(())
    }

    /// Makes everything appended so far durable (one fdatasync unless already covered).
    fn flush(&self) -> Result<()> {
        let ticket = {
            let d = self.durable.lock().unwrap_or_else(|e| e.into_inner());
            let len = d
                .file
                .metadata()
                .map_err(|e| Error::io("reading journal length", &self.path, e))?
                .len();
            SyncTicket {
                generation: d.generation,
                len,
            }
        };
        self.sync(ticket)
    }

    /// How many fdatasyncs this journal's group commit and background flush have made.
    pub fn fsync_count(&self) -> u64 {
        self.durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fsyncs
    }

    /// Whether every byte appended to the current file is on disk.
    pub fn all_durable(&self) -> Result<bool> {
        let d = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        let len = d
            .file
            .metadata()
            .map_err(|e| Error::io("reading journal length", &self.path, e))?
            .len();
        Ok(d.synced_len >= len)
    }
}

pub(crate) fn encode_into(buf: &mut Vec<u8>, payload: &[u8]) -> Result<()> {
    if payload.is_empty() {
        // Its header would be all zeros, which recovery reads as the end of the journal.
        return Err(Error::EmptyEntry);
    }
    if payload.len() > MAX_ENTRY_BYTES {
        return Err(Error::FieldTooLong {
            field: "journal entry",
            len: payload.len(),
            max: MAX_ENTRY_BYTES,
        });
    }
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(())
}

/// Splits `bytes` (after the magic) into entries; returns them and the length of the valid
/// prefix.
pub(crate) fn decode_entries(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while let Some(header) = bytes.get(pos..pos + ENTRY_HEADER_BYTES) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // Zero length: bytes that were never written (a power cut kept the file's new size
        // but not its data). They would pass as an empty entry, whose CRC is 0 too; appends
        // refuse empty entries so that zeros always end the journal.
        if len == 0 || len > MAX_ENTRY_BYTES {
            break;
        }
        let start = pos + ENTRY_HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        entries.push(payload.to_vec());
        pos = start + len;
    }
    (entries, pos)
}

impl Journal {
    /// Opens (or creates) the journal in file `path`, recovers it, and returns it with its
    /// entries in the order they were appended. `sync`: every append and compaction is
    /// fsynced before it returns (otherwise it is in the page cache, which survives a
    /// process crash but not a power loss).
    pub fn open(path: impl AsRef<Path>, sync: bool) -> Result<(Journal, Vec<Vec<u8>>, Recovered)> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::log::create_dir_durably(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening journal", &path, e))?;
        crate::crashsim::created(&path);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading journal", &path, e))?;
        let mut recovered = Recovered::default();
        // All zeros: created, but a power cut kept its size and not its first bytes.
        let never_written = bytes.iter().all(|&b| b == 0);
        let (entries, valid_len) = if bytes.len() < MAGIC.len() || never_written {
            // Empty, or cut before its magic was complete: nothing was ever appended.
            if !MAGIC.starts_with(&bytes) && !never_written {
                return Err(Error::corrupt(&path, 0, "not a journal (bad magic)"));
            }
            recovered.truncated_bytes = bytes.len() as u64;
            file.set_len(0)
                .and_then(|_| file.seek(SeekFrom::Start(0)).map(|_| ()))
                .and_then(|_| file.write_all(MAGIC))
                .inspect(|_| crate::crashsim::wrote(&file))
                .and_then(|_| sync_file(&file))
                .map_err(|e| Error::io("initialising journal", &path, e))?;
            // Even when appends are not synced: a later fdatasync (a `JournalSyncer`, the
            // background flush) makes entries durable only if the file's name is, and the
            // crash test lost whole journals, acknowledged entries and all, without this.
            sync_dir(&path)?;
            (Vec::new(), MAGIC.len())
        } else {
            if &bytes[..MAGIC.len()] != MAGIC {
                return Err(Error::corrupt(&path, 0, "not a journal (bad magic)"));
            }
            let (entries, valid) = decode_entries(&bytes[MAGIC.len()..]);
            let valid_len = MAGIC.len() + valid;
            if valid_len < bytes.len() {
                recovered.truncated_bytes = (bytes.len() - valid_len) as u64;
                tracing::warn!(
                    path = %path.display(),
                    at = valid_len,
                    cut = recovered.truncated_bytes,
                    "journal: torn or damaged tail truncated"
                );
                file.set_len(valid_len as u64)
                    .inspect(|_| crate::crashsim::wrote(&file))
                    .and_then(|_| if sync { sync_file(&file) } else { Ok(()) })
                    .map_err(|e| Error::io("truncating journal", &path, e))?;
            }
            (entries, valid_len)
        };
        file.seek(SeekFrom::Start(valid_len as u64))
            .map_err(|e| Error::io("seeking journal", &path, e))?;
        let durable = Arc::new(Mutex::new(Durable {
            generation: 0,
            // What recovery read may only be in the page cache (a process crash keeps it):
            // the first sync covers it.
            synced_len: 0,
            file: file
                .try_clone()
                .map_err(|e| Error::io("duplicating journal handle", &path, e))?,
            fsyncs: 0,
        }));
        Ok((
            Journal {
                path,
                file,
                len: valid_len as u64,
                sync,
                generation: 0,
                durable,
                flusher: None,
            },
            entries,
            recovered,
        ))
    }

    /// Appends entries with one write (and one fsync when syncing); durable on return.
    /// On error the journal may hold a torn tail, which the next open cuts.
    pub fn append<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<()> {
        self.append_with(payloads, self.sync)
    }

    /// Appends entries with one write and no fsync, whatever the journal's setting: they
    /// survive a process crash (they are in the page cache) but not a power loss, until a
    /// later [`Journal::append`] (which fsyncs everything before it) or compaction. For
    /// entries whose loss in a power cut is tolerable.
    pub fn append_unsynced<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<()> {
        self.append_with(payloads, false)
    }

    /// Appends entries with one write and no fsync, and returns the ticket that
    /// [`JournalSyncer::sync`] makes durable: the caller can release its own lock before
    /// waiting, so concurrent writers share one fsync (group commit).
    pub fn append_deferred<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<SyncTicket> {
        self.append_with(payloads, false)?;
        Ok(SyncTicket {
            generation: self.generation,
            len: self.len,
        })
    }

    /// The group-commit handle of this journal (valid across rewrites).
    pub fn syncer(&self) -> JournalSyncer {
        JournalSyncer {
            path: self.path.clone(),
            durable: self.durable.clone(),
        }
    }

    /// For a journal that does not sync its appends: from now on a background thread
    /// fdatasyncs it at most `interval` after an append (plus the fsync's own time), which
    /// bounds what a power loss can take, as the page-cache mode of the segment logs does.
    /// Appends never wait for it; an idle journal costs no wake-ups. The thread stops (after
    /// a last flush) when the journal is dropped. Calling it again replaces the interval.
    pub fn flush_every(&mut self, interval: Duration) -> Result<()> {
        self.flusher = None;
        let signal = Arc::new(FlushSignal::default());
        let syncer = self.syncer();
        let thread_signal = signal.clone();
        let thread = std::thread::Builder::new()
            .name("journal-flush".into())
            .spawn(move || run_flusher(thread_signal, syncer, interval))
            .map_err(|e| Error::io("starting journal flusher", &self.path, e))?;
        // Whatever was appended before (or recovered into the page cache) is flushed too.
        signal.mark_dirty();
        self.flusher = Some(Flusher {
            signal,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Whether appends are fsynced (the `sync` given to [`Journal::open`]).
    pub fn syncs(&self) -> bool {
        self.sync
    }

    fn append_with<P: AsRef<[u8]>>(&mut self, payloads: &[P], sync: bool) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(
            payloads
                .iter()
                .map(|p| p.as_ref().len() + ENTRY_HEADER_BYTES)
                .sum(),
        );
        for p in payloads {
            encode_into(&mut buf, p.as_ref())?;
        }
        let written = self.file.write_all(&buf);
        crate::crashsim::wrote(&self.file);
        written.map_err(|e| Error::io("appending to journal", &self.path, e))?;
        if sync {
            let _sync = crate::crashsim::fsync(&self.file);
            self.file
                .sync_data()
                .map_err(|e| Error::io("fsyncing journal", &self.path, e))?;
        }
        self.len += buf.len() as u64;
        if !sync && let Some(f) = &self.flusher {
            f.signal.mark_dirty();
        }
        Ok(())
    }

    /// Replaces the whole journal with `snapshot` (compaction), atomically.
    pub fn rewrite<P: AsRef<[u8]>>(&mut self, snapshot: &[P]) -> Result<()> {
        let mut buf = Vec::from(&MAGIC[..]);
        for p in snapshot {
            encode_into(&mut buf, p.as_ref())?;
        }
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write = || -> io::Result<File> {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            crate::crashsim::created(&tmp);
            f.write_all(&buf)?;
            crate::crashsim::wrote(&f);
            // Always synced: the rename must never publish a file whose bytes are not on disk.
            sync_file(&f)?;
            Ok(f)
        };
        let mut file = write().map_err(|e| Error::io("writing journal snapshot", &tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| Error::io("renaming journal", &tmp, e))?;
        crate::crashsim::renamed(&tmp, &self.path);
        sync_dir(&self.path)?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io("seeking journal", &self.path, e))?;
        let clone = file
            .try_clone()
            .map_err(|e| Error::io("duplicating journal handle", &self.path, e))?;
        self.file = file;
        self.len = buf.len() as u64;
        self.generation += 1;
        // The snapshot is on disk: every ticket of the old file is covered by it.
        let mut d = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        let fsyncs = d.fsyncs;
        *d = Durable {
            generation: self.generation,
            synced_len: self.len,
            file: clone,
            fsyncs,
        };
        Ok(())
    }

    /// The journal's size in bytes (to decide when to compact).
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// Removes a journal file (its owner is gone); absent is fine.
    pub fn remove(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match fs::remove_file(path) {
            Ok(()) => {
                crate::crashsim::removed(path);
                sync_dir(path)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing journal", path, e)),
        }
    }
}

fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let _sync = crate::crashsim::fsync_dir(&dir);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsyncing directory", &dir, e))
}

/// `fsync` of a whole file (data and metadata).
fn sync_file(file: &File) -> io::Result<()> {
    let _sync = crate::crashsim::fsync(file);
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path) -> (Journal, Vec<Vec<u8>>, Recovered) {
        Journal::open(path, true).unwrap()
    }

    #[test]
    fn entries_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, entries, _) = open(&path);
        assert!(entries.is_empty());
        j.append(&[b"one".as_slice(), b"two"]).unwrap();
        j.append(&[b"three"]).unwrap();
        drop(j);
        let (_, entries, rec) = open(&path);
        assert_eq!(
            entries,
            [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(rec.truncated_bytes, 0);
    }

    #[test]
    fn golden_bytes_of_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        j.append(&[b"ab"]).unwrap();
        let bytes = fs::read(&path).unwrap();
        let crc = crc32fast::hash(b"ab").to_le_bytes();
        let mut expected = b"KBJRNL01".to_vec();
        expected.extend_from_slice(&[2, 0, 0, 0]);
        expected.extend_from_slice(&crc);
        expected.extend_from_slice(b"ab");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn recover_truncates_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        j.append(&[b"kept"]).unwrap();
        j.append(&[b"torn entry"]).unwrap();
        drop(j);
        let full = fs::metadata(&path).unwrap().len();
        // Cut inside the second entry's payload, as a crash mid-write would.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 3)
            .unwrap();
        let (mut j, entries, rec) = open(&path);
        assert_eq!(entries, [b"kept".to_vec()]);
        assert_eq!(rec.truncated_bytes, (8 + 10 - 3) as u64);
        // Appends continue after the cut, and the next open sees them.
        j.append(&[b"after"]).unwrap();
        drop(j);
        let (_, entries, rec) = open(&path);
        assert_eq!(entries, [b"kept".to_vec(), b"after".to_vec()]);
        assert_eq!(rec.truncated_bytes, 0);
    }

    #[test]
    fn recover_truncates_torn_entry_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        j.append(&[b"kept"]).unwrap();
        drop(j);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[5, 0, 0]).unwrap();
        drop(f);
        let (_, entries, rec) = open(&path);
        assert_eq!(entries, [b"kept".to_vec()]);
        assert_eq!(rec.truncated_bytes, 3);
    }

    #[test]
    fn recover_stops_at_first_bad_crc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        j.append(&[b"first"]).unwrap();
        j.append(&[b"second"]).unwrap();
        j.append(&[b"third"]).unwrap();
        drop(j);
        let mut bytes = fs::read(&path).unwrap();
        // Flip one bit of the second entry's payload.
        let second_payload = 8 + (8 + 5) + 8;
        bytes[second_payload] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let (_, entries, rec) = open(&path);
        assert_eq!(entries, [b"first".to_vec()]);
        assert_eq!(rec.truncated_bytes, (8 + 6 + 8 + 5) as u64);
    }

    #[test]
    fn impossible_length_is_treated_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut bytes = b"KBJRNL01".to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        fs::write(&path, &bytes).unwrap();
        let (_, entries, rec) = open(&path);
        assert!(entries.is_empty());
        assert_eq!(rec.truncated_bytes, 8);
    }

    #[test]
    fn file_with_another_magic_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        fs::write(&path, b"SOMETHING ELSE").unwrap();
        assert!(matches!(
            Journal::open(&path, true),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn rewrite_replaces_history_with_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        for i in 0..100u32 {
            j.append(&[i.to_le_bytes()]).unwrap();
        }
        let before = j.len_bytes();
        j.rewrite(&[b"snapshot"]).unwrap();
        assert!(j.len_bytes() < before);
        j.append(&[b"later"]).unwrap();
        j.append_unsynced(&[b"unsynced"]).unwrap();
        drop(j);
        let (_, entries, _) = open(&path);
        assert_eq!(
            entries,
            [
                b"snapshot".to_vec(),
                b"later".to_vec(),
                b"unsynced".to_vec()
            ]
        );
        assert!(!dir.path().join("j.tmp").exists());
    }

    #[test]
    fn deferred_append_is_covered_by_one_sync_for_every_earlier_ticket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        let syncer = j.syncer();
        let first = j.append_deferred(&[b"one"]).unwrap();
        let second = j.append_deferred(&[b"two"]).unwrap();
        syncer.sync(second).unwrap();
        {
            let d = j.durable.lock().unwrap();
            assert_eq!(d.synced_len, j.len_bytes());
        }
        // Already covered: no second fsync needed, and it returns at once.
        syncer.sync(first).unwrap();
        drop(j);
        let (_, entries, _) = open(&path);
        assert_eq!(entries, [b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn rewrite_covers_tickets_of_the_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        let syncer = j.syncer();
        let old = j.append_deferred(&[b"old entry"]).unwrap();
        j.rewrite(&[b"snapshot"]).unwrap();
        syncer.sync(old).unwrap();
        // The syncer follows the new file.
        let new = j.append_deferred(&[b"after"]).unwrap();
        syncer.sync(new).unwrap();
        assert_eq!(j.durable.lock().unwrap().synced_len, j.len_bytes());
        drop(j);
        let (_, entries, _) = open(&path);
        assert_eq!(entries, [b"snapshot".to_vec(), b"after".to_vec()]);
    }

    /// Polls `cond` for up to 5 s (bounded: a broken flusher fails instead of hanging).
    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        cond()
    }

    #[test]
    fn page_cache_journal_is_flushed_in_the_background_after_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = Journal::open(&path, false).unwrap();
        let syncer = j.syncer();
        j.flush_every(Duration::from_millis(10)).unwrap();
        // The recovered file (its magic) is flushed once; then the flusher is idle.
        assert!(eventually(|| syncer.all_durable().unwrap()));
        let base = syncer.fsync_count();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(syncer.fsync_count(), base, "an idle journal is not flushed");
        // Appends return without an fsync; the flusher makes them durable shortly after.
        j.append(&[b"one"]).unwrap();
        j.append_unsynced(&[b"two"]).unwrap();
        assert!(eventually(|| syncer.all_durable().unwrap()));
        assert!(syncer.fsync_count() > base);
        // Many appends within one interval share few fsyncs (group commit).
        let before = syncer.fsync_count();
        for i in 0..200u32 {
            j.append(&[i.to_le_bytes()]).unwrap();
        }
        assert!(eventually(|| syncer.all_durable().unwrap()));
        assert!(syncer.fsync_count() - before < 50);
        // After a rewrite the flusher follows the new file.
        j.rewrite(&[b"snapshot"]).unwrap();
        j.append(&[b"after"]).unwrap();
        assert!(eventually(|| syncer.all_durable().unwrap()));
    }

    #[test]
    fn page_cache_journal_without_flusher_stays_unsynced_and_drop_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = Journal::open(&path, false).unwrap();
        let syncer = j.syncer();
        j.append(&[b"one"]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        // No flusher: nothing makes the append durable (what the queues lacked).
        assert!(!syncer.all_durable().unwrap());
        assert_eq!(syncer.fsync_count(), 0);
        // A long interval: only the stop on drop flushes, promptly.
        j.flush_every(Duration::from_secs(3600)).unwrap();
        let started = std::time::Instant::now();
        drop(j);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(syncer.all_durable().unwrap());
        assert_eq!(syncer.fsync_count(), 1);
    }

    #[test]
    fn crash_before_rename_keeps_old_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, _, _) = open(&path);
        j.append(&[b"old"]).unwrap();
        drop(j);
        // A compaction that died after writing its temporary file, before the rename.
        fs::write(dir.path().join("j.tmp"), b"KBJRNL01garbage").unwrap();
        let (_, entries, _) = open(&path);
        assert_eq!(entries, [b"old".to_vec()]);
    }
}
