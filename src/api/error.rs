//! The error every operation returns: an AWS error code and a message in AWS's words.
//!
//! Only `api` and `protocol` know AWS error names; `broker` and `storage` have their own
//! error enums that are converted here, at the layer boundary.

use super::generated::ErrorCode;

/// An AWS-shaped error: `{"__type": code, "message": message}` on the wire, with the
/// code's HTTP status.
///
/// Boxing is not needed: the struct is two words plus a `String`, and the hot path
/// (PutRecords) only builds one when a request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The `__type` AWS sends, which SDKs map to a typed exception.
    pub code: ErrorCode,
    /// The human-readable message, copied from AWS's responses where known.
    pub message: String,
}

impl ApiError {
    /// Builds an error; prefer the [`api_error!`](crate::api_error) macro.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The answer for an operation kinesis-broker does not implement (yet): a clear error
    /// naming the operation, never a fake success.
    pub fn not_implemented(operation: &str) -> Self {
        Self::new(
            ErrorCode::NotImplementedException,
            format!("The operation {operation} is not implemented by kinesis-broker."),
        )
    }

    /// HTTP status AWS uses for this error.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

/// `api_error!(ResourceNotFoundException, "Stream {name} under account {acct} not found.")`
#[macro_export]
macro_rules! api_error {
    ($code:ident, $($fmt:tt)+) => {
        $crate::api::ApiError::new($crate::api::ErrorCode::$code, format!($($fmt)+))
    };
}
