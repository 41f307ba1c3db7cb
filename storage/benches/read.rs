//! Sequential read throughput over mapped segments, and seek-by-offset / seek-by-time latency
//! with 100 segments.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use storage::{Durability, Log, LogOptions};

mod common;
use common::{BATCH, Batch, RECORD_BYTES};

const READ_LOG_BYTES: usize = 256 << 20;

fn build(dir: &std::path::Path, segment_bytes: u64, batches: usize, records_per_ms: usize) -> Log {
    let opts = LogOptions {
        segment_bytes,
        durability: Durability::PageCache {
            interval: Duration::from_secs(3600),
        },
        ..LogOptions::default()
    };
    let log = Log::open(dir, opts).unwrap();
    let batch = Batch::new();
    let recs = batch.records();
    for i in 0..batches {
        // Arrival times: `records_per_ms` records per millisecond.
        let t = (i * BATCH / records_per_ms) as i64;
        log.append(t, &recs).unwrap();
    }
    log.sync().unwrap();
    log
}

fn sequential(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let batches = READ_LOG_BYTES / (BATCH * RECORD_BYTES);
    let log = build(dir.path(), 64 << 20, batches, 10);
    let total = (batches * BATCH * RECORD_BYTES) as u64;
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(total));
    g.bench_function("sequential_1KiB_records", |b| {
        b.iter(|| {
            let mut at = 0;
            let mut bytes = 0usize;
            loop {
                let batch = log.read(at, 10_000, 10 << 20).unwrap();
                if batch.is_empty() {
                    break;
                }
                for r in batch.iter() {
                    bytes += black_box(r.unwrap().data).len();
                }
                at = batch.next_offset();
            }
            assert_eq!(bytes as u64, total);
        })
    });
    g.finish();
}

fn seek(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // 1 MiB segments; a 500-record batch (~530 KB) never shares a segment with the next one
    // (a batch that does not fit the rest of a segment starts a new one), so 100 batches make
    // 100 segments.
    let batches = 100;
    let log = build(dir.path(), 1 << 20, batches, 10);
    let bounds = log.bounds();
    let segs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    eprintln!("seek log: {segs} segments, {} records", bounds.next_offset);
    let n = bounds.next_offset;
    let t_max = bounds.last_arrival_ms.unwrap();
    let mut g = c.benchmark_group("seek_100_segments");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    g.bench_function("by_offset", |b| {
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let batch = log.read(x % n, 1, 1).unwrap();
            black_box(batch.iter().next().unwrap().unwrap().offset)
        })
    });
    g.bench_function("by_time", |b| {
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            black_box(log.offset_at_time((x % t_max as u64) as i64).unwrap())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(10);
    targets = sequential, seek
}
criterion_main!(benches);
