//! null server (work in progress).
fn main() {}
