//! UpdateEventSourceMapping: `PUT /2015-03-31/event-source-mappings/{UUID}`, answered 202
//! with the mapping Enabling, Disabling or Updating and the settings still in force; the
//! new settings apply when the transition ends.

use std::sync::Arc;

use serde_json::Value;

use super::{Body, LambdaError, configuration};
use crate::broker::Broker;
use crate::broker::esm::{EsmError, function_name_of, mapping};

/// Members a Kinesis mapping fixes at creation.
const FIXED: [&str; 3] = [
    "EventSourceArn",
    "StartingPosition",
    "StartingPositionTimestamp",
];

pub async fn handle(broker: &Arc<Broker>, uuid: &str, body: &Body) -> Result<Value, LambdaError> {
    for fixed in FIXED {
        if body.get(fixed).is_some_and(|v| !v.is_null()) {
            return Err(LambdaError::invalid(format!(
                "{fixed} cannot be changed on an existing event source mapping."
            )));
        }
    }
    let function = match body.get("FunctionName") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(function_name_of(f).to_string()),
        Some(_) => return Err(LambdaError::invalid("FunctionName must be a string.")),
    };
    let view = broker
        .update_mapping(uuid, |current| {
            if let Some(name) = &function
                && *name != current.function_name
            {
                return Err(EsmError::Invalid(format!(
                    "Changing FunctionName is not supported by kinesis-broker yet (mapping {uuid} delivers to {}).",
                    current.function_name
                )));
            }
            let mut new = current.clone();
            mapping::apply_settings(&mut new, body).map_err(EsmError::Invalid)?;
            Ok(new)
        })
        .await?;
    Ok(configuration(&view))
}
