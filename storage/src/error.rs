//! The crate's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the storage layer.
///
/// Every variant that concerns a file names it, so a log line is enough to find the damage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("I/O error while {op} {path}: {source}")]
    Io {
        /// What we were doing ("opening", "fsyncing", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk do not decode: a bad CRC, an impossible length, a wrong magic number.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage inside the file.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// The log was sealed with [`Log::seal`](crate::Log::seal): it accepts no more appends.
    #[error("log is sealed: no more appends are accepted")]
    Sealed,
    /// Preallocating a segment failed because the file system is full (`ENOSPC`/`EDQUOT`).
    ///
    /// Nothing was written; the log is unchanged and the append may be retried once space is freed.
    #[error("no space left on device to preallocate {bytes} bytes for {path}")]
    NoSpace {
        /// The segment file that could not be preallocated (already removed again).
        path: PathBuf,
        /// How many bytes were requested.
        bytes: u64,
    },
    /// One record is bigger than an empty segment can hold.
    #[error(
        "record of {frame_bytes} bytes (framed) cannot fit in a segment of {segment_bytes} bytes"
    )]
    RecordTooLarge {
        /// Size of the encoded frame.
        frame_bytes: u64,
        /// The configured [`LogOptions::segment_bytes`](crate::LogOptions::segment_bytes).
        segment_bytes: u64,
    },
    /// A field of a record exceeds what the frame format can encode.
    #[error("{field} is {len} bytes long; the frame format allows at most {max}")]
    FieldTooLong {
        /// `"partition_key"`, `"explicit_hash_key"` or `"data"`.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The largest length the format allows.
        max: usize,
    },
    /// The options passed to [`Log::open`](crate::Log::open) contradict each other or the format.
    #[error("invalid log options: {0}")]
    InvalidOptions(String),
    /// An empty [`Journal`](crate::Journal) entry: refused, because its header would be all
    /// zeros, which recovery must read as the end of the journal (bytes a power cut left
    /// unwritten).
    #[error("journal entries must not be empty")]
    EmptyEntry,
    /// A file in a log directory has a segment or index extension but not a valid name.
    #[error("unexpected file name in log directory: {path}")]
    BadFileName {
        /// The offending file.
        path: PathBuf,
    },
    /// An earlier fsync/fdatasync failed. The page cache may have dropped the dirty pages, so nothing
    /// written after the last successful flush can be promised durable: the log refuses further
    /// appends and durability waits. Reopen the log (recovery re-validates the tail).
    #[error("an earlier flush of {path} failed ({message}); the log no longer accepts appends")]
    FlushFailed {
        /// The file whose flush failed.
        path: PathBuf,
        /// The I/O error, as text (it happened on the flusher thread).
        message: String,
    },
    /// The log was closed (dropped) before the awaited data became durable.
    #[error("log was closed before the data became durable")]
    Closed,
    /// The directory is already open: a log open in this process, or a writable log or a
    /// [`DirLock`](crate::DirLock) of another process (an exclusive `flock` of its `LOCK`
    /// file). Two writers on one log would corrupt it.
    #[error("log directory {path} is already open (in this or another process)")]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
}

/// Result with [`enum@Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        position: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: path.into(),
            position,
            reason: reason.into(),
        }
    }
}
