//! AWS error bodies, in every shape AWS answers with.
//!
//! What AWS Kinesis sends, as reproduced byte for byte by kinesalite
//! (`mhart/kinesalite`, `index.js` and `test/connection.js`, `validations/index.js`):
//!
//! - JSON 1.1: `{"__type":"ResourceNotFoundException","message":"..."}`: the bare error name,
//!   no `com.amazonaws.kinesis.v20131202#` prefix. When AWS has no message it sends
//!   `{"__type":"UnknownOperationException"}` with no `message` key at all.
//! - `SerializationException` for a value of the wrong JSON type carries its text under
//!   `Message`, capital M (`validations/index.js` `typeError`: the Coral framework's own
//!   exception, not a Kinesis one). Every SDK reads both spellings.
//! - CBOR 1.1: the same map, CBOR-encoded (`sendCborUnknown` / `sendCborSerialization`).
//! - Requests AWS cannot route to a JSON service at all (not a POST, no usable content type)
//!   get a small XML document with status 403 or 404 and no `Content-Type` header.
//! - `Content-Type: application/json` (the pre-2013 Coral protocol) gets status 400 or 404
//!   and a `{"Output":{"__type":"com.amazon.coral.service#..."},"Version":"1.0"}` envelope.
//!
//! The HTTP status of an [`ApiError`] is its code's ([`ApiError::http_status`]).

use crate::api::ApiError;
use crate::api::ErrorCode;

/// The member name AWS puts the message under for this error code.
fn message_key(code: ErrorCode) -> &'static str {
    if code == ErrorCode::SerializationException {
        "Message"
    } else {
        "message"
    }
}

/// `{"__type":"<code>","message":"<message>"}`; the `message` member is left out when the
/// message is empty, as AWS does for `UnknownOperationException` and a malformed body.
///
/// Written by hand rather than through a serde map so the member order is AWS's (`__type`
/// first), which raw-body tests pin.
pub fn json_error_body(err: &ApiError) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + err.message.len());
    out.extend_from_slice(b"{\"__type\":");
    push_json_string(&mut out, err.code.as_str());
    if !err.message.is_empty() {
        out.push(b',');
        push_json_string(&mut out, message_key(err.code));
        out.push(b':');
        push_json_string(&mut out, &err.message);
    }
    out.push(b'}');
    out
}

fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a `&str` into a `Vec` cannot fail: there is no I/O and no map key.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// The same map as [`json_error_body`], in CBOR (RFC 8949): an indefinite-length map of
/// text strings, exactly the bytes AWS sends (`bf 66 "__type" 78 19
/// "UnknownOperationException" ff` for an unknown operation, per kinesalite `index.js`).
pub fn cbor_error_body(err: &ApiError) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + err.message.len());
    out.push(0xbf); // map, indefinite length
    push_cbor_text(&mut out, "__type");
    push_cbor_text(&mut out, err.code.as_str());
    if !err.message.is_empty() {
        push_cbor_text(&mut out, message_key(err.code));
        push_cbor_text(&mut out, &err.message);
    }
    out.push(0xff); // break
    out
}

/// `{"message": "<message>"}` in CBOR, as [`cbor_error_body`] writes maps: the payload of
/// an exception event of a CBOR SubscribeToShard answer (its code travels in the
/// `:exception-type` header). The Java SDK reads `message` as the exception's message.
pub fn cbor_message_body(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + message.len());
    out.push(0xbf); // map, indefinite length
    push_cbor_text(&mut out, "message");
    push_cbor_text(&mut out, message);
    out.push(0xff); // break
    out
}

/// A CBOR text string (major type 3) with the shortest length encoding.
fn push_cbor_text(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 24 {
        out.push(0x60 | len as u8);
    } else if len <= u8::MAX as usize {
        out.push(0x78);
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x79);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        // Error messages are far below 4 GiB; saturate rather than panic if one is not.
        out.push(0x7a);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// The XML AWS sends when it cannot tell which service or operation a request is for:
/// `<AccessDeniedException>\n  <Message>...</Message>\n</AccessDeniedException>\n`, or
/// `<UnknownOperationException/>\n` when there is no message (kinesalite `sendError`,
/// asserted in `test/connection.js`).
pub fn xml_error_body(code: &str, message: Option<&str>) -> Vec<u8> {
    match message {
        Some(message) => format!(
            "<{code}>\n  <Message>{}</Message>\n</{code}>\n",
            xml_escape(message)
        )
        .into_bytes(),
        None => format!("<{code}/>\n").into_bytes(),
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The answer to `Content-Type: application/json`, the legacy Coral JSON protocol AWS still
/// recognises but no longer routes to Kinesis: this envelope, with status 400 for the
/// malformed-body variant (`serialization`) and 404 for the other (kinesalite `index.js` and
/// `assertUnknownDeprecated` / `assertSerializationDeprecated` in `test/connection.js` since
/// 7d5e041, "Bring connection behaviour up to date with production": no null member).
pub fn legacy_json_error_body(serialization: bool) -> Vec<u8> {
    if serialization {
        br#"{"Output":{"__type":"com.amazon.coral.service#SerializationException"},"Version":"1.0"}"#.to_vec()
    } else {
        br#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: ErrorCode, message: &str) -> ApiError {
        ApiError::new(code, message)
    }

    #[test]
    fn json_error_has_type_then_message() {
        let body = json_error_body(&err(
            ErrorCode::ResourceNotFoundException,
            "Stream a under account 000000000000 not found.",
        ));
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"__type":"ResourceNotFoundException","message":"Stream a under account 000000000000 not found."}"#
        );
    }

    #[test]
    fn json_error_without_message_has_type_only() {
        let body = json_error_body(&err(ErrorCode::UnknownOperationException, ""));
        assert_eq!(body, br#"{"__type":"UnknownOperationException"}"#);
    }

    #[test]
    fn json_serialization_error_uses_capital_message_key() {
        let body = json_error_body(&err(
            ErrorCode::SerializationException,
            "class java.lang.Boolean can not be converted to an String",
        ));
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"__type":"SerializationException","Message":"class java.lang.Boolean can not be converted to an String"}"#
        );
    }

    #[test]
    fn json_error_escapes_quotes_and_control_characters() {
        let body = json_error_body(&err(ErrorCode::ValidationException, "a\"b\\c\nd"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["message"], "a\"b\\c\nd");
    }

    #[test]
    fn cbor_unknown_operation_matches_aws_bytes() {
        let body = cbor_error_body(&err(ErrorCode::UnknownOperationException, ""));
        let mut expected = vec![0xbf, 0x66];
        expected.extend_from_slice(b"__type");
        expected.extend_from_slice(&[0x78, 0x19]);
        expected.extend_from_slice(b"UnknownOperationException");
        expected.push(0xff);
        assert_eq!(body, expected);
    }

    #[test]
    fn cbor_serialization_error_matches_aws_bytes() {
        let body = cbor_error_body(&err(ErrorCode::SerializationException, ""));
        let mut expected = vec![0xbf, 0x66];
        expected.extend_from_slice(b"__type");
        expected.push(0x76);
        expected.extend_from_slice(b"SerializationException");
        expected.push(0xff);
        assert_eq!(body, expected);
    }

    #[test]
    fn cbor_long_message_uses_two_byte_length() {
        let message = "x".repeat(300);
        let body = cbor_error_body(&err(ErrorCode::ValidationException, &message));
        let at = body.len() - 1 - 300 - 3;
        assert_eq!(&body[at..at + 3], &[0x79, 0x01, 0x2c]);
    }

    #[test]
    fn xml_error_matches_aws_layout() {
        let body = xml_error_body(
            "AccessDeniedException",
            Some("Unable to determine service/operation name to be authorized"),
        );
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n"
        );
        assert_eq!(
            xml_error_body("UnknownOperationException", None),
            b"<UnknownOperationException/>\n"
        );
    }

    #[test]
    fn xml_error_escapes_markup() {
        let body = xml_error_body("X", Some("<a & b>"));
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains("&lt;a &amp; b&gt;")
        );
    }
}
