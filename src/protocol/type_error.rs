//! AWS's `SerializationException` wording for a value of the wrong type, shared by the JSON
//! and CBOR codecs: both decode through serde into the same generated types, so both read
//! serde's `invalid type: <found>, expected <expected>` and answer in the words of AWS's Java
//! deserializer (kinesalite `validations/index.js` `checkType` and `test/helpers.js`, pinned
//! against AWS; table in `json.rs`).

use std::borrow::Cow;

/// What kind of value was found where serde expected another.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found<'a> {
    Boolean,
    Number,
    String(Cow<'a, str>),
    /// A CBOR byte string (JSON has none).
    Bytes,
    List,
    Map,
}

/// What kind of value the member is, from the `expected` wording of serde's primitives,
/// ciborium's readers and the generated and hand-written types.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Expected {
    String,
    Boolean,
    /// The Java type name AWS uses: Integer, Long or Double.
    Number(&'static str),
    Blob,
    Timestamp,
    List,
    Map,
    Structure,
}

pub(super) const LIST: &str = "Start of list found where not expected";
const MAP: &str = "Start of structure or map found where not expected.";
/// AWS's class for any number (kinesalite `test/helpers.js`, since 2016).
const NUMBER: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";
/// A CBOR byte string where it does not belong. NOT PINNED.
const BYTES: &str = "class [B";

/// AWS's message for `found` where `expected` belongs.
pub(super) fn message(expected: Expected, found: Found<'_>) -> String {
    let class = |found: &Found| match found {
        Found::Boolean => "class java.lang.Boolean",
        Found::String(_) => "class java.lang.String",
        Found::Bytes => BYTES,
        _ => NUMBER,
    };
    match (expected, found) {
        (Expected::List, Found::Map) => MAP.to_string(),
        (Expected::List, _) => "Expected list or null".to_string(),
        (Expected::Map | Expected::Structure, Found::List) => LIST.to_string(),
        (Expected::Map, _) => "Expected map or null".to_string(),
        (Expected::Structure, _) => "Expected null".to_string(),
        (_, Found::List) => LIST.to_string(),
        (_, Found::Map) => MAP.to_string(),
        (Expected::Boolean, Found::String(s)) => {
            format!("'{}' can not be converted to an Boolean", s.to_uppercase())
        }
        (Expected::Boolean, found) => {
            format!("{} can not be converted to an Boolean", class(&found))
        }
        (Expected::String, found) => format!("{} can not be converted to an String", class(&found)),
        (Expected::Number(name), found) => {
            // A number out of the member's range is "invalid value", never reaching here as
            // a number; a Java-shaped message all the same.
            format!("{} can not be converted to an {name}", class(&found))
        }
        (Expected::Blob, found) => format!("{} can not be converted to a Blob", class(&found)),
        (Expected::Timestamp, found) => format!(
            "{} can not be converted to milliseconds since epoch",
            class(&found)
        ),
    }
}

/// The parts of serde's `invalid type: <found>, expected <expected>`.
pub(super) fn parse(message: &str) -> Option<(Found<'_>, Expected)> {
    let rest = message.strip_prefix("invalid type: ")?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    Some((parse_found(found)?, parse_expected(expected)?))
}

/// serde's `Unexpected` wording (as serde's visitors and ciborium print it).
fn parse_found(found: &str) -> Option<Found<'_>> {
    if found.starts_with("boolean") {
        Some(Found::Boolean)
    } else if found.starts_with("integer") || found.starts_with("floating point") {
        Some(Found::Number)
    } else if found == "string" {
        Some(Found::String(Cow::Borrowed("")))
    } else if let Some(s) = found.strip_prefix("string ") {
        // serde prints the string with Rust's Debug quoting.
        let s = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s);
        Some(Found::String(Cow::Borrowed(s)))
    } else if found == "bytes" || found.starts_with("byte array") {
        Some(Found::Bytes)
    } else if found == "sequence" {
        Some(Found::List)
    } else if found == "map" {
        Some(Found::Map)
    } else {
        // tag, enum, null, simple values.
        None
    }
}

fn parse_expected(expected: &str) -> Option<Expected> {
    Some(match expected {
        "a string" | "a borrowed string" | "str" | "string" | "char" | "str or bytes" => {
            Expected::String
        }
        "a boolean" | "bool" => Expected::Boolean,
        // The generated lenient integer reader says "a number" for both `integer` and
        // `long` members; Kinesis inputs only have `integer` ones (Limit, ShardCount, ...).
        "i8" | "i16" | "i32" | "u8" | "u16" | "u32" | "a number" | "an Integer" | "integer" => {
            Expected::Number("Integer")
        }
        "a Long" | "i64" | "u64" | "i128" | "u128" => Expected::Number("Long"),
        "a Double" | "f32" | "f64" | "float" => Expected::Number("Double"),
        "a sequence" | "array" => Expected::List,
        "a map" | "map" => Expected::Map,
        // `Timestamp`'s visitors (src/api/blob.rs): JSON's epoch seconds, CBOR's tag 1 ms.
        "epoch seconds" | "milliseconds since epoch" => Expected::Timestamp,
        // `Blob`'s visitors (src/api/blob.rs) and ciborium's byte readers.
        e if e.contains("byte string") || e.contains("base64") => Expected::Blob,
        "bytes" | "byte buffer" => Expected::Blob,
        // serde_derive structs (and the generated map-only reader) say "struct <Name>".
        e if e.starts_with("struct ") => Expected::Structure,
        _ => return None,
    })
}
