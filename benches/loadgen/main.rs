//! kinesis-loadgen (work in progress).
fn main() {}
