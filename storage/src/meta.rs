//! [`MetaStore`]: a small crash-safe file for metadata (stream and shard definitions).
//!
//! # Protocol
//!
//! `store` writes the new contents to `<file>.tmp`, fsyncs it, renames it over `<file>`, then
//! fsyncs the directory. `rename` is atomic, so at every instant `<file>` is either the complete
//! old version or the complete new one; after the directory fsync, the new one survives power
//! loss. A leftover `<file>.tmp` (crash before the rename) is ignored and overwritten.
//!
//! # File format
//!
//! | Bytes   | Field   | Encoding | Meaning                               |
//! |---------|---------|----------|---------------------------------------|
//! | 0..4    | magic   | `KBMS`   | identifies a metadata file            |
//! | 4..8    | length  | u32 LE   | payload length                        |
//! | 8..12   | crc     | u32 LE   | CRC-32 of the payload                 |
//! | 12..    | payload | bytes    | opaque to this crate                  |
//!
//! The CRC is belt and braces: the protocol never exposes a torn file, but a damaged disk can,
//! and then `load` reports [`Error::Corrupt`] rather than handing back garbage.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"KBMS";
const HEADER_BYTES: usize = 12;

/// A crash-safe store for one small blob (write temp file, fsync, rename, fsync directory).
///
/// `store` replaces the whole blob; it is meant for kilobytes to a few megabytes written
/// occasionally, not for a high-rate journal. Calls are serialised by an internal mutex, so a
/// `MetaStore` can be shared (`Send + Sync`). All methods block on disk I/O: call them from a
/// blocking context (`spawn_blocking`) in async code.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let meta = storage::MetaStore::open(dir.path().join("streams.meta"))?;
/// assert_eq!(meta.load()?, None);
/// meta.store(b"v1")?;
/// meta.store(b"v2")?;
/// assert_eq!(meta.load()?.as_deref(), Some(&b"v2"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MetaStore {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    lock: Mutex<()>,
}

/// The steps of `store`, for the crash test.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    WriteHalf,
    Write,
    Fsync,
    Rename,
    FsyncDir,
}

impl MetaStore {
    /// Opens (without reading) the store kept in file `path`; creates its directory if absent.
    pub fn open(path: impl AsRef<Path>) -> Result<MetaStore> {
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        crate::log::create_dir_durably(&dir)?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        Ok(MetaStore {
            path,
            tmp: PathBuf::from(tmp),
            dir,
            lock: Mutex::new(()),
        })
    }

    /// The stored blob, or `None` if nothing was ever stored.
    pub fn load(&self) -> Result<Option<Vec<u8>>> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading metadata", &self.path, e)),
        };
        if bytes.len() < HEADER_BYTES || &bytes[0..4] != MAGIC {
            return Err(Error::corrupt(&self.path, 0, "bad metadata header"));
        }
        let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let payload = &bytes[HEADER_BYTES..];
        if payload.len() != len {
            return Err(Error::corrupt(
                &self.path,
                4,
                format!(
                    "length field says {len} bytes, file holds {}",
                    payload.len()
                ),
            ));
        }
        if crc32fast::hash(payload) != crc {
            return Err(Error::corrupt(&self.path, 8, "metadata CRC mismatch"));
        }
        Ok(Some(payload.to_vec()))
    }

    /// Atomically replaces the stored blob; durable when this returns.
    pub fn store(&self, bytes: &[u8]) -> Result<()> {
        self.store_until(bytes, None)
    }

    /// `store`, stopping after `stop` to simulate a crash there (test builds only).
    #[cfg(test)]
    fn crash_after(&self, bytes: &[u8], stop: Step) -> Result<()> {
        self.store_until(bytes, Some(stop))
    }

    #[cfg_attr(not(test), allow(unused_variables))]
    fn store_until(&self, bytes: &[u8], stop: Option<StepArg>) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| Error::FieldTooLong {
            field: "metadata",
            len: bytes.len(),
            max: u32::MAX as usize,
        })?;
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = Vec::with_capacity(HEADER_BYTES + bytes.len());
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
        buf.extend_from_slice(bytes);
        let mut f: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.tmp)
            .map_err(|e| Error::io("creating", &self.tmp, e))?;
        crate::crashsim::created(&self.tmp);
        #[cfg(test)]
        if stop == Some(Step::WriteHalf) {
            return f
                .write_all(&buf[..buf.len() / 2])
                .map_err(|e| Error::io("writing", &self.tmp, e));
        }
        f.write_all(&buf)
            .map_err(|e| Error::io("writing", &self.tmp, e))?;
        crate::crashsim::wrote(&f);
        #[cfg(test)]
        if stop == Some(Step::Write) {
            return Ok(());
        }
        let sync = crate::crashsim::fsync(&f);
        f.sync_all()
            .map_err(|e| Error::io("fsyncing", &self.tmp, e))?;
        sync.done();
        drop(f);
        #[cfg(test)]
        if stop == Some(Step::Fsync) {
            return Ok(());
        }
        fs::rename(&self.tmp, &self.path)
            .map_err(|e| Error::io("renaming into place", &self.path, e))?;
        crate::crashsim::renamed(&self.tmp, &self.path);
        #[cfg(test)]
        if stop == Some(Step::Rename) {
            return Ok(());
        }
        let _sync = crate::crashsim::fsync_dir(&self.dir);
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsyncing directory", &self.dir, e))?;
        Ok(())
    }
}

#[cfg(test)]
type StepArg = Step;
#[cfg(not(test))]
type StepArg = std::convert::Infallible;

#[cfg(test)]
mod tests {
    use super::*;

    /// A crash after any step of `store` must leave the old or the new version, never neither.
    #[test]
    fn meta_crash_between_steps_loses_both_versions() {
        for stop in [
            Step::WriteHalf,
            Step::Write,
            Step::Fsync,
            Step::Rename,
            Step::FsyncDir,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let m = MetaStore::open(dir.path().join("m")).unwrap();
            m.store(b"old version").unwrap();
            m.crash_after(b"new version, longer", stop).unwrap();
            // "Restart": a fresh handle on the same file.
            let m2 = MetaStore::open(dir.path().join("m")).unwrap();
            let got = m2.load().unwrap().unwrap();
            let expected: &[u8] = if stop >= Step::Rename {
                b"new version, longer"
            } else {
                b"old version"
            };
            assert_eq!(got, expected, "crash after {stop:?}");
            // And the next store after the crash works and wins.
            m2.store(b"third").unwrap();
            assert_eq!(m2.load().unwrap().unwrap(), b"third");
        }
    }

    #[test]
    fn meta_first_crash_returns_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let m = MetaStore::open(dir.path().join("m")).unwrap();
        m.crash_after(b"never finished", Step::WriteHalf).unwrap();
        assert_eq!(m.load().unwrap(), None);
    }

    #[test]
    fn meta_damaged_file_is_returned_as_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        let m = MetaStore::open(&p).unwrap();
        m.store(b"hello world").unwrap();
        let mut b = fs::read(&p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(&p, &b).unwrap();
        let e = m.load().unwrap_err().to_string();
        assert!(
            e.contains("CRC") && e.contains(&*p.to_string_lossy()),
            "{e}"
        );
        fs::write(&p, &b[..b.len() - 3]).unwrap();
        assert!(matches!(m.load(), Err(Error::Corrupt { .. })));
    }
}
