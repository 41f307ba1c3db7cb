//! Observability: the counters behind `GET /metrics` (Prometheus text format, through
//! `prometheus-client`), `GET /ready`, and the console's `GET /_broker/throughput`.
//!
//! | file | concept |
//! |---|---|
//! | `stream.rs` | per-stream and per-shard counters named after CloudWatch's Kinesis metrics |
//! | `histogram.rs` | a lock-free latency histogram |
//! | `throughput.rs` | the 5-second throughput history each stream keeps for the console |
//! | `server.rs` | connections, requests by operation and error, recovery time, readiness |
//! | `export.rs` | the Prometheus collector: reads all of the above at scrape time |
//!
//! Counting is relaxed atomic adds on structures the request already holds (the stream,
//! the shard); all naming, label building and formatting happens at scrape time.

pub mod export;
pub mod histogram;
pub mod server;
pub mod stream;
pub mod throughput;

pub use server::{Phase, ServerMetrics};
pub use stream::{PutRecordsOutcome, ShardMetrics, StreamMetrics};
