//! Lambda's event-source-mapping REST API (`/2015-03-31/event-source-mappings`), routed by
//! path before the Kinesis `X-Amz-Target` routing, so `aws lambda … --endpoint-url` and
//! boto3's `lambda` client manage mappings unmodified. This file only routes, authenticates
//! and encodes; the operations are in `api::lambda`. Errors as Lambda shapes them: a JSON
//! body `{"Type": "User", "message": …}` (`Message` where Lambda's model spells it so) and
//! the code in `X-Amzn-ErrorType`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::auth;
use super::handler::{Reply, RequestHead};
use crate::api::RequestContext;
use crate::api::lambda::{
    Body, LambdaError, create_event_source_mapping, delete_event_source_mapping,
    get_event_source_mapping, list_event_source_mappings, update_event_source_mapping,
};
use crate::broker::Broker;

/// The path of the collection; a mapping is `PATH/{UUID}`.
pub const PATH: &str = "/2015-03-31/event-source-mappings";

/// Whether `path` is this API's.
pub fn routes(path: &str) -> bool {
    path == PATH || path.starts_with(&format!("{PATH}/"))
}

fn error(e: LambdaError) -> Reply {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = serde_json::Map::new();
    body.insert("Type".into(), json!(e.kind));
    body.insert(e.message_member().into(), json!(e.message));
    let mut reply = Reply::json(status, Value::Object(body).to_string());
    reply
        .headers
        .insert("x-amzn-errortype", HeaderValue::from_static(e.code));
    reply.error = Some(e.code);
    reply
}

fn object(body: &Bytes) -> Result<Body, LambdaError> {
    if body.is_empty() {
        return Ok(Body::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(LambdaError::bad_content(
            "Could not parse request body into json: the body is not a JSON object",
        )),
    }
}

/// Answers one request of the API.
pub async fn respond(broker: &Arc<Broker>, head: &RequestHead<'_>, body: Bytes) -> Reply {
    let caller = match head.authenticate(&body, super::sigv4_verify::service::LAMBDA) {
        Ok(caller) => caller,
        Err(e) => {
            return error(LambdaError {
                code: e.code.as_str(),
                status: 403,
                kind: "User",
                message: e.message,
            });
        }
    };
    let ctx = RequestContext {
        account_id: caller.account_id,
        region: caller.region,
        // The request id header is set by the HTTP layer around every reply.
        request_id: String::new(),
    };
    let rest = head.path.strip_prefix(PATH).unwrap_or("");
    let uuid = rest.trim_start_matches('/');
    let result = match (head.method, uuid.is_empty()) {
        (&Method::POST, true) => match object(&body) {
            Ok(body) => create_event_source_mapping::handle(broker, &ctx, &body)
                .await
                .map(|v| (StatusCode::ACCEPTED, v)),
            Err(e) => Err(e),
        },
        (&Method::GET, true) => {
            let query = head.query.map(auth::parse_query).unwrap_or_default();
            let get = |name: &str| {
                query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            list_event_source_mappings::handle(
                broker,
                &list_event_source_mappings::ListQuery {
                    function_name: get("FunctionName"),
                    event_source_arn: get("EventSourceArn"),
                    marker: get("Marker"),
                    max_items: get("MaxItems"),
                },
            )
            .map(|v| (StatusCode::OK, v))
        }
        (&Method::GET, false) => {
            get_event_source_mapping::handle(broker, uuid).map(|v| (StatusCode::OK, v))
        }
        (&Method::PUT, false) => match object(&body) {
            Ok(body) => update_event_source_mapping::handle(broker, uuid, &body)
                .await
                .map(|v| (StatusCode::ACCEPTED, v)),
            Err(e) => Err(e),
        },
        (&Method::DELETE, false) => delete_event_source_mapping::handle(broker, uuid)
            .await
            .map(|v| (StatusCode::ACCEPTED, v)),
        _ => Err(LambdaError {
            code: "UnknownOperationException",
            status: 404,
            kind: "User",
            message: "Unknown operation".into(),
        }),
    };
    match result {
        Ok((status, value)) => Reply::json(status, value.to_string()),
        Err(e) => error(e),
    }
}
