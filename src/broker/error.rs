//! The broker's errors: domain facts, without AWS wording (that lives in `api`).

use super::catalog::StreamStatus;

/// What can go wrong in the domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No stream of that name in the account and region.
    #[error("stream {name} not found in account {account}")]
    StreamNotFound {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// A stream of that name already exists.
    #[error("stream {name} already exists in account {account}")]
    StreamExists {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// The stream is not in a state that allows the operation.
    #[error("stream {name} in account {account} is {status:?}")]
    StreamNotActive {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
        /// Its current status.
        status: StreamStatus,
    },
    /// No shard with that id in the stream.
    #[error("shard {shard_id} not found in stream {name} of account {account}")]
    ShardNotFound {
        /// The shard id asked for.
        shard_id: String,
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// A reshard names a shard the stream does not have.
    #[error("no shard {shard_id} in stream {name} of account {account}")]
    NoSuchShard {
        /// The shard id.
        shard_id: String,
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// The shard was already split or merged.
    #[error("shard {shard_id} of stream {name} in account {account} is closed")]
    ShardClosed {
        /// The shard id.
        shard_id: String,
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// A reshard or mode change the stream's rules do not allow.
    #[error("invalid reshard: {0}")]
    InvalidReshard(String),
    /// The shard iterator is not one of ours, or was altered.
    #[error("invalid shard iterator")]
    InvalidIterator,
    /// The shard iterator is older than five minutes.
    #[error("shard iterator issued at {issued_ms} expired at {now_ms}")]
    IteratorExpired {
        /// When it was issued.
        issued_ms: i64,
        /// Now.
        now_ms: i64,
    },
    /// The stream the iterator names no longer exists.
    #[error("the stream of this iterator no longer exists")]
    IteratorStreamGone {
        /// Shard id of the iterator.
        shard_id: String,
        /// Name of the deleted stream when still known.
        name: Option<String>,
        /// Account of the deleted stream when still known.
        account: Option<String>,
    },
    /// The shard is over its throughput limit.
    #[error("shard {shard_id} of stream {name} in account {account} is over its throughput limit")]
    Throttled {
        /// The shard id.
        shard_id: String,
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// A control-plane operation is over its per-account rate.
    #[error("rate exceeded for {0}")]
    RateExceeded(String),
    /// A fault injected on purpose (see `broker::faults`).
    #[error("injected fault: {0:?}")]
    Injected(super::faults::RequestFault),
    /// A record failed on purpose by fault injection.
    #[error("injected record fault: {0:?}")]
    InjectedRecord(super::faults::RecordFault),
    /// The stream has queues, which must be deleted before it can be deleted or switched
    /// to provisioned mode (issue 18).
    #[error("stream {name} of account {account} has queues")]
    StreamHasQueues {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
        /// What was refused: `delete` or `switch to PROVISIONED`.
        action: &'static str,
    },
    /// The stream has channels, which must be deleted before it can be deleted or switched
    /// to provisioned mode (issue 22).
    #[error("stream {name} of account {account} has channels")]
    StreamHasChannels {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
        /// What was refused: `delete` or `switch to PROVISIONED`.
        action: &'static str,
    },
    /// No consumer of that name is registered with the stream.
    #[error("consumer {consumer} not found on stream {name} of account {account}")]
    ConsumerNotFound {
        /// Consumer name.
        consumer: String,
        /// Stream name.
        name: String,
        /// Account id of the stream.
        account: String,
    },
    /// No registered consumer has this ARN (unknown stream or name, or another creation time).
    #[error("consumer {arn} not found (asked by account {account})")]
    ConsumerArnNotFound {
        /// The consumer ARN asked for.
        arn: String,
        /// The caller's account.
        account: String,
    },
    /// The text is not a consumer ARN the broker can resolve.
    #[error("invalid consumer ARN {0}")]
    InvalidConsumerArn(String),
    /// A consumer of that name is already registered with the stream (in any status).
    #[error("consumer {consumer} already exists on stream {name} of account {account}")]
    ConsumerExists {
        /// Consumer name.
        consumer: String,
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// The consumer is not ACTIVE (CREATING or DELETING).
    #[error("consumer {consumer} on stream {name} of account {account} is not ACTIVE")]
    ConsumerNotActive {
        /// Consumer name.
        consumer: String,
        /// Its creation time (ms).
        created_ms: i64,
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// The stream already has as many consumers as allowed.
    #[error("stream {name} of account {account} has {limit} consumers")]
    TooManyConsumers {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
        /// The limit.
        limit: usize,
    },
    /// The stream already has as many consumers in CREATING as allowed.
    #[error("stream {name} of account {account} has {limit} consumers in CREATING")]
    TooManyCreatingConsumers {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
        /// The limit.
        limit: usize,
    },
    /// DeleteStream without EnforceConsumerDeletion on a stream that has consumers.
    #[error("stream {name} of account {account} has registered consumers")]
    StreamHasConsumers {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// An account limit would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Storage failed (I/O, corruption, no space).
    #[error("storage: {0}")]
    Storage(#[from] storage::Error),
    /// The metadata catalog could not be read or written.
    #[error("catalog: {0}")]
    Catalog(String),
}

/// The broker's result type.
pub type Result<T> = std::result::Result<T, Error>;
