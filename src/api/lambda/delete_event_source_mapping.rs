//! DeleteEventSourceMapping: `DELETE /2015-03-31/event-source-mappings/{UUID}`, answered
//! 202 with the mapping Deleting; it is gone after the transition delay.

use std::sync::Arc;

use serde_json::Value;

use super::{LambdaError, configuration};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, uuid: &str) -> Result<Value, LambdaError> {
    Ok(configuration(&broker.delete_mapping(uuid).await?))
}
