//! DeregisterStreamConsumer: an ACTIVE consumer turns DELETING, and is gone after the
//! configured delay; its SubscribeToShard sessions end.

use std::sync::Arc;

use crate::api::common::named_consumer;
use crate::api::generated::DeregisterStreamConsumerInput;
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all, fields(consumer = input.consumer_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DeregisterStreamConsumerInput,
) -> Result<(), ApiError> {
    let (stream, consumer) = named_consumer(
        broker,
        ctx,
        input.consumer_arn.as_deref(),
        input.consumer_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    broker
        .deregister_consumer(&stream, consumer.name, consumer.created_ms)
        .await?;
    Ok(())
}
