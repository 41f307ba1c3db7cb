//! UpdateQueue: new visibility timeout and/or dead-letter handling. UPDATING for the
//! stream update delay; the new visibility timeout applies to records received after the
//! update completes (records in flight keep theirs), as the model documents.

use std::sync::Arc;

use crate::api::generated::{UpdateQueueInput, UpdateQueueOutput};
use crate::api::queues::{Plane, apply_attrs, description, named_queue, queue_error};
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateQueueInput,
) -> Result<UpdateQueueOutput, ApiError> {
    let queue = named_queue(broker, ctx, input.queue_arn.as_deref(), Plane::Control)?;
    // Checked against the current attributes first, so an invalid request changes nothing.
    let given = input.queue_attributes;
    apply_attrs(queue.meta().attrs, given.as_ref())?;
    let meta = broker
        .update_queue(&queue, move |current| {
            apply_attrs(current, given.as_ref()).unwrap_or(current)
        })
        .await
        .map_err(|e| queue_error(e, Plane::Control))?;
    Ok(UpdateQueueOutput {
        queue_description: description(&meta),
    })
}
