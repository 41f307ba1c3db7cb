//! DescribeChannel: a channel's status (with `ChannelStatusReason` when FAILED), source
//! stream, destination, encryption and logging.

use std::sync::Arc;

use crate::api::channels::{description, named_channel};
use crate::api::generated::{DescribeChannelInput, DescribeChannelOutput};
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DescribeChannelInput,
) -> Result<DescribeChannelOutput, ApiError> {
    let channel = named_channel(broker, ctx, input.channel_arn.as_deref())?;
    Ok(DescribeChannelOutput {
        channel_description: description(&channel.meta()),
    })
}
