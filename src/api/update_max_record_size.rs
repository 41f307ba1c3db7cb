//! UpdateMaxRecordSize: the largest record (data plus partition key) a stream accepts,
//! 1024 to 10240 KiB (range checked by the generated validation).

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::UpdateMaxRecordSizeInput;
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateMaxRecordSizeInput,
) -> Result<(), ApiError> {
    let key = stream_key(ctx, None, input.stream_arn.as_deref())?;
    let stream = broker.stream(&key)?;
    let kib = input.max_record_size_in_kib.unwrap_or_default().max(0) as u32;
    broker
        .update_stream_in_background(&stream, move |st| {
            st.max_record_size_kib = kib;
            Ok(())
        })
        .await?;
    Ok(())
}
