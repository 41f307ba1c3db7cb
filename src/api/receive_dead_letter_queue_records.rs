//! ReceiveDeadLetterQueueRecords: up to `Limit` visible dead-letter records, each with a new
//! receipt handle for the dead-letter operations; long polls like ReceiveQueueRecords.

use std::sync::Arc;

use crate::api::generated::{
    ReceiveDeadLetterQueueRecordsInput, ReceiveDeadLetterQueueRecordsOutput,
};
use crate::api::queues::receive;
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;
use crate::broker::queue::receipt::Path;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ReceiveDeadLetterQueueRecordsInput,
) -> Result<ReceiveDeadLetterQueueRecordsOutput, ApiError> {
    let queue_records = receive(
        broker,
        ctx,
        input.queue_arn.as_deref(),
        Path::DeadLetter,
        input.limit,
        input.wait_time_seconds,
        input.visibility_timeout_seconds,
    )
    .await?;
    Ok(ReceiveDeadLetterQueueRecordsOutput { queue_records })
}
