//! Bounded fuzzing of everything the storage crate reads back from disk: record frames,
//! segment headers, index files, journal entries and whole journals, metadata files, and a
//! log's recovery from damaged segment and index files. Shares `src/fuzzing.rs` with the
//! server's targets (`KINESIS_FUZZ_ITERATIONS`, `KINESIS_FUZZ_SEED`, one `fuzz-target`
//! line per run, a panic or an input over one second fails).
//!
//! Declared lengths are checked against the input before anything is allocated: while an
//! input is decoded, this test binary's allocator records the largest single request, and
//! it must stay within a small multiple of the input's size even when the input declares
//! lengths of gigabytes.

#[path = "../../src/fuzzing.rs"]
#[allow(dead_code)]
mod fuzzing;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use fuzzing::{Rng, Run, damage, show};

use crate::frame::{self, Decoded};
use crate::index::{self, IndexEntry};
use crate::segment::{self, Header};
use crate::{Durability, Journal, Log, LogOptions, MetaStore, Record};

thread_local! {
    /// Whether this thread's allocations are being watched, and the largest seen.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request of a watched thread.
struct Watching;

fn note(size: usize) {
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract; the
// only addition is a thread-local update that never allocates.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `decode`, failing if it allocated more than `limit` bytes at once.
fn bounded<T>(limit: usize, what: &str, decode: impl FnOnce() -> T) -> T {
    LARGEST.with(|l| l.set(0));
    WATCHING.with(|w| w.set(true));
    let out = decode();
    WATCHING.with(|w| w.set(false));
    let largest = LARGEST.with(|l| l.get());
    assert!(
        largest <= limit,
        "{what}: one allocation of {largest} bytes, limit {limit}"
    );
    out
}

/// What a decoder may allocate at once for `len` input bytes.
fn limit(len: usize) -> usize {
    2 * len + (64 << 10)
}

/// A huge little-endian length in `bytes[at..at + width]`.
fn huge_length(rng: &mut Rng, bytes: &mut [u8], at: usize, width: usize) {
    if at + width > bytes.len() {
        return;
    }
    let value: u64 = match rng.below(4) {
        0 => u64::MAX,
        1 => u64::from(u32::MAX),
        2 => rng.next(),
        _ => bytes.len() as u64 + rng.below(64) as u64,
    };
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

/// A record's partition key, explicit hash key and data.
type Fields = (Vec<u8>, Option<Vec<u8>>, Vec<u8>);

fn records(rng: &mut Rng) -> Vec<Fields> {
    (0..1 + rng.below(4))
        .map(|i| {
            (
                vec![b'k'; 1 + rng.below(20)],
                rng.chance(2).then(|| b"12345".to_vec()),
                vec![i as u8; rng.below(200)],
            )
        })
        .collect()
}

#[test]
fn fuzzed_frames_never_panic_or_overrun() {
    let mut run = Run::new("storage_frame", 20_000, 0xf4a3_e001);
    for i in 0..run.iterations() {
        let rng = &mut run.rng;
        let mut bytes = Vec::new();
        for (n, (pk, ehk, data)) in records(rng).iter().enumerate() {
            let r = Record {
                partition_key: pk,
                explicit_hash_key: ehk.as_deref(),
                data,
            };
            frame::encode(&mut bytes, n as u64, 1_700_000_000_000 + n as i64, &r);
        }
        let pristine = bytes.clone();
        let mut fix_crc = false;
        for _ in 0..=rng.below(3) {
            match rng.below(4) {
                0 => {
                    huge_length(rng, &mut bytes, 0, 4);
                    fix_crc = true;
                }
                1 => {
                    // The body's field lengths: partition key, hash key, data.
                    let (at, width) = [(24, 2), (26, 2), (28, 4)][rng.below(3)];
                    huge_length(rng, &mut bytes, at, width);
                    fix_crc = true;
                }
                _ => damage(rng, &mut bytes, &[0, 0xff, 1], &pristine),
            }
        }
        if fix_crc && bytes.len() >= 8 {
            let end = (u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize)
                .saturating_add(8)
                .min(bytes.len());
            let crc = crc32fast::hash(&bytes[8..end]);
            bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        let check_crc = !rng.chance(4);
        run.input(
            i,
            || show(&bytes),
            || {
                bounded(limit(bytes.len()), "frame::decode", || {
                    let mut at = 0;
                    while at < bytes.len() {
                        match frame::decode(&bytes[at..], check_crc) {
                            Decoded::Frame(r, used) => {
                                assert!(used > 0 && at + used <= bytes.len());
                                assert!(r.data.len() + r.partition_key.len() < used);
                                at += used;
                            }
                            Decoded::End | Decoded::Bad(_) => break,
                        }
                    }
                })
            },
        );
    }
    run.finish();
}

#[test]
fn fuzzed_segment_headers_never_panic() {
    let path = Path::new("segment");
    let mut run = Run::new("storage_segment_header", 20_000, 0x5e6_4ead);
    for i in 0..run.iterations() {
        let rng = &mut run.rng;
        let base = rng.next() >> rng.below(64);
        let floor = rng.chance(2).then(|| rng.next() as i64);
        let mut bytes = segment::header(base, floor).to_vec();
        assert_eq!(
            segment::check_header(path, &bytes, base).unwrap(),
            Header::Valid {
                floor: floor.filter(|f| *f != i64::MIN)
            }
        );
        for _ in 0..=rng.below(3) {
            damage(rng, &mut bytes, &[0, 0xff], &[]);
        }
        let checked = run.input(
            i,
            || show(&bytes),
            || segment::check_header(path, &bytes, base),
        );
        if let Ok(Header::Valid { .. }) = checked {
            // Magic, version and base offset as written; bytes 6..8 are not read.
            let written = segment::header(base, None);
            assert_eq!(
                (&bytes[..6], &bytes[8..16]),
                (&written[..6], &written[8..16])
            );
        }
    }
    run.finish();
}

#[test]
fn fuzzed_journal_entries_never_panic_or_over_allocate() {
    let mut run = Run::new("storage_journal_entries", 20_000, 0x7a1_0e17);
    for i in 0..run.iterations() {
        let rng = &mut run.rng;
        let mut bytes = Vec::new();
        let payloads: Vec<Vec<u8>> = (0..rng.below(5))
            // Empty entries are refused (`Error::EmptyEntry`): their header would be all zeros.
            .map(|n| vec![n as u8; 1 + rng.below(300)])
            .collect();
        for p in &payloads {
            crate::journal::encode_into(&mut bytes, p).unwrap();
        }
        let pristine = bytes.clone();
        for _ in 0..=rng.below(3) {
            if rng.chance(3) && !bytes.is_empty() {
                // A declared length far beyond the input, at an entry boundary or anywhere.
                let at = rng.below(bytes.len());
                huge_length(rng, &mut bytes, at, 4);
            } else {
                damage(rng, &mut bytes, &[0, 0xff], &pristine);
            }
        }
        let (entries, valid) = run.input(
            i,
            || show(&bytes),
            || {
                bounded(limit(bytes.len()), "decode_entries", || {
                    crate::journal::decode_entries(&bytes)
                })
            },
        );
        assert!(valid <= bytes.len());
        assert_eq!(valid, entries.iter().map(|e| e.len() + 8).sum::<usize>());
    }
    run.finish();
}

/// A directory for file-backed targets: on tmpfs when there is one (the run measures the
/// decoders, not the disk).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn fuzzed_index_files_load_a_valid_prefix() {
    let dir = scratch();
    let path = dir.path().join("0.idx");
    let mut run = Run::new("storage_index_file", 20_000, 0x1de_5f11);
    for i in 0..run.iterations() {
        let rng = &mut run.rng;
        let base = rng.below(1000) as u64;
        let mut bytes = index::header(base).to_vec();
        let (mut offset, mut position, mut arrival) =
            (base, segment::SEGMENT_HEADER_BYTES as u32, 0i64);
        for _ in 0..rng.below(6) {
            bytes.extend_from_slice(
                &IndexEntry {
                    offset,
                    arrival_ms: arrival,
                    position,
                }
                .encode(),
            );
            offset += 1 + rng.below(100) as u64;
            position += 1 + rng.below(5000) as u32;
            arrival += rng.below(10) as i64;
        }
        let pristine = bytes.clone();
        for _ in 0..=rng.below(3) {
            damage(rng, &mut bytes, &[0, 0xff], &pristine);
        }
        std::fs::write(&path, &bytes).unwrap();
        let segment_len = rng.below(1 << 20) as u64;
        let loaded = run
            .input(
                i,
                || show(&bytes),
                || {
                    bounded(limit(bytes.len()), "index::load", || {
                        index::load(&path, base, segment_len)
                    })
                },
            )
            .unwrap();
        assert!(
            loaded.entries.len() * index::ENTRY_BYTES + index::INDEX_HEADER_BYTES
                <= bytes.len().max(index::INDEX_HEADER_BYTES)
        );
        for pair in loaded.entries.windows(2) {
            assert!(pair[0].offset < pair[1].offset && pair[0].position < pair[1].position);
        }
        assert!(
            loaded
                .entries
                .iter()
                .all(|e| u64::from(e.position) < segment_len)
        );
    }
    run.finish();
}

#[test]
fn fuzzed_journal_and_meta_files_recover_or_refuse() {
    let dir = scratch();
    let mut run = Run::new("storage_journal_meta_files", 5_000, 0x3e7a_f11e);
    let journal_path = dir.path().join("journal");
    let meta_path = dir.path().join("meta");
    let (mut journal, _, _) = Journal::open(&journal_path, false).unwrap();
    journal
        .append(&[b"one".as_slice(), &[7u8; 100], b"z"])
        .unwrap();
    drop(journal);
    let journal_bytes = std::fs::read(&journal_path).unwrap();
    MetaStore::open(&meta_path)
        .unwrap()
        .store(b"{\"streams\":[]}")
        .unwrap();
    let meta_bytes = std::fs::read(&meta_path).unwrap();
    for i in 0..run.iterations() {
        let rng = &mut run.rng;
        let journal_file = rng.chance(2);
        let mut bytes = if journal_file {
            journal_bytes.clone()
        } else {
            meta_bytes.clone()
        };
        let pristine = bytes.clone();
        for _ in 0..=rng.below(3) {
            if rng.chance(4) {
                let at = if journal_file {
                    8 + rng.below(3) * 11
                } else {
                    4
                };
                huge_length(rng, &mut bytes, at, 4);
            } else {
                damage(rng, &mut bytes, &[0, 0xff], &pristine);
            }
        }
        let path = if journal_file {
            &journal_path
        } else {
            &meta_path
        };
        std::fs::write(path, &bytes).unwrap();
        run.input(
            i,
            || show(&bytes),
            || {
                bounded(limit(bytes.len()), "journal/meta open", || {
                    if journal_file {
                        if let Ok((_, entries, _)) = Journal::open(path, false) {
                            assert!(entries.iter().map(Vec::len).sum::<usize>() <= bytes.len());
                        }
                    } else if let Ok(Some(blob)) = MetaStore::open(path).unwrap().load() {
                        assert!(blob.len() <= bytes.len());
                    }
                })
            },
        );
    }
    run.finish();
}

/// A log's whole recovery: a log of small segments is written once, then each input damages
/// its segment and index files (bytes, cuts, huge frame lengths with valid CRCs, a file
/// removed or emptied) and opens it. Opening may refuse with a typed error; when it opens,
/// every record it serves has a dense offset below its bounds.
#[test]
fn fuzzed_log_recovery_never_panics_or_serves_garbage() {
    let pristine_dir = scratch();
    let opts = LogOptions {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        durability: Durability::PageCache {
            interval: std::time::Duration::from_secs(3600),
        },
        ..LogOptions::default()
    };
    {
        let log = Log::open(pristine_dir.path(), opts.clone()).unwrap();
        for n in 0..40u8 {
            let data = vec![n; 50 + usize::from(n) * 3];
            let r = Record {
                partition_key: b"pk",
                explicit_hash_key: (n % 3 == 0).then_some(b"99".as_slice()),
                data: &data,
            };
            log.append(1_700_000_000_000 + i64::from(n), &[r, r])
                .unwrap();
        }
    }
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(pristine_dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let run = Run::new("storage_log_recovery", 300, 0x4ec0_7e41);
    // One scratch directory per worker (on tmpfs when there is one), each input's log in it.
    run.parallel(scratch, |work, rng, i| {
        let dir = work.path().join(format!("log-{i}"));
        std::fs::create_dir(&dir).unwrap();
        let mut damaged = Vec::new();
        for (name, bytes) in &files {
            let mut bytes = bytes.clone();
            if rng.chance(3) {
                match rng.below(8) {
                    0 => continue,
                    1 => bytes.clear(),
                    2 if bytes.len() > 28 => {
                        // A frame length past the file, the CRC made right so the length
                        // check is what refuses it.
                        let at = 24 + rng.below(bytes.len() - 28);
                        huge_length(rng, &mut bytes, at, 4);
                    }
                    _ => {
                        for _ in 0..=rng.below(3) {
                            damage(rng, &mut bytes, &[0, 0xff], &[]);
                        }
                    }
                }
                damaged.push(name.clone());
            }
            std::fs::write(dir.join(name), &bytes).unwrap();
        }
        run.input(
            i,
            || format!("damaged {damaged:?}"),
            || {
                let Ok(log) = Log::open(&dir, opts.clone()) else {
                    return;
                };
                let bounds = log.bounds();
                let mut at = bounds.first_offset;
                while at < bounds.next_offset {
                    let Ok(batch) = log.read(at, 1000, 1 << 20) else {
                        break;
                    };
                    if batch.is_empty() {
                        break;
                    }
                    for r in batch.iter() {
                        let Ok(r) = r else { break };
                        assert_eq!(r.offset, at, "offsets are dense");
                        at += 1;
                    }
                    at = at.max(batch.next_offset());
                }
                assert!(at <= bounds.next_offset.max(bounds.first_offset));
            },
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
    run.finish();
}
