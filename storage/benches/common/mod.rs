//! Shared helpers for the storage benchmarks (included with `#[path]`/`mod`).
#![allow(dead_code)] // each bench uses a subset

use std::time::Duration;

use storage::{Durability, LogOptions, Record};

/// Bytes of data per record.
pub const RECORD_BYTES: usize = 1024;
/// Records per append call.
pub const BATCH: usize = 500;

pub struct Batch {
    keys: Vec<Vec<u8>>,
    data: Vec<u8>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            keys: (0..BATCH)
                .map(|i| format!("partition-key-{i:04}").into_bytes())
                .collect(),
            data: (0..RECORD_BYTES).map(|i| (i * 31) as u8).collect(),
        }
    }

    pub fn records(&self) -> Vec<Record<'_>> {
        self.keys
            .iter()
            .map(|k| Record {
                partition_key: k,
                explicit_hash_key: None,
                data: &self.data,
            })
            .collect()
    }
}

pub fn options(durability: Durability) -> LogOptions {
    LogOptions {
        durability,
        ..LogOptions::default()
    }
}

/// The background flush interval used for PageCache mode and its file-write ceiling.
pub const PAGE_CACHE_INTERVAL: Duration = Duration::from_millis(200);

/// Anonymous resident memory of this process in KiB (Linux), for "memory does not grow with data".
pub fn rss_anon_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("RssAnon:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
