//! CreateEventSourceMapping: `POST /2015-03-31/event-source-mappings`, answered 202 with
//! the new mapping Creating; it settles Enabled (or Disabled with `Enabled: false`) after
//! the transition delay.

use std::sync::Arc;

use serde_json::Value;

use super::{Body, LambdaError, configuration};
use crate::api::RequestContext;
use crate::api::resource_policy;
use crate::broker::Broker;
use crate::broker::esm::{function_name_of, mapping, new_uuid};
use crate::broker::fanout::registry::parse_consumer_arn;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    body: &Body,
) -> Result<Value, LambdaError> {
    let function_arg = match body.get("FunctionName") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(LambdaError::invalid("FunctionName is required.")),
    };
    let name = function_name_of(function_arg).to_string();
    if !broker.function_declared(&name) {
        return Err(LambdaError::invalid(format!(
            "Function {name} is not declared to kinesis-broker: start it with --function {name}=runtime://127.0.0.1:PORT or {name}=http://HOST:PORT (or KINESIS_BROKER_FUNCTIONS), --function-command {name}=COMMAND, or PUT /_broker/functions/{name}."
        )));
    }
    let function_arn = format!(
        "arn:aws:lambda:{}:{}:function:{name}",
        ctx.region, ctx.account_id
    );
    let config = mapping::parse_create(
        body,
        new_uuid()?,
        function_arn,
        name,
        broker.clock().now_ms(),
    )
    .map_err(LambdaError::invalid)?;
    authorize_event_source(broker, ctx, &config.event_source_arn)?;
    let view = broker.create_mapping(config).await?;
    Ok(configuration(&view))
}

/// A mapping reads its source with the creating account's rights: a stream (or consumer)
/// of another account must grant that account, in its resource policy, what Lambda's
/// poller does. Refused the way Lambda refuses a source its role cannot read.
fn authorize_event_source(
    broker: &Broker,
    ctx: &RequestContext,
    arn: &str,
) -> Result<(), LambdaError> {
    let actions: &[&str] = if parse_consumer_arn(arn).is_some() {
        &["DescribeStreamConsumer", "SubscribeToShard"]
    } else {
        crate::broker::esm::access::POLLER_ACTIONS
    };
    for action in actions {
        resource_policy::authorize(broker, ctx, action, arn).map_err(|_| {
            // Lambda's wording, as quoted in aws-samples/cross-account-amazon-dynamodb-replication#11.
            LambdaError::invalid(format!(
                "Cannot access stream {arn}. Please ensure the role can perform the GetRecords, GetShardIterator, DescribeStream, ListShards, and ListStreams Actions on your stream in IAM."
            ))
        })?;
    }
    Ok(())
}
