//! ListEventSourceMappings: `GET /2015-03-31/event-source-mappings?FunctionName=…&
//! EventSourceArn=…&Marker=…&MaxItems=…`; the marker is the index of the next page's first
//! mapping in UUID order.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{LambdaError, configuration};
use crate::broker::Broker;

/// Lambda's largest and default page: 100 (MaxItems 1–10,000 in the model, capped at 100).
const MAX_PAGE: usize = 100;

/// The list request's query members.
#[derive(Debug, Default)]
pub struct ListQuery<'a> {
    /// `FunctionName`: a name or ARN.
    pub function_name: Option<&'a str>,
    /// `EventSourceArn`.
    pub event_source_arn: Option<&'a str>,
    /// `Marker` from a previous page's `NextMarker`.
    pub marker: Option<&'a str>,
    /// `MaxItems`, as sent.
    pub max_items: Option<&'a str>,
}

pub fn handle(broker: &Arc<Broker>, query: &ListQuery<'_>) -> Result<Value, LambdaError> {
    let max = match query.max_items {
        None => MAX_PAGE,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| LambdaError::invalid("MaxItems must be a number."))?
            .clamp(1, MAX_PAGE),
    };
    let start = match query.marker {
        None | Some("") => 0,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| LambdaError::invalid(format!("Invalid Marker: {m}")))?,
    };
    let all = broker.list_mappings(query.function_name, query.event_source_arn);
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(configuration)
        .collect();
    let mut out = json!({ "EventSourceMappings": page });
    // A Marker comes from the caller: up to usize::MAX.
    let next = start.saturating_add(max);
    if next < all.len() {
        out["NextMarker"] = json!(next.to_string());
    }
    Ok(out)
}
