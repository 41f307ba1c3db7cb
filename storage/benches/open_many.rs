//! Start-up time of a broker with many shards: opens 1,000 existing logs of ~5 MiB each (all in
//! each log's active segment, 11 MiB segments, default index interval), one after the other and
//! then from two threads, and keeps them all open as the broker would. Builds the logs once and
//! keeps them (in `CARGO_TARGET_TMPDIR/open_many-<shards>x<MiB>`) for the next run; delete that
//! directory to reclaim the space (about 11 GiB preallocated for the default sizes).
//!
//! `cargo bench -p storage --bench open_many`; `STORAGE_BENCH_SHARDS` and
//! `STORAGE_BENCH_SHARD_MIB` override the sizes. Under `cargo test` (no `--bench` argument) it
//! runs once on 4 tiny logs in a temporary directory. `STORAGE_BENCH_COLD=1` evicts the logs'
//! files from the page cache (`posix_fadvise(DONTNEED)`, these files only) before each open,
//! as after a reboot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use storage::{Durability, Log, LogOptions};

mod common;
use common::{BATCH, Batch, RECORD_BYTES};

fn opts() -> LogOptions {
    LogOptions {
        segment_bytes: 11 << 20,
        durability: Durability::PageCache {
            interval: Duration::from_millis(200),
        },
        ..LogOptions::default()
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn shard_dir(root: &Path, i: usize) -> PathBuf {
    root.join(format!("shard-{i:04}"))
}

fn build(root: &Path, shards: usize, mib: usize) {
    let done = root.join("BUILT");
    if done.exists() {
        return;
    }
    let started = Instant::now();
    let batch = Batch::new();
    let recs = batch.records();
    let batches = ((mib << 20) / (BATCH * RECORD_BYTES)).max(1);
    for i in 0..shards {
        let log = Log::open(shard_dir(root, i), opts()).unwrap();
        for b in 0..batches {
            log.append(1_700_000_000_000 + b as i64, &recs).unwrap();
        }
    } // each drop flushes
    std::fs::write(&done, b"").unwrap();
    eprintln!(
        "built {shards} logs of {batches} batches ({:.1} MB of record data each) in {:?}",
        (batches * BATCH * RECORD_BYTES) as f64 / 1e6,
        started.elapsed()
    );
}

/// Drops the page cache of every file under `root` (clean pages only; ours are flushed).
fn evict(root: &Path) {
    use std::os::fd::AsRawFd;
    for shard in std::fs::read_dir(root).unwrap() {
        let shard = shard.unwrap().path();
        if !shard.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&shard).unwrap() {
            let file = std::fs::File::open(f.unwrap().path()).unwrap();
            // SAFETY: plain syscall on a descriptor `file` owns for the call; no memory shared.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn open_sequential(root: &Path, shards: usize) -> (Duration, Vec<Log>) {
    let start = Instant::now();
    let logs: Vec<Log> = (0..shards)
        .map(|i| Log::open(shard_dir(root, i), opts()).unwrap())
        .collect();
    (start.elapsed(), logs)
}

fn open_parallel(root: &Path, shards: usize, threads: usize) -> (Duration, Vec<Log>) {
    let start = Instant::now();
    let mut logs: Vec<Log> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..shards)
                        .step_by(threads)
                        .map(|i| (i, Log::open(shard_dir(root, i), opts()).unwrap()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, Log)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, l)| l).collect()
    });
    let took = start.elapsed();
    logs.truncate(shards);
    (took, logs)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (shards, mib) = if bench {
        (
            env_or("STORAGE_BENCH_SHARDS", 1000),
            env_or("STORAGE_BENCH_SHARD_MIB", 5),
        )
    } else {
        (4, 1)
    };
    let tmp;
    let root = if bench {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("open_many-{shards}x{mib}"))
    } else {
        tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        tmp.path().to_path_buf()
    };
    build(&root, shards, mib);
    let runs = if bench { 3 } else { 1 };
    let cold = std::env::var_os("STORAGE_BENCH_COLD").is_some();
    for run in 1..=runs {
        if cold {
            evict(&root);
        }
        let (took, logs) = open_sequential(&root, shards);
        let next: u64 = logs.iter().map(|l| l.bounds().next_offset).sum();
        let dropped = Instant::now();
        drop(logs);
        eprintln!(
            "run {run}: opened {shards} logs sequentially in {took:?} ({:?} per log; {next} records); dropped them in {:?}",
            took / shards as u32,
            dropped.elapsed()
        );
        for threads in [2, 16] {
            if cold {
                evict(&root);
            }
            let (took, logs) = open_parallel(&root, shards, threads);
            let dropped = Instant::now();
            drop(logs);
            eprintln!(
                "run {run}: opened {shards} logs from {threads} threads in {took:?}; dropped them in {:?}",
                dropped.elapsed()
            );
        }
    }
}
