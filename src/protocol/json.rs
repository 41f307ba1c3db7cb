//! `application/x-amz-json-1.1` (and 1.0): the body encoding every AWS SDK but Java's uses.
//!
//! Decoding goes straight from the body bytes into the generated input type (no
//! intermediate `serde_json::Value`), so the hot path (`PutRecords`, up to 10 MiB) parses
//! once. Only when decoding fails is the error turned into AWS's words.
//!
//! AWS's `SerializationException` wording comes from the Coral/Jackson stack behind the
//! service. kinesalite's tests pin it against the live service (`mhart/kinesalite`,
//! `test/helpers.js` `assertType`, recorded in 2016 when AWS's number class became
//! `TruncatingBigNumber`); its `validations/index.js` (`checkType`) reproduces it:
//!
//! | body | AWS answers |
//! | --- | --- |
//! | not JSON, or JSON but not an object | `{"__type":"SerializationException"}` (no message; `index.js`) |
//! | boolean where a string is expected | `class java.lang.Boolean can not be converted to an String` |
//! | number where a string is expected | `class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String` |
//! | string / boolean where a number is expected | `class java.lang.String can not be converted to an Integer` (`Long`, `Double`) |
//! | number where a boolean is expected | `class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean` |
//! | string where a boolean is expected | `'HELLO' can not be converted to an Boolean` (upper-cased) |
//! | boolean where a blob is expected | `class java.lang.Boolean can not be converted to a Blob` |
//! | number where a blob is expected | `class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob` |
//! | string / boolean where a timestamp is expected | `class java.lang.String can not be converted to milliseconds since epoch` (`java.lang.Boolean`) |
//! | array where a scalar, map or structure is expected | `Start of list found where not expected` |
//! | object where a scalar or list is expected | `Start of structure or map found where not expected.` |
//! | scalar where a list / map / structure is expected | `Expected list or null` / `Expected map or null` / `Expected null` |
//! | blob text that is not base64 | see [`crate::api::blob`] (`Invalid Base64 character: 'c'`, ...) |
//!
//! ("an String" is AWS's grammar, kept.) The blob's base64 messages pass through unchanged;
//! any other decoding error (a `null` inside a list or map, a member given twice, a number
//! too large for serde_json) is a `SerializationException` without a message: AWS's texts
//! for those are NOT PINNED, and serde's wording is never sent.
//!
//! Not pinned, so not copied: AWS reads the strings `true`/`false`/`yes`/`no`/`1`/`0` as
//! booleans and accepts a fractional number for a boolean (kinesalite's notes); the broker
//! refuses both with the texts above. A JSON array of exactly a structure's member count
//! where a structure is expected still decodes (serde reads structures from arrays); a
//! shorter one is refused in AWS's words, a longer one without a message.

use super::type_error;
use crate::api::{ApiError, Codec, ErrorCode};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};

/// The JSON codec. Stateless; one value serves every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        let body = trim_ascii(body);
        // An empty body is an empty structure (the `Codec` contract); whether the HTTP layer
        // lets an empty body reach the codec at all is its own decision.
        let body: &[u8] = if body.is_empty() { b"{}" } else { body };
        // serde's derived structs also accept a JSON array (fields by position); AWS
        // only takes an object, so anything else is rejected before serde sees it.
        if body.first() != Some(&b'{') {
            return Err(serialization_error(""));
        }
        serde_json::from_slice(body).map_err(|e| map_decode_error(&e))
    }

    fn encode<T: Serialize>(&self, value: &T) -> Vec<u8> {
        // The generated shapes only have string map keys and infallible field serializers,
        // so this cannot fail; if it ever does, answer with an empty structure and say so
        // in the log rather than panic in a connection task.
        serde_json::to_vec(value).unwrap_or_else(|e| {
            tracing::error!(error = %e, "failed to encode a response as JSON");
            b"{}".to_vec()
        })
    }
}

/// Checks that `body` is one well-formed JSON object, without building it.
///
/// AWS parses the body before it looks at the target or the credentials, so a malformed
/// body wins over an unknown operation or a missing signature. The request path calls
/// this only on those error paths; a good request is parsed once, by [`JsonCodec::decode`].
pub fn check_well_formed(body: &[u8]) -> Result<(), ApiError> {
    let body = trim_ascii(body);
    if body.is_empty() {
        return Ok(());
    }
    if body.first() != Some(&b'{') || serde_json::from_slice::<IgnoredAny>(body).is_err() {
        return Err(serialization_error(""));
    }
    Ok(())
}

fn trim_ascii(body: &[u8]) -> &[u8] {
    body.trim_ascii()
}

fn serialization_error(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::SerializationException, message)
}

/// Turns a serde_json error into AWS's `SerializationException`.
fn map_decode_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        // Not JSON at all: AWS says nothing more than the type.
        Category::Syntax | Category::Eof | Category::Io => serialization_error(""),
        Category::Data => serialization_error(data_error_message(&e.to_string())),
    }
}

fn data_error_message(serde_message: &str) -> String {
    // serde_json appends " at line L column C"; AWS gives no position.
    let message = serde_message
        .rsplit_once(" at line ")
        .map_or(serde_message, |(m, _)| m);
    if let Some(aws) = aws_type_message(message) {
        return aws;
    }
    // The blob's own errors are already AWS's words (src/api/blob.rs); anything else is
    // serde's wording (a `null` inside a list, a member given twice, ...), which AWS never
    // sends: the type alone, as for a body that does not parse. NOT PINNED.
    if message.starts_with('\'') && message.contains("' can not be converted to a Blob: ") {
        return message.to_string();
    }
    tracing::debug!(serde = message, "JSON decode error without an AWS text");
    String::new()
}

/// AWS's wording for `invalid type: <found>, expected <expected>`, or `None` when the error
/// is of another kind (custom errors pass through).
fn aws_type_message(message: &str) -> Option<String> {
    // serde_derive structs also accept a JSON array (members by position) and complain
    // about its length; AWS refuses any array where a structure belongs. (The generated
    // input structures read only maps; this covers other derived types.)
    if message.starts_with("invalid length ") && message.contains(", expected struct ") {
        return Some(type_error::LIST.to_string());
    }
    let (found, expected) = type_error::parse(message)?;
    Some(type_error::message(expected, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Debug, Deserialize, Serialize, PartialEq, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        key: Option<String>,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        stream_name: Option<String>,
        limit: Option<i32>,
        big: Option<i64>,
        ratio: Option<f64>,
        flag: Option<bool>,
        names: Option<Vec<String>>,
        tags: Option<HashMap<String, String>>,
        inner: Option<Inner>,
        data: Option<crate::api::Blob>,
        timestamp: Option<crate::api::Timestamp>,
    }

    fn decode(body: &str) -> Result<Input, ApiError> {
        JsonCodec.decode(body.as_bytes())
    }

    fn message_of(body: &str) -> String {
        let e = decode(body).unwrap_err();
        assert_eq!(e.code, ErrorCode::SerializationException, "{body}");
        e.message
    }

    #[test]
    fn empty_body_decodes_as_empty_structure() {
        assert_eq!(decode("").unwrap(), Input::default());
        assert_eq!(decode(" \n").unwrap(), Input::default());
    }

    #[test]
    fn unknown_members_and_nulls_are_ignored() {
        let input = decode(r#"{"StreamName":"s","Whatever":[1,2],"Limit":null}"#).unwrap();
        assert_eq!(input.stream_name.as_deref(), Some("s"));
        assert_eq!(input.limit, None);
    }

    #[test]
    fn malformed_json_is_serialization_exception_without_message() {
        assert_eq!(message_of("hello"), "");
        assert_eq!(message_of("{\"StreamName\":"), "");
        assert_eq!(message_of("{} trailing"), "");
    }

    #[test]
    fn non_object_body_is_serialization_exception() {
        assert_eq!(message_of("[\"s\", 1]"), "");
        assert_eq!(message_of("null"), "");
        assert_eq!(message_of("\"x\""), "");
        assert_eq!(message_of("5"), "");
    }

    #[test]
    fn wrong_scalar_types_use_aws_wording() {
        assert_eq!(
            message_of(r#"{"StreamName":true}"#),
            "class java.lang.Boolean can not be converted to an String"
        );
        for number in ["12", "-2147483648", "2147483648", "34.56"] {
            assert_eq!(
                message_of(&format!(r#"{{"StreamName":{number}}}"#)),
                "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String",
                "{number}"
            );
        }
        assert_eq!(
            message_of(r#"{"Limit":"10"}"#),
            "class java.lang.String can not be converted to an Integer"
        );
        assert_eq!(
            message_of(r#"{"Limit":false}"#),
            "class java.lang.Boolean can not be converted to an Integer"
        );
        assert_eq!(
            message_of(r#"{"Big":"1"}"#),
            "class java.lang.String can not be converted to an Long"
        );
        assert_eq!(
            message_of(r#"{"Ratio":"1"}"#),
            "class java.lang.String can not be converted to an Double"
        );
        for number in ["23", "-2147483648", "2147483648"] {
            assert_eq!(
                message_of(&format!(r#"{{"Flag":{number}}}"#)),
                "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"
            );
        }
        assert_eq!(
            message_of(r#"{"Flag":"23"}"#),
            "'23' can not be converted to an Boolean"
        );
        assert_eq!(
            message_of(r#"{"Flag":"hellowtf"}"#),
            "'HELLOWTF' can not be converted to an Boolean"
        );
        assert_eq!(
            message_of(r#"{"Data":true}"#),
            "class java.lang.Boolean can not be converted to a Blob"
        );
        for number in ["23", "-2147483648", "2147483648", "34.56"] {
            assert_eq!(
                message_of(&format!(r#"{{"Data":{number}}}"#)),
                "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"
            );
        }
    }

    /// kinesalite `test/helpers.js` `assertType` `Timestamp` (AWS's answers).
    #[test]
    fn wrong_timestamp_types_use_aws_wording() {
        assert_eq!(
            message_of(r#"{"Timestamp":"23"}"#),
            "class java.lang.String can not be converted to milliseconds since epoch"
        );
        assert_eq!(
            message_of(r#"{"Timestamp":true}"#),
            "class java.lang.Boolean can not be converted to milliseconds since epoch"
        );
        assert_eq!(
            message_of(r#"{"Timestamp":[]}"#),
            "Start of list found where not expected"
        );
        assert_eq!(
            message_of(r#"{"Timestamp":{}}"#),
            "Start of structure or map found where not expected."
        );
        assert_eq!(
            decode(r#"{"Timestamp":1700000000.5}"#).unwrap().timestamp,
            Some(crate::api::Timestamp::from_millis(1_700_000_000_500))
        );
    }

    #[test]
    fn bad_base64_blobs_use_aws_wording() {
        assert_eq!(
            message_of(r#"{"Data":"23456"}"#),
            "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"
        );
        // kinesalite `test/helpers.js` `assertType` `Blob` (AWS's answers, AWS's spelling).
        assert_eq!(
            message_of(r#"{"Data":"=+/="}"#),
            "'=+/=' can not be converted to a Blob: Invalid Base64 character: '='"
        );
        assert_eq!(
            message_of(r#"{"Data":"+/+="}"#),
            "'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        );
        assert_eq!(
            message_of(r#"{"Data":"ab!d"}"#),
            "'ab!d' can not be converted to a Blob: Invalid Base64 character: '!'"
        );
        assert_eq!(
            message_of(r#"{"Data":"YR=="}"#),
            "'YR==' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        );
        assert_eq!(
            message_of(r#"{"Data":"ab=c"}"#),
            "'ab=c' can not be converted to a Blob: Invalid Base64 character: '='"
        );
        assert_eq!(
            message_of(r#"{"Data":"===="}"#),
            "'====' can not be converted to a Blob: Invalid last non-pad Base64 character dectected"
        );
        // Unpadded and non-canonical (non-zero trailing bits) forms are refused as AWS does.
        assert!(decode(r#"{"Data":"YQ"}"#).is_err());
        assert!(decode(r#"{"Data":"YR=="}"#).is_err());
        // Escaped characters are decoded before base64 is (`\/` is `/`).
        assert_eq!(
            decode(r#"{"Data":"\/w=="}"#)
                .unwrap()
                .data
                .unwrap()
                .as_slice(),
            &[0xff]
        );
        assert_eq!(
            decode(r#"{"Data":"aGVsbG8="}"#)
                .unwrap()
                .data
                .unwrap()
                .as_slice(),
            b"hello"
        );
    }

    #[test]
    fn a_list_where_a_generated_structure_belongs_is_refused() {
        use crate::api::generated::{PutRecordsInput, SubscribeToShardInput};
        for body in [
            r#"{"StreamName":"s","Records":[[]]}"#,
            r#"{"StreamName":"s","Records":[["pk","eA=="]]}"#,
        ] {
            let err = JsonCodec
                .decode::<PutRecordsInput>(body.as_bytes())
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::SerializationException, "{body}");
            assert_eq!(
                err.message, "Start of list found where not expected",
                "{body}"
            );
        }
        let err = JsonCodec
            .decode::<SubscribeToShardInput>(br#"{"StartingPosition":[]}"#)
            .unwrap_err();
        assert_eq!(err.message, "Start of list found where not expected");
        // Maps still decode, and encode back the same.
        let input: PutRecordsInput = JsonCodec
            .decode(br#"{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"eA=="}]}"#)
            .unwrap();
        assert_eq!(input.records.as_ref().map(Vec::len), Some(1));
        let again: PutRecordsInput = JsonCodec.decode(&JsonCodec.encode(&input)).unwrap();
        assert_eq!(again, input);
    }

    #[test]
    fn lists_and_objects_in_the_wrong_place_use_aws_wording() {
        assert_eq!(
            message_of(r#"{"StreamName":[]}"#),
            "Start of list found where not expected"
        );
        assert_eq!(
            message_of(r#"{"StreamName":{}}"#),
            "Start of structure or map found where not expected."
        );
        assert_eq!(message_of(r#"{"Names":"a"}"#), "Expected list or null");
        assert_eq!(
            message_of(r#"{"Names":{}}"#),
            "Start of structure or map found where not expected."
        );
        assert_eq!(message_of(r#"{"Tags":"a"}"#), "Expected map or null");
        assert_eq!(
            message_of(r#"{"Tags":[]}"#),
            "Start of list found where not expected"
        );
        assert_eq!(message_of(r#"{"Inner":1}"#), "Expected null");
        assert_eq!(
            message_of(r#"{"Inner":[]}"#),
            "Start of list found where not expected"
        );
        assert_eq!(
            message_of(r#"{"Names":[1]}"#),
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"
        );
        assert_eq!(
            message_of(r#"{"Tags":{"a":1}}"#),
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"
        );
    }

    #[test]
    fn custom_errors_pass_through_without_position() {
        let message = message_of(r#"{"Data":"!!!!"}"#);
        assert!(!message.contains("line"), "{message}");
        assert!(!message.is_empty());
    }

    #[test]
    fn serde_wording_is_never_sent() {
        assert_eq!(message_of(r#"{"Names":["a",null]}"#), "");
        assert_eq!(message_of(r#"{"StreamName":"a","StreamName":"b"}"#), "");
        assert_eq!(message_of(r#"{"Limit":1e400}"#), "");
    }

    #[test]
    fn encode_round_trips() {
        let input = Input {
            stream_name: Some("s".into()),
            limit: Some(3),
            ..Default::default()
        };
        let body = JsonCodec.encode(&input);
        assert_eq!(JsonCodec.decode::<Input>(&body).unwrap(), input);
    }

    #[test]
    fn well_formed_check_rejects_what_aws_rejects() {
        assert!(check_well_formed(b"{}").is_ok());
        assert!(check_well_formed(b"").is_ok());
        assert!(check_well_formed(b" {\"a\":[1,{}]} ").is_ok());
        assert!(check_well_formed(b"hello").is_err());
        assert!(check_well_formed(b"[]").is_err());
        assert!(check_well_formed(b"{").is_err());
    }

    /// Bounded fuzzing of the decoder and the generated validation: seeded mutations of
    /// valid request bodies of several operations (bit flips, truncation, type swaps, deep
    /// nesting, huge numbers, long strings, stray bytes). Nothing may panic, and every
    /// refusal must be a `SerializationException` in one of AWS's texts (or with no message)
    /// or a `ValidationException` in AWS's format: never serde's own wording.
    ///
    /// `KINESIS_FUZZ_ITERATIONS` (default 3,000, one to two seconds in a debug build) and
    /// `KINESIS_FUZZ_SEED` change the run; a failure prints the seed and iteration.
    mod fuzz {
        use super::super::JsonCodec;
        use crate::api::generated::*;
        use crate::api::{ApiError, Codec, ErrorCode};
        use serde::de::DeserializeOwned;
        use serde_json::{Value, json};
        use std::sync::atomic::AtomicUsize;
        use std::sync::atomic::Ordering::Relaxed;

        use crate::fuzzing::Rng;

        /// Valid bodies, one or more per operation decoded below.
        fn seeds() -> Vec<(&'static str, Value)> {
            vec![
                (
                    "PutRecord",
                    json!({"StreamName": "s", "PartitionKey": "pk", "Data": "aGVsbG8=", "ExplicitHashKey": "42", "SequenceNumberForOrdering": "1"}),
                ),
                (
                    "PutRecords",
                    json!({"StreamName": "s", "Records": [{"PartitionKey": "a", "Data": "eA=="}, {"PartitionKey": "b", "Data": "", "ExplicitHashKey": "7"}]}),
                ),
                (
                    "CreateStream",
                    json!({"StreamName": "s", "ShardCount": 2, "StreamModeDetails": {"StreamMode": "PROVISIONED"}, "Tags": {"k": "v", "k2": ""}}),
                ),
                (
                    "GetShardIterator",
                    json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1_700_000_000.123}),
                ),
                (
                    "GetRecords",
                    json!({"ShardIterator": "AAAA", "Limit": 100, "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}),
                ),
                (
                    "ListShards",
                    json!({"StreamName": "s", "MaxResults": 10, "StreamCreationTimestamp": 1_700_000_000, "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": 1.5, "ShardId": "shardId-0"}}),
                ),
                (
                    "AddTagsToStream",
                    json!({"StreamName": "s", "Tags": {"a": "b"}}),
                ),
                (
                    "RemoveTagsFromStream",
                    json!({"StreamName": "s", "TagKeys": ["a", "b"]}),
                ),
                (
                    "DeleteStream",
                    json!({"StreamName": "s", "EnforceConsumerDeletion": true}),
                ),
                (
                    "SubscribeToShard",
                    json!({"ConsumerARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1", "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "1", "Timestamp": 2}}),
                ),
                (
                    "RegisterStreamConsumer",
                    json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "ConsumerName": "c", "Tags": {"t": "v"}}),
                ),
            ]
        }

        fn check<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<(), ApiError> {
            JsonCodec.decode::<T>(body)?.validate()
        }

        fn run(op: &str, body: &[u8]) -> Result<(), ApiError> {
            match op {
                "PutRecord" => check::<PutRecordInput>(body),
                "PutRecords" => check::<PutRecordsInput>(body),
                "CreateStream" => check::<CreateStreamInput>(body),
                "GetShardIterator" => check::<GetShardIteratorInput>(body),
                "GetRecords" => check::<GetRecordsInput>(body),
                "ListShards" => check::<ListShardsInput>(body),
                "AddTagsToStream" => check::<AddTagsToStreamInput>(body),
                "RemoveTagsFromStream" => check::<RemoveTagsFromStreamInput>(body),
                "DeleteStream" => check::<DeleteStreamInput>(body),
                "SubscribeToShard" => check::<SubscribeToShardInput>(body),
                "RegisterStreamConsumer" => check::<RegisterStreamConsumerInput>(body),
                other => unreachable!("no decoder for {other}"),
            }
        }

        /// Whether `message` is one of AWS's `SerializationException` texts.
        fn aws_serialization_text(message: &str) -> bool {
            const EXACT: &[&str] = &[
                "",
                "Start of list found where not expected",
                "Start of structure or map found where not expected.",
                "Expected list or null",
                "Expected map or null",
                "Expected null",
            ];
            const TAILS: &[&str] = &[
                " can not be converted to an String",
                " can not be converted to an Boolean",
                " can not be converted to an Integer",
                " can not be converted to an Long",
                " can not be converted to an Double",
                " can not be converted to a Blob",
                " can not be converted to milliseconds since epoch",
            ];
            EXACT.contains(&message)
                || TAILS.iter().any(|t| message.ends_with(t))
                || (message.contains("' can not be converted to a Blob: ")
                    && (message.contains(
                        ": Base64 encoded length is expected a multiple of 4 bytes but found: ",
                    ) || message.contains(": Invalid Base64 character: '")
                        || message.ends_with(": Invalid last non-pad Base64 character dectected")))
        }

        fn aws_validation_text(message: &str) -> bool {
            let Some((count, rest)) = message.split_once(' ') else {
                return false;
            };
            count.parse::<u32>().is_ok_and(|n| n >= 1)
                && (rest.starts_with("validation error detected: Value ")
                    || rest.starts_with("validation errors detected: Value "))
                && rest.contains(" failed to satisfy constraint: ")
        }

        fn random_scalar(rng: &mut Rng) -> Value {
            match rng.below(9) {
                0 => Value::Null,
                1 => Value::Bool(rng.chance(2)),
                2 => json!(rng.next() as i64),
                3 => json!((rng.next() as f64) / 7.0 - 1e18),
                4 => json!(rng.below(3) as i64 - 1),
                5 => Value::String("A".repeat(rng.below(20_000))),
                6 => Value::String(
                    (0..rng.below(40))
                        .map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('x'))
                        .collect(),
                ),
                7 => Value::String(
                    [
                        "true",
                        "false",
                        "yes",
                        "0",
                        "=+/=",
                        "+/+=",
                        "23456",
                        "AT_TIMESTAMP",
                        "shardId-1",
                        "\u{0}\u{7f}\"\\",
                    ][rng.below(10)]
                    .to_string(),
                ),
                _ => json!({}),
            }
        }

        fn random_value(rng: &mut Rng, depth: usize) -> Value {
            if depth > 3 || rng.chance(2) {
                return random_scalar(rng);
            }
            let n = rng.below(4);
            if rng.chance(2) {
                Value::Array((0..n).map(|_| random_value(rng, depth + 1)).collect())
            } else {
                Value::Object(
                    (0..n)
                        .map(|i| {
                            (
                                ["StreamName", "Data", "Tags", "Type", "x"][(i + rng.below(5)) % 5]
                                    .to_string(),
                                random_value(rng, depth + 1),
                            )
                        })
                        .collect(),
                )
            }
        }

        /// How many nodes `v` has, itself included.
        fn count_nodes(v: &Value) -> usize {
            1 + match v {
                Value::Array(a) => a.iter().map(count_nodes).sum(),
                Value::Object(o) => o.values().map(count_nodes).sum(),
                _ => 0,
            }
        }

        /// Applies `f` to the `n`th node of `v` (depth first, the root is 0).
        fn apply_at(v: &mut Value, n: &mut usize, f: &mut dyn FnMut(Value) -> Value) -> bool {
            if *n == 0 {
                let old = std::mem::take(v);
                *v = f(old);
                return true;
            }
            *n -= 1;
            match v {
                Value::Array(a) => a.iter_mut().any(|c| apply_at(c, n, f)),
                Value::Object(o) => o.values_mut().any(|c| apply_at(c, n, f)),
                _ => false,
            }
        }

        /// Replaces a random node (not the root) with `f(old)`.
        fn replace_node(rng: &mut Rng, v: &mut Value, f: impl FnOnce(&mut Rng, Value) -> Value) {
            let total = count_nodes(v);
            if total < 2 {
                return;
            }
            let mut n = 1 + rng.below(total - 1);
            let mut f = Some(f);
            apply_at(v, &mut n, &mut |old| match f.take() {
                Some(f) => f(rng, old),
                None => old,
            });
        }

        /// Text of a number too large for any Rust number type.
        fn huge_number(rng: &mut Rng) -> String {
            match rng.below(4) {
                0 => "9".repeat(1 + rng.below(500)),
                1 => format!("-{}", "1".repeat(40)),
                2 => format!("1e{}", rng.below(100_000)),
                _ => format!("0.{}e-{}", "0".repeat(rng.below(50)), rng.below(400)),
            }
        }

        /// `{key: value}`, moving `value` in: `json!` serializes a variable into a new
        /// `Value`, a deep copy, which made 200 levels of nesting quadratic.
        fn object(key: &str, value: Value) -> Value {
            Value::Object(serde_json::Map::from_iter([(key.to_string(), value)]))
        }

        fn mutate(rng: &mut Rng, seed: &Value) -> Vec<u8> {
            let mut value = seed.clone();
            let mut huge = None;
            // Whether a huge-number marker was placed: only then is the text (up to 20,000
            // characters and more) scanned for it.
            let mut marked = false;
            for _ in 0..1 + rng.below(2) {
                match rng.below(5) {
                    0 => replace_node(rng, &mut value, |rng, _| random_value(rng, 0)),
                    1 => replace_node(rng, &mut value, |rng, old| {
                        // Deep nesting around a member (past serde_json's recursion limit at times).
                        let mut v = old;
                        for _ in 0..rng.below(200) {
                            v = if rng.chance(2) {
                                Value::Array(vec![v])
                            } else {
                                object("StreamName", v)
                            };
                        }
                        v
                    }),
                    2 => {
                        marked = true;
                        replace_node(rng, &mut value, |_, _| {
                            Value::String("\u{1}HUGE\u{1}".into())
                        })
                    }
                    3 => replace_node(rng, &mut value, |rng, old| match old {
                        // Type swaps: a member as each other JSON type.
                        Value::String(s) => {
                            if rng.chance(2) {
                                Value::Array(vec![Value::String(s)])
                            } else {
                                object("S", Value::String(s))
                            }
                        }
                        Value::Number(n) => Value::String(n.to_string()),
                        Value::Array(a) => {
                            if a.is_empty() {
                                json!({})
                            } else {
                                a[0].clone()
                            }
                        }
                        Value::Object(o) => Value::Array(o.into_iter().map(|(_, v)| v).collect()),
                        other => Value::Array(vec![other]),
                    }),
                    _ => {
                        // A member of the top-level object twice, or a new unknown one.
                        if let Value::Object(o) = &mut value {
                            o.insert(format!("X{}", rng.below(3)), random_value(rng, 0));
                        }
                    }
                }
            }
            let mut text = serde_json::to_vec(&value).expect("a Value serializes");
            if marked && let Some(pos) = find(&text, b"\"\\u0001HUGE\\u0001\"") {
                let number = huge.get_or_insert_with(|| huge_number(rng)).clone();
                text.splice(pos..pos + 16, number.into_bytes());
            }
            // Byte-level damage on a share of the bodies.
            match rng.below(6) {
                0 if !text.is_empty() => {
                    let i = rng.below(text.len());
                    text[i] ^= 1 << rng.below(8);
                }
                1 => text.truncate(rng.below(text.len() + 1)),
                2 => {
                    let i = rng.below(text.len() + 1);
                    let b = b"{}[],:\"\\0e-.tn \x00\xff"[rng.below(17)];
                    text.insert(i, b);
                }
                3 => {
                    let depth = rng.below(300);
                    let mut deep = b"{\"StreamName\":".to_vec();
                    deep.extend(std::iter::repeat_n(b'[', depth));
                    deep.extend(std::iter::repeat_n(
                        b']',
                        depth * usize::from(rng.chance(2)),
                    ));
                    deep.push(b'}');
                    text = deep;
                }
                _ => {}
            }
            text
        }

        fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
            hay.windows(needle.len()).position(|w| w == needle)
        }

        #[test]
        fn mutated_bodies_never_panic_and_fail_in_aws_shapes() {
            let fuzz = crate::fuzzing::Run::new("json_body", 3_000, 0x4b49_4e45_5349_5321);
            let seeds = seeds();
            for (op, body) in &seeds {
                run(op, &serde_json::to_vec(body).unwrap())
                    .unwrap_or_else(|e| panic!("seed body of {op} is refused: {e:?}"));
            }
            let counts = [const { AtomicUsize::new(0) }; 3];
            let [accepted, serialization, validation] = &counts;
            fuzz.parallel(
                || (),
                |(), rng, i| {
                    let (op, seed_body) = &seeds[rng.below(seeds.len())];
                    let body = mutate(rng, seed_body);
                    let shown = || crate::fuzzing::show(&body);
                    match fuzz.input(i, shown, || run(op, &body)) {
                        Ok(()) => accepted.fetch_add(1, Relaxed),
                        Err(e) if e.code == ErrorCode::SerializationException => {
                            assert!(
                                aws_serialization_text(&e.message),
                                "{op}: not an AWS text: {:?} for {} (iteration {i})",
                                e.message,
                                shown()
                            );
                            serialization.fetch_add(1, Relaxed)
                        }
                        Err(e) if e.code == ErrorCode::ValidationException => {
                            assert!(
                                aws_validation_text(&e.message),
                                "{op}: not AWS's format: {:?} for {} (iteration {i})",
                                e.message,
                                shown()
                            );
                            validation.fetch_add(1, Relaxed)
                        }
                        Err(e) => panic!("{op}: {e:?} for {} (iteration {i})", shown()),
                    };
                },
            );
            let [accepted, serialization, validation] = counts.map(AtomicUsize::into_inner);
            eprintln!(
                "json_body: {accepted} accepted, {serialization} SerializationException, {validation} ValidationException"
            );
            fuzz.finish();
            assert!(
                serialization > 0 && validation > 0 && accepted > 0,
                "mutations too narrow"
            );
        }

        /// Every member the request bodies of the model use, each with a value valid
        /// wherever it appears (where shapes differ, e.g. `Type` or `CompressionType`, a value
        /// of every variant). Unknown members are ignored, so this one body is valid for
        /// every operation; [`body_of`] trims it to what each operation decodes.
        fn universe() -> Value {
            // Kept as JSON text: serde_json's macro cannot nest this deep.
            serde_json::from_str(UNIVERSE).expect("the universe is JSON")
        }

        const UNIVERSE: &str = r#"{"StreamName": "s", "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "StreamId": "abcdefghij0123456789-abc", "ConsumerARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1", "ConsumerName": "c", "ChannelName": "ch", "QueueName": "q", "ChannelARN": "arn:aws:kinesis:us-east-1:000000000000:channel/ch", "QueueARN": "arn:aws:kinesis:us-east-1:000000000000:queue/q", "ResourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "ServiceExecutionRoleARN": "arn:aws:iam::000000000000:role/r", "Entries": [{"ReceiptHandle": "h", "VisibilityTimeoutSeconds": 30}], "Tags": {"k": "v", "k2": ""}, "TagKeys": ["k"], "StreamConfigurationList": [{"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "RecordConfiguration": {"RecordFormatType": "JSON", "GSRSchemaARN": "arn:aws:glue:us-east-1:000000000000:schema/r/s"}, "StartingPosition": {"Type": "AT_TIMESTAMP", "Timestamp": 1700000000}}], "S3DestinationConfiguration": {"DataFreshnessInSeconds": 60, "DeadLetterQueueS3Configuration": {"BucketARN": "arn:aws:s3:::bucket", "ExpectedBucketOwner": "000000000000", "ErrorOutputPrefix": "e/"}, "StorageConfiguration": {"BucketARN": "arn:aws:s3:::bucket", "ExpectedBucketOwner": "000000000000", "OutputKeyTemplate": "k", "StorageClass": "STANDARD", "CompressionType": "ZSTD"}}, "S3TablesDestinationConfiguration": {"DataFreshnessInSeconds": 60, "DeadLetterQueueS3Configuration": {"BucketARN": "arn:aws:s3:::bucket", "ExpectedBucketOwner": "000000000000", "ErrorOutputPrefix": "e/"}, "S3TablesConfigurationList": [{"TableBucketARN": "arn:aws:s3tables:us-east-1:000000000000:bucket/tbl", "Namespace": "ns", "TableName": "t", "CompressionType": "ZSTD", "PartitionSpec": {"PartitionFields": [{"Transform": "TIME_HOUR", "SourceName": "ts"}]}}]}, "EncryptionConfiguration": {"EncryptionType": "KMS", "KeyId": "k"}, "LoggingConfiguration": {"CloudWatchLogs": {"Enabled": true, "LogGroupName": "g", "LogStreamName": "l"}}, "QueueAttributes": {"VisibilityTimeoutSeconds": 30, "DeadLetterConfiguration": {"TargetType": "BUILT_IN", "MaxReceiveCount": 5}}, "ShardCount": 2, "StreamModeDetails": {"StreamMode": "PROVISIONED"}, "WarmThroughputMiBps": 0, "MaxRecordSizeInKiB": 1024, "RecordDistributionStrategy": "AUTO", "RetentionPeriodHours": 48, "EnforceConsumerDeletion": true, "Limit": 5, "ExclusiveStartShardId": "shardId-000000000000", "ShardLevelMetrics": ["IncomingBytes", "ALL"], "ShardIterator": "AAAA", "DryRun": false, "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP", "StartingSequenceNumber": "1", "Timestamp": 1700000000.5, "StreamFilter": [{"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "StreamCreationTimestamp": 1700000000}], "MaxResults": 10, "NextToken": "t", "StreamCreationTimestamp": 1700000000, "ShardFilter": {"Type": "AT_TIMESTAMP", "ShardId": "shardId-000000000000", "Timestamp": 1700000000}, "ExclusiveStartStreamName": "s", "ExclusiveStartTagKey": "k", "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000001", "Data": "aGVsbG8=", "PartitionKey": "pk", "ExplicitHashKey": "42", "SequenceNumberForOrdering": "1", "Records": [{"Data": "eA==", "PartitionKey": "a", "ExplicitHashKey": "7"}, {"Data": "", "PartitionKey": "b"}], "Policy": "{}", "WaitTimeSeconds": 1, "VisibilityTimeoutSeconds": 30, "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1", "EncryptionType": "KMS", "KeyId": "k", "StartingPosition": {"Type": "AT_TIMESTAMP", "SequenceNumber": "1", "Timestamp": 1700000000}, "MinimumThroughputBillingCommitment": {"Status": "ENABLED"}, "TargetShardCount": 4, "ScalingType": "UNIFORM_SCALING"}"#;

        /// A service that implements nothing: `dispatch` answers NotImplementedException
        /// once a body decoded and validated, so the generated glue itself says which
        /// operation decodes which shape.
        struct NoService;
        impl Kinesis for NoService {}

        fn dispatch_body<C: Codec>(op: Operation, codec: &C, body: &[u8]) -> Result<(), ApiError> {
            let ctx = crate::api::RequestContext {
                account_id: "000000000000".into(),
                region: "us-east-1".into(),
                request_id: "r".into(),
            };
            let future = std::pin::pin!(dispatch(&NoService, &ctx, op, codec, body));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match future.poll(&mut cx) {
                std::task::Poll::Ready(Err(e)) if e.code == ErrorCode::NotImplementedException => {
                    Ok(())
                }
                std::task::Poll::Ready(Err(e)) => Err(e),
                std::task::Poll::Ready(Ok(_)) => panic!("{op}: NoService answered"),
                std::task::Poll::Pending => panic!("{op}: dispatch waited"),
            }
        }

        use std::future::Future;

        /// The universe trimmed to the members `op` decodes, at every depth: a member is
        /// kept when a value no shape accepts (`[[]]`) in its place makes the decoding fail.
        fn body_of(op: Operation) -> Value {
            fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
                match v {
                    Value::Object(o) => {
                        for (k, child) in o {
                            let p = format!("{at}/{k}");
                            out.push(p.clone());
                            pointers(child, &p, out);
                        }
                    }
                    Value::Array(a) => {
                        for (i, child) in a.iter().enumerate() {
                            pointers(child, &format!("{at}/{i}"), out);
                        }
                    }
                    _ => {}
                }
            }
            let mut body = universe();
            let mut all = Vec::new();
            pointers(&body, "", &mut all);
            for pointer in all {
                let mut probe = body.clone();
                let Some(slot) = probe.pointer_mut(&pointer) else {
                    continue; // under a member already removed
                };
                *slot = json!([[]]);
                let decoded = dispatch_body(op, &JsonCodec, &serde_json::to_vec(&probe).unwrap());
                if decoded.is_ok() {
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    let parent = if parent.is_empty() {
                        &mut body
                    } else {
                        body.pointer_mut(parent).unwrap()
                    };
                    if let Value::Object(o) = parent {
                        o.remove(key);
                    }
                }
            }
            body
        }

        /// Every operation of the model, from the generated operation list: its body built
        /// and trimmed by [`body_of`], then mutated as above (and re-encoded as CBOR for a
        /// share of the inputs) and sent through the generated `dispatch`. Each is decoded
        /// and validated, or refused in AWS's shapes; nothing panics or hangs.
        #[test]
        fn every_operations_body_is_fuzzed_through_dispatch() {
            let seeds: Vec<(Operation, Value)> =
                Operation::ALL.iter().map(|&op| (op, body_of(op))).collect();
            for (op, body) in &seeds {
                dispatch_body(*op, &JsonCodec, &serde_json::to_vec(body).unwrap())
                    .unwrap_or_else(|e| panic!("the body of {op} is refused: {e:?} ({body})"));
                let members = body.as_object().map_or(0, |o| o.len());
                let universe_members = universe().as_object().unwrap().len();
                assert!(
                    members < universe_members,
                    "{op}: nothing trimmed from {body}"
                );
            }
            let run = crate::fuzzing::Run::new("json_every_operation", 3_000, 0x0a11_0b5e);
            let accepted: Vec<AtomicUsize> = seeds.iter().map(|_| AtomicUsize::new(0)).collect();
            run.parallel(
                || (),
                |(), rng, i| {
                    let pick = rng.below(seeds.len());
                    let (op, seed_body) = &seeds[pick];
                    let body = mutate(rng, seed_body);
                    let cbor = rng.chance(4);
                    let shown = || {
                        format!(
                            "{op} {}{}",
                            if cbor { "(as CBOR) " } else { "" },
                            crate::fuzzing::show(&body)
                        )
                    };
                    let outcome = run.input(i, shown, || {
                        if cbor {
                            let value: Result<Value, _> = serde_json::from_slice(&body);
                            let mut bytes = Vec::new();
                            if let Ok(value) = value {
                                ciborium::into_writer(&value, &mut bytes).unwrap();
                            } else {
                                bytes = body.clone();
                            }
                            dispatch_body(*op, &crate::protocol::cbor::CborCodec, &bytes)
                        } else {
                            dispatch_body(*op, &JsonCodec, &body)
                        }
                    });
                    match outcome {
                        Ok(()) => {
                            accepted[pick].fetch_add(1, Relaxed);
                        }
                        Err(e) if e.code == ErrorCode::SerializationException => assert!(
                            cbor || aws_serialization_text(&e.message),
                            "{op}: not an AWS text: {:?} for {}",
                            e.message,
                            shown()
                        ),
                        Err(e) if e.code == ErrorCode::ValidationException => assert!(
                            aws_validation_text(&e.message),
                            "{op}: not AWS's format: {:?} for {}",
                            e.message,
                            shown()
                        ),
                        Err(e) if cbor && e.code == ErrorCode::InvalidArgumentException => {}
                        Err(e) => panic!("{op}: {e:?} for {}", shown()),
                    }
                },
            );
            run.finish();
        }
    }
}
