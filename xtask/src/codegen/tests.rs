//! Emits `src/api/generated/tests.rs`: tests of the generated code, pinned to AWS's
//! wording (the expected strings are copied from kinesalite's tests, recorded against AWS).

use super::ir::Ir;
use super::util::header;

pub fn codegen(ir: &Ir) -> String {
    let mut s = header("xtask::codegen::tests::codegen");
    s.push_str(&format!(
        "// {} operations, {} structures, {} enums, {} error codes.\n\n",
        ir.ops.len(),
        ir.structs.len(),
        ir.enums.len(),
        ir.errors.len()
    ));
    s.push_str(TESTS);
    s
}

const TESTS: &str = r##"//! Tests of the generated module.

use super::*;
use crate::api::{ApiError, Blob};

fn decode<T: serde::de::DeserializeOwned>(json: &str) -> T {
    serde_json::from_str(json).expect("valid JSON for the shape")
}

fn message<T: Validate>(input: &T) -> String {
    let err: ApiError = input.validate().expect_err("a violation");
    assert_eq!(err.code, ErrorCode::ValidationException);
    assert_eq!(err.http_status(), 400);
    err.message
}

#[test]
fn every_pattern_compiles() {
    for pattern in validate::ALL_PATTERNS {
        let _ = &*pattern.regex;
    }
}

/// A pattern matched by a scan of its characters answers as its regex does: on every ASCII
/// character and a few others (alone, around valid characters, repeated), and the empty value.
#[test]
fn character_scans_answer_as_their_regex() {
    let mut scanned = 0;
    let others = ['\u{0}', '\n', '\r', ' ', '\u{7f}', '\u{80}', 'é', 'ß', '\u{3000}', '\u{1F600}', '\u{FFFD}'];
    let chars: Vec<char> = (0u8..128).map(char::from).chain(others).collect();
    for pattern in validate::ALL_PATTERNS {
        let Some(_) = pattern.repeated else { continue };
        scanned += 1;
        let mut values = vec![String::new()];
        for &c in &chars {
            for value in [c.to_string(), format!("a{c}"), format!("{c}a"), format!("0{c}z"), c.to_string().repeat(3)] {
                values.push(value);
            }
        }
        values.push("A".repeat(5000));
        values.push(format!("{}!", "a".repeat(5000)));
        for value in &values {
            assert_eq!(
                pattern.is_match(value),
                pattern.regex.is_match(value),
                "{:?} on {value:?}",
                pattern.regex.as_str()
            );
        }
    }
    assert!(scanned >= 5, "the model's name patterns are scanned ({scanned})");
}

#[test]
fn pattern_violation() {
    let input: DescribeStreamInput = decode(r#"{"StreamName": "x!"}"#);
    assert_eq!(
        message(&input),
        "1 validation error detected: Value 'x!' at 'streamName' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    );
}

#[test]
fn required_member_missing() {
    let input: CreateStreamInput = decode("{}");
    assert_eq!(
        message(&input),
        "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: \
         Member must not be null"
    );
}

#[test]
fn number_below_min() {
    let input: CreateStreamInput = decode(r#"{"StreamName": "s", "ShardCount": 0}"#);
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );
}

#[test]
fn number_above_max() {
    let input: ListStreamsInput = decode(r#"{"Limit": 10001}"#);
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10000"
    );
}

#[test]
fn integers_are_read_as_aws_reads_them() {
    // kinesalite test/createStream.js 'long StreamName': a huge ShardCount is no decoding error.
    let input: CreateStreamInput = decode(r#"{"StreamName": "s", "ShardCount": 100000000000}"#);
    assert_eq!(input.shard_count, Some(i32::MAX));
    let input: CreateStreamInput = decode(r#"{"StreamName": "s", "ShardCount": 2.7}"#);
    assert_eq!(input.shard_count, Some(2));
    let input: CreateStreamInput = decode(r#"{"StreamName": "s", "ShardCount": null}"#);
    assert_eq!(input.shard_count, None);
    let input: CreateStreamInput = decode(r#"{"StreamName": "s", "ShardCount": -0.5}"#);
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '-1' at 'shardCount' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );
    assert!(serde_json::from_str::<CreateStreamInput>(r#"{"ShardCount": "1"}"#).is_err());
    assert!(serde_json::from_str::<CreateStreamInput>(r#"{"ShardCount": true}"#).is_err());
}

#[test]
fn string_too_long() {
    let name = "a".repeat(129);
    let input = DeleteStreamInput { stream_name: Some(name.clone()), ..Default::default() };
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: \
             Member must have length less than or equal to 128"
        )
    );
}

#[test]
fn several_violations_of_one_member_are_all_listed() {
    // kinesalite test/putRecords.js 'should return ValidationException for empty StreamName'.
    let input: PutRecordsInput = decode(r#"{"StreamName": "", "Records": []}"#);
    assert_eq!(
        message(&input),
        "3 validation errors detected: \
         Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1; \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
}

#[test]
fn nested_list_member_paths_are_one_based() {
    let input: PutRecordsInput = decode(
        r#"{"StreamName": "s", "Records": [{"Data": "", "PartitionKey": "a"}, {"Data": "", "PartitionKey": "", "ExplicitHashKey": "x"}]}"#,
    );
    assert_eq!(
        message(&input),
        "2 validation errors detected: \
         Value 'x' at 'records.2.member.explicitHashKey' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: ^(0|([1-9]\\d{0,38}))$; \
         Value '' at 'records.2.member.partitionKey' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );
}

#[test]
fn blob_too_long() {
    let mut input: PutRecordsInput = decode(r#"{"StreamName": "s", "Records": [{"PartitionKey": "a"}]}"#);
    input.records.as_mut().unwrap()[0].data = Some(Blob::from(vec![0; 10 * 1024 * 1024 + 1]));
    assert_eq!(
        message(&input),
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]' \
         at 'records.1.member.data' failed to satisfy constraint: \
         Member must have length less than or equal to 10485760"
    );
}

#[test]
fn at_most_ten_violations() {
    // kinesalite test/putRecords.js 'should return ValidationException for too many records'.
    let records = vec![r#"{"PartitionKey": "", "Data": ""}"#; 501].join(",");
    let input: PutRecordsInput = decode(&format!(r#"{{"StreamName": "", "Records": [{records}]}}"#));
    let msg = message(&input);
    let entry = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";
    let list = vec![entry; 501].join(", ");
    let mut expected = format!(
        "10 validation errors detected: Value '[{list}]' at 'records' failed to satisfy constraint: \
         Member must have length less than or equal to 500"
    );
    for i in 1..=9 {
        expected.push_str(&format!(
            "; Value '' at 'records.{i}.member.partitionKey' failed to satisfy constraint: \
             Member must have length greater than or equal to 1"
        ));
    }
    assert_eq!(msg, expected);
}

#[test]
fn valid_put_records_decodes_and_validates() {
    let input: PutRecordsInput = decode(
        r#"{"StreamName": "my-stream", "Records": [
            {"Data": "aGVsbG8=", "PartitionKey": "pk"},
            {"Data": "", "PartitionKey": "pk2", "ExplicitHashKey": "340282366920938463463374607431768211455"}
        ]}"#,
    );
    input.validate().expect("valid");
    let records = input.records.as_ref().unwrap();
    assert_eq!(records[0].data.as_ref().unwrap().as_slice(), b"hello");
    assert_eq!(records[1].explicit_hash_key.as_deref(), Some("340282366920938463463374607431768211455"));
    assert_eq!(input.stream_name.as_deref(), Some("my-stream"));
}

#[test]
fn unknown_enum_value_is_kept_and_rejected() {
    let input: GetShardIteratorInput =
        decode(r#"{"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "OLDEST"}"#);
    assert_eq!(input.shard_iterator_type, Some(ShardIteratorType::Unknown("OLDEST".into())));
    // AWS's order of the values: kinesalite test/getShardIterator.js.
    assert_eq!(
        message(&input),
        "1 validation error detected: Value 'OLDEST' at 'shardIteratorType' failed to satisfy constraint: \
         Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"
    );
}

#[test]
fn known_enum_values_round_trip() {
    let t: ShardIteratorType = decode(r#""AT_TIMESTAMP""#);
    assert_eq!(t, ShardIteratorType::AtTimestamp);
    assert_eq!(t.as_str(), "AT_TIMESTAMP");
    assert_eq!(t.to_string(), "AT_TIMESTAMP");
    assert_eq!(serde_json::to_string(&t).unwrap(), r#""AT_TIMESTAMP""#);
    assert_eq!(serde_json::to_string(&ShardIteratorType::Unknown("X".into())).unwrap(), r#""X""#);
    assert!(StreamStatus::from("ACTIVE").is_known());
}

#[test]
fn unknown_fields_ignored_and_null_is_absent() {
    let input: PutRecordInput =
        decode(r#"{"StreamName": "s", "Data": "", "PartitionKey": null, "Whatever": {"x": [1, 2]}}"#);
    assert_eq!(input.partition_key, None);
    input.validate().expect("PartitionKey is optional in the model");
}

#[test]
fn nested_structure_required_member() {
    let input: ListShardsInput = decode(r#"{"StreamName": "s", "ShardFilter": {}}"#);
    assert_eq!(
        message(&input),
        "1 validation error detected: Value null at 'shardFilter.type' failed to satisfy constraint: \
         Member must not be null"
    );
}

#[test]
fn map_constraints() {
    // kinesalite test/addTagsToStream.js.
    let input: AddTagsToStreamInput = decode(r#"{"StreamName": "s", "Tags": {}}"#);
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: \
         Member must have length greater than or equal to 1"
    );
    let key = "k".repeat(129);
    let input: AddTagsToStreamInput = decode(&format!(r#"{{"StreamName": "s", "Tags": {{"a": "1", "{key}": "2"}}}}"#));
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '{{a=1, {key}=2}}' at 'tags' failed to satisfy constraint: \
             Map keys must satisfy constraint: [Member must have length less than or equal to 128, \
             Member must have length greater than or equal to 1]"
        )
    );
    let value = "v".repeat(257);
    let input: AddTagsToStreamInput = decode(&format!(r#"{{"StreamName": "s", "Tags": {{"c": "{value}"}}}}"#));
    assert_eq!(
        message(&input),
        format!(
            "1 validation error detected: Value '{{c={value}}}' at 'tags' failed to satisfy constraint: \
             Map value must satisfy constraint: [Member must have length less than or equal to 256, \
             Member must have length greater than or equal to 0]"
        )
    );
}

#[test]
fn scalar_list_member_constraints() {
    let input: RemoveTagsFromStreamInput = decode(r#"{"StreamName": "s", "TagKeys": ["a", ""]}"#);
    assert_eq!(
        message(&input),
        "1 validation error detected: Value '[a, ]' at 'tagKeys' failed to satisfy constraint: \
         Member must satisfy constraint: [Member must have length less than or equal to 128, \
         Member must have length greater than or equal to 1]"
    );
    let input: EnableEnhancedMonitoringInput =
        decode(r#"{"StreamName": "s", "ShardLevelMetrics": ["ALL", "Nope"]}"#);
    assert!(message(&input).starts_with(
        "1 validation error detected: Value '[ALL, Nope]' at 'shardLevelMetrics' failed to satisfy constraint: \
         Member must satisfy constraint: [Member must satisfy enum value set: [IncomingBytes,"
    ));
}

#[test]
fn operations() {
    assert_eq!(Operation::ALL.len(), 57);
    for op in Operation::ALL {
        assert_eq!(Operation::from_name(op.as_str()), Some(op));
        assert_eq!(Operation::from_target(&format!("Kinesis_20131202.{op}")), Some(op));
    }
    assert_eq!(Operation::from_name("putRecords"), None);
    assert_eq!(Operation::from_target("Kinesis_20131203.PutRecords"), None);
}

#[test]
fn error_codes() {
    for code in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
    }
    assert_eq!(ErrorCode::ValidationException.http_status(), 400);
    assert_eq!(ErrorCode::ResourceNotFoundException.http_status(), 400);
    assert_eq!(ErrorCode::InternalFailure.http_status(), 500);
    assert_eq!(ErrorCode::InternalFailureException.http_status(), 500);
    assert_eq!(ErrorCode::ServiceUnavailable.http_status(), 503);
    assert_eq!(ErrorCode::NotImplementedException.http_status(), 501);
    assert_eq!(ErrorCode::RequestEntityTooLargeException.http_status(), 413);
    assert_eq!(
        ErrorCode::from_name("com.amazon.coral.validate#ValidationException"),
        Some(ErrorCode::ValidationException)
    );
}

#[test]
fn outputs_skip_absent_members() {
    let out = PutRecordOutput {
        shard_id: "shardId-000000000000".into(),
        sequence_number: "49".into(),
        encryption_type: None,
    };
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        r#"{"ShardId":"shardId-000000000000","SequenceNumber":"49"}"#
    );
}

struct Nothing;
impl Kinesis for Nothing {}

struct JsonCodec;
impl crate::api::Codec for JsonCodec {
    fn decode<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        let body = if body.is_empty() { b"{}".as_slice() } else { body };
        serde_json::from_slice(body).map_err(|e| ApiError::new(ErrorCode::SerializationException, e.to_string()))
    }
    fn encode<T: serde::Serialize>(&self, value: &T) -> Vec<u8> {
        serde_json::to_vec(value).unwrap_or_default()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the test future is immediate"),
    }
}

#[test]
fn dispatch_future_is_send() {
    // The HTTP layer spawns it on a multi-threaded runtime.
    fn check<K: Kinesis, C: crate::api::Codec>(service: &K, ctx: &crate::api::RequestContext, codec: &C) {
        fn is_send<T: Send>(_: &T) {}
        let f = dispatch(service, ctx, Operation::PutRecords, codec, b"");
        is_send(&f);
    }
    let ctx = crate::api::RequestContext {
        account_id: "000000000000".into(),
        region: "us-east-1".into(),
        request_id: "r".into(),
    };
    check(&Nothing, &ctx, &JsonCodec);
}

#[test]
fn dispatch_validates_then_calls() {
    let ctx = crate::api::RequestContext {
        account_id: "000000000000".into(),
        region: "us-east-1".into(),
        request_id: "r".into(),
    };
    let err = block_on(dispatch(&Nothing, &ctx, Operation::CreateStream, &JsonCodec, b"{}")).unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationException);
    let err = block_on(dispatch(&Nothing, &ctx, Operation::CreateStream, &JsonCodec, br#"{"StreamName":"s"}"#))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotImplementedException);
    assert_eq!(err.message, "The operation CreateStream is not implemented by kinesis-broker.");
}
"##;
