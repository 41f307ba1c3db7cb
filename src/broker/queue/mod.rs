//! Queues: a stream read from a starting position and handed out one record at a time, like
//! SQS, with visibility timeouts, receive counts, acknowledgements and built-in dead letters.
//!
//! - [`registry`]: the queues of the broker, their lifecycle (CREATING → ACTIVE, UPDATING,
//!   DELETING) and the rules that tie them to their stream (on-demand only, counted with
//!   fan-out consumers).
//! - [`delivery`]: the per-queue bookkeeping of what was handed out (pure, no I/O).
//! - [`receive`]: receiving (long polling on the shards' tail notifiers), acknowledging,
//!   changing visibility, restoring dead letters.
//! - [`receipt`]: authenticated receipt handles.
//! - [`persist`]: each queue's journal (`storage::Journal`): its settings and every change
//!   of its delivery state, written before the operation answers.

pub mod delivery;
mod persist;
pub mod receipt;
pub mod receive;
pub mod registry;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use receive::{EntryFailure, ReceivedRecord};
pub use registry::{Queue, Queues};

/// A queue's visibility timeout when CreateQueue gives none: 30 seconds, as documented.
pub const DEFAULT_VISIBILITY_TIMEOUT_S: u32 = 30;
/// `MaxReceiveCount` when CreateQueue gives no DeadLetterConfiguration: 6, as documented.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 6;
/// How long ReceiveQueueRecords waits when `WaitTimeSeconds` is absent: 9 s, as documented.
pub const DEFAULT_WAIT_TIME_S: u32 = 9;
/// Records one receive returns when `Limit` is absent (and at most): 10, as documented.
pub const MAX_RECEIVE_LIMIT: usize = 10;

/// A queue's lifecycle state, as `QueueStatus` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueStatus {
    /// Created; ACTIVE after the stream creation delay.
    Creating,
    /// Delivering.
    Active,
    /// Attributes changing; still delivering.
    Updating,
    /// Deleted; gone after the stream deletion delay. Delivers nothing.
    Deleting,
}

/// Dead-letter handling (`DeadLetterConfiguration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetter {
    /// `BUILT_IN`: a record received this many times without acknowledgement becomes a
    /// dead letter.
    BuiltIn {
        /// `MaxReceiveCount`.
        max_receive_count: u32,
    },
    /// `NONE`: records are redelivered until acknowledged or past retention.
    Disabled,
}

impl DeadLetter {
    /// `MaxReceiveCount` when enabled.
    pub fn max_receive_count(self) -> Option<u32> {
        match self {
            DeadLetter::BuiltIn { max_receive_count } => Some(max_receive_count),
            DeadLetter::Disabled => None,
        }
    }
}

/// A queue's attributes (`QueueAttributes`), all resolved to their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueAttrs {
    /// `VisibilityTimeoutSeconds`.
    pub visibility_timeout_s: u32,
    /// `DeadLetterConfiguration`.
    pub dead_letter: DeadLetter,
}

impl Default for QueueAttrs {
    fn default() -> Self {
        Self {
            visibility_timeout_s: DEFAULT_VISIBILITY_TIMEOUT_S,
            dead_letter: DeadLetter::BuiltIn {
                max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            },
        }
    }
}

/// Where a queue starts in its stream (`QueueStartingPosition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartingPosition {
    /// The oldest retained record.
    TrimHorizon,
    /// Records written after the queue was created.
    Latest,
    /// Records that arrived at or after this time (ms).
    AtTimestamp(i64),
}

/// A queue's settings and identity, as its journal keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    /// Random per queue incarnation: goes into receipt handles.
    pub uid: u64,
    /// The generated resource id in the ARN (not derived from the name, as AWS documents).
    pub id: String,
    /// `QueueName`, unique in its account and region.
    pub name: String,
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// The stream's name (its account and region are the queue's).
    pub stream_name: String,
    /// The stream incarnation (a stream of the same name created later is another).
    pub stream_uid: u64,
    /// The stream's creation time (ms), for `StreamCreationTimestamp`.
    pub stream_created_ms: i64,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Lifecycle state.
    pub status: QueueStatus,
    /// The attributes receives use now.
    pub attrs: QueueAttrs,
    /// Attributes of an UpdateQueue still UPDATING: shown by DescribeQueue, used once the
    /// update completes (records already in flight keep their timeout, as documented).
    pub pending_attrs: Option<QueueAttrs>,
    /// The configured starting position.
    pub start: StartingPosition,
    /// The effective starting time reported once ACTIVE (ms).
    pub effective_start_ms: Option<i64>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// The resource policy (PutResourcePolicy), as attached.
    #[serde(default)]
    pub policy: Option<String>,
}

impl QueueMeta {
    /// `arn:aws:kinesis:REGION:ACCOUNT:queue/ID`.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:queue/{}",
            self.region, self.account, self.id
        )
    }

    /// The stream's ARN.
    pub fn stream_arn(&self) -> String {
        self.stream_key().arn()
    }

    /// The stream's key.
    pub fn stream_key(&self) -> crate::broker::stream::StreamKey {
        crate::broker::stream::StreamKey {
            account: self.account.clone(),
            region: self.region.clone(),
            name: self.stream_name.clone(),
        }
    }

    /// The attributes DescribeQueue shows: an update in progress already shows its values.
    pub fn shown_attrs(&self) -> QueueAttrs {
        self.pending_attrs.unwrap_or(self.attrs)
    }
}

/// Why a queue operation is refused: facts, worded for AWS in `api::queues`.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A stream-level failure (stream not found, not ACTIVE, storage).
    #[error(transparent)]
    Broker(#[from] crate::broker::Error),
    /// No queue has this ARN.
    #[error("queue {arn} not found")]
    NotFound {
        /// The ARN asked for.
        arn: String,
        /// The caller's account.
        account: String,
    },
    /// A queue of this name already exists in the account and region.
    #[error("queue {name} already exists")]
    Exists {
        /// The name.
        name: String,
        /// Account id.
        account: String,
    },
    /// Queues exist on on-demand streams only.
    #[error("stream {name} is not in on-demand mode")]
    NotOnDemand {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// The stream already has as many registered consumers (fan-out and queues) as allowed.
    #[error("stream {name} has {limit} registered consumers")]
    TooManyConsumers {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
        /// The limit.
        limit: usize,
    },
    /// The queue's state does not allow the operation.
    #[error("queue {arn} is {status:?}")]
    NotActive {
        /// The queue ARN.
        arn: String,
        /// Its state.
        status: QueueStatus,
    },
}

/// Results of queue operations.
pub type QueueResult<T> = std::result::Result<T, QueueError>;
