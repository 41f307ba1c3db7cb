//! Keeping two owners off one directory.
//!
//! Two kinds of owner must be kept out, at different costs:
//!
//! - **Another `Log` in this process**: [`Claim`], a process-wide set of the log directories
//!   open now. It costs no file descriptor, so it covers every log, sealed ones included.
//! - **Another process**: [`DirLock`], an exclusive `flock` of `<dir>/LOCK`, held through an
//!   open descriptor. A log holds it only while it can still be written (the writer is what
//!   two processes would corrupt); a sealed log gives it back, so a closed shard kept for its
//!   retention period costs no descriptor. What keeps a second process off sealed logs is the
//!   owner's own lock on the directory above them (the broker takes a [`DirLock`] on its data
//!   directory at start).

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::{Error, Result};

/// Name of the lock file in a locked directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long taking a lock or a claim waits for its previous owner before [`Error::Locked`].
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Retries `attempt` with a growing pause until it succeeds or [`LOCK_WAIT`] has passed.
/// `attempt` returns `Ok(None)` for "held by someone else, try again".
fn waiting<T>(dir: &Path, mut attempt: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let mut waited = Duration::ZERO;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(done) = attempt()? {
            return Ok(done);
        }
        if waited >= LOCK_WAIT {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
            });
        }
        std::thread::sleep(pause);
        waited += pause;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// An exclusive `flock` of `<dir>/LOCK`, released when dropped (and by the kernel when the
/// process dies, so a `kill -9` leaves nothing to clean up). Held through one open descriptor.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let lock = storage::DirLock::acquire(dir.path())?;
/// // Another process (or another DirLock in this one) now waits 2 s and gets Error::Locked.
/// drop(lock);
/// let _again = storage::DirLock::acquire(dir.path())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (which must exist), waiting up to 2 s for a previous owner: a process that
    /// forked in the instant the previous owner closed its descriptor keeps a copy of it, and
    /// with it the lock, until it execs (descriptors are `O_CLOEXEC`). Then
    /// [`Error::Locked`] naming `dir`.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        use std::os::fd::AsRawFd;
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("creating lock file", &path, e))?;
        waiting(dir, || {
            loop {
                // SAFETY: plain syscall on a file descriptor that `file` owns for the whole call;
                // no memory is shared with the kernel.
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if rc == 0 {
                    return Ok(Some(()));
                }
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EWOULDBLOCK) => return Ok(None),
                    _ => return Err(Error::io("locking", &path, err)),
                }
            }
        })?;
        Ok(DirLock { _file: file })
    }
}

/// Directories of the logs open in this process (canonical paths).
static CLAIMED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn claimed() -> std::sync::MutexGuard<'static, Option<HashSet<PathBuf>>> {
    // Inserts and removes are single steps: a panic cannot leave the set half-updated.
    CLAIMED.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's claim on a log directory: while it lives, a second [`Claim::take`] of the
/// same directory (by any path that resolves to it) waits, then fails with [`Error::Locked`].
/// Costs no descriptor.
#[derive(Debug)]
pub(crate) struct Claim {
    canonical: PathBuf,
}

impl Claim {
    /// Claims `dir` (which must exist). Waits up to 2 s for a `Log` of it that is being dropped
    /// on another thread.
    pub(crate) fn take(dir: &Path) -> Result<Claim> {
        let canonical =
            fs::canonicalize(dir).map_err(|e| Error::io("resolving log directory", dir, e))?;
        waiting(dir, || {
            let mut set = claimed();
            let set = set.get_or_insert_with(HashSet::new);
            Ok(set.insert(canonical.clone()).then_some(()))
        })?;
        Ok(Claim { canonical })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(set) = claimed().as_mut() {
            set.remove(&self.canonical);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_is_not_released_or_ignores_other_paths() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a");
        fs::create_dir_all(&sub).unwrap();
        let claim = Claim::take(&sub).unwrap();
        // The same directory under another spelling is the same directory.
        let other_spelling = dir.path().join("a/../a");
        match Claim::take(&other_spelling) {
            Err(Error::Locked { path }) => assert_eq!(path, other_spelling),
            other => panic!("expected Locked, got {other:?}"),
        }
        let sibling = dir.path().join("b");
        fs::create_dir_all(&sibling).unwrap();
        let _sibling = Claim::take(&sibling).unwrap();
        drop(claim);
        Claim::take(&sub).unwrap();
    }

    #[test]
    fn dir_lock_is_shared_or_kept_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        match DirLock::acquire(dir.path()) {
            Err(Error::Locked { path }) => assert_eq!(path, dir.path()),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lock);
        DirLock::acquire(dir.path()).unwrap();
    }
}
