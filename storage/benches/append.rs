//! Append throughput: 1 KiB records in batches of 500, per durability mode, against a plain
//! sequential file write with the same flush policy (the ceiling on this machine).

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storage::{Durability, Log};

mod common;
use common::{BATCH, Batch, PAGE_CACHE_INTERVAL, RECORD_BYTES, options};

fn bench_dir() -> tempfile::TempDir {
    // Next to the target dir: the same disk as the data directory would be.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Appends `iters` batches to a fresh log, waiting for durability after each if `wait`.
fn run_log(iters: u64, durability: Durability, appenders: u64) -> Duration {
    let dir = bench_dir();
    let log = Arc::new(Log::open(dir.path(), options(durability)).unwrap());
    let per_thread = iters.div_ceil(appenders);
    let barrier = Arc::new(Barrier::new(appenders as usize + 1));
    let threads: Vec<_> = (0..appenders)
        .map(|_| {
            let log = log.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let batch = Batch::new();
                let recs = batch.records();
                barrier.wait();
                for _ in 0..per_thread {
                    let a = log.append(0, &recs).unwrap();
                    log.wait_durable_blocking(a.next_offset).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    // Scale to the requested iteration count (threads may have done a few more).
    let done = per_thread * appenders;
    let elapsed = elapsed.mul_f64(iters as f64 / done as f64);
    drop(log); // final flush, outside the timing (as for the file ceiling)
    elapsed
}

/// Writes `iters` × 500 KiB with `write`, then fdatasync after each batch (`flush`) or every
/// `PAGE_CACHE_INTERVAL` on a background thread (`!flush`).
fn run_file(iters: u64, flush: bool) -> Duration {
    let dir = bench_dir();
    let mut file = File::create(dir.path().join("plain")).unwrap();
    let buf = vec![7u8; BATCH * RECORD_BYTES];
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = (!flush).then(|| {
        let f = file.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(PAGE_CACHE_INTERVAL);
                f.sync_data().unwrap();
            }
        })
    });
    let start = Instant::now();
    for _ in 0..iters {
        file.write_all(&buf).unwrap();
        if flush {
            file.sync_data().unwrap();
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Some(f) = flusher {
        f.join().unwrap();
    }
    file.sync_data().unwrap();
    elapsed
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_1KiB_x500");
    g.throughput(Throughput::Bytes((BATCH * RECORD_BYTES) as u64));
    let pc = Durability::PageCache {
        interval: PAGE_CACHE_INTERVAL,
    };
    g.bench_function("file_write_periodic_fdatasync", |b| {
        b.iter_custom(|n| run_file(n, false))
    });
    g.bench_function("log_page_cache", |b| b.iter_custom(|n| run_log(n, pc, 1)));
    g.bench_function("file_write_fdatasync_each", |b| {
        b.iter_custom(|n| run_file(n, true))
    });
    g.bench_function("log_flush_1_appender", |b| {
        b.iter_custom(|n| run_log(n, Durability::Flush, 1))
    });
    g.bench_function("log_flush_8_appenders", |b| {
        b.iter_custom(|n| run_log(n, Durability::Flush, 8))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10);
    targets = append
}
criterion_main!(benches);
