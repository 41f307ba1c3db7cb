//! AcknowledgeDeadLetterQueueRecords: discards dead-letter records; journaled before the answer. Each entry's result is reported on its own in `Successful` or `Failed`.

use std::sync::Arc;

use crate::api::generated::{
    AcknowledgeDeadLetterQueueRecordsErrorEntry, AcknowledgeDeadLetterQueueRecordsInput,
    AcknowledgeDeadLetterQueueRecordsOutput, AcknowledgeDeadLetterQueueRecordsResultEntry,
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
    input: AcknowledgeDeadLetterQueueRecordsInput,
) -> Result<AcknowledgeDeadLetterQueueRecordsOutput, ApiError> {
    let entries = crate::api::queues::with_action(input.entries, BatchAction::Acknowledge, |e| {
        e.receipt_handle
    });
    let (ok, failed) = batch(
        broker,
        ctx,
        input.queue_arn.as_deref(),
        Path::DeadLetter,
        entries,
    )
    .await?;
    Ok(AcknowledgeDeadLetterQueueRecordsOutput {
        successful: ok
            .into_iter()
            .map(|receipt_handle| AcknowledgeDeadLetterQueueRecordsResultEntry { receipt_handle })
            .collect(),
        failed: failed
            .into_iter()
            .map(
                |(receipt_handle, code, message)| AcknowledgeDeadLetterQueueRecordsErrorEntry {
                    receipt_handle,
                    error_code: code.to_string(),
                    error_message: Some(message),
                },
            )
            .collect(),
    })
}
