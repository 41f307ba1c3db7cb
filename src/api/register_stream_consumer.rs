//! RegisterStreamConsumer: a consumer in CREATING on an ACTIVE stream, ACTIVE after the
//! configured delay.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{Consumer, RegisterStreamConsumerInput, RegisterStreamConsumerOutput};
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::broker::Broker;

#[tracing::instrument(skip_all, fields(consumer = input.consumer_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: RegisterStreamConsumerInput,
) -> Result<RegisterStreamConsumerOutput, ApiError> {
    // Both members are required by the model, so validation has already refused their absence.
    let name = input.consumer_name.unwrap_or_default();
    let key = stream_key(ctx, None, input.stream_arn.as_deref())?;
    let stream = broker.stream(&key)?;
    let tags = input.tags.unwrap_or_default();
    super::tags::check_consumer_tags(&tags, &key, &name)?;
    let consumer = broker.register_consumer(&stream, name, tags).await?;
    Ok(RegisterStreamConsumerOutput {
        consumer: Consumer {
            consumer_arn: consumer.arn(&stream.arn()),
            consumer_name: consumer.name,
            consumer_status: super::wire_consumer_status(consumer.status),
            consumer_creation_timestamp: Timestamp::from_millis(consumer.created_ms),
        },
    })
}
