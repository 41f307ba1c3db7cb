//! `application/x-amz-json-1.1` (and 1.0): the body encoding every AWS SDK but Java's uses.
//!
//! Decoding goes straight from the body bytes into the generated input type (no
//! intermediate `serde_json::Value`), so the hot path (`PutRecords`, up to 10 MiB) parses
//! once. Only when decoding fails is the error turned into AWS's words.
//!
//! AWS's `SerializationException` wording comes from the Coral/Jackson stack behind the
//! service; kinesalite reproduces it (`mhart/kinesalite`, `validations/index.js`,
//! `checkType`):
//!
//! | body | AWS answers |
//! | --- | --- |
//! | not JSON, or JSON but not an object | `{"__type":"SerializationException"}` (no message; `index.js`) |
//! | boolean where a string is expected | `class java.lang.Boolean can not be converted to an String` |
//! | number where a string is expected | `class java.math.BigDecimal can not be converted to an String` |
//! | string / boolean where a number is expected | `class java.lang.String can not be converted to an Integer` (`Long`, `Double`) |
//! | number where a boolean is expected | `class java.math.BigDecimal can not be converted to an Boolean` |
//! | string where a boolean is expected | `'HELLO' can not be converted to an Boolean` (upper-cased) |
//! | boolean / number where a blob is expected | `class java.lang.Boolean can not be converted to a Blob` |
//! | array where a scalar, map or structure is expected | `Start of list found where not expected` |
//! | object where a scalar or list is expected | `Start of structure or map found where not expected.` |
//! | scalar where a list / map / structure is expected | `Expected list or null` / `Expected map or null` / `Expected null` |
//!
//! ("an String" is AWS's grammar, kept.) Messages the generated types raise themselves
//! (serde `custom` errors, such as the blob's base64 check) pass through unchanged.

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

/// What kind of value serde found, from serde's `Unexpected` wording.
#[derive(Debug, PartialEq, Eq)]
enum Found<'a> {
    Boolean,
    Number,
    String(&'a str),
    List,
    Map,
}

/// What kind of value the target member is, from the `expected` wording of serde's
/// primitives and of the generated and hand-written types.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    String,
    Boolean,
    /// The Java type name AWS uses: Integer, Long or Double.
    Number(&'static str),
    Blob,
    List,
    Map,
    Structure,
}

fn data_error_message(serde_message: &str) -> String {
    // serde_json appends " at line L column C"; AWS gives no position.
    let message = serde_message
        .rsplit_once(" at line ")
        .map_or(serde_message, |(m, _)| m);
    aws_type_message(message).unwrap_or_else(|| message.to_string())
}

/// AWS's wording for `invalid type: <found>, expected <expected>`, or `None` when the error
/// is of another kind (custom errors pass through).
fn aws_type_message(message: &str) -> Option<String> {
    // serde_derive structs also accept a JSON array (members by position) and complain
    // about its length; AWS refuses any array where a structure belongs. (An array of
    // exactly the right length still decodes: a known leniency.)
    if message.starts_with("invalid length ") && message.contains(", expected struct ") {
        return Some("Start of list found where not expected".to_string());
    }
    let rest = message.strip_prefix("invalid type: ")?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let found = parse_found(found)?;
    let expected = parse_expected(expected)?;
    const LIST: &str = "Start of list found where not expected";
    const MAP: &str = "Start of structure or map found where not expected.";
    let message = match (expected, found) {
        (Expected::List, Found::Map) => MAP.to_string(),
        (Expected::List, _) => "Expected list or null".to_string(),
        (Expected::Map, Found::List) | (Expected::Structure, Found::List) => LIST.to_string(),
        (Expected::Map, _) => "Expected map or null".to_string(),
        (Expected::Structure, _) => "Expected null".to_string(),
        (_, Found::List) => LIST.to_string(),
        (_, Found::Map) => MAP.to_string(),
        (Expected::Boolean, Found::String(s)) => {
            format!("'{}' can not be converted to an Boolean", s.to_uppercase())
        }
        (Expected::Boolean, _) => {
            "class java.math.BigDecimal can not be converted to an Boolean".to_string()
        }
        (Expected::String, Found::Boolean) => {
            "class java.lang.Boolean can not be converted to an String".to_string()
        }
        (Expected::String, _) => {
            "class java.math.BigDecimal can not be converted to an String".to_string()
        }
        (Expected::Number(name), Found::Boolean) => {
            format!("class java.lang.Boolean can not be converted to an {name}")
        }
        (Expected::Number(name), _) => {
            format!("class java.lang.String can not be converted to an {name}")
        }
        (Expected::Blob, Found::Boolean) => {
            "class java.lang.Boolean can not be converted to a Blob".to_string()
        }
        (Expected::Blob, _) => {
            "class java.math.BigDecimal can not be converted to a Blob".to_string()
        }
    };
    Some(message)
}

fn parse_found(found: &str) -> Option<Found<'_>> {
    if found.starts_with("boolean") {
        Some(Found::Boolean)
    } else if found.starts_with("integer") || found.starts_with("floating point") {
        Some(Found::Number)
    } else if let Some(s) = found.strip_prefix("string ") {
        // serde prints the string with Rust's Debug quoting.
        Some(Found::String(
            s.strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(s),
        ))
    } else if found == "sequence" {
        Some(Found::List)
    } else if found == "map" {
        Some(Found::Map)
    } else {
        None
    }
}

fn parse_expected(expected: &str) -> Option<Expected> {
    Some(match expected {
        "a string" | "a borrowed string" => Expected::String,
        "a boolean" => Expected::Boolean,
        // The generated lenient integer reader says "a number" for both `integer` and
        // `long` members; Kinesis inputs only have `integer` ones (Limit, ShardCount, ...).
        "i8" | "i16" | "i32" | "u8" | "u16" | "u32" | "a number" | "an Integer" => {
            Expected::Number("Integer")
        }
        "a Long" => Expected::Number("Long"),
        "a Double" => Expected::Number("Double"),
        "i64" | "u64" | "i128" | "u128" => Expected::Number("Long"),
        "f32" | "f64" => Expected::Number("Double"),
        "a sequence" => Expected::List,
        "a map" => Expected::Map,
        // `Blob`'s visitor (src/api/blob.rs).
        e if e.contains("base64") => Expected::Blob,
        // serde_derive structs say "struct <Name>".
        e if e.starts_with("struct ") => Expected::Structure,
        _ => return None,
    })
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
        assert_eq!(
            message_of(r#"{"StreamName":12}"#),
            "class java.math.BigDecimal can not be converted to an String"
        );
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
        assert_eq!(
            message_of(r#"{"Flag":1}"#),
            "class java.math.BigDecimal can not be converted to an Boolean"
        );
        assert_eq!(
            message_of(r#"{"Flag":"hellowtf"}"#),
            "'HELLOWTF' can not be converted to an Boolean"
        );
        assert_eq!(
            message_of(r#"{"Data":true}"#),
            "class java.lang.Boolean can not be converted to a Blob"
        );
        assert_eq!(
            message_of(r#"{"Data":1}"#),
            "class java.math.BigDecimal can not be converted to a Blob"
        );
    }

    #[test]
    fn bad_base64_blobs_use_aws_wording() {
        assert_eq!(
            message_of(r#"{"Data":"23456"}"#),
            "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"
        );
        assert_eq!(
            message_of(r#"{"Data":"ab!d"}"#),
            "'ab!d' can not be converted to a Blob: Base64 encoded data is invalid"
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
            "class java.math.BigDecimal can not be converted to an String"
        );
    }

    #[test]
    fn custom_errors_pass_through_without_position() {
        let message = message_of(r#"{"Data":"!!!!"}"#);
        assert!(!message.contains("line"), "{message}");
        assert!(!message.is_empty());
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
}
