//! Open time of a large log (default 5 GiB; `STORAGE_BENCH_OPEN_GIB` overrides), and the
//! anonymous resident memory it costs. Builds the log once (slow), then deletes it.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use storage::{Durability, Log, LogOptions};

mod common;
use common::{BATCH, Batch, RECORD_BYTES, rss_anon_kib};

fn opts() -> LogOptions {
    LogOptions {
        durability: Durability::PageCache {
            interval: Duration::from_secs(1),
        },
        ..LogOptions::default()
    }
}

fn open(c: &mut Criterion) {
    let gib: usize = std::env::var("STORAGE_BENCH_OPEN_GIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let built = Instant::now();
    {
        let log = Log::open(dir.path(), opts()).unwrap();
        let batch = Batch::new();
        let recs = batch.records();
        let batches = (gib << 30) / (BATCH * RECORD_BYTES);
        for i in 0..batches {
            log.append(i as i64, &recs).unwrap();
        }
        log.sync().unwrap();
    }
    let segs = std::fs::read_dir(dir.path()).unwrap().count() / 2;
    eprintln!(
        "built a {gib} GiB log ({segs} segments) in {:?}",
        built.elapsed()
    );

    let before = rss_anon_kib();
    let log = Log::open(dir.path(), opts()).unwrap();
    let after = rss_anon_kib();
    eprintln!(
        "RssAnon before open {before:?} KiB, after open {after:?} KiB; next_offset {}",
        log.bounds().next_offset
    );
    // Touch every segment (as a consumer reading from the trim horizon would): the maps are
    // file-backed (page cache), only the sparse indexes are anonymous memory.
    let mut at = 0;
    loop {
        let b = log.read(at, 10_000, 10 << 20).unwrap();
        if b.is_empty() {
            break;
        }
        at = b.next_offset();
    }
    eprintln!(
        "RssAnon after reading the whole log {:?} KiB",
        rss_anon_kib()
    );
    drop(log);

    c.bench_function(&format!("open_{gib}GiB_log"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Log::open(dir.path(), opts()).unwrap();
                total += start.elapsed();
                drop(log);
            }
            total
        })
    });
    drop(dir); // delete the data
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10);
    targets = open
}
criterion_main!(benches);
