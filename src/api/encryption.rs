//! StartStreamEncryption and StopStreamEncryption. There is no KMS here: the setting is
//! stored and reported (the stream goes UPDATING, then ACTIVE, and records written while
//! it is on report `EncryptionType: KMS`), but data on disk is not encrypted by it.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    EncryptionType, StartStreamEncryptionInput, StopStreamEncryptionInput,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;

fn require_kms(t: Option<&EncryptionType>) -> Result<(), ApiError> {
    match t {
        Some(EncryptionType::Kms) => Ok(()),
        other => Err(api_error!(
            InvalidArgumentException,
            "Encryption type {} is not supported. The only supported encryption type is KMS.",
            other.map(|t| t.as_str()).unwrap_or("null")
        )),
    }
}

/// StartStreamEncryption.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn start(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: StartStreamEncryptionInput,
) -> Result<(), ApiError> {
    require_kms(input.encryption_type.as_ref())?;
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    let key_id = input.key_id.unwrap_or_default();
    let now = broker.clock().now_ms();
    broker
        .update_stream_in_background(&stream, move |st| {
            if st.extras.encryption_key_id.is_none() {
                st.extras.encryption_periods.push((now, None));
            }
            st.extras.encryption_key_id = Some(key_id);
            Ok(())
        })
        .await?;
    Ok(())
}

/// StopStreamEncryption.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn stop(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: StopStreamEncryptionInput,
) -> Result<(), ApiError> {
    require_kms(input.encryption_type.as_ref())?;
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    let now = broker.clock().now_ms();
    broker
        .update_stream_in_background(&stream, move |st| {
            st.extras.encryption_key_id = None;
            if let Some(last) = st.extras.encryption_periods.last_mut()
                && last.1.is_none()
            {
                last.1 = Some(now);
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// The `EncryptionType` to report for a stream now (`KMS` or `NONE`).
pub fn current(key_id: &Option<String>) -> EncryptionType {
    if key_id.is_some() {
        EncryptionType::Kms
    } else {
        EncryptionType::None
    }
}
