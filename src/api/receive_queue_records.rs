//! ReceiveQueueRecords: up to `Limit` (10) visible records, each with a new receipt handle
//! and invisible for the visibility timeout; long polls up to `WaitTimeSeconds` (9).

use std::sync::Arc;

use crate::api::generated::{ReceiveQueueRecordsInput, ReceiveQueueRecordsOutput};
use crate::api::queues::receive;
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;
use crate::broker::queue::receipt::Path;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ReceiveQueueRecordsInput,
) -> Result<ReceiveQueueRecordsOutput, ApiError> {
    let queue_records = receive(
        broker,
        ctx,
        input.queue_arn.as_deref(),
        Path::Normal,
        input.limit,
        input.wait_time_seconds,
        input.visibility_timeout_seconds,
    )
    .await?;
    Ok(ReceiveQueueRecordsOutput { queue_records })
}
