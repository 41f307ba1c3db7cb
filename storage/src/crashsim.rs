//! Observation layer for the crash-consistency test (ALICE / CrashMonkey style).
//!
//! Every call site that decides what survives a power cut (creating a file, writing it,
//! fallocate / truncate, rename, unlink, fsync of a file or of a directory) calls one of the
//! hooks below. In a release or ordinary build they are empty inline functions and a
//! zero-sized guard, so they cost nothing. In test builds a [`Recording`] started on a root
//! directory turns every hook touching a file under that root into an [`Event`]: the file's
//! whole content as the page cache holds it after each change, the content each fsync made
//! durable (captured when the fsync started, committed when it returned), and every change
//! to a directory's entries. `tests.rs` replays the events, builds the disk states a power
//! cut could leave at each point and opens them with the real recovery.
//!
//! Feature `crash-sim` turns the same recorder and the crash-state builder ([`states`]) on
//! outside this crate's tests, for the broker's power-cut test (`tests/power_cut/`); only
//! dev-dependencies enable it, so a release build keeps the empty hooks.

#[cfg(not(any(test, feature = "crash-sim")))]
mod hooks {
    use std::fs::File;
    use std::path::Path;

    /// Held across an fsync; empty outside the crash test.
    pub(crate) struct SyncGuard;

    impl SyncGuard {
        /// The fsync returned.
        #[inline(always)]
        pub(crate) fn done(self) {}
    }

    #[inline(always)]
    pub(crate) fn created(_: &Path) {}
    #[inline(always)]
    pub(crate) fn wrote(_: &File) {}
    #[inline(always)]
    pub(crate) fn renamed(_: &Path, _: &Path) {}
    #[inline(always)]
    pub(crate) fn removed(_: &Path) {}
    #[inline(always)]
    pub(crate) fn fsync(_: &File) -> SyncGuard {
        SyncGuard
    }
    #[inline(always)]
    pub(crate) fn fsync_dir(_: &Path) -> SyncGuard {
        SyncGuard
    }
    #[inline(always)]
    pub(crate) fn flushed(_: &Path, _: u64) {}
}

#[cfg(any(test, feature = "crash-sim"))]
mod hooks {
    pub(crate) use super::recorder::{created, flushed, fsync, fsync_dir, removed, renamed, wrote};
}

pub(crate) use hooks::*;

// A test-only API whose types are documented where they matter, not field by field.
#[cfg(any(test, feature = "crash-sim"))]
#[allow(missing_docs)]
pub mod recorder;

#[cfg(any(test, feature = "crash-sim"))]
#[allow(missing_docs)]
pub mod states;

#[cfg(test)]
mod tests;
