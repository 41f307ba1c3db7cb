//! DescribeStreamConsumer: a consumer named by its ARN, or by its stream's ARN and its name.

use std::sync::Arc;

use crate::api::common::named_consumer;
use crate::api::generated::{
    ConsumerDescription, DescribeStreamConsumerInput, DescribeStreamConsumerOutput,
};
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::broker::Broker;

#[tracing::instrument(skip_all, fields(consumer = input.consumer_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DescribeStreamConsumerInput,
) -> Result<DescribeStreamConsumerOutput, ApiError> {
    let (stream, consumer) = named_consumer(
        broker,
        ctx,
        input.consumer_arn.as_deref(),
        input.consumer_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream_arn = stream.arn();
    Ok(DescribeStreamConsumerOutput {
        consumer_description: ConsumerDescription {
            consumer_arn: consumer.arn(&stream_arn),
            consumer_name: consumer.name,
            consumer_status: super::wire_consumer_status(consumer.status),
            consumer_creation_timestamp: Timestamp::from_millis(consumer.created_ms),
            stream_arn,
        },
    })
}
