//! DescribeQueue: a queue's status, stream, starting position and attributes.

use std::sync::Arc;

use crate::api::generated::{DescribeQueueInput, DescribeQueueOutput};
use crate::api::queues::{Plane, description, named_queue};
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DescribeQueueInput,
) -> Result<DescribeQueueOutput, ApiError> {
    let queue = named_queue(broker, ctx, input.queue_arn.as_deref(), Plane::Control)?;
    Ok(DescribeQueueOutput {
        queue_description: description(&queue.meta()),
    })
}
