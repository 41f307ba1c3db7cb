//! The crash-consistency test: record a workload, build the disk states a power cut could leave
//! at many points of it, open each with the real recovery and check what it promised.
//!
//! A crash state at point `c` (after the first `c` recorded events) is, per directory entry,
//! the entry as of the directory's last completed fsync or any value it took since (a create,
//! rename or unlink after the last directory fsync may or may not have reached the disk; a
//! rename is atomic, so a name holds its old file or its new one); per file, a length it had
//! since its last completed fsync, and per 4 KiB page (the unit of writeback) the page as of
//! that fsync or as any later version the page cache held, with at most one page torn at a
//! 512-byte sector boundary between two of its versions. Bytes never written read as zeros.
//!
//! `CRASH_STATES` (states per test, default 4000) and `CRASH_SEED` change the run;
//! `CRASH_TMP` the directory the states are built in (default `/dev/shm` when present).

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::recorder::{Event, Note, Recording, note};
use super::states::{self, DiskModel, Flavor, Rng};
use crate::{Durability, Journal, Log, LogOptions, MetaStore, Record};

const LOG_DIR: &str = "log";
const JOURNAL: &str = "j/journal";
const META: &str = "m/meta";

type Entries = Vec<Vec<u8>>;

/// What the workload wrote and promised, by offset / generation / version.
struct Expected {
    opts: LogOptions,
    /// By offset: arrival, partition key, data.
    records: Vec<(i64, Vec<u8>, Vec<u8>)>,
    /// Per journal generation: the snapshot it started from and the entries appended to it.
    journal: Vec<(Entries, Entries)>,
    metas: Vec<Vec<u8>>,
    /// Records below this offset were gone before the recording started.
    gone_below: u64,
    /// What the files held durably when the recording started (a recovered crash state).
    start: Promises,
}

/// What had been promised at a crash point.
#[derive(Debug, Clone, Default)]
struct Promises {
    log_durable: u64,
    retention: Option<i64>,
    journal: (usize, usize),
    meta_started: Option<usize>,
    meta_stored: Option<usize>,
}

impl Promises {
    fn apply(&mut self, n: &Note) {
        match *n {
            Note::LogAcked(o) | Note::LogFlushed(o) => self.log_durable = self.log_durable.max(o),
            Note::RetentionStarted(t) => self.retention = Some(self.retention.unwrap_or(t).max(t)),
            Note::JournalDurable {
                generation,
                entries,
            } => self.journal = self.journal.max((generation, entries)),
            Note::MetaStarted(i) => self.meta_started = Some(i),
            Note::MetaStored(i) => self.meta_stored = Some(i),
        }
    }
}

fn record_data(rng: &mut Rng, offset: u64) -> Vec<u8> {
    let len = 1 + rng.below(1500);
    (0..len)
        .map(|i| (offset as usize * 31 + i * 7) as u8 ^ 0x5a)
        .collect()
}

/// Runs the workload under `root` (canonical, holding `log/`, `j/`, `m/`). With `resume`, the
/// root holds a crash state of a run that wrote `resume`'s records: the workload starts by
/// recovering it, checks what it finds and carries on from there.
///
/// `lie`: note page-cache appends as durable at once, which they are not (to show the checks
/// catch it).
fn workload(
    root: &Path,
    seed: u64,
    durability: Durability,
    resume: Option<&Expected>,
    lie: bool,
) -> Expected {
    let mut rng = Rng(seed);
    let opts = LogOptions {
        segment_bytes: 8192,
        index_interval_bytes: 300,
        durability,
        ..LogOptions::default()
    };
    let flush_mode = durability == Durability::Flush;
    let mut exp = Expected {
        opts: opts.clone(),
        records: Vec::new(),
        journal: vec![(Vec::new(), Vec::new())],
        metas: Vec::new(),
        gone_below: 0,
        start: Promises::default(),
    };
    let log = Log::open(root.join(LOG_DIR), opts).unwrap();
    if let Some(before) = resume {
        let at = |o: u64| before.records.get(o as usize).cloned();
        let (first, next) = read_all(&log, at).unwrap();
        exp.records = before.records[..next as usize].to_vec();
        exp.gone_below = first;
        exp.start.log_durable = next;
    }
    let sealed = log.is_sealed();
    // As the broker does: a journal that fsyncs in flush mode, one flushed in the background
    // in page-cache mode.
    let (mut journal, recovered, _) = Journal::open(root.join(JOURNAL), flush_mode).unwrap();
    if !flush_mode {
        journal.flush_every(Duration::from_millis(2)).unwrap();
    }
    exp.journal[0].0 = recovered;
    note(Note::JournalDurable {
        generation: 0,
        entries: 0,
    });
    let syncer = journal.syncer();
    let meta = MetaStore::open(root.join(META)).unwrap();
    if let Some(v) = meta.load().unwrap() {
        exp.metas.push(v);
        exp.start.meta_started = Some(0);
        exp.start.meta_stored = Some(0);
    }
    let mut t = 1_000_000i64;
    let steps = 40 + rng.below(30);
    for step in 0..steps {
        match rng.below(12) {
            0..=7 if sealed => {}
            0..=5 => {
                let n = 1 + rng.below(4);
                let first = exp.records.len() as u64;
                let keys: Vec<Vec<u8>> = (0..n)
                    .map(|i| format!("k{}", first + i as u64).into_bytes())
                    .collect();
                let datas: Vec<Vec<u8>> = (0..n)
                    .map(|i| record_data(&mut rng, first + i as u64))
                    .collect();
                let recs: Vec<Record<'_>> = (0..n)
                    .map(|i| Record {
                        partition_key: &keys[i],
                        explicit_hash_key: None,
                        data: &datas[i],
                    })
                    .collect();
                t += rng.below(60) as i64;
                let a = log.append(t, &recs).unwrap();
                assert_eq!(a.first_offset, first);
                for (k, d) in keys.into_iter().zip(datas) {
                    exp.records.push((a.arrival_ms, k, d));
                }
                // Flush mode acknowledges after the group commit, sometimes for several
                // appends at once; page-cache mode acknowledges at once.
                if flush_mode && !rng.chance(3) {
                    log.wait_durable_blocking(a.next_offset).unwrap();
                    note(Note::LogAcked(a.next_offset));
                } else if lie {
                    note(Note::LogAcked(a.next_offset));
                } else if !flush_mode && rng.chance(3) {
                    std::thread::sleep(Duration::from_millis(rng.below(4) as u64));
                }
            }
            6 => {
                log.sync().unwrap();
                note(Note::LogAcked(exp.records.len() as u64));
            }
            7 => {
                let cut = t - 300;
                note(Note::RetentionStarted(cut));
                log.drop_older_than(cut).unwrap();
            }
            8..=10 => {
                let generation = exp.journal.len() - 1;
                let entry =
                    format!("j{generation}-{step}-{}", "x".repeat(rng.below(700))).into_bytes();
                exp.journal[generation].1.push(entry.clone());
                let count = exp.journal[generation].1.len();
                match rng.below(4) {
                    0 => {
                        journal.append(&[entry]).unwrap();
                        if flush_mode {
                            note(Note::JournalDurable {
                                generation,
                                entries: count,
                            });
                        }
                    }
                    1 => journal.append_unsynced(&[entry]).unwrap(),
                    2 => {
                        let ticket = journal.append_deferred(&[entry]).unwrap();
                        syncer.sync(ticket).unwrap();
                        note(Note::JournalDurable {
                            generation,
                            entries: count,
                        });
                    }
                    _ => {
                        let (snap, appended) = &exp.journal[generation];
                        let live: Vec<Vec<u8>> = snap.iter().chain(appended).cloned().collect();
                        let keep = live[live.len().saturating_sub(3)..].to_vec();
                        journal.rewrite(&keep).unwrap();
                        exp.journal.push((keep, Vec::new()));
                        note(Note::JournalDurable {
                            generation: generation + 1,
                            entries: 0,
                        });
                    }
                }
            }
            _ => {
                let i = exp.metas.len();
                let v = format!("meta-v{i}-{}", "m".repeat(rng.below(5000))).into_bytes();
                exp.metas.push(v.clone());
                note(Note::MetaStarted(i));
                meta.store(&v).unwrap();
                note(Note::MetaStored(i));
            }
        }
    }
    if !sealed && rng.chance(3) {
        log.seal().unwrap();
        note(Note::LogAcked(exp.records.len() as u64));
    }
    drop(log);
    exp
}

/// The disk at a point of a recording and what had been promised by then.
#[derive(Default)]
struct Model {
    disk: DiskModel,
    promises: Promises,
}

impl Model {
    fn apply(&mut self, i: usize, e: &Event) {
        if let Event::Note(n) = e {
            self.promises.apply(n);
        }
        self.disk.apply(i, e);
    }

    fn crash_state(&self, rng: &mut Rng, flavor: Flavor) -> (Vec<(PathBuf, Vec<u8>)>, String) {
        self.disk.crash_state(rng, flavor)
    }
}

fn materialize(root: &Path, files: &[(PathBuf, Vec<u8>)]) {
    states::materialize(root, &[LOG_DIR, "j", "m"], files);
}

fn check_state(root: &Path, exp: &Expected, pr: &Promises) -> Result<(), String> {
    check_log(&root.join(LOG_DIR), exp, pr)?;
    check_journal(&root.join(JOURNAL), exp, pr)?;
    check_meta(&root.join(META), exp, pr)
}

fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{what} panicked: {msg}")
    })
}

/// Reads every record of `log` and checks each against what was written at its offset.
fn read_all(
    log: &Log,
    exp_at: impl Fn(u64) -> Option<(i64, Vec<u8>, Vec<u8>)>,
) -> Result<(u64, u64), String> {
    let b = log.bounds();
    let mut cur = b.first_offset;
    while cur < b.next_offset {
        let batch = guarded("read", || log.read(cur, 1000, 1 << 20))?.map_err(|e| {
            format!(
                "read at offset {cur} (log holds [{}, {})) failed: {e}",
                b.first_offset, b.next_offset
            )
        })?;
        if batch.is_empty() {
            return Err(format!(
                "read at offset {cur} returned nothing, next offset is {}",
                b.next_offset
            ));
        }
        for r in batch.iter() {
            let r = r.map_err(|e| format!("record at {cur}: {e}"))?;
            let Some((arrival, key, data)) = exp_at(r.offset) else {
                return Err(format!("offset {} was never written", r.offset));
            };
            if r.offset != cur
                || r.arrival_ms != arrival
                || r.partition_key != key
                || r.data != data
            {
                return Err(format!(
                    "offset {cur}: served offset {} arrival {} key {:?} ({} bytes of data), written arrival {arrival} key {:?} ({} bytes)",
                    r.offset,
                    r.arrival_ms,
                    String::from_utf8_lossy(r.partition_key),
                    r.data.len(),
                    String::from_utf8_lossy(&key),
                    data.len()
                ));
            }
            cur += 1;
        }
    }
    Ok((b.first_offset, b.next_offset))
}

fn check_log(dir: &Path, exp: &Expected, pr: &Promises) -> Result<(), String> {
    let log = guarded("Log::open", || Log::open(dir, exp.opts.clone()))?
        .map_err(|e| format!("recovery refused to open the log: {e}"))?;
    let written = |o: u64| exp.records.get(o as usize).cloned();
    let (first, next) = read_all(&log, written)?;
    if next < pr.log_durable {
        return Err(format!(
            "acknowledged records lost: the log ends at {next}, offsets below {} were durable",
            pr.log_durable
        ));
    }
    // Retention may remove records older than its cut from the front, nothing else.
    let keep_from = exp
        .records
        .iter()
        .position(|r| pr.retention.is_none_or(|t| r.0 >= t))
        .map_or(u64::MAX, |p| p as u64)
        .max(exp.gone_below);
    if first > keep_from && keep_from < pr.log_durable {
        return Err(format!(
            "the log starts at {first}: durable records from {keep_from} on were not expired"
        ));
    }
    // New appends take the next offsets, and only they are read after them, even across a
    // reopen: nothing cut by recovery comes back.
    let mut extra = Vec::new();
    if !log.is_sealed() {
        let last = exp.records.get(next.wrapping_sub(1) as usize).map(|r| r.0);
        for i in 0..3u64 {
            let data = format!("after-crash-{i}").into_bytes();
            let rec = Record {
                partition_key: b"after",
                explicit_hash_key: None,
                data: &data,
            };
            let a = log
                .append(0, &[rec])
                .map_err(|e| format!("append after recovery failed: {e}"))?;
            if a.first_offset != next + i {
                return Err(format!(
                    "append after recovery got offset {}, expected {}",
                    a.first_offset,
                    next + i
                ));
            }
            if last.is_some_and(|l| a.arrival_ms < l) {
                return Err(format!(
                    "arrival went back to {} after recovery",
                    a.arrival_ms
                ));
            }
            extra.push((a.arrival_ms, b"after".to_vec(), data));
        }
        log.sync()
            .map_err(|e| format!("sync after recovery: {e}"))?;
    }
    drop(log);
    let log = guarded("Log::open (second)", || Log::open(dir, exp.opts.clone()))?
        .map_err(|e| format!("second open refused: {e}"))?;
    let at = |o: u64| {
        if o < next {
            written(o)
        } else {
            extra.get((o - next) as usize).cloned()
        }
    };
    let (_, next2) = read_all(&log, at)?;
    if next2 != next + extra.len() as u64 {
        return Err(format!(
            "after reopening the log ends at {next2}, expected {}",
            next + extra.len() as u64
        ));
    }
    Ok(())
}

fn check_journal(path: &Path, exp: &Expected, pr: &Promises) -> Result<(), String> {
    let (_, entries, _) = guarded("Journal::open", || Journal::open(path, true))?
        .map_err(|e| format!("journal recovery refused: {e}"))?;
    let (min_gen, min_entries) = pr.journal;
    for (generation, (snap, appended)) in exp.journal.iter().enumerate().skip(min_gen) {
        let Some(rest) = entries.strip_prefix(snap.as_slice()) else {
            continue;
        };
        let prefix = rest.len() <= appended.len() && rest == &appended[..rest.len()];
        if prefix && (generation > min_gen || rest.len() >= min_entries) {
            return Ok(());
        }
    }
    Err(format!(
        "journal recovered {} entries {:?}, which is no acknowledged state (durable: generation {min_gen} with {min_entries} entries)",
        entries.len(),
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e[..e.len().min(12)]).into_owned())
            .collect::<Vec<_>>()
    ))
}

fn check_meta(path: &Path, exp: &Expected, pr: &Promises) -> Result<(), String> {
    let m = MetaStore::open(path).map_err(|e| e.to_string())?;
    let got =
        guarded("MetaStore::load", || m.load())?.map_err(|e| format!("meta load failed: {e}"))?;
    match got {
        None if pr.meta_stored.is_none() => Ok(()),
        None => Err(format!(
            "meta lost: version {:?} was stored",
            pr.meta_stored
        )),
        Some(v) => {
            let i = exp.metas.iter().position(|m| *m == v);
            match i {
                Some(i)
                    if pr.meta_stored.is_none_or(|s| i >= s)
                        && pr.meta_started.is_some_and(|s| i <= s) =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "meta holds {:?} (version {i:?}); stored {:?}, started {:?}",
                    String::from_utf8_lossy(&v[..v.len().min(12)]),
                    pr.meta_stored,
                    pr.meta_started
                )),
            }
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn state_tmp() -> tempfile::TempDir {
    let base = std::env::var_os("CRASH_TMP")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()));
    match base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn explore(durability: Durability, default_seed: u64) {
    let states = env_u64("CRASH_STATES", 4000) as usize;
    let seed = env_u64("CRASH_SEED", default_seed);
    let (explored, failures) = explore_with(durability, seed, states, false);
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(5).map(|s| s.as_str()).collect();
        panic!(
            "{} of {explored} crash states failed; first ones:\n{}",
            failures.len(),
            shown.join("\n")
        );
    }
}

/// Records workloads and checks `states` crash states spread over their events; returns how
/// many were checked and the failures.
fn explore_with(
    durability: Durability,
    seed: u64,
    states: usize,
    lie: bool,
) -> (usize, Vec<String>) {
    let recordings = (states / 500).clamp(3, 400);
    let started = Instant::now();
    let mut explored = 0usize;
    let mut failures = Vec::new();
    let mut events_total = 0;
    let tmp = state_tmp();
    for r in 0..recordings {
        let run_seed = seed.wrapping_mul(1_000_003).wrapping_add(r as u64);
        let rec_dir = tempfile::tempdir().unwrap();
        let root = rec_dir.path().canonicalize().unwrap();
        for d in [LOG_DIR, "j", "m"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let recording = Recording::start(&root);
        let mut exp = workload(&root, run_seed, durability, None, lie);
        let mut events = recording.finish();
        let mut first_point = 0;
        if r % 2 == 1 {
            // Crash this run at a random point, then record a run that recovers that state
            // and goes on: the crash states of the second run test recovery's own writes.
            let mut model = Model::default();
            let stop = Rng(run_seed).below(events.len() + 1);
            for (i, e) in events[..stop].iter().enumerate() {
                model.apply(i, e);
            }
            let (files, _) = model.crash_state(&mut Rng(run_seed ^ 7), Flavor::Mixed);
            let dir2 = tempfile::tempdir().unwrap();
            let root2 = dir2.path().canonicalize().unwrap();
            materialize(&root2, &files);
            let (recording, initial) = Recording::start_on_existing(&root2);
            first_point = initial;
            exp = workload(&root2, run_seed ^ 1, durability, Some(&exp), lie);
            events = recording.finish();
        }
        if std::env::var_os("CRASH_DUMP").is_some() {
            for (i, e) in events.iter().enumerate() {
                eprintln!("{run_seed} {i}: {}", short(e));
            }
        }
        events_total += events.len();
        let budget = states / recordings + usize::from(r < states % recordings);
        let mut rng = Rng(run_seed ^ 0xC0FFEE);
        let mut model = Model {
            promises: exp.start.clone(),
            ..Model::default()
        };
        let points = events.len() + 1;
        for c in 0..points {
            if c > 0 {
                model.apply(c - 1, &events[c - 1]);
            }
            if c < first_point {
                continue;
            }
            let span = points - first_point;
            let i = c - first_point;
            let here = (i + 1) * budget / span - i * budget / span;
            for k in 0..here {
                let flavor = match rng.below(8) {
                    0 => Flavor::Newest,
                    1 => Flavor::Durable,
                    _ => Flavor::Mixed,
                };
                let (files, why) = model.crash_state(&mut rng, flavor);
                let dir = tmp.path().join(format!("s{r}-{c}-{k}"));
                materialize(&dir, &files);
                explored += 1;
                if let Err(e) = check_state(&dir, &exp, &model.promises) {
                    let last = c.checked_sub(1).map(|i| format!("{:?}", short(&events[i])));
                    failures.push(format!(
                        "seed {run_seed} crash point {c} (after {}) {flavor:?}: {e}\n promises {:?}\n{why}",
                        last.unwrap_or_default(),
                        model.promises
                    ));
                    if std::env::var_os("CRASH_KEEP").is_some() {
                        let _ = fs::rename(
                            &dir,
                            std::env::temp_dir().join(format!("crash-fail-{run_seed}-{c}-{k}")),
                        );
                    }
                }
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
    eprintln!(
        "crash states ({durability:?}): {explored} explored over {recordings} recordings ({events_total} events), {} failed, {:.1?}",
        failures.len(),
        started.elapsed()
    );
    (explored, failures)
}

/// An event without its file contents, for failure messages.
fn short(e: &Event) -> String {
    match e {
        Event::Content { uid, bytes } => format!("content of file {uid}: {} bytes", bytes.len()),
        Event::FileSync { uid, bytes, .. } => {
            format!("fsync of file {uid} ({} bytes)", bytes.len())
        }
        Event::Link { dir, name, uid } => {
            format!("{}/{} -> {uid:?}", dir.display(), name.to_string_lossy())
        }
        Event::DirSync { dir, .. } => format!("fsync of dir {}", dir.display()),
        Event::Note(n) => format!("{n:?}"),
    }
}

#[test]
fn crash_states_flush_mode() {
    explore(Durability::Flush, 1);
}

#[test]
fn crash_states_page_cache_mode() {
    explore(
        Durability::PageCache {
            interval: Duration::from_millis(2),
        },
        2,
    );
}

/// The harness is not vacuous: a workload that claims page-cache appends durable at once is
/// caught losing them.
#[test]
fn crash_states_catch_a_false_acknowledgement() {
    let (explored, failures) = explore_with(
        Durability::PageCache {
            interval: Duration::from_secs(3600),
        },
        3,
        300,
        true,
    );
    assert_eq!(explored, 300);
    assert!(
        failures
            .iter()
            .any(|f| f.contains("acknowledged records lost")),
        "{failures:?}"
    );
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Removes the seal mark from the index of `segment`, as a crash before the flusher wrote it.
fn strip_seal_mark(segment: &Path) {
    let idx = segment.with_extension("idx");
    let bytes = fs::read(&idx).unwrap();
    let len = fs::metadata(segment).unwrap().len();
    let next = u64::from_le_bytes(bytes[bytes.len() - 24..][..8].try_into().unwrap());
    assert!(crate::index::has_seal_mark(&idx, next, len));
    fs::write(&idx, &bytes[..bytes.len() - 24]).unwrap();
}

/// Three segments, the log closed cleanly; returns the records' data by offset.
fn three_segments(dir: &Path) -> (LogOptions, Vec<Vec<u8>>) {
    let opts = LogOptions {
        segment_bytes: 8192,
        index_interval_bytes: 300,
        ..LogOptions::default()
    };
    let log = Log::open(dir, opts.clone()).unwrap();
    let mut datas = Vec::new();
    let mut rng = Rng(9);
    while segment_files(dir).len() < 3 {
        let d = record_data(&mut rng, datas.len() as u64);
        log.append(
            1_000 + datas.len() as i64,
            &[Record {
                partition_key: b"k",
                explicit_hash_key: None,
                data: &d,
            }],
        )
        .unwrap();
        datas.push(d);
    }
    drop(log);
    (opts, datas)
}

/// Found by the crash test (page-cache mode): a power cut kept the newest segment's records
/// but not the last pages of the one before it. Reads failed at the hole for good; open now
/// deletes the unreachable newer segment and carries on from the torn one's last frame.
#[test]
fn open_cuts_segments_behind_a_torn_one() {
    // Half of it unwritten; or only its last sector, cut short by the end of the file.
    for unwritten_from in [|len: usize| len / 2, |len: usize| (len - 1) / 512 * 512] {
        open_cuts_segments_behind_one_torn_from(unwritten_from);
    }
}

fn open_cuts_segments_behind_one_torn_from(unwritten_from: fn(usize) -> usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (opts, datas) = three_segments(dir);
    let segs = segment_files(dir);
    let middle = fs::read(&segs[1]).unwrap();
    // Part of it was never written back: zeros, file length kept; and the flusher had not
    // marked it sealed.
    strip_seal_mark(&segs[1]);
    let cut_at = unwritten_from(middle.len());
    let mut torn = middle.clone();
    torn[cut_at..].fill(0);
    fs::write(&segs[1], &torn).unwrap();
    let log = Log::open(dir, opts.clone()).unwrap();
    assert!(!segs[2].exists(), "the unreachable newest segment is gone");
    let next = log.bounds().next_offset;
    let middle_base: u64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next > middle_base && (next as usize) < datas.len(),
        "next {next}"
    );
    let at = |o: u64| {
        datas
            .get(o as usize)
            .map(|d| (1_000 + o as i64, b"k".to_vec(), d.clone()))
    };
    assert_eq!(read_all(&log, at).unwrap(), (0, next));
    let a = log
        .append(
            5_000,
            &[Record {
                partition_key: b"k",
                explicit_hash_key: None,
                data: b"new",
            }],
        )
        .unwrap();
    assert_eq!(a.first_offset, next);
    drop(log);
    let log = Log::open(dir, opts).unwrap();
    assert_eq!(log.bounds().next_offset, next + 1);
    let b = log.read(next, 10, 1 << 20).unwrap();
    assert_eq!(b.iter().next().unwrap().unwrap().data, b"new");
}

/// Damage that is not a torn tail (a flipped bit) is not a reason to drop anything: the newer
/// segments stay and the read that reaches the damage reports it.
#[test]
fn open_keeps_segments_behind_a_bit_flip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (opts, datas) = three_segments(dir);
    let segs = segment_files(dir);
    let mut middle = fs::read(&segs[1]).unwrap();
    strip_seal_mark(&segs[1]);
    let at = middle.len() - 10;
    middle[at] ^= 0x40;
    fs::write(&segs[1], &middle).unwrap();
    let log = Log::open(dir, opts).unwrap();
    assert!(segs[2].exists());
    assert_eq!(log.bounds().next_offset, datas.len() as u64);
    let middle_base: u64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut cur = middle_base;
    let err = loop {
        match log.read(cur, 1000, 1 << 20) {
            Ok(b) if !b.is_empty() => cur = b.next_offset(),
            Ok(_) => panic!("read past the damage"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, crate::Error::Corrupt { .. }), "{err}");
}

/// Found by the crash test: a power cut can keep a journal's new length but not its bytes.
/// Those zeros read as empty entries (length 0, and the CRC of nothing is 0); now they end the
/// journal, and empty entries, which would be indistinguishable, are refused.
#[test]
fn journal_zeros_end_it_instead_of_reading_as_empty_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("j");
    let (mut j, _, _) = Journal::open(&path, true).unwrap();
    j.append(&[b"one".as_slice(), b"two"]).unwrap();
    assert!(matches!(
        j.append(&[b"".as_slice()]),
        Err(crate::Error::EmptyEntry)
    ));
    drop(j);
    let mut bytes = fs::read(&path).unwrap();
    let good = bytes.len();
    bytes.resize(good + 700, 0);
    fs::write(&path, &bytes).unwrap();
    let (_, entries, rec) = Journal::open(&path, true).unwrap();
    assert_eq!(entries, [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(rec.truncated_bytes, 700);
    assert_eq!(fs::metadata(&path).unwrap().len(), good as u64);
    // A journal whose magic never reached the disk: all zeros, not a foreign file.
    fs::write(&path, [0u8; 8]).unwrap();
    let (_, entries, _) = Journal::open(&path, false).unwrap();
    assert!(entries.is_empty());
}
