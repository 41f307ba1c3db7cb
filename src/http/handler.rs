//! One request, from headers and body to a response: the order of AWS's checks lives here.
//!
//! The order is AWS's as kinesalite pins it since it was brought "up to date with
//! production" (`mhart/kinesalite` `test/connection.js` and `index.js` at 7d5e041, 2019,
//! written against the live service; the connection logic "changed with CBOR" in 2018,
//! 89dbe27), recorded in `compat-tests/AWS_BEHAVIOUR.md` section 1. Each step
//! short-circuits:
//!
//! 1. CORS preflight (`OPTIONS` with `Origin`) → 200, empty.
//! 2. Not a `POST` → 403 XML `AccessDeniedException` (`Unable to determine
//!    service/operation name to be authorized`), signed or not. The path is never looked at.
//! 3. Empty body → 400 `SerializationException` when the target names a Kinesis operation,
//!    `UnknownOperationException` otherwise; in JSON when the content type is
//!    `application/x-amz-json-1.1`, in CBOR for any other content type or none (an unsigned
//!    POST with nothing in it gets CBOR too).
//! 4. A content type that is none of JSON 1.1, CBOR 1.1 and `application/json` (missing,
//!    unknown, or `application/x-amz-json-1.0`) → XML: 403 `AccessDeniedException` when the
//!    target lacks a service or an operation part, else 404 `<UnknownOperationException/>`.
//! 5. `application/json` → the legacy Coral envelope: 400 `…#SerializationException` for a
//!    body that is not a JSON object, else 404 `…#UnknownOperationException`, whatever
//!    the target.
//! 6. Malformed body → `SerializationException` (no message), before the target.
//! 7. Target not `Kinesis_20131202.<known operation>` → `UnknownOperationException` (no
//!    message), before the credentials.
//! 8. Credentials ([`super::auth`]; with `--auth verify` the signature too,
//!    [`super::sigv4_verify`], and the account is the key's).
//! 9. Decode (type errors → `SerializationException` with a message), validate, run.
//!
//! Steps 6 and 9 are one parse on the success path: the separate well-formedness check of
//! step 6 only runs when step 7 or 8 is about to fail.
//!
//! Every step answers in the request's format: `application/x-amz-cbor-1.1` (the Java SDK's
//! and the KCL's default) goes through the same steps as JSON, with CBOR bodies and errors
//! (`protocol::cbor`).
//!
//! Deviations from AWS, on purpose: `GET /_broker/health` answers 200 for start-up scripts;
//! `DELETE` gets the XML 403 like other methods (AWS resets the connection). Content types
//! and parameters are matched without regard to case (media types are case-insensitive;
//! kinesalite compares exactly). `application/x-amz-json-1.0` is no longer accepted: no
//! client of Kinesis sends it (every SDK, the CLI and the KPL/KCL send JSON 1.1 or CBOR), so
//! it gets AWS's answer.

use super::auth::{self, AuthInput};
use super::request_id::RequestIds;
use crate::api::{ApiError, ErrorCode, Kinesis, Operation, RequestContext};
use crate::protocol::{ContentType, WireFormat, error as wire_error};
use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};

/// The `X-Amz-Target` service prefix of Kinesis Data Streams.
pub const TARGET_PREFIX: &str = "Kinesis_20131202";

/// The path of the health check, outside anything AWS would route.
pub const HEALTH_PATH: &str = "/_broker/health";

/// `Access-Control-Max-Age` of a CORS preflight answer, in seconds (AWS's value, 2 days).
const CORS_MAX_AGE_SECS: &str = "172800";
/// Headers a browser may read from a cross-origin answer (kinesalite `index.js`).
const CORS_EXPOSE_HEADERS: &str =
    "x-amzn-RequestId,x-amzn-ErrorType,x-amz-request-id,x-amz-id-2,x-amzn-ErrorMessage,Date";

/// The message of AWS's 403 for a request it cannot route to an operation.
const ACCESS_DENIED_MESSAGE: &str = "Unable to determine service/operation name to be authorized";

/// A response before the common headers are added.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type`, or none (AWS's XML errors carry none).
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Bytes,
    /// Extra headers (CORS preflight).
    pub headers: HeaderMap,
    /// Whether `x-amz-id-2` is sent (AWS leaves it out of CORS preflight answers).
    pub id_2: bool,
    /// The error type, for the log line.
    pub error: Option<&'static str>,
    /// A SubscribeToShard answer: the events that follow `body` (its initial response).
    pub events: Option<(WireFormat, crate::api::EventStream)>,
}

impl Reply {
    fn new(status: StatusCode, content_type: Option<&'static str>, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            headers: HeaderMap::new(),
            id_2: true,
            error: None,
            events: None,
        }
    }

    /// An event-stream answer: the initial response, then each event as it comes.
    fn events(format: WireFormat, events: crate::api::EventStream) -> Self {
        let mut reply = Self::new(
            StatusCode::OK,
            Some(crate::protocol::eventstream::CONTENT_TYPE),
            format.initial_response(),
        );
        reply.events = Some((format, events));
        reply
    }

    /// An AWS error in `format`, with its code's status.
    pub fn error(format: WireFormat, err: &ApiError) -> Self {
        let status =
            StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut reply = Self::new(
            status,
            Some(format.content_type()),
            format.encode_error(err),
        );
        reply.error = Some(err.code.as_str());
        reply
    }

    /// A JSON 1.1 error for a request broken below the Kinesis protocol (HTTP framing,
    /// timing), whose code has no place among the operations' errors.
    pub fn transport_error(status: StatusCode, code: &'static str, message: &str) -> Self {
        let mut reply = Self::new(
            status,
            Some(WireFormat::Json11.content_type()),
            transport_error_body(code, message),
        );
        reply.error = Some(code);
        reply
    }

    /// A text answer (`/metrics`).
    pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Self {
        Self::new(status, Some(content_type), body)
    }

    /// A JSON answer of the admin endpoints.
    pub fn json(status: StatusCode, body: String) -> Self {
        Self::new(status, Some("application/json"), body)
    }

    fn xml(status: StatusCode, code: &'static str, message: Option<&str>) -> Self {
        let mut reply = Self::new(status, None, wire_error::xml_error_body(code, message));
        reply.error = Some(code);
        reply
    }
}

/// `{"__type":"<code>","message":"<message>"}`, as AWS's JSON errors.
pub fn transport_error_body(code: &str, message: &str) -> String {
    serde_json::json!({ "__type": code, "message": message }).to_string()
}

/// The request, as far as routing needs it.
pub struct RequestHead<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path, without the query.
    pub path: &'a str,
    /// Query string, without `?`.
    pub query: Option<&'a str>,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// The URI's authority (HTTP/2's `:authority`), for a signed `host`.
    pub authority: Option<&'a str>,
    /// `--auth verify`: the signature checker; `None` checks only the credential's shape.
    pub verifier: Option<&'a super::sigv4_verify::Verifier>,
}

impl RequestHead<'_> {
    /// Who is calling: with a verifier, the signature is checked for `service` and the
    /// account is its key's; without, only the credential's shape, as before.
    pub fn authenticate(&self, body: &[u8], service: &str) -> Result<auth::Caller, ApiError> {
        let header_str = |name: &str| self.headers.get(name).and_then(|v| v.to_str().ok());
        match self.verifier {
            Some(verifier) => {
                let verified = verifier.verify(
                    &super::sigv4_verify::SignedRequest {
                        method: self.method.as_str(),
                        path: self.path,
                        query: self.query,
                        authority: self.authority,
                        headers: self.headers,
                        body,
                    },
                    service,
                )?;
                Ok(auth::Caller {
                    access_key_id: verified.access_key_id,
                    account_id: verified.account_id,
                    region: verified.region,
                })
            }
            None => auth::authenticate(AuthInput {
                authorization: header_str(header::AUTHORIZATION.as_str()),
                has_date_header: self.headers.contains_key("x-amz-date")
                    || self.headers.contains_key(header::DATE),
                query: self.query,
            }),
        }
    }
}

/// Answers one request whose body has been read.
pub async fn respond<K: Kinesis>(
    service: &K,
    head: &RequestHead<'_>,
    body: Bytes,
    ids: &RequestIds,
) -> Reply {
    let headers = head.headers;
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());

    if head.method == Method::OPTIONS && headers.contains_key(header::ORIGIN) {
        return cors_preflight(headers);
    }
    if head.method == Method::GET && head.path == HEALTH_PATH {
        return Reply::new(
            StatusCode::OK,
            Some("application/json"),
            &br#"{"status":"ok"}"#[..],
        );
    }
    if head.method != Method::POST {
        return access_denied();
    }

    let content_type = ContentType::parse(header_str(header::CONTENT_TYPE.as_str()));
    let target = Target::parse(header_str("x-amz-target"));
    let operation = target.operation();
    if body.is_empty() {
        // AWS answers an empty body before it looks at the content type: JSON 1.1 for JSON
        // 1.1, CBOR for anything else (kinesalite "should return CBOR UnknownOperationException
        // if POST with no body", "… if x-amz-json-1.0 Content-Type", "should return CBOR
        // SerializationException if no Content-Type").
        let format = match content_type {
            ContentType::Wire(WireFormat::Json11) => WireFormat::Json11,
            _ => WireFormat::Cbor11,
        };
        let code = if operation.is_some() {
            ErrorCode::SerializationException
        } else {
            ErrorCode::UnknownOperationException
        };
        return Reply::error(format, &ApiError::new(code, ""));
    }
    let format = match content_type {
        ContentType::Wire(format) => format,
        ContentType::LegacyJson => {
            return legacy_json(crate::protocol::json::check_well_formed(&body).is_err());
        }
        ContentType::Other => {
            return if target.service.is_none() || target.operation.is_none() {
                access_denied()
            } else {
                Reply::xml(StatusCode::NOT_FOUND, "UnknownOperationException", None)
            };
        }
    };

    let Some(operation) = operation else {
        // A body that does not parse wins over the unknown target.
        let err = format
            .check_well_formed(&body)
            .err()
            .unwrap_or_else(|| ApiError::new(ErrorCode::UnknownOperationException, ""));
        return Reply::error(format, &err);
    };

    let caller = match head.authenticate(&body, super::sigv4_verify::service::KINESIS) {
        Ok(caller) => caller,
        Err(auth_err) => {
            let err = format.check_well_formed(&body).err().unwrap_or(auth_err);
            return Reply::error(format, &err);
        }
    };

    let ctx = RequestContext {
        account_id: caller.account_id,
        region: caller.region,
        request_id: ids.request_id.clone(),
    };
    if operation == Operation::SubscribeToShard {
        // The only operation whose answer is a stream of events rather than one body.
        return match format.subscribe(service, &ctx, &body).await {
            Ok(events) => Reply::events(format, events),
            Err(err) => Reply::error(format, &err),
        };
    }
    match format.dispatch(service, &ctx, operation, &body).await {
        Ok(out) => Reply::new(StatusCode::OK, Some(format.content_type()), out),
        Err(err) => Reply::error(format, &err),
    }
}

/// The parsed `X-Amz-Target` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    service: Option<&'a str>,
    operation: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// Splits `Service.Operation`; either part may be missing.
    pub fn parse(value: Option<&'a str>) -> Self {
        let value = value.unwrap_or("");
        let (service, operation) = match value.split_once('.') {
            Some((s, o)) => (s, o),
            None => (value, ""),
        };
        let non_empty = |s: &'a str| Some(s).filter(|s| !s.is_empty());
        Self {
            service: non_empty(service),
            operation: non_empty(operation),
        }
    }

    /// The Kinesis operation named, if the service is Kinesis and the operation exists.
    pub fn operation(&self) -> Option<Operation> {
        if self.service != Some(TARGET_PREFIX) {
            return None;
        }
        Operation::from_name(self.operation?)
    }
}

/// AWS's 403 for a request it cannot route to any service, signed or not (kinesalite
/// `index.js` since 89dbe27; `test/connection.js` "should return AccessDeniedException if
/// GET", "… if body and no Content-Type").
fn access_denied() -> Reply {
    Reply::xml(
        StatusCode::FORBIDDEN,
        "AccessDeniedException",
        Some(ACCESS_DENIED_MESSAGE),
    )
}

/// The legacy Coral envelope for `application/json` (kinesalite `assertSerializationDeprecated`
/// 400, `assertUnknownDeprecated` 404).
fn legacy_json(serialization: bool) -> Reply {
    let status = if serialization {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::NOT_FOUND
    };
    let mut reply = Reply::new(
        status,
        Some(crate::protocol::CONTENT_TYPE_LEGACY_JSON),
        wire_error::legacy_json_error_body(serialization),
    );
    reply.error = Some(if serialization {
        "SerializationException"
    } else {
        "UnknownOperationException"
    });
    reply
}

/// A CORS preflight answer: echo what the browser asks for (kinesalite `index.js`).
fn cors_preflight(request: &HeaderMap) -> Reply {
    let mut reply = Reply::new(StatusCode::OK, None, Bytes::new());
    reply.id_2 = false;
    if let Some(v) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        reply
            .headers
            .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = request.get(header::ACCESS_CONTROL_REQUEST_METHOD) {
        reply
            .headers
            .insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
    }
    reply.headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(CORS_MAX_AGE_SECS),
    );
    reply
}

/// Adds the headers every answer carries: request ids, CORS (when the request had an
/// `Origin`), content type. hyper adds `Content-Length` and `Date`.
pub fn finish(reply: Reply, cors: bool, ids: &RequestIds) -> hyper::Response<super::ReplyBody> {
    let mut body = super::ReplyBody::new(reply.body);
    if let Some((format, events)) = reply.events {
        body.stream_events(format, events);
    }
    let mut response = hyper::Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    *headers = reply.headers;
    if let Ok(v) = HeaderValue::from_str(&ids.request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    if reply.id_2
        && let Ok(v) = HeaderValue::from_str(&ids.id_2)
    {
        headers.insert("x-amz-id-2", v);
    }
    if let Some(content_type) = reply.content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if cors {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        if reply.id_2 {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(CORS_EXPOSE_HEADERS),
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_service_and_operation() {
        let t = Target::parse(Some("Kinesis_20131202.ListStreams"));
        assert_eq!(t.operation(), Operation::from_name("ListStreams"));
        assert!(t.operation().is_some());
    }

    #[test]
    fn target_with_unknown_operation_or_service_has_no_operation() {
        assert_eq!(
            Target::parse(Some("Kinesis_20131202.ListStream")).operation(),
            None
        );
        assert_eq!(
            Target::parse(Some("DynamoDB_20120810.ListStreams")).operation(),
            None
        );
    }

    #[test]
    fn target_without_dot_or_missing_has_no_operation() {
        assert_eq!(Target::parse(Some("Kinesis_20131202")).operation(), None);
        assert_eq!(Target::parse(Some("Kinesis_20131202.")).operation(), None);
        assert_eq!(
            Target::parse(Some("Kinesis_20131202.ListStreams.x")).operation(),
            None
        );
        assert_eq!(Target::parse(None).operation(), None);
    }
}
