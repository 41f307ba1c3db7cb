//! The crash-state builder: from a recording's events, the disk states a power cut at a point
//! could leave (see `tests.rs` for the rules), written out as a directory tree.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::recorder::{DIRECTORY, Event};

/// The unit of writeback: each page of a file is, after a crash, one of its versions.
pub const PAGE: usize = 4096;
/// The unit of atomic writes: a torn page is torn at a sector boundary.
pub const SECTOR: usize = 512;

/// splitmix64: small, seedable, good enough to pick crash states.
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
}

#[derive(Default)]
struct FileModel {
    durable: Arc<[u8]>,
    /// Contents the page cache held since the last fsync, with the event that recorded them.
    versions: Vec<(usize, Arc<[u8]>)>,
}

#[derive(Default)]
struct NameModel {
    durable: Option<u64>,
    history: Vec<(usize, Option<u64>)>,
}

/// What the disk and the page cache hold at a point of a recording: apply its events in order,
/// then ask for crash states.
#[derive(Default)]
pub struct DiskModel {
    files: HashMap<u64, FileModel>,
    names: BTreeMap<(PathBuf, OsString), NameModel>,
}

/// How a crash state picks among the versions a file or a name could have.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavor {
    /// Only what was fsynced.
    Durable,
    /// Everything the page cache held: what kill -9 leaves.
    Newest,
    Mixed,
}

impl DiskModel {
    /// Event `i` of the recording happened (notes are the caller's).
    pub fn apply(&mut self, i: usize, e: &Event) {
        match e {
            Event::Content { uid, bytes } => {
                let f = self.files.entry(*uid).or_default();
                if f.versions.last().map(|v| &v.1) != Some(bytes) {
                    f.versions.push((i, bytes.clone()));
                }
            }
            Event::FileSync { uid, bytes, since } => {
                let f = self.files.entry(*uid).or_default();
                f.durable = bytes.clone();
                f.versions.retain(|(j, _)| j >= since);
            }
            Event::Link { dir, name, uid } => self
                .names
                .entry((dir.clone(), name.clone()))
                .or_default()
                .history
                .push((i, *uid)),
            Event::DirSync {
                dir,
                listing,
                since,
            } => {
                for ((d, n), m) in self.names.iter_mut() {
                    if d == dir {
                        m.durable = listing.get(n).copied();
                        m.history.retain(|(j, _)| j >= since);
                    }
                }
            }
            Event::Note(_) => {}
        }
    }

    /// One disk state a power cut now could leave, as (path under the root, content), with a
    /// description of the choices made.
    pub fn crash_state(&self, rng: &mut Rng, flavor: Flavor) -> (Vec<(PathBuf, Vec<u8>)>, String) {
        let mut out = Vec::new();
        let mut why = String::new();
        // Directories created during the recording whose entry this state lost, with
        // everything under them. A parent sorts before its children's entries.
        let mut lost_dirs: Vec<PathBuf> = Vec::new();
        for ((dir, name), m) in &self.names {
            if dir.ancestors().any(|a| lost_dirs.iter().any(|l| l == a)) {
                continue;
            }
            let mut cands = vec![m.durable];
            for (_, u) in &m.history {
                if !cands.contains(u) {
                    cands.push(*u);
                }
            }
            let pick = match flavor {
                Flavor::Durable => cands[0],
                Flavor::Newest => m.history.last().map_or(m.durable, |h| h.1),
                Flavor::Mixed => cands[rng.below(cands.len())],
            };
            if cands.contains(&Some(DIRECTORY)) {
                if pick != Some(DIRECTORY) {
                    why.push_str(&format!(
                        "  {}/{} (directory) lost\n",
                        dir.display(),
                        name.to_string_lossy()
                    ));
                    lost_dirs.push(dir.join(name));
                }
                continue;
            }
            let Some(uid) = pick else { continue };
            let empty = FileModel::default();
            let f = self.files.get(&uid).unwrap_or(&empty);
            let (content, how) = file_content(f, rng, flavor);
            why.push_str(&format!(
                "  {}/{} = file {uid} of {:?}: {how}\n",
                dir.display(),
                name.to_string_lossy(),
                cands
            ));
            out.push((dir.join(name), content));
        }
        (out, why)
    }
}

fn page(v: &[u8], p: usize) -> &[u8] {
    v.get(p * PAGE..v.len().min((p + 1) * PAGE)).unwrap_or(&[])
}

fn file_content(f: &FileModel, rng: &mut Rng, flavor: Flavor) -> (Vec<u8>, String) {
    let mut vs: Vec<&[u8]> = vec![&f.durable];
    vs.extend(f.versions.iter().map(|v| &*v.1));
    let n = vs.len();
    match flavor {
        Flavor::Durable => return (vs[0].to_vec(), format!("durable of {n}")),
        Flavor::Newest => return (vs[n - 1].to_vec(), format!("newest of {n}")),
        Flavor::Mixed => {}
    }
    let len_from = rng.below(n);
    let len = vs[len_from].len();
    let base = rng.below(n);
    let mut out = vec![0u8; len];
    let mut how = format!("{n} versions, length of #{len_from} ({len}), pages:");
    for p in 0..len.div_ceil(PAGE) {
        let v = if rng.chance(4) { rng.below(n) } else { base };
        let src = page(vs[v], p);
        let dst = &mut out[p * PAGE..len.min((p + 1) * PAGE)];
        let k = src.len().min(dst.len());
        dst[..k].copy_from_slice(&src[..k]);
        how.push_str(&format!(" {v}"));
    }
    if n > 1 && len > 0 && rng.chance(3) {
        // A torn page: the first sectors of one version, the rest of another.
        let p = rng.below(len.div_ceil(PAGE));
        let (a, b) = (rng.below(n), rng.below(n));
        let sectors = 1 + rng.below(PAGE / SECTOR - 1);
        let dst = &mut out[p * PAGE..len.min((p + 1) * PAGE)];
        for (i, byte) in dst.iter_mut().enumerate() {
            let v = if i < sectors * SECTOR { a } else { b };
            *byte = page(vs[v], p).get(i).copied().unwrap_or(0);
        }
        how.push_str(&format!(
            "; page {p} torn after {sectors} sectors of #{a} over #{b}"
        ));
    }
    (out, how)
}

/// Writes a crash state (from [`DiskModel::crash_state`]) under `root`, with `dirs` created
/// first even when no file of the state lies in them. Directories are not modelled: every
/// directory the recording saw is assumed to have reached the disk.
pub fn materialize(root: &Path, dirs: &[&str], files: &[(PathBuf, Vec<u8>)]) {
    for d in dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (p, content) in files {
        let path = root.join(p);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, content).unwrap();
    }
}
