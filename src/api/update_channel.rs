//! UpdateChannel: a new `DataFreshnessInSeconds` and/or logging configuration; nothing
//! else of a channel can change, as the model documents. UPDATING for the stream update
//! delay, then ACTIVE with the new settings.

use std::sync::Arc;

use crate::api::channels::{
    channel_error, check_freshness, description, named_channel, resolve_logging,
};
use crate::api::generated::{UpdateChannelInput, UpdateChannelOutput};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::channel::ChannelChange;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateChannelInput,
) -> Result<UpdateChannelOutput, ApiError> {
    let channel = named_channel(broker, ctx, input.channel_arn.as_deref())?;
    let meta = channel.meta();
    if input.s3_tables_destination_configuration.is_some() {
        return Err(api_error!(
            InvalidArgumentException,
            "Channel {} delivers to a general purpose Amazon S3 bucket; use S3DestinationConfiguration to update it.",
            meta.arn()
        ));
    }
    let mut change = ChannelChange::default();
    if let Some(s3) = input.s3_destination_configuration {
        // Required by the model: validation ran.
        change.data_freshness_s = Some(check_freshness(
            s3.data_freshness_in_seconds.unwrap_or_default(),
        )?);
    }
    if let Some(cw) = input.logging_configuration.and_then(|l| l.cloud_watch_logs) {
        change.logging = Some(resolve_logging(
            cw.enabled.unwrap_or(false),
            cw.log_group_name,
            cw.log_stream_name,
            &meta.name,
            Some(&meta.id),
        ));
    }
    if change == ChannelChange::default() {
        return Err(api_error!(
            InvalidArgumentException,
            "Specify S3DestinationConfiguration or LoggingConfiguration: there is nothing to update."
        ));
    }
    let meta = broker
        .update_channel(&channel, change)
        .await
        .map_err(channel_error)?;
    Ok(UpdateChannelOutput {
        channel_description: description(&meta),
    })
}
