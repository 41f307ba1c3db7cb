//! The test-build side of the hooks: records what the code under test did to the files below
//! one root directory, in the order it happened.
//!
//! Files are named by a `uid` the recorder hands out when a file is created, not by inode
//! number: the file system reuses the inode of a deleted segment, and a crash state may still
//! hold the deleted file under its old name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Something the workload promised (or started) at a point of the event stream; the checker
/// derives what a crash state after that point must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Offsets below this were acknowledged as durable (`wait_durable` or `sync` returned).
    LogAcked(u64),
    /// The log's flusher completed a round covering offsets below this.
    LogFlushed(u64),
    /// `drop_older_than(t)` is about to run: records older than `t` may vanish from the front.
    RetentionStarted(i64),
    /// The journal's generation `generation` holds at least `entries` appended entries durably.
    JournalDurable {
        generation: usize,
        entries: usize,
    },
    /// `MetaStore::store` of version `i` is about to run / has returned.
    MetaStarted(usize),
    MetaStored(usize),
}

/// One recorded step, in the order the code under test made it.
#[derive(Debug, Clone)]
pub enum Event {
    /// File `uid` now holds `bytes` in the page cache.
    Content {
        uid: u64,
        bytes: Arc<[u8]>,
    },
    /// Entry `name` of directory `dir` (relative to the root) now names `uid`, or nothing.
    Link {
        dir: PathBuf,
        name: OsString,
        uid: Option<u64>,
    },
    /// An fsync of `uid` returned; `bytes` is the content when it started (event `since`).
    FileSync {
        uid: u64,
        bytes: Arc<[u8]>,
        since: usize,
    },
    /// An fsync of `dir` returned; `listing` is its entries when it started (event `since`).
    DirSync {
        dir: PathBuf,
        listing: BTreeMap<OsString, u64>,
        since: usize,
    },
    Note(Note),
}

/// What a directory entry names when it names a directory (directories have no content).
pub const DIRECTORY: u64 = u64::MAX;

struct Rec {
    root: PathBuf,
    next_uid: u64,
    by_ino: HashMap<(u64, u64), u64>,
    listing: HashMap<PathBuf, BTreeMap<OsString, u64>>,
    events: Vec<Event>,
    /// Directories (relative to the root) known to exist: those present when the recording
    /// started count as durable; one created later is an entry of its parent like a file,
    /// which a power cut can lose until the parent is fsynced.
    dirs: HashSet<PathBuf>,
}

/// Every directory under `root`, relative to it, `root` itself as the empty path.
fn existing_dirs(root: &Path) -> HashSet<PathBuf> {
    let mut found = HashSet::from([PathBuf::new()]);
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.insert(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
                todo.push(path);
            }
        }
    }
    found
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static REC: Mutex<Option<Rec>> = Mutex::new(None);
/// One recording at a time: tests that record run one after the other.
static SESSION: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_rec(f: impl FnOnce(&mut Rec)) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    if let Some(r) = lock(&REC).as_mut() {
        f(r)
    }
}

/// Records everything the hooks report about files under `root` until [`Recording::finish`].
pub struct Recording {
    _session: MutexGuard<'static, ()>,
}

impl Recording {
    /// `root` must be canonical (the hooks compare path prefixes) and empty.
    pub fn start(root: &Path) -> Recording {
        let session = lock(&SESSION);
        *lock(&REC) = Some(Rec {
            root: root.to_path_buf(),
            next_uid: 0,
            by_ino: HashMap::new(),
            listing: HashMap::new(),
            events: Vec::new(),
            dirs: existing_dirs(root),
        });
        ACTIVE.store(true, Ordering::Release);
        Recording { _session: session }
    }

    /// [`Recording::start`] on a root that already holds files (a crash state to recover):
    /// they and their directories' entries start out durable. Also returns how many events
    /// describe that initial state (a crash cannot happen among them).
    pub fn start_on_existing(root: &Path) -> (Recording, usize) {
        let recording = Recording::start(root);
        with_rec(|r| {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for dir in dirs {
                let rel = dir.strip_prefix(root).unwrap_or(&dir).to_path_buf();
                let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect();
                names.sort();
                for path in names {
                    let (Ok(meta), Ok(bytes), Some(name)) = (
                        std::fs::metadata(&path),
                        std::fs::read(&path),
                        path.file_name(),
                    ) else {
                        continue;
                    };
                    r.next_uid += 1;
                    let uid = r.next_uid;
                    r.by_ino.insert((meta.dev(), meta.ino()), uid);
                    r.link(rel.clone(), name.to_owned(), Some(uid));
                    let bytes: Arc<[u8]> = bytes.into();
                    r.events.push(Event::Content {
                        uid,
                        bytes: bytes.clone(),
                    });
                    let since = r.events.len();
                    r.events.push(Event::FileSync { uid, bytes, since });
                }
                let listing = r.listing.get(&rel).cloned().unwrap_or_default();
                let since = r.events.len();
                r.events.push(Event::DirSync {
                    dir: rel,
                    listing,
                    since,
                });
            }
        });
        let initial = lock(&REC).as_ref().map_or(0, |r| r.events.len());
        (recording, initial)
    }

    pub fn finish(self) -> Vec<Event> {
        ACTIVE.store(false, Ordering::Release);
        lock(&REC).take().map(|r| r.events).unwrap_or_default()
    }
}

/// How many events the recording holds so far (0 when none runs). Something the workload saw
/// acknowledged once this returned `p` must be found in every crash state at a point `>= p`:
/// whatever made it durable was recorded before.
#[cfg_attr(not(feature = "crash-sim"), allow(dead_code))]
pub fn position() -> usize {
    if !ACTIVE.load(Ordering::Acquire) {
        return 0;
    }
    lock(&REC).as_ref().map_or(0, |r| r.events.len())
}

/// Adds a note from the workload at this point of the stream.
pub fn note(n: Note) {
    with_rec(|r| r.events.push(Event::Note(n)));
}

fn read_fd(file: &File) -> Option<Arc<[u8]>> {
    // Through /proc so write-only and unlinked files can be read too.
    let mut f = File::open(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let mut v = Vec::new();
    f.read_to_end(&mut v).ok()?;
    Some(v.into())
}

impl Rec {
    fn split(&self, path: &Path) -> Option<(PathBuf, OsString)> {
        let rel = path.strip_prefix(&self.root).ok()?;
        Some((rel.parent()?.to_path_buf(), rel.file_name()?.to_owned()))
    }

    fn uid_of(&self, file: &File) -> Option<u64> {
        let m = file.metadata().ok()?;
        self.by_ino.get(&(m.dev(), m.ino())).copied()
    }

    /// `dir` and its ancestors exist: those not known yet were created since the last look
    /// and become entries of their parents (the code under test creates directories without
    /// telling the hooks: `create_dir_all`).
    fn note_dirs(&mut self, dir: &Path) {
        let mut path = PathBuf::new();
        for part in dir.components() {
            let parent = path.clone();
            path.push(part);
            if self.dirs.insert(path.clone()) {
                self.link(parent, part.as_os_str().to_owned(), Some(DIRECTORY));
            }
        }
    }

    /// Subdirectories of `dir` (relative) that exist now, before its fsync captures its entries.
    fn note_subdirs(&mut self, dir: &Path) {
        let subdirs: Vec<PathBuf> = std::fs::read_dir(self.root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| dir.join(e.file_name()))
            .collect();
        for sub in subdirs {
            self.note_dirs(&sub);
        }
    }

    fn link(&mut self, dir: PathBuf, name: OsString, uid: Option<u64>) {
        self.note_dirs(&dir);
        let l = self.listing.entry(dir.clone()).or_default();
        let old = match uid {
            Some(u) => l.insert(name.clone(), u),
            None => l.remove(&name),
        };
        self.events.push(Event::Link { dir, name, uid });
        if let Some(old) = old.filter(|o| Some(*o) != uid) {
            let still_named = self.listing.values().any(|l| l.values().any(|u| *u == old));
            if !still_named {
                self.by_ino.retain(|_, u| *u != old);
            }
        }
    }
}

pub(crate) fn created(path: &Path) {
    with_rec(|r| {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let key = (meta.dev(), meta.ino());
        let Some((dir, name)) = r.split(path) else {
            // Someone else's file took the inode of one of ours that was deleted.
            r.by_ino.remove(&key);
            return;
        };
        let current = r.listing.get(&dir).and_then(|l| l.get(&name)).copied();
        let uid = match (r.by_ino.get(&key), current) {
            (Some(&u), Some(c)) if u == c => u,
            _ => {
                r.next_uid += 1;
                r.next_uid
            }
        };
        r.by_ino.insert(key, uid);
        if current != Some(uid) {
            r.link(dir, name, Some(uid));
        }
        if let Ok(bytes) = std::fs::read(path) {
            r.events.push(Event::Content {
                uid,
                bytes: bytes.into(),
            });
        }
    });
}

pub(crate) fn wrote(file: &File) {
    with_rec(|r| {
        let Some(uid) = r.uid_of(file) else { return };
        if let Some(bytes) = read_fd(file) {
            r.events.push(Event::Content { uid, bytes });
        }
    });
}

pub(crate) fn renamed(from: &Path, to: &Path) {
    with_rec(|r| {
        let (Some((fd, fname)), Some((td, tname))) = (r.split(from), r.split(to)) else {
            return;
        };
        let uid = r.listing.get(&fd).and_then(|l| l.get(&fname)).copied();
        // The new name first: the file stays known while it is named somewhere.
        if uid.is_some() {
            r.link(td, tname, uid);
        }
        r.link(fd, fname, None);
    });
}

pub(crate) fn removed(path: &Path) {
    with_rec(|r| {
        if let Some((dir, name)) = r.split(path)
            && r.listing.get(&dir).is_some_and(|l| l.contains_key(&name))
        {
            r.link(dir, name, None);
        }
    });
}

enum Pending {
    File {
        uid: u64,
        bytes: Arc<[u8]>,
        since: usize,
    },
    Dir {
        dir: PathBuf,
        listing: BTreeMap<OsString, u64>,
        since: usize,
    },
}

/// Held across an fsync: what it covers is captured when it is made, and counts as durable
/// once it is dropped (after the fsync returned).
#[must_use]
pub(crate) struct SyncGuard(Option<Pending>);

impl SyncGuard {
    /// The fsync returned.
    pub(crate) fn done(self) {}
}

impl Drop for SyncGuard {
    fn drop(&mut self) {
        let Some(p) = self.0.take() else { return };
        with_rec(|r| {
            r.events.push(match p {
                Pending::File { uid, bytes, since } => Event::FileSync { uid, bytes, since },
                Pending::Dir {
                    dir,
                    listing,
                    since,
                } => Event::DirSync {
                    dir,
                    listing,
                    since,
                },
            })
        });
    }
}

pub(crate) fn fsync(file: &File) -> SyncGuard {
    let mut pending = None;
    with_rec(|r| {
        let Some(uid) = r.uid_of(file) else { return };
        if let Some(bytes) = read_fd(file) {
            pending = Some(Pending::File {
                uid,
                bytes,
                since: r.events.len(),
            });
        }
    });
    SyncGuard(pending)
}

pub(crate) fn fsync_dir(dir: &Path) -> SyncGuard {
    let mut pending = None;
    with_rec(|r| {
        let Ok(rel) = dir.strip_prefix(&r.root) else {
            return;
        };
        let rel = rel.to_path_buf();
        r.note_subdirs(&rel);
        let listing = r.listing.get(&rel).cloned().unwrap_or_default();
        pending = Some(Pending::Dir {
            dir: rel,
            listing,
            since: r.events.len(),
        });
    });
    SyncGuard(pending)
}

/// The log in `dir` completed a flush round covering offsets below `durable`.
pub(crate) fn flushed(dir: &Path, durable: u64) {
    with_rec(|r| {
        if dir.starts_with(&r.root) {
            r.events.push(Event::Note(Note::LogFlushed(durable)));
        }
    });
}
