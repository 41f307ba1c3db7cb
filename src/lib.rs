//! kinesis-broker: an Amazon Kinesis Data Streams compatible broker.
//!
//! Layers, data flowing one way: [`http`] → [`protocol`] (decode) → [`api`] (validate,
//! apply) → [`broker`] (the domain) → `storage` (segment logs). See `ARCHITECTURE.md`.

pub mod api;
pub mod broker;
pub mod config;
pub mod http;
pub mod protocol;

pub use config::Config;
