//! GetEventSourceMapping: `GET /2015-03-31/event-source-mappings/{UUID}`.

use std::sync::Arc;

use serde_json::Value;

use super::{LambdaError, configuration};
use crate::broker::Broker;

pub fn handle(broker: &Arc<Broker>, uuid: &str) -> Result<Value, LambdaError> {
    Ok(configuration(&broker.get_mapping(uuid)?))
}
