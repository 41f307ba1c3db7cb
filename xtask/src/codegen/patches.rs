//! Every place where the generated code knowingly departs from the service model, or adds
//! to it, with the reason. Nothing in `src/api/generated/` is edited by hand; a quirk of
//! AWS goes here, is asserted against the model (so a model change fails loudly), and is
//! applied by the generator.
//!
//! Known disagreements between the model and AWS that are NOT patched here, because they
//! are semantic checks that belong to the operations (see the report / `src/api/`):
//! - `PutRecordInput.PartitionKey` and `PutRecordsRequestEntry.PartitionKey` are optional in
//!   the model (streams with the `AUTO` record distribution strategy ignore them); with the
//!   default `USER_PARTITION_KEY` strategy AWS still requires them.
//! - `Data` may be 10 MiB in the model; a stream accepts at most its `MaxRecordSizeInKiB`
//!   (default 1024 KiB).
//! - `RetentionPeriodHours` is a bare integer in the model; AWS accepts 24..=8760.

/// AWS lists the allowed values of an enum in its own order in "Member must satisfy enum
/// value set: [...]" (Coral builds the set from a hash set, so the order is neither the
/// model's nor alphabetical). Where a peer's test suite pins AWS's real answer, use that
/// order; elsewhere the model's order is used.
pub struct EnumOrder {
    /// The enum shape.
    pub shape: &'static str,
    /// The values in AWS's message order; must be a permutation of the model's values.
    pub aws_order: &'static [&'static str],
    /// Where this order was observed.
    #[allow(dead_code, reason = "documentation for the reader of this list")]
    pub source: &'static str,
}

pub const ENUM_ORDER: &[EnumOrder] = &[EnumOrder {
    shape: "ShardIteratorType",
    aws_order: &[
        "AFTER_SEQUENCE_NUMBER",
        "LATEST",
        "AT_TIMESTAMP",
        "AT_SEQUENCE_NUMBER",
        "TRIM_HORIZON",
    ],
    source: "mhart/kinesalite test/getShardIterator.js, 'should return ValidationException for empty StreamName' \
             (recorded against AWS)",
}];

/// Structures that are emitted as plain output structs although no operation reaches them
/// the ordinary way.
///
/// `SubscribeToShardEvent` is only reachable through the `SubscribeToShardEventStream`
/// union (`eventstream: true`), which the generator does not model as a Rust type: the
/// HTTP/2 event stream is hand-written. The event payload itself is an ordinary structure
/// the event-stream encoder serializes.
pub const EXTRA_OUTPUT_STRUCTS: &[&str] = &["SubscribeToShardEvent"];

/// Output structures whose one member is an event stream, which is not a JSON body:
/// `(structure, member, Rust type)`. `SubscribeToShardOutput` holds only `EventStream` (the
/// event-stream union); the generated struct holds the hand-written type that produces the
/// events instead, and the HTTP layer frames them (`protocol::eventstream`).
pub const PLACEHOLDER_STRUCTS: &[(&str, &str, &str)] = &[(
    "SubscribeToShardOutput",
    "EventStream",
    "crate::api::EventStream",
)];

/// Output members the model marks required that AWS leaves out in some answers:
/// `(structure, member, evidence)`. Such members are `Option`s in the generated type.
pub const OPTIONAL_OUTPUT_MEMBERS: &[(&str, &str, &str)] = &[(
    "SubscribeToShardEvent",
    "ContinuationSequenceNumber",
    "the last event of a closed shard carries ChildShards and no continuation number: \
     KCL 2.x FanOutRecordsPublisher treats a null ContinuationSequenceNumber with child shards \
     as the end of the shard",
)];

/// Operations whose dispatch arm decodes and validates the input, then answers
/// `NotImplementedException` instead of calling the trait: they need more than a
/// request/response body.
pub const NOT_DISPATCHED: &[(&str, &str)] = &[(
    "SubscribeToShard",
    "answers an HTTP/2 event stream (application/vnd.amazon.eventstream), served by hand-written code",
)];

/// Error codes that are not exception shapes in the model but that AWS (or kinesis-broker)
/// answers with: `(code, HTTP status, source)`.
pub const EXTRA_ERROR_CODES: &[(&str, u16, &str)] = &[
    (
        "SerializationException",
        400,
        "malformed body or a value of the wrong JSON type; kinesalite index.js and validations/index.js \
         (`statusCode = 400`, `__type: 'SerializationException'`)",
    ),
    (
        "UnknownOperationException",
        400,
        "X-Amz-Target names no operation; kinesalite index.js (`sendJson(..., {__type: \
         'UnknownOperationException'}, 400)`)",
    ),
    (
        "MissingAuthenticationTokenException",
        400,
        "no Authorization header nor X-Amz-Algorithm query; kinesalite index.js sends it as JSON with 400 for \
         JSON content types (403 only with an XML body for other content types); test/connection.js pins it",
    ),
    (
        "IncompleteSignatureException",
        400,
        "Authorization header lacking Credential/Signature/SignedHeaders or a date; kinesalite index.js, 400 as \
         JSON",
    ),
    (
        "InvalidSignatureException",
        400,
        "signature mismatch (or both header and query auth); kinesalite index.js, 400 as JSON",
    ),
    (
        "UnrecognizedClientException",
        400,
        "unknown access key id; AWS common errors for JSON services answer 400 (not in kinesalite, which \
         accepts any key)",
    ),
    (
        "InternalFailure",
        500,
        "unexpected server error; kinesalite test/helpers.js assertInternalFailure: 500 `{__type: \
         'InternalFailure'}`",
    ),
    (
        "ServiceUnavailable",
        503,
        "AWS common errors: the request failed due to a temporary failure of the server",
    ),
    (
        "NotImplementedException",
        501,
        "kinesis-broker's own: an operation the broker does not implement (yet); never sent by AWS",
    ),
    (
        "RequestEntityTooLargeException",
        413,
        "body over the request size limit; kinesalite index.js answers 413 (MAX_REQUEST_BYTES)",
    ),
];
