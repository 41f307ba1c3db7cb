//! DeleteQueue: DELETING at once (nothing more is delivered, receipt handles stop working),
//! gone after the stream deletion delay. The stream and its records are untouched.

use std::sync::Arc;

use crate::api::generated::DeleteQueueInput;
use crate::api::queues::{Plane, named_queue, queue_error};
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DeleteQueueInput,
) -> Result<(), ApiError> {
    let queue = named_queue(broker, ctx, input.queue_arn.as_deref(), Plane::Control)?;
    broker
        .delete_queue(&queue)
        .await
        .map_err(|e| queue_error(e, Plane::Control))
}
