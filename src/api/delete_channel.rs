//! DeleteChannel: DELETING at once (delivery stops), gone after the stream deletion delay.
//! "Data already delivered to the destination is not deleted."

use std::sync::Arc;

use crate::api::channels::{channel_error, named_channel};
use crate::api::generated::DeleteChannelInput;
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DeleteChannelInput,
) -> Result<(), ApiError> {
    let channel = named_channel(broker, ctx, input.channel_arn.as_deref())?;
    broker.delete_channel(&channel).await.map_err(channel_error)
}
