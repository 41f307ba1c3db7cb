//! What the five channel operations share: AWS's wording for channel errors, the wire form
//! of a channel's description and summary, and the channel a request names.
//!
//! The model documents the rules (quoted in each operation's file); no source found pins
//! the text of AWS's channel error messages, so every message below is NOT PINNED and
//! follows the wording of the stream and queue errors.

use std::sync::Arc;

use crate::api::generated::{
    ChannelDescription, ChannelDestinationType, ChannelEncryptionConfiguration,
    ChannelEncryptionType, ChannelLoggingConfiguration, ChannelStatus as WireStatus,
    ChannelStreamDescription, ChannelStreamIdentifier, ChannelSummary, CloudWatchLogs,
    DeadLetterQueueS3Configuration, RecordConfiguration, RecordFormatType, S3CompressionType,
    S3DestinationDescription, S3StorageClass, S3StorageConfiguration,
};
use crate::api::{ApiError, ErrorCode, RequestContext, Timestamp};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::channel::{
    Channel, ChannelError, ChannelMeta, ChannelStatus, Compression, Logging, RecordFormat,
    StorageClass,
};

/// AWS's error for a channel failure.
pub fn channel_error(e: ChannelError) -> ApiError {
    match e {
        ChannelError::Broker(e) => e.into(),
        ChannelError::NotFound { arn, account } => api_error!(
            ResourceNotFoundException,
            "Channel {arn} under account {account} not found."
        ),
        ChannelError::Exists { name, account } => api_error!(
            ResourceInUseException,
            "Channel {name} under account {account} already exists."
        ),
        ChannelError::NotOnDemand { name, account } => api_error!(
            InvalidArgumentException,
            "Channels are supported only on data streams in on-demand capacity mode; stream {name} under account {account} is in PROVISIONED mode."
        ),
        ChannelError::TooMany { account, limit } => api_error!(
            LimitExceededException,
            "Account {account} already has {limit} channels, the most an account can have in a region."
        ),
        ChannelError::NotActive { arn, status } => ApiError::new(
            ErrorCode::ResourceInUseException,
            format!(
                "Channel {arn} is not ACTIVE, instead in state {}.",
                status.name()
            ),
        ),
    }
}

/// The channel a request names by `ChannelARN` (required by the model: validation ran).
pub fn named_channel(
    broker: &Broker,
    ctx: &RequestContext,
    arn: Option<&str>,
) -> Result<Arc<Channel>, ApiError> {
    broker
        .channel(&ctx.account_id, arn.unwrap_or_default())
        .map_err(channel_error)
}

/// The wire status.
pub fn wire_status(status: ChannelStatus) -> WireStatus {
    match status {
        ChannelStatus::Creating => WireStatus::Creating,
        ChannelStatus::Active => WireStatus::Active,
        ChannelStatus::Updating => WireStatus::Updating,
        ChannelStatus::Deleting => WireStatus::Deleting,
        ChannelStatus::Failed => WireStatus::Failed,
    }
}

fn wire_format(format: RecordFormat) -> RecordFormatType {
    match format {
        RecordFormat::Json => RecordFormatType::Json,
        RecordFormat::String => RecordFormatType::String,
        RecordFormat::ByteArray => RecordFormatType::ByteArray,
    }
}

fn wire_compression(c: Compression) -> S3CompressionType {
    match c {
        Compression::None => S3CompressionType::None,
        Compression::Gzip => S3CompressionType::Gzip,
        Compression::Zstd => S3CompressionType::Zstd,
    }
}

fn wire_storage_class(c: StorageClass) -> S3StorageClass {
    match c {
        StorageClass::Standard => S3StorageClass::Standard,
        StorageClass::IntelligentTiering => S3StorageClass::IntelligentTiering,
        StorageClass::GlacierIr => S3StorageClass::GlacierIr,
    }
}

/// The wire form of a logging configuration.
pub fn wire_logging(logging: &Logging) -> ChannelLoggingConfiguration {
    ChannelLoggingConfiguration {
        cloud_watch_logs: Some(CloudWatchLogs {
            enabled: Some(logging.enabled),
            log_group_name: logging.group.clone(),
            log_stream_name: logging.stream.clone(),
        }),
    }
}

/// The wire description of a channel.
pub fn description(meta: &ChannelMeta) -> ChannelDescription {
    let (freshness, logging) = meta.shown();
    let d = &meta.destination;
    ChannelDescription {
        channel_name: meta.name.clone(),
        channel_arn: meta.arn(),
        channel_id: meta.id.clone(),
        channel_status: wire_status(meta.status),
        channel_status_reason: meta.status_reason.clone(),
        channel_creation_timestamp: Timestamp::from_millis(meta.created_ms),
        service_execution_role_arn: meta.role_arn.clone(),
        stream_configuration_list: vec![ChannelStreamDescription {
            stream_arn: meta.stream_key().arn(),
            stream_creation_timestamp: Timestamp::from_millis(meta.stream_created_ms),
            record_configuration: RecordConfiguration {
                record_format_type: Some(wire_format(meta.format)),
                gsr_schema_arn: None,
            },
        }],
        s3_destination_configuration: Some(S3DestinationDescription {
            data_freshness_in_seconds: freshness as i32,
            dead_letter_queue_s3_configuration: DeadLetterQueueS3Configuration {
                bucket_arn: Some(d.dead_letter.arn.clone()),
                expected_bucket_owner: Some(d.dead_letter.expected_owner.clone()),
                error_output_prefix: Some(d.error_prefix.clone()),
            },
            storage_configuration: S3StorageConfiguration {
                bucket_arn: Some(d.bucket.arn.clone()),
                expected_bucket_owner: Some(d.bucket.expected_owner.clone()),
                output_key_template: d.output_key_template.clone(),
                storage_class: d.storage_class.map(wire_storage_class),
                compression_type: Some(wire_compression(d.compression)),
            },
        }),
        s3_tables_destination_configuration: None,
        encryption_configuration: meta.encryption.as_ref().map(|e| {
            ChannelEncryptionConfiguration {
                encryption_type: Some(ChannelEncryptionType::Kms),
                key_id: Some(e.key_id.clone()),
            }
        }),
        logging_configuration: wire_logging(&logging),
    }
}

/// The wire summary of a channel (ListChannels).
pub fn summary(meta: &ChannelMeta) -> ChannelSummary {
    ChannelSummary {
        channel_name: meta.name.clone(),
        channel_arn: meta.arn(),
        channel_id: meta.id.clone(),
        channel_status: wire_status(meta.status),
        channel_status_reason: meta.status_reason.clone(),
        channel_creation_timestamp: Timestamp::from_millis(meta.created_ms),
        channel_destination_type: ChannelDestinationType::S3,
        streams: vec![ChannelStreamIdentifier {
            stream_arn: meta.stream_key().arn(),
            stream_creation_timestamp: Timestamp::from_millis(meta.stream_created_ms),
        }],
    }
}

/// Checks a `DataFreshnessInSeconds` against its documented range.
pub fn check_freshness(seconds: i32) -> Result<u32, ApiError> {
    let range = crate::broker::channel::DATA_FRESHNESS_RANGE_S;
    u32::try_from(seconds)
        .ok()
        .filter(|s| range.contains(s))
        .ok_or_else(|| {
            api_error!(
                InvalidArgumentException,
                "DataFreshnessInSeconds must be between {} and {} seconds; {seconds} was given.",
                range.start(),
                range.end()
            )
        })
}

/// Resolves a logging configuration: the documented defaults for an enabled one
/// (`/aws/kinesis/{channelName}/{channelId}` and `DestinationDelivery`).
pub fn resolve_logging(
    enabled: bool,
    group: Option<String>,
    stream: Option<String>,
    channel_name: &str,
    channel_id: Option<&str>,
) -> Logging {
    if !enabled {
        return Logging {
            enabled,
            group,
            stream,
        };
    }
    Logging {
        enabled,
        group: group.or_else(|| channel_id.map(|id| format!("/aws/kinesis/{channel_name}/{id}"))),
        stream: stream.or_else(|| Some(crate::broker::channel::DEFAULT_LOG_STREAM.to_string())),
    }
}
