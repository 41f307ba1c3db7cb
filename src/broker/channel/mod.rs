//! Channels (issue 22): a stream delivered to a general purpose S3 bucket, like Firehose.
//!
//! - [`registry`]: the channels of the broker, their lifecycle (CREATING → ACTIVE,
//!   UPDATING, DELETING, FAILED with a reason) and the rules tying them to their stream
//!   (on-demand only; a stream with channels cannot be deleted or switched to provisioned).
//!
//! - [`delivery`]: the task that reads the stream and writes objects to S3, exactly once
//!   per object.
//! - [`s3`]: the S3 client (`--s3-endpoint`).
//! - [`gauges`]: what `/metrics` shows of each channel (lag, objects, bytes, dead letters).
//!
//! Each channel is one `storage::MetaStore` file (`channels/<ID>.json`): its settings,
//! status and delivery cursor, written (fsync, rename) before the operation answers and
//! before and after each object is written.

pub mod delivery;
pub mod gauges;
pub mod registry;
pub mod s3;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use registry::{Channel, Channels};

/// `DataFreshnessInSeconds` when CreateChannel gives none: 300, as documented.
pub const DEFAULT_DATA_FRESHNESS_S: u32 = 300;
/// The range of `DataFreshnessInSeconds`: "Valid range is 300 to 900 seconds (5 to 15
/// minutes)" (the SDKs' documentation of `S3DestinationUpdateInput`; the model itself
/// states no range).
pub const DATA_FRESHNESS_RANGE_S: std::ops::RangeInclusive<u32> = 300..=900;
/// Channels an account may have in a region (`ChannelCountLimit`). AWS's quota is not
/// documented anywhere found: our choice.
pub const DEFAULT_CHANNEL_LIMIT: u32 = 50;
/// The dead-letter prefix when CreateChannel gives no `DeadLetterQueueS3Configuration`:
/// the destination bucket "with an error prefix" (documented); the prefix itself is ours.
pub const DEFAULT_ERROR_PREFIX: &str = "errors/";
/// CloudWatch Logs' log stream when logging is enabled without one, as documented.
pub const DEFAULT_LOG_STREAM: &str = "DestinationDelivery";

/// A channel's lifecycle state, as `ChannelStatus` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelStatus {
    /// Created; ACTIVE (or FAILED) after the stream creation delay.
    Creating,
    /// Delivering.
    Active,
    /// Settings changing; the new ones apply when the update delay ends.
    Updating,
    /// Deleted; gone after the stream deletion delay. Delivers nothing.
    Deleting,
    /// Cannot deliver; `status_reason` says why.
    Failed,
}

impl ChannelStatus {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            ChannelStatus::Creating => "CREATING",
            ChannelStatus::Active => "ACTIVE",
            ChannelStatus::Updating => "UPDATING",
            ChannelStatus::Deleting => "DELETING",
            ChannelStatus::Failed => "FAILED",
        }
    }
}

/// How records of the source stream are read (`RecordFormatType`; GSR_JSON is for
/// streaming tables only, which the broker refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordFormat {
    /// One JSON document per record.
    Json,
    /// Text.
    String,
    /// Opaque bytes.
    ByteArray,
}

/// `S3CompressionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// `NONE`.
    None,
    /// `GZIP`.
    Gzip,
    /// `ZSTD`.
    Zstd,
}

/// `S3StorageClass`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageClass {
    /// `STANDARD`.
    Standard,
    /// `INTELLIGENT_TIERING`.
    IntelligentTiering,
    /// `GLACIER_IR`.
    GlacierIr,
}

/// A bucket and the account expected to own it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// `BucketARN` as given (`arn:aws:s3:::NAME`).
    pub arn: String,
    /// `ExpectedBucketOwner`.
    pub expected_owner: String,
}

impl Bucket {
    /// The bucket name the ARN maps to.
    pub fn name(&self) -> &str {
        self.arn.rsplit(":::").next().unwrap_or_default()
    }
}

/// Where a channel writes (`S3DestinationConfiguration`), resolved to its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Destination {
    /// `DataFreshnessInSeconds`.
    pub data_freshness_s: u32,
    /// `StorageConfiguration`'s bucket.
    pub bucket: Bucket,
    /// `OutputKeyTemplate`, when given.
    pub output_key_template: Option<String>,
    /// `StorageClass`, when given.
    pub storage_class: Option<StorageClass>,
    /// `CompressionType`.
    pub compression: Compression,
    /// `DeadLetterQueueS3Configuration`: given, or the destination bucket and
    /// [`DEFAULT_ERROR_PREFIX`].
    pub dead_letter: Bucket,
    /// Its `ErrorOutputPrefix`.
    pub error_prefix: String,
}

/// `CloudWatchLogs`, resolved: CloudWatch Logs is not emulated, so these settings are
/// kept and shown; delivery problems go to the broker's own log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    /// `Enabled`.
    pub enabled: bool,
    /// `LogGroupName`, when enabled.
    pub group: Option<String>,
    /// `LogStreamName`, when enabled.
    pub stream: Option<String>,
}

/// `EncryptionConfiguration`: a customer managed KMS key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `KeyId`.
    pub key_id: String,
}

/// What an UpdateChannel changes: applied when UPDATING ends.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelChange {
    /// A new `DataFreshnessInSeconds`.
    pub data_freshness_s: Option<u32>,
    /// A new logging configuration.
    pub logging: Option<Logging>,
}

/// A channel's settings, identity and status, as its file keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMeta {
    /// `ChannelId`: random, 20 lowercase letters and digits.
    pub id: String,
    /// `ChannelName`, unique in its account and region.
    pub name: String,
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// The source stream's name (same account and region).
    pub stream_name: String,
    /// The stream incarnation read.
    pub stream_uid: u64,
    /// The stream's creation time (ms), for `StreamCreationTimestamp`.
    pub stream_created_ms: i64,
    /// `ServiceExecutionRoleARN` (kept and shown; the broker assumes no role).
    pub role_arn: String,
    /// `RecordFormatType`.
    pub format: RecordFormat,
    /// The destination.
    pub destination: S3Destination,
    /// `EncryptionConfiguration`.
    pub encryption: Option<Encryption>,
    /// `LoggingConfiguration`.
    pub logging: Logging,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Lifecycle state.
    pub status: ChannelStatus,
    /// `ChannelStatusReason`, for FAILED.
    pub status_reason: Option<String>,
    /// The change of an UpdateChannel still UPDATING (shown by DescribeChannel at once).
    pub pending: Option<ChannelChange>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Where delivery is in the stream.
    #[serde(default)]
    pub cursor: delivery::Cursor,
}

impl ChannelMeta {
    /// `arn:aws:kinesis:REGION:ACCOUNT:channel/NAME`: the model's pattern
    /// (`arn:aws.*:kinesis:.*:\d{12}:channel/\S+`); that the resource part is the name is
    /// our choice (no example of a real channel ARN was found).
    pub fn arn(&self) -> String {
        channel_arn(&self.region, &self.account, &self.name)
    }

    /// The stream's key.
    pub fn stream_key(&self) -> crate::broker::stream::StreamKey {
        crate::broker::stream::StreamKey {
            account: self.account.clone(),
            region: self.region.clone(),
            name: self.stream_name.clone(),
        }
    }

    /// The settings DescribeChannel shows: an update in progress already shows its values.
    pub fn shown(&self) -> (u32, Logging) {
        let freshness = self
            .pending
            .as_ref()
            .and_then(|p| p.data_freshness_s)
            .unwrap_or(self.destination.data_freshness_s);
        let logging = self
            .pending
            .as_ref()
            .and_then(|p| p.logging.clone())
            .unwrap_or_else(|| self.logging.clone());
        (freshness, logging)
    }

    /// Applies a finished update.
    pub fn apply(&mut self, change: ChannelChange) {
        if let Some(f) = change.data_freshness_s {
            self.destination.data_freshness_s = f;
        }
        if let Some(l) = change.logging {
            self.logging = l;
        }
    }
}

/// The ARN of channel `name`.
pub fn channel_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:channel/{name}")
}

/// Why a channel operation is refused: facts, worded for AWS in `api::channels`.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// A stream-level failure (stream not found, not ACTIVE, storage).
    #[error(transparent)]
    Broker(#[from] crate::broker::Error),
    /// No channel has this ARN.
    #[error("channel {arn} not found")]
    NotFound {
        /// The ARN asked for.
        arn: String,
        /// The caller's account.
        account: String,
    },
    /// A channel of this name already exists in the account and region.
    #[error("channel {name} already exists")]
    Exists {
        /// The name.
        name: String,
        /// Account id.
        account: String,
    },
    /// Channels read on-demand streams only.
    #[error("stream {name} is not in on-demand mode")]
    NotOnDemand {
        /// Stream name.
        name: String,
        /// Account id.
        account: String,
    },
    /// The account has as many channels as allowed.
    #[error("account {account} has {limit} channels")]
    TooMany {
        /// Account id.
        account: String,
        /// The limit.
        limit: u32,
    },
    /// The channel's state does not allow the operation.
    #[error("channel {arn} is {status:?}")]
    NotActive {
        /// The channel ARN.
        arn: String,
        /// Its state.
        status: ChannelStatus,
    },
}

/// Results of channel operations.
pub type ChannelResult<T> = std::result::Result<T, ChannelError>;
