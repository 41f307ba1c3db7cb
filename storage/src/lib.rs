//! Append-only segment logs with crash recovery. See `storage/README.md`.
