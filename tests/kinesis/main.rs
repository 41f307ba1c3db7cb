//! Integration tests: the broker runs in-process on an ephemeral port (or, for the crash
//! test, as the real binary) and is driven by the unmodified Rust AWS SDK.
//!
//! One test binary with one module per area keeps link time down (the SDK is large).
//! Expected answers come from `compat-tests/AWS_BEHAVIOUR.md`.

#[path = "../common/mod.rs"]
mod common;

mod auth_verify;
mod binary;
mod broken_http;
mod bulk;
mod channels;
mod cli;
mod clock;
mod connections;
mod consumers;
mod crash;
mod distribution;
mod errors;
mod esm;
mod esm_api;
mod esm_functions;
mod fanout;
mod footprint;
mod lifecycle;
mod limits;
mod metrics;
mod persistence;
mod policies;
mod queues;
mod records;
mod resharding;
mod streams;
mod tls;
