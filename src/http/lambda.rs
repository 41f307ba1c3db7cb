//! Lambda's event-source-mapping REST API (`/2015-03-31/event-source-mappings`), routed by
//! path before the Kinesis `X-Amz-Target` routing, so `aws lambda … --endpoint-url` and
//! boto3's `lambda` client manage mappings unmodified. Errors as Lambda shapes them: a JSON
//! body `{"Type": "User", "message": …}` and the code in `X-Amzn-ErrorType`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::auth::{self, AuthInput};
use super::handler::{Reply, RequestHead};
use crate::broker::Broker;
use crate::broker::esm::EsmError;

/// The path of the collection; a mapping is `PATH/{UUID}`.
pub const PATH: &str = "/2015-03-31/event-source-mappings";

/// Whether `path` is this API's.
pub fn routes(path: &str) -> bool {
    path == PATH || path.starts_with(&format!("{PATH}/"))
}

fn error(status: StatusCode, code: &'static str, kind: &str, message: &str) -> Reply {
    let mut reply = Reply::json(
        status,
        json!({"Type": kind, "message": message}).to_string(),
    );
    reply
        .headers
        .insert("x-amzn-errortype", HeaderValue::from_static(code));
    reply.error = Some(code);
    reply
}

fn esm_error(e: EsmError) -> Reply {
    match e {
        EsmError::Invalid(m) => error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "User",
            &m,
        ),
        EsmError::NotFound(m) => error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "User",
            &m,
        ),
        EsmError::Conflict(m) => error(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            "User",
            &m,
        ),
        EsmError::Service(m) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "Service",
            &m,
        ),
    }
}

fn object(body: &Bytes) -> Result<Map<String, Value>, Box<Reply>> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "User",
            "Could not parse request body into json: the body is not a JSON object",
        ))),
    }
}

/// Answers one request of the API.
pub async fn respond(broker: &Arc<Broker>, head: &RequestHead<'_>, body: Bytes) -> Reply {
    let header_str = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    let caller = match auth::authenticate(AuthInput {
        authorization: header_str("authorization"),
        has_date_header: head.headers.contains_key("x-amz-date")
            || head.headers.contains_key("date"),
        query: head.query,
    }) {
        Ok(caller) => caller,
        Err(e) => {
            return error(StatusCode::FORBIDDEN, e.code.as_str(), "User", &e.message);
        }
    };
    let rest = head.path.strip_prefix(PATH).unwrap_or("");
    let uuid = rest.trim_start_matches('/');
    let result = match (head.method, uuid.is_empty()) {
        (&Method::POST, true) => {
            let body = match object(&body) {
                Ok(b) => b,
                Err(r) => return *r,
            };
            broker
                .create_mapping(&caller.account_id, &caller.region, &body)
                .await
                .map(|v| (StatusCode::ACCEPTED, v))
        }
        (&Method::GET, true) => {
            let query = head.query.map(auth::parse_query).unwrap_or_default();
            let get = |name: &str| {
                query
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let max = match get("MaxItems").map(str::parse::<usize>) {
                Some(Err(_)) => {
                    return esm_error(EsmError::Invalid("MaxItems must be a number.".into()));
                }
                Some(Ok(n)) => Some(n),
                None => None,
            };
            broker
                .list_mappings(
                    get("FunctionName"),
                    get("EventSourceArn"),
                    get("Marker"),
                    max,
                )
                .map(|v| (StatusCode::OK, v))
        }
        (&Method::GET, false) => broker.get_mapping(uuid).map(|v| (StatusCode::OK, v)),
        (&Method::PUT, false) => {
            let body = match object(&body) {
                Ok(b) => b,
                Err(r) => return *r,
            };
            broker
                .update_mapping(uuid, &body)
                .await
                .map(|v| (StatusCode::ACCEPTED, v))
        }
        (&Method::DELETE, false) => broker
            .delete_mapping(uuid)
            .await
            .map(|v| (StatusCode::ACCEPTED, v)),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "User",
                "Unknown operation",
            );
        }
    };
    match result {
        Ok((status, value)) => Reply::json(status, value.to_string()),
        Err(e) => esm_error(e),
    }
}
