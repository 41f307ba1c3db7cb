//! CreateChannel: a channel reading an ON_DEMAND stream into a general purpose S3 bucket,
//! CREATING until the stream creation delay has passed. The model documents: exactly one
//! of `S3DestinationConfiguration` and `S3TablesDestinationConfiguration`; one stream per
//! channel; JSON, STRING and BYTE_ARRAY for S3 (GSR_JSON only for streaming tables);
//! `DataFreshnessInSeconds` 300 by default; the dead-letter bucket defaults to the
//! destination bucket with an error prefix; the KMS key cannot be the service key
//! (`aws/kinesis`); on-demand streams only.
//!
//! Streaming tables (S3 Tables / Iceberg) are not emulated: such a request is refused
//! with a clear error rather than accepted and never delivered.

use std::sync::Arc;

use crate::api::channels::{channel_error, check_freshness, description, resolve_logging};
use crate::api::common::stream_key;
use crate::api::generated::{
    CreateChannelInput, CreateChannelOutput, RecordFormatType, S3CompressionType, S3StorageClass,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::channel::registry::NewChannel;
use crate::broker::channel::{
    Bucket, ChannelMeta, ChannelStatus, Compression, DEFAULT_DATA_FRESHNESS_S,
    DEFAULT_ERROR_PREFIX, Encryption, Logging, RecordFormat, S3Destination, StorageClass,
};

#[tracing::instrument(skip_all, fields(channel = input.channel_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: CreateChannelInput,
) -> Result<CreateChannelOutput, ApiError> {
    // Required by the model: validation has refused their absence.
    let name = input.channel_name.unwrap_or_default();
    let role_arn = input.service_execution_role_arn.unwrap_or_default();
    let configs = input.stream_configuration_list.unwrap_or_default();
    let destination = match (
        input.s3_destination_configuration,
        input.s3_tables_destination_configuration,
    ) {
        (Some(s3), None) => s3,
        (None, Some(_)) => {
            return Err(api_error!(
                InvalidArgumentException,
                "S3TablesDestinationConfiguration is not supported by kinesis-broker: channels deliver to general purpose S3 buckets only (S3DestinationConfiguration)."
            ));
        }
        _ => {
            return Err(api_error!(
                InvalidArgumentException,
                "You must specify either S3DestinationConfiguration or S3TablesDestinationConfiguration, but not both."
            ));
        }
    };
    let [config] = configs.as_slice() else {
        return Err(api_error!(
            InvalidArgumentException,
            "StreamConfigurationList must contain exactly one entry: a channel reads a single data stream."
        ));
    };
    let key = stream_key(ctx, None, config.stream_arn.as_deref())?;
    let record = config.record_configuration.as_ref();
    let format = match record.and_then(|r| r.record_format_type.as_ref()) {
        Some(RecordFormatType::Json) => RecordFormat::Json,
        Some(RecordFormatType::String) => RecordFormat::String,
        Some(RecordFormatType::ByteArray) => RecordFormat::ByteArray,
        // Required and an enum: only GSR_JSON is left.
        _ => {
            return Err(api_error!(
                InvalidArgumentException,
                "RecordFormatType GSR_JSON is supported only for streaming table (Amazon S3 Tables) destinations."
            ));
        }
    };
    if record.and_then(|r| r.gsr_schema_arn.as_ref()).is_some() {
        return Err(api_error!(
            InvalidArgumentException,
            "GSRSchemaARN applies only to streaming table (Amazon S3 Tables) destinations."
        ));
    }
    let data_freshness_s = match destination.data_freshness_in_seconds {
        Some(s) => check_freshness(s)?,
        None => DEFAULT_DATA_FRESHNESS_S,
    };
    // StorageConfiguration and its three required members: validation ran.
    let storage = destination.storage_configuration.unwrap_or_default();
    let bucket = Bucket {
        arn: storage.bucket_arn.unwrap_or_default(),
        expected_owner: storage.expected_bucket_owner.unwrap_or_default(),
    };
    let (dead_letter, error_prefix) = match destination.dead_letter_queue_s3_configuration {
        Some(dl) => (
            Bucket {
                arn: dl.bucket_arn.unwrap_or_default(),
                expected_owner: dl.expected_bucket_owner.unwrap_or_default(),
            },
            dl.error_output_prefix
                .unwrap_or_else(|| DEFAULT_ERROR_PREFIX.to_string()),
        ),
        None => (bucket.clone(), DEFAULT_ERROR_PREFIX.to_string()),
    };
    let compression = match storage.compression_type {
        Some(S3CompressionType::Gzip) => Compression::Gzip,
        Some(S3CompressionType::Zstd) => Compression::Zstd,
        _ => Compression::None,
    };
    if let Some(template) = &storage.output_key_template
        && let Err(why) = crate::broker::channel::delivery::check_key_template(template)
    {
        return Err(api_error!(
            InvalidArgumentException,
            "Invalid OutputKeyTemplate {template}: {why}."
        ));
    }
    let storage_class = storage.storage_class.map(|c| match c {
        S3StorageClass::IntelligentTiering => StorageClass::IntelligentTiering,
        S3StorageClass::GlacierIr => StorageClass::GlacierIr,
        // An enum: validation refused anything else.
        _ => StorageClass::Standard,
    });
    let encryption = match input.encryption_configuration {
        Some(e) => {
            let key_id = e.key_id.unwrap_or_default();
            if key_id == "aws/kinesis" || key_id.ends_with("alias/aws/kinesis") {
                return Err(api_error!(
                    InvalidArgumentException,
                    "KeyId must name a customer managed KMS key; the Amazon Kinesis Data Streams service key (aws/kinesis) cannot be used for a channel."
                ));
            }
            Some(Encryption { key_id })
        }
        None => None,
    };
    let logging = match input.logging_configuration.and_then(|l| l.cloud_watch_logs) {
        Some(cw) => resolve_logging(
            cw.enabled.unwrap_or(false),
            cw.log_group_name,
            cw.log_stream_name,
            &name,
            None,
        ),
        None => Logging {
            enabled: false,
            group: None,
            stream: None,
        },
    };
    let tags = input.tags.unwrap_or_default();
    super::tags::check_channel_tags(&tags, &name, &key.account)?;
    let meta = ChannelMeta {
        // Identity, stream and status are the registry's to fill.
        id: String::new(),
        name: name.clone(),
        account: String::new(),
        region: String::new(),
        stream_name: String::new(),
        stream_uid: 0,
        stream_created_ms: 0,
        role_arn,
        format,
        destination: S3Destination {
            data_freshness_s,
            bucket,
            output_key_template: storage.output_key_template,
            storage_class,
            compression,
            dead_letter,
            error_prefix,
        },
        encryption,
        logging,
        created_ms: 0,
        status: ChannelStatus::Creating,
        status_reason: None,
        pending: None,
        tags,
        cursor: Default::default(),
    };
    let meta = broker
        .create_channel(NewChannel {
            name,
            stream: key,
            meta,
        })
        .await
        .map_err(channel_error)?;
    Ok(CreateChannelOutput {
        channel_description: description(&meta),
    })
}
