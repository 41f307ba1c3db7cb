//! DeleteStream: the stream turns DELETING, and is gone after the configured delay; a
//! stream with registered consumers only with `EnforceConsumerDeletion`.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::DeleteStreamInput;
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DeleteStreamInput,
) -> Result<(), ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    broker
        .delete_stream_checked(&stream, input.enforce_consumer_deletion.unwrap_or(false))
        .await?;
    Ok(())
}
