//! Operations: each validates nothing itself (the generated code did), applies domain
//! checks, calls the broker and shapes the generated output. No HTTP, no JSON here.

mod blob;
mod codec;
mod context;
mod error;
pub mod generated;

pub use blob::{Blob, Timestamp};
pub use codec::Codec;
pub use context::RequestContext;
pub use error::ApiError;
pub use generated::ErrorCode;
