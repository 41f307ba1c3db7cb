//! Wire codecs: request bodies into generated inputs, outputs and errors back into bytes.
//!
//! The request's `Content-Type` picks a [`WireFormat`]; everything format-specific (the
//! codec, the error body, the response content type, the event payloads of
//! SubscribeToShard) hangs off that one enum: JSON (`json.rs`) and CBOR (`cbor.rs`) decode
//! into and encode from the same generated types, and no operation knows which was used.

pub mod cbor;
pub mod error;
pub mod eventstream;
pub mod json;
pub mod query;
mod type_error;

use crate::api::event_stream::EventItem;
use crate::api::generated::{SubscribeToShardInput, Validate};
use crate::api::{ApiError, Codec, EventStream, Kinesis, Operation, RequestContext};
pub use cbor::CborCodec;
pub use json::JsonCodec;

/// `application/x-amz-json-1.1`: the content type of every AWS SDK's Kinesis requests.
pub const CONTENT_TYPE_JSON_1_1: &str = "application/x-amz-json-1.1";
/// `application/x-amz-cbor-1.1`: the Java SDK's and the KCL's default for Kinesis.
pub const CONTENT_TYPE_CBOR_1_1: &str = "application/x-amz-cbor-1.1";
/// `application/json`: the legacy Coral protocol, recognised but never routed (see
/// [`error::legacy_json_error_body`]).
pub const CONTENT_TYPE_LEGACY_JSON: &str = "application/json";

/// A body encoding kinesis-broker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// `application/x-amz-json-1.1`.
    Json11,
    /// `application/x-amz-cbor-1.1`: the Java SDK's (v1, v2) and the KCL's default.
    Cbor11,
}

/// What a request's `Content-Type` says about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// A format with a codec (or about to have one).
    Wire(WireFormat),
    /// `application/json`: answered with the legacy Coral envelope.
    LegacyJson,
    /// Missing or anything else, `application/x-amz-json-1.0` included: AWS does not route
    /// it for Kinesis and no Kinesis client sends it.
    Other,
}

impl ContentType {
    /// Classifies a `Content-Type` header value. Parameters (`; charset=utf-8`) and case
    /// are ignored, as media types are case-insensitive.
    pub fn parse(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Self::Other;
        };
        let media_type = value.split(';').next().unwrap_or("").trim();
        let is = |name: &str| media_type.eq_ignore_ascii_case(name);
        if is(CONTENT_TYPE_JSON_1_1) {
            Self::Wire(WireFormat::Json11)
        } else if is(CONTENT_TYPE_CBOR_1_1) {
            Self::Wire(WireFormat::Cbor11)
        } else if is(CONTENT_TYPE_LEGACY_JSON) {
            Self::LegacyJson
        } else {
            Self::Other
        }
    }
}

impl WireFormat {
    /// The `Content-Type` of responses in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json11 => CONTENT_TYPE_JSON_1_1,
            Self::Cbor11 => CONTENT_TYPE_CBOR_1_1,
        }
    }

    /// The body of an error response in this format.
    pub fn encode_error(self, err: &ApiError) -> Vec<u8> {
        match self {
            Self::Json11 => error::json_error_body(err),
            Self::Cbor11 => error::cbor_error_body(err),
        }
    }

    /// `Ok` when the body is well-formed in this format (AWS checks this before the target
    /// and the credentials). Only called on error paths; see [`json::check_well_formed`].
    pub fn check_well_formed(self, body: &[u8]) -> Result<(), ApiError> {
        match self {
            Self::Json11 => json::check_well_formed(body),
            Self::Cbor11 => cbor::check_well_formed(body),
        }
    }

    /// Decodes `body`, runs `op` on `service` and encodes its output, all in this format.
    /// An empty `Ok` body means an empty 200 response.
    pub async fn dispatch<K: Kinesis>(
        self,
        service: &K,
        ctx: &RequestContext,
        op: Operation,
        body: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        match self {
            Self::Json11 => crate::api::dispatch(service, ctx, op, &JsonCodec, body).await,
            Self::Cbor11 => crate::api::dispatch(service, ctx, op, &CborCodec, body).await,
        }
    }

    /// Decodes a SubscribeToShard request and starts the subscription: its events follow
    /// [`WireFormat::initial_response`], each framed by [`WireFormat::event_message`].
    pub async fn subscribe<K: Kinesis>(
        self,
        service: &K,
        ctx: &RequestContext,
        body: &[u8],
    ) -> Result<EventStream, ApiError> {
        let input: SubscribeToShardInput = match self {
            Self::Json11 => JsonCodec.decode(body)?,
            Self::Cbor11 => CborCodec.decode(body)?,
        };
        input.validate()?;
        Ok(service.subscribe_to_shard(ctx, input).await?.event_stream)
    }

    /// The first message of a SubscribeToShard answer: an empty structure (`{}`, as AWS
    /// sends it to the JSON protocols; an empty CBOR map, `a0`, which the Java SDK's CBOR
    /// parser reads as the same empty `SubscribeToShardResponse`).
    pub fn initial_response(self) -> Vec<u8> {
        let payload: &[u8] = match self {
            Self::Json11 => b"{}",
            Self::Cbor11 => &[0xa0],
        };
        eventstream::event("initial-response", self.content_type(), payload)
    }

    /// One subscription event or the exception that ends the subscription, framed. An
    /// event shared by several subscriptions is encoded by the first and reused by the rest.
    pub fn event_message(self, item: &EventItem) -> bytes::Bytes {
        let delivery = match item {
            Ok(delivery) => delivery,
            Err(err) => return self.exception_message(err),
        };
        let tag = self as u8;
        if let Some(framed) = delivery.encoded(tag) {
            return framed;
        }
        let event = match crate::api::event_stream::to_event(delivery) {
            Ok(event) => event,
            Err(err) => return self.exception_message(&err),
        };
        let size_hint = delivery.bytes + delivery.bytes / 3 + 256;
        let framed = bytes::Bytes::from(eventstream::event_with(
            "SubscribeToShardEvent",
            self.content_type(),
            size_hint,
            |out| match self {
                Self::Json11 => {
                    // Generated shapes serialize into a Vec without error (string keys,
                    // infallible field serializers), as `JsonCodec::encode` relies on too.
                    if let Err(e) = serde_json::to_writer(&mut *out, &event) {
                        tracing::error!(error = %e, "failed to encode an event as JSON");
                    }
                }
                // Blobs as byte strings and timestamps as tag 1 milliseconds, as in answers.
                Self::Cbor11 => cbor::encode_into(&event, out),
            },
        ));
        delivery.set_encoded(tag, framed.clone());
        framed
    }

    /// The exception that ends a subscription: its code in `:exception-type`, the payload
    /// `{"message": ...}` in this format.
    fn exception_message(self, err: &ApiError) -> bytes::Bytes {
        let payload = match self {
            Self::Json11 => serde_json::json!({ "message": err.message })
                .to_string()
                .into_bytes(),
            Self::Cbor11 => error::cbor_message_body(&err.message),
        };
        eventstream::exception(err.code.as_str(), self.content_type(), &payload).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_ignores_parameters_and_case() {
        assert_eq!(
            ContentType::parse(Some("application/x-amz-json-1.1; charset=utf-8")),
            ContentType::Wire(WireFormat::Json11)
        );
        assert_eq!(
            ContentType::parse(Some("Application/X-Amz-JSON-1.1")),
            ContentType::Wire(WireFormat::Json11)
        );
        assert_eq!(
            ContentType::parse(Some("application/x-amz-json-1.0")),
            ContentType::Other
        );
        assert_eq!(
            ContentType::parse(Some("application/x-amz-cbor-1.1")),
            ContentType::Wire(WireFormat::Cbor11)
        );
        assert_eq!(
            ContentType::parse(Some("application/json")),
            ContentType::LegacyJson
        );
        assert_eq!(ContentType::parse(Some("text/plain")), ContentType::Other);
        assert_eq!(ContentType::parse(None), ContentType::Other);
    }
}
