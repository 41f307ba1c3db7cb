//! Server configuration: everything `Server::start` needs, with documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How an append is acknowledged. Mirrors `storage::Durability`, chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityMode {
    /// Acknowledge once the records are on disk (group commit). Survives process crash and
    /// power loss. The default.
    Flush,
    /// Acknowledge once the records are in the OS page cache; flushed every `flush_interval`.
    /// Survives a process crash, not power loss.
    PageCache,
}

/// A stream to create at start-up if it does not exist yet (`--create-stream NAME[:SHARDS]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name.
    pub name: String,
    /// Number of shards (default 1).
    pub shard_count: u32,
}

/// Everything the broker is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Directory of the embedded on-disk store. Default `./kinesis-data`.
    pub data_dir: PathBuf,
    /// Default `Flush`: never loses an acknowledged record.
    pub durability: DurabilityMode,
    /// Background flush period in `PageCache` mode. Default 200 ms.
    pub flush_interval: Duration,
    /// Streams created at start-up if absent.
    pub create_streams: Vec<StreamSpec>,
    /// CREATING → ACTIVE delay. Default 500 ms (AWS takes seconds); 0 in tests.
    pub create_stream_delay: Duration,
    /// DELETING → gone delay. Default 500 ms; 0 in tests.
    pub delete_stream_delay: Duration,
    /// UPDATING → ACTIVE delay for resharding and mode changes. Default 500 ms.
    pub update_stream_delay: Duration,
    /// Segment file size for shard logs. Default 64 MiB.
    pub segment_bytes: u64,
}

impl Config {
    /// Defaults for a local run: 127.0.0.1:4567, `./kinesis-data`, `Flush`.
    pub fn new() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 4567)),
            data_dir: PathBuf::from("./kinesis-data"),
            durability: DurabilityMode::Flush,
            flush_interval: Duration::from_millis(200),
            create_streams: Vec::new(),
            create_stream_delay: Duration::from_millis(500),
            delete_stream_delay: Duration::from_millis(500),
            update_stream_delay: Duration::from_millis(500),
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}
