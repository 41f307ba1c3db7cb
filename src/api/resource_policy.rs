//! PutResourcePolicy, GetResourcePolicy and DeleteResourcePolicy on stream ARNs. The
//! policy is stored and returned; it is not enforced (signatures are not verified yet).
//! Consumer ARNs come with enhanced fan-out.

use std::sync::Arc;

use crate::api::common::parse_stream_arn;
use crate::api::generated::{
    DeleteResourcePolicyInput, GetResourcePolicyInput, GetResourcePolicyOutput,
    PutResourcePolicyInput,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::stream::Stream;

/// The stream a `ResourceARN` names.
fn resource(broker: &Broker, arn: &str) -> Result<Arc<Stream>, ApiError> {
    let key = parse_stream_arn(arn)
        .ok_or_else(|| api_error!(ResourceNotFoundException, "Resource {arn} not found."))?;
    Ok(broker.stream(&key)?)
}

/// PutResourcePolicy: the policy must be a JSON object.
#[tracing::instrument(skip_all)]
pub async fn put(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: PutResourcePolicyInput,
) -> Result<(), ApiError> {
    let arn = input.resource_arn.unwrap_or_default();
    let policy = input.policy.unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(&policy) {
        Ok(serde_json::Value::Object(_)) => {}
        _ => {
            return Err(api_error!(
                InvalidArgumentException,
                "The resource policy is not a valid JSON policy document."
            ));
        }
    }
    let stream = resource(broker, &arn)?;
    broker
        .update_stream(&stream, move |st| {
            st.extras.policy = Some(policy);
            Ok(())
        })
        .await?;
    Ok(())
}

/// GetResourcePolicy: an empty document (`{}`) when none is attached.
#[tracing::instrument(skip_all)]
pub async fn get(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: GetResourcePolicyInput,
) -> Result<GetResourcePolicyOutput, ApiError> {
    let stream = resource(broker, input.resource_arn.as_deref().unwrap_or_default())?;
    let policy = stream
        .state()
        .extras
        .policy
        .clone()
        .unwrap_or_else(|| "{}".to_string());
    Ok(GetResourcePolicyOutput { policy })
}

/// DeleteResourcePolicy.
#[tracing::instrument(skip_all)]
pub async fn delete(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    input: DeleteResourcePolicyInput,
) -> Result<(), ApiError> {
    let arn = input.resource_arn.unwrap_or_default();
    let stream = resource(broker, &arn)?;
    let had = broker
        .update_stream(&stream, |st| Ok(st.extras.policy.take().is_some()))
        .await?;
    if !had {
        return Err(api_error!(
            ResourceNotFoundException,
            "No resource policy found for resource {arn}."
        ));
    }
    Ok(())
}
