//! The endpoints for operators and their tools, outside the Kinesis namespace: `GET
//! /metrics` (Prometheus), `GET /health` (alive), `GET /ready` (storage recovered and
//! writes accepted), and the console's `GET /_broker/throughput`.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::json;

use super::handler::{Reply, RequestHead};
use crate::api::admin::AdminHandler;
use crate::metrics::ServerMetrics;

/// Prometheus' scrape path.
pub const METRICS_PATH: &str = "/metrics";
/// Liveness: 200 while the process serves HTTP at all.
pub const HEALTH_PATH: &str = "/health";
/// Readiness: 200 when storage is recovered and writes are accepted, else 503 and why.
pub const READY_PATH: &str = "/ready";

/// The label `kinesis_broker_requests` gives a request that is not a Kinesis operation.
pub fn endpoint_label(path: &str) -> &'static str {
    match path {
        METRICS_PATH => "metrics",
        HEALTH_PATH | super::handler::HEALTH_PATH => "health",
        READY_PATH => "ready",
        _ if path.starts_with(crate::api::admin::ADMIN_PREFIX) => "admin",
        _ if super::lambda::routes(path) => "lambda",
        _ => "unknown",
    }
}

/// Answers the observability endpoints; `None` for anything else.
pub fn respond(
    head: &RequestHead<'_>,
    admin: Option<&Arc<dyn AdminHandler>>,
    server: &Arc<ServerMetrics>,
) -> Option<Reply> {
    if head.method != Method::GET {
        return None;
    }
    match head.path {
        HEALTH_PATH => Some(Reply::json(
            StatusCode::OK,
            json!({"status": "ok"}).to_string(),
        )),
        READY_PATH => Some(match server.readiness() {
            Ok(()) => Reply::json(StatusCode::OK, json!({"status": "ready"}).to_string()),
            Err(reason) => Reply::json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "not ready", "reason": reason}).to_string(),
            ),
        }),
        METRICS_PATH => {
            let broker = admin.and_then(|a| a.broker())?;
            let text = crate::metrics::export::render(&broker, server);
            Some(Reply::text(
                StatusCode::OK,
                crate::metrics::export::CONTENT_TYPE,
                text,
            ))
        }
        crate::api::admin::THROUGHPUT_PATH => {
            let broker = admin.and_then(|a| a.broker())?;
            let (status, body) = crate::api::admin::throughput(&broker, head.query);
            Some(Reply::json(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                body,
            ))
        }
        _ => None,
    }
}
