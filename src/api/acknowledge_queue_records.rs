//! AcknowledgeQueueRecords: the queue forgets the records (never delivered again by a healthy broker); the forgetting is journaled before the answer. Each entry's result is reported on its own in `Successful` or `Failed`.

use std::sync::Arc;

use crate::api::generated::{
    AcknowledgeQueueRecordsErrorEntry, AcknowledgeQueueRecordsInput, AcknowledgeQueueRecordsOutput,
    AcknowledgeQueueRecordsResultEntry,
};
use crate::api::queues::batch;
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;
use crate::broker::queue::receipt::Path;
use crate::broker::queue::receive::BatchAction;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: AcknowledgeQueueRecordsInput,
) -> Result<AcknowledgeQueueRecordsOutput, ApiError> {
    let entries = crate::api::queues::with_action(input.entries, BatchAction::Acknowledge, |e| {
        e.receipt_handle
    });
    let (ok, failed) = batch(
        broker,
        ctx,
        input.queue_arn.as_deref(),
        Path::Normal,
        entries,
    )
    .await?;
    Ok(AcknowledgeQueueRecordsOutput {
        successful: ok
            .into_iter()
            .map(|receipt_handle| AcknowledgeQueueRecordsResultEntry { receipt_handle })
            .collect(),
        failed: failed
            .into_iter()
            .map(
                |(receipt_handle, code, message)| AcknowledgeQueueRecordsErrorEntry {
                    receipt_handle,
                    error_code: code.to_string(),
                    error_message: Some(message),
                },
            )
            .collect(),
    })
}
