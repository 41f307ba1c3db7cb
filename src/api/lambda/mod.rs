//! Lambda's event-source-mapping operations: one file per operation, each of the same
//! shape as the Kinesis ones — take the request (a JSON object, or the query of a list),
//! check what belongs to the request, call the broker's typed mapping operations, build
//! Lambda's `EventSourceMappingConfiguration`. HTTP (routing, authentication, the error's
//! wire shape) stays in `http::lambda`.
//!
//! The settings themselves are parsed and rendered by `broker::esm::mapping`
//! (`parse_create`, `apply_settings`, `to_json`), which this layer calls.

pub mod create_event_source_mapping;
pub mod delete_event_source_mapping;
pub mod get_event_source_mapping;
pub mod list_event_source_mappings;
pub mod update_event_source_mapping;

use serde_json::{Map, Value};

use crate::broker::esm::{EsmError, MappingView};

/// A Lambda error: its code (`X-Amzn-ErrorType`), HTTP status, `Type` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaError {
    /// Lambda's error code, e.g. `ResourceNotFoundException`.
    pub code: &'static str,
    /// The HTTP status Lambda answers it with.
    pub status: u16,
    /// Lambda's `Type` member: `User` for the caller's mistakes, `Service` for ours.
    pub kind: &'static str,
    /// The message, in Lambda's words where known.
    pub message: String,
}

impl LambdaError {
    /// 400 InvalidParameterValueException.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "InvalidParameterValueException",
            status: 400,
            kind: "User",
            message: message.into(),
        }
    }

    /// 400 InvalidRequestContentException: the body is not a JSON object.
    pub fn bad_content(message: impl Into<String>) -> Self {
        Self {
            code: "InvalidRequestContentException",
            status: 400,
            kind: "User",
            message: message.into(),
        }
    }
}

impl LambdaError {
    /// The member the message travels in: Lambda's model spells it `Message` for some
    /// errors and `message` for others, and typed SDKs read the modeled name.
    pub fn message_member(&self) -> &'static str {
        match self.code {
            "ResourceNotFoundException" | "ResourceInUseException" | "ServiceException" => {
                "Message"
            }
            _ => "message",
        }
    }
}

impl From<EsmError> for LambdaError {
    fn from(e: EsmError) -> Self {
        let (code, status, kind, message) = match e {
            EsmError::Invalid(m) => ("InvalidParameterValueException", 400, "User", m),
            EsmError::NotFound(m) => ("ResourceNotFoundException", 404, "User", m),
            EsmError::Conflict(m) => ("ResourceConflictException", 409, "User", m),
            EsmError::InUse(m) => ("ResourceInUseException", 400, "User", m),
            EsmError::Service(m) => ("ServiceException", 500, "Service", m),
        };
        Self {
            code,
            status,
            kind,
            message,
        }
    }
}

/// A request body: Lambda's members by name.
pub type Body = Map<String, Value>;

/// Lambda's `EventSourceMappingConfiguration` for what the broker shows of a mapping.
pub fn configuration(view: &MappingView) -> Value {
    view.config
        .to_json(view.state.as_str(), &view.last_processing_result)
}
