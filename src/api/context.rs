//! Who is asking: the account and region a request is scoped to.

/// Per-request facts the operations need, decoded by `http` from the headers.
///
/// Streams live in an (account, region) namespace as on AWS, so two clients with
/// different access keys or regions never see each other's streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The 12-digit account id: the access key id when it is 12 digits, else `000000000000`.
    pub account_id: String,
    /// The region from the SigV4 credential scope, else `us-east-1`.
    pub region: String,
    /// The `x-amzn-RequestId` sent back with the response.
    pub request_id: String,
}

impl RequestContext {
    /// The account id used when the access key id is not a 12-digit number.
    pub const DEFAULT_ACCOUNT_ID: &'static str = "000000000000";
    /// The region used when the request carries no credential scope.
    pub const DEFAULT_REGION: &'static str = "us-east-1";
}
