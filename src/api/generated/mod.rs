//! Generated from the AWS service model by `cargo run -p xtask -- codegen`.
