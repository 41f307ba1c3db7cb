//! A mapping's right to read its stream when the stream belongs to another account: granted
//! by the stream's resource policy at CreateEventSourceMapping, and re-checked on every
//! poll, since Lambda's poller calls GetRecords with the mapping's role each time and the
//! owner may narrow or remove the policy at any moment.

use crate::broker::stream::Stream;
use crate::policy::StandingAccess;

/// What Lambda's poller calls on a stream (CreateEventSourceMapping checks the same list).
pub const POLLER_ACTIONS: &[&str] = &[
    "DescribeStream",
    "ListShards",
    "GetShardIterator",
    "GetRecords",
];

/// Whether a mapping may read its stream now.
pub(super) struct SourceAccess {
    /// `None` when the stream is the mapping's own account's: always readable.
    other_account: Option<StandingAccess>,
}

impl SourceAccess {
    /// The access of the mapping whose function is `function_arn` to `stream`.
    pub(super) fn new(function_arn: &str, stream: &Stream) -> Self {
        let reader = crate::arn::Arn::parse(function_arn).map(|a| a.account.to_string());
        let other_account = match reader {
            Some(account) if account == stream.key.account => None,
            // A function ARN without an account (never written by this broker) reads
            // nothing of another account.
            account => Some(StandingAccess::new(
                &account.unwrap_or_default(),
                &stream.arn(),
                POLLER_ACTIONS,
            )),
        };
        Self { other_account }
    }

    /// Whether the stream is another account's (so its policy can change under us).
    pub(super) fn is_cross_account(&self) -> bool {
        self.other_account.is_some()
    }

    /// Whether the stream's policy allows the poller now.
    pub(super) fn allowed(&mut self, stream: &Stream) -> bool {
        match &mut self.other_account {
            None => true,
            Some(access) => access.allowed(stream.state().extras.policy.as_deref()),
        }
    }
}

/// `LastProcessingResult` while the poller is refused. Lambda's text for a poller that lost
/// access is not pinned by any source found; this is its create-time refusal
/// (CreateEventSourceMapping, quoted in compat-tests/AWS_BEHAVIOUR.md 13f) in the `PROBLEM:`
/// form every other failure of a Kinesis mapping takes.
pub(super) fn access_lost(stream_arn: &str) -> String {
    format!(
        "PROBLEM: Cannot access stream {stream_arn}. Please ensure the role can perform the GetRecords, GetShardIterator, DescribeStream, ListShards, and ListStreams Actions on your stream in IAM."
    )
}
