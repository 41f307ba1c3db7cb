//! The seam between wire encodings and operations.
//!
//! The generated dispatch decodes inputs and encodes outputs through this trait, so
//! operations never see JSON; a CBOR codec (`application/x-amz-cbor-1.1`) plugs in by
//! implementing it, without touching any operation.

use super::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A wire encoding of the Kinesis shapes.
pub trait Codec: Send + Sync {
    /// Decodes a request body into an input shape. Malformed bodies give AWS's
    /// `SerializationException`; an empty body decodes as an empty structure.
    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError>;
    /// Encodes an output shape as a response body.
    fn encode<T: Serialize>(&self, value: &T) -> Vec<u8>;
}
