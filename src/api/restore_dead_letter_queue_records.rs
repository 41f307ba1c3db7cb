//! RestoreDeadLetterQueueRecords: returns dead-letter records to the normal receive path, visible at once, their receive count reset. Each entry's result is reported on its own in `Successful` or `Failed`.

use std::sync::Arc;

use crate::api::generated::{
    RestoreDeadLetterQueueRecordsErrorEntry, RestoreDeadLetterQueueRecordsInput,
    RestoreDeadLetterQueueRecordsOutput, RestoreDeadLetterQueueRecordsResultEntry,
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
    input: RestoreDeadLetterQueueRecordsInput,
) -> Result<RestoreDeadLetterQueueRecordsOutput, ApiError> {
    let entries =
        crate::api::queues::with_action(input.entries, BatchAction::Restore, |e| e.receipt_handle);
    let (ok, failed) = batch(
        broker,
        ctx,
        input.queue_arn.as_deref(),
        Path::DeadLetter,
        entries,
    )
    .await?;
    Ok(RestoreDeadLetterQueueRecordsOutput {
        successful: ok
            .into_iter()
            .map(|receipt_handle| RestoreDeadLetterQueueRecordsResultEntry { receipt_handle })
            .collect(),
        failed: failed
            .into_iter()
            .map(
                |(receipt_handle, code, message)| RestoreDeadLetterQueueRecordsErrorEntry {
                    receipt_handle,
                    error_code: code.to_string(),
                    error_message: Some(message),
                },
            )
            .collect(),
    })
}
