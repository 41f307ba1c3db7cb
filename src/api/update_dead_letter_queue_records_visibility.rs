//! UpdateDeadLetterQueueRecordsVisibility: a new visibility timeout per dead-letter record, counted from now. Each entry's result is reported on its own in `Successful` or `Failed`.

use std::sync::Arc;

use crate::api::generated::{
    UpdateDeadLetterQueueRecordsVisibilityErrorEntry, UpdateDeadLetterQueueRecordsVisibilityInput,
    UpdateDeadLetterQueueRecordsVisibilityOutput,
    UpdateDeadLetterQueueRecordsVisibilityResultEntry,
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
    input: UpdateDeadLetterQueueRecordsVisibilityInput,
) -> Result<UpdateDeadLetterQueueRecordsVisibilityOutput, ApiError> {
    let entries = input
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            // Both members are required and bounded to 0..=43200 by the model.
            let seconds = e.visibility_timeout_seconds.unwrap_or(0).max(0) as u32;
            (
                e.receipt_handle.unwrap_or_default(),
                BatchAction::Visibility(seconds),
            )
        })
        .collect();
    let (ok, failed) = batch(
        broker,
        ctx,
        input.queue_arn.as_deref(),
        Path::DeadLetter,
        entries,
    )
    .await?;
    Ok(UpdateDeadLetterQueueRecordsVisibilityOutput {
        successful: ok
            .into_iter()
            .map(
                |receipt_handle| UpdateDeadLetterQueueRecordsVisibilityResultEntry {
                    receipt_handle,
                },
            )
            .collect(),
        failed: failed
            .into_iter()
            .map(|(receipt_handle, code, message)| {
                UpdateDeadLetterQueueRecordsVisibilityErrorEntry {
                    receipt_handle,
                    error_code: code.to_string(),
                    error_message: Some(message),
                }
            })
            .collect(),
    })
}
