//! `application/x-amz-cbor-1.1`: the body encoding the AWS SDK for Java (v1 and v2) and the
//! KCL use for Kinesis unless CBOR is turned off (`AWS_CBOR_DISABLE`, `aws.cborEnabled`).
//!
//! The same generated types as JSON, through serde and `ciborium`; the shapes that differ
//! (`Blob`, `Timestamp`, in `api/blob.rs`) pick their form with `is_human_readable`.
//!
//! What the Java SDK writes (v1 `com.amazonaws.protocol.json.SdkCborGenerator`, v2
//! `software.amazon.awssdk.protocols.cbor.internal.SdkCborGenerator` over Jackson's
//! `CBORGenerator`, v2 `AwsCborProtocolFactory`):
//!
//! - structures as indefinite-length maps (`bf … ff`, Jackson's `writeStartObject()`), lists
//!   as indefinite-length arrays (`9f … ff`), member names and strings as text strings
//!   (definite up to 3,996 characters, chunked beyond: `MAX_LONG_STRING_CHARS`), integers
//!   in their shortest form (`WRITE_MINIMAL_INTS`);
//! - blobs as byte strings (`writeBinary`);
//! - timestamps as tag 1 holding epoch **milliseconds** as an integer
//!   (`writeTag(1); writeNumber(instant.toEpochMilli())`; v2 reads them back with
//!   `Long.parseLong`, so answers must hold integers too);
//! - errors read from `__type` and `message` (or `Message`), as in JSON.
//!
//! Answers are written by ciborium: definite-length maps and arrays, which Jackson reads as
//! well as indefinite ones.
//!
//! Before serde sees a body, [`check_well_formed`] walks it once without allocating: every
//! declared length must fit in the bytes left, nesting is at most [`MAX_DEPTH`], indefinite
//! lengths are only where CBOR allows them, and nothing may follow the top-level map. A body
//! that fails is AWS's `SerializationException` without a message (what AWS answers to a
//! body it cannot parse; kinesalite `index.js`, `sendResponse(… {__type:
//! 'SerializationException'})` for an undecodable CBOR body). So ciborium only ever decodes
//! well-formed, bounded input, and its own recursion limit is a second guard.
//!
//! A value of the wrong type gets AWS's Coral wording, as kinesalite (which validates CBOR
//! bodies with the same `checkType` as JSON ones, `validations/index.js` at 3.3.3) gives it:
//!
//! | found | where the model says | AWS answers |
//! | --- | --- | --- |
//! | boolean | string / integer / blob | `class java.lang.Boolean can not be converted to an String` (`an Integer`, `a Blob`) |
//! | number | string / boolean / blob | `class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String` (…) |
//! | text | integer / long | `class java.lang.String can not be converted to an Integer` (`Long`) |
//! | text | boolean | `'HELLO' can not be converted to an Boolean` |
//! | text / boolean | timestamp | `class java.lang.String can not be converted to milliseconds since epoch` |
//! | array | scalar, map or structure | `Start of list found where not expected` |
//! | map | scalar or list | `Start of structure or map found where not expected.` |
//! | scalar | list / map / structure | `Expected list or null` / `Expected map or null` / `Expected null` |
//!
//! Not sourced, our own choice: a byte string where text or a number is expected names
//! Java's `byte[]` (`class [B can not be converted to an String`), and a scalar where a
//! structure is expected says `Expected map or null` (ciborium reads structures as maps and
//! does not tell them apart in its error).

use super::type_error::{self, Expected, Found};
use crate::api::{ApiError, Codec, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Deepest nesting of maps, arrays and tags a request may have. Kinesis inputs nest at most
/// four levels (PutRecords → Records → entry → member); unknown members may add some.
pub const MAX_DEPTH: usize = 32;

/// ciborium's own recursion limit: above [`MAX_DEPTH`], so only a bug in the walker would
/// let it be reached.
const RECURSION_LIMIT: usize = 2 * MAX_DEPTH;

/// The self-describe tag (RFC 8949 section 3.4.6) a CBOR document may start with; Jackson
/// writes it when `WRITE_TYPE_HEADER` is on (off by default).
const TAG_SELF_DESCRIBE: u64 = 55799;

/// The CBOR codec. Stateless; one value serves every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CborCodec;

impl Codec for CborCodec {
    fn decode<T: DeserializeOwned>(&self, body: &[u8]) -> Result<T, ApiError> {
        // An empty body is an empty structure (the `Codec` contract).
        let body: &[u8] = if body.is_empty() { &[0xa0] } else { body };
        if walk(body).is_err() {
            return Err(serialization_error(""));
        }
        ciborium::de::from_reader_with_recursion_limit(body, RECURSION_LIMIT)
            .map_err(|e| map_decode_error(body, e))
    }

    fn encode<T: Serialize>(&self, value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(value, &mut out);
        out
    }
}

/// Appends the CBOR encoding of `value` to `out` (event payloads are written in place).
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    // The generated shapes only have string map keys and infallible field serializers, and
    // a `Vec` never fails to grow, so this cannot fail; if it ever does, answer with an
    // empty structure and say so in the log rather than panic in a connection task.
    if let Err(e) = ciborium::ser::into_writer(value, &mut *out) {
        tracing::error!(error = %e, "failed to encode a response as CBOR");
        out.truncate(start);
        out.push(0xa0);
    }
}

/// `Ok` when `body` is one well-formed CBOR map (AWS checks this before the target and the
/// credentials; see [`super::json::check_well_formed`]). An empty body passes, as in JSON.
pub fn check_well_formed(body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    walk(body).map_err(|_| serialization_error(""))
}

fn serialization_error(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::SerializationException, message)
}

/// A body that is not one well-formed, bounded CBOR map.
#[derive(Debug, PartialEq, Eq)]
struct Malformed;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, Malformed> {
        let b = *self.buf.get(self.pos).ok_or(Malformed)?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn take(&mut self, n: u64) -> Result<&[u8], Malformed> {
        // A declared length is checked against what is left before anything is done with it.
        let n = usize::try_from(n).map_err(|_| Malformed)?;
        if n > self.remaining() {
            return Err(Malformed);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// One item's head: major type and argument (`None` for additional info 31: an
    /// indefinite length, or a break).
    fn head(&mut self) -> Result<(u8, Option<u64>), Malformed> {
        let b = self.byte()?;
        let major = b >> 5;
        let arg = match b & 0x1f {
            n @ 0..=23 => u64::from(n),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().map_err(|_| Malformed)?,
            )),
            26 => u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().map_err(|_| Malformed)?,
            )),
            27 => u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| Malformed)?),
            28..=30 => return Err(Malformed),
            _ => return Ok((major, None)),
        };
        Ok((major, Some(arg)))
    }
}

/// An open map or array while walking.
enum Frame {
    /// Items still to come (a map counts keys and values).
    Definite(u64),
    /// Items seen so far, until a break; `map` requires an even count.
    Indefinite { items: u64, map: bool },
}

/// Walks `body` as one CBOR data item that must be a map, iteratively (no recursion, no
/// allocation beyond a stack of at most [`MAX_DEPTH`] frames).
fn walk(body: &[u8]) -> Result<(), Malformed> {
    let mut r = Reader { buf: body, pos: 0 };
    // The top-level item: a map, optionally behind the self-describe tag.
    let (mut major, mut arg) = r.head()?;
    while major == 6 && arg == Some(TAG_SELF_DESCRIBE) {
        (major, arg) = r.head()?;
    }
    if major != 5 {
        return Err(Malformed);
    }
    let mut stack: Vec<Frame> = Vec::with_capacity(8);
    open(&r, &mut stack, 5, arg)?;
    while let Some(frame) = stack.last_mut() {
        match frame {
            Frame::Definite(0) => {
                stack.pop();
                continue;
            }
            Frame::Definite(left) => *left -= 1,
            Frame::Indefinite { items, map } => {
                if r.peek() == Some(0xff) {
                    if *map && *items % 2 != 0 {
                        return Err(Malformed);
                    }
                    r.pos += 1;
                    stack.pop();
                    continue;
                }
                *items += 1;
            }
        }
        item(&mut r, &mut stack)?;
    }
    if r.remaining() != 0 {
        return Err(Malformed);
    }
    Ok(())
}

/// Reads one data item; a map or array pushes a frame for its contents.
fn item(r: &mut Reader<'_>, stack: &mut Vec<Frame>) -> Result<(), Malformed> {
    let mut start = r.pos;
    let (mut major, mut arg) = r.head()?;
    let mut tags = 0;
    while major == 6 {
        if arg.is_none() {
            return Err(Malformed);
        }
        // A chain of tags nests like containers do (ciborium recurses on each).
        tags += 1;
        if stack.len() + tags > MAX_DEPTH {
            return Err(Malformed);
        }
        start = r.pos;
        (major, arg) = r.head()?;
    }
    match major {
        0 | 1 if arg.is_some() => Ok(()),
        2 | 3 if let Some(len) = arg => string(r, major, len),
        2 | 3 => {
            // Indefinite: definite chunks of the same major type until a break.
            loop {
                if r.peek() == Some(0xff) {
                    r.pos += 1;
                    return Ok(());
                }
                let (chunk_major, len) = r.head()?;
                match len {
                    Some(len) if chunk_major == major => string(r, major, len)?,
                    _ => return Err(Malformed),
                }
            }
        }
        4 | 5 => open(r, stack, major, arg),
        7 => match arg {
            // A one-byte simple value below 32 is not well-formed (RFC 8949 section 3.3).
            Some(v) if r.buf[start] == 0xf8 && v < 32 => Err(Malformed),
            // A break outside an indefinite-length item.
            None => Err(Malformed),
            // false, true, null, undefined, other simple values and floats: `head` consumed
            // their bytes.
            _ => Ok(()),
        },
        _ => Err(Malformed),
    }
}

fn string(r: &mut Reader<'_>, major: u8, len: u64) -> Result<(), Malformed> {
    let bytes = r.take(len)?;
    if major == 3 && std::str::from_utf8(bytes).is_err() {
        return Err(Malformed);
    }
    Ok(())
}

/// Pushes the frame of a map (major 5) or array (major 4) whose head has been read.
fn open(
    r: &Reader<'_>,
    stack: &mut Vec<Frame>,
    major: u8,
    arg: Option<u64>,
) -> Result<(), Malformed> {
    if stack.len() >= MAX_DEPTH {
        return Err(Malformed);
    }
    let map = major == 5;
    let frame = if let Some(arg) = arg {
        let items = if map {
            arg.checked_mul(2).ok_or(Malformed)?
        } else {
            arg
        };
        // Every item takes at least one byte: a count beyond the bytes left is a lie.
        if items > r.remaining() as u64 {
            return Err(Malformed);
        }
        Frame::Definite(items)
    } else {
        Frame::Indefinite { items: 0, map }
    };
    stack.push(frame);
    Ok(())
}

/// Turns a ciborium error into AWS's `SerializationException`.
fn map_decode_error(body: &[u8], e: ciborium::de::Error<std::io::Error>) -> ApiError {
    match e {
        ciborium::de::Error::Semantic(offset, message) => {
            let found = offset.and_then(|at| found_at(body, at));
            serialization_error(aws_type_message(&message, found).unwrap_or(message))
        }
        // Not CBOR (the walker lets none of these through; kept for safety).
        _ => serialization_error(""),
    }
}

/// AWS's wording for a type error, or `None` for other errors (custom ones pass through).
fn aws_type_message(message: &str, found_hint: Option<Found<'static>>) -> Option<String> {
    if message == "expected bool" {
        // ciborium's `deserialize_bool` says only this, with the item's offset.
        return Some(type_error::message(Expected::Boolean, found_hint?));
    }
    let (found, expected) = type_error::parse(message)?;
    Some(type_error::message(expected, found))
}

/// The kind of the item at `at` in `body` (after any tags), for errors that carry only an
/// offset.
fn found_at(body: &[u8], at: usize) -> Option<Found<'static>> {
    let mut r = Reader {
        buf: body,
        pos: at.min(body.len()),
    };
    let mut start = r.pos;
    let (mut major, mut arg) = r.head().ok()?;
    while major == 6 {
        start = r.pos;
        (major, arg) = r.head().ok()?;
    }
    Some(match major {
        0 | 1 => Found::Number,
        2 => Found::Bytes,
        3 => Found::String(std::borrow::Cow::Owned(match arg {
            Some(len) => std::str::from_utf8(r.take(len).ok()?).ok()?.to_string(),
            None => String::new(),
        })),
        4 => Found::List,
        5 => Found::Map,
        7 if arg == Some(20) || arg == Some(21) => Found::Boolean,
        7 if (0xf9..=0xfb).contains(&r.buf[start]) => Found::Number,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Timestamp;
    use crate::api::generated::{
        CreateStreamInput, DescribeStreamOutput, GetRecordsInput, GetRecordsOutput,
        GetShardIteratorInput, ListShardsInput, ListShardsOutput, PutRecordInput, PutRecordOutput,
        PutRecordsInput, PutRecordsOutput, SubscribeToShardEvent, SubscribeToShardInput, Validate,
    };
    use ciborium::value::Value;

    /// Writes CBOR the way Jackson's `CBORGenerator` does under the Java SDK's
    /// `SdkCborGenerator`: indefinite maps and arrays, shortest heads, tag 1 + long millis.
    #[derive(Default)]
    struct Jackson(Vec<u8>);

    impl Jackson {
        fn head(&mut self, major: u8, n: u64) -> &mut Self {
            let m = major << 5;
            match n {
                0..=23 => self.0.push(m | n as u8),
                24..=0xff => self.0.extend([m | 24, n as u8]),
                0x100..=0xffff => {
                    self.0.push(m | 25);
                    self.0.extend((n as u16).to_be_bytes());
                }
                0x1_0000..=0xffff_ffff => {
                    self.0.push(m | 26);
                    self.0.extend((n as u32).to_be_bytes());
                }
                _ => {
                    self.0.push(m | 27);
                    self.0.extend(n.to_be_bytes());
                }
            }
            self
        }
        fn start_object(&mut self) -> &mut Self {
            self.0.push(0xbf);
            self
        }
        fn start_array(&mut self) -> &mut Self {
            self.0.push(0x9f);
            self
        }
        fn end(&mut self) -> &mut Self {
            self.0.push(0xff);
            self
        }
        fn text(&mut self, s: &str) -> &mut Self {
            self.head(3, s.len() as u64);
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn field(&mut self, name: &str) -> &mut Self {
            self.text(name)
        }
        fn binary(&mut self, b: &[u8]) -> &mut Self {
            self.head(2, b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
        fn int(&mut self, n: i64) -> &mut Self {
            if n < 0 {
                self.head(1, (-1 - n) as u64)
            } else {
                self.head(0, n as u64)
            }
        }
        fn timestamp(&mut self, millis: i64) -> &mut Self {
            self.0.push(0xc1); // writeTag(1)
            self.int(millis)
        }
        fn bytes(&self) -> Vec<u8> {
            self.0.clone()
        }
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
        CborCodec.decode(body)
    }

    fn message_of<T: DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> String {
        let e = decode::<T>(body).unwrap_err();
        assert_eq!(e.code, ErrorCode::SerializationException, "{body:02x?}");
        e.message
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// PutRecord exactly as the Java SDK v2 sends it (X-Amz-Target
    /// `Kinesis_20131202.PutRecord`, Content-Type `application/x-amz-cbor-1.1`): members in
    /// model order, an indefinite map, `Data` a byte string.
    #[test]
    fn golden_put_record_from_java_sdk_v2() {
        let body = hex(
            "bf 6a 53747265616d4e616d65 68 6d7973747265616d 64 44617461 43 000102 \
             6c 506172746974696f6e4b6579 62 706b ff",
        );
        let input: PutRecordInput = decode(&body).unwrap();
        assert_eq!(input.stream_name.as_deref(), Some("mystream"));
        assert_eq!(input.data.as_ref().unwrap().as_slice(), &[0, 1, 2]);
        assert_eq!(input.partition_key.as_deref(), Some("pk"));
        input.validate().unwrap();
        let built = Jackson::default()
            .start_object()
            .field("StreamName")
            .text("mystream")
            .field("Data")
            .binary(&[0, 1, 2])
            .field("PartitionKey")
            .text("pk")
            .end()
            .bytes();
        assert_eq!(built, body);
    }

    /// GetShardIterator AT_TIMESTAMP as the Java SDK sends it: `c1` (tag 1) and the epoch
    /// milliseconds as a 64-bit integer (`1b`).
    #[test]
    fn golden_get_shard_iterator_at_timestamp_from_java_sdk() {
        let body = hex("bf 6a 53747265616d4e616d65 61 73 67 53686172644964 \
             74 736861726449642d303030303030303030303030 \
             71 53686172644974657261746f7254797065 6c 41545f54494d455354414d50 \
             69 54696d657374616d70 c1 1b 0000018bcfe5687b ff");
        let input: GetShardIteratorInput = decode(&body).unwrap();
        assert_eq!(input.shard_id.as_deref(), Some("shardId-000000000000"));
        assert_eq!(
            input.timestamp,
            Some(Timestamp::from_millis(1_700_000_000_123))
        );
        input.validate().unwrap();
    }

    #[test]
    fn put_records_with_many_blob_sizes_decodes() {
        let sizes = [0usize, 1, 23, 24, 255, 256, 4095, 4096, 4097, 70_000];
        let mut w = Jackson::default();
        w.start_object().field("Records").start_array();
        for (i, &n) in sizes.iter().enumerate() {
            let data: Vec<u8> = (0..n).map(|j| (i + j) as u8).collect();
            w.start_object()
                .field("Data")
                .binary(&data)
                .field("PartitionKey")
                .text(&format!("pk-{i}"))
                .end();
        }
        w.end().field("StreamName").text("s").end();
        let input: PutRecordsInput = decode(&w.bytes()).unwrap();
        let records = input.records.unwrap();
        assert_eq!(records.len(), sizes.len());
        for (i, (r, &n)) in records.iter().zip(&sizes).enumerate() {
            let data = r.data.as_ref().unwrap();
            assert_eq!(data.len(), n);
            assert!(
                data.as_slice()
                    .iter()
                    .enumerate()
                    .all(|(j, b)| *b == (i + j) as u8)
            );
            assert_eq!(r.partition_key.as_deref(), Some(format!("pk-{i}").as_str()));
        }
    }

    #[test]
    fn chunked_strings_and_definite_containers_decode() {
        // Jackson chunks strings over 3,996 characters; other encoders use definite maps.
        let mut body = vec![0xa2];
        body.extend(Jackson::default().text("PartitionKey").bytes());
        body.push(0x7f);
        body.extend(Jackson::default().text("ab").text("").text("cd").bytes());
        body.push(0xff);
        body.extend(Jackson::default().text("Data").bytes());
        body.push(0x5f);
        body.extend(Jackson::default().binary(b"xy").binary(b"z").bytes());
        body.push(0xff);
        let input: PutRecordInput = decode(&body).unwrap();
        assert_eq!(input.partition_key.as_deref(), Some("abcd"));
        assert_eq!(input.data.unwrap().as_slice(), b"xyz");
    }

    #[test]
    fn blob_as_base64_text_and_nulls_are_accepted() {
        let body = Jackson::default()
            .start_object()
            .field("Data")
            .text("aGVsbG8=")
            .field("ExplicitHashKey")
            .bytes();
        let mut body = body;
        body.extend([0xf6, 0xff]); // null
        let input: PutRecordInput = decode(&body).unwrap();
        assert_eq!(input.data.unwrap().as_slice(), b"hello");
        assert_eq!(input.explicit_hash_key, None);
        let bad = Jackson::default()
            .start_object()
            .field("Data")
            .text("23456")
            .end()
            .bytes();
        assert_eq!(
            message_of::<PutRecordInput>(&bad),
            "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"
        );
    }

    #[test]
    fn timestamps_accept_untagged_millis_and_float_seconds() {
        let with = |f: &dyn Fn(&mut Jackson)| {
            let mut w = Jackson::default();
            w.start_object().field("Timestamp");
            f(&mut w);
            w.end();
            decode::<GetShardIteratorInput>(&w.bytes()).map(|i| i.timestamp.unwrap())
        };
        let ts = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(
            with(&|w| {
                w.timestamp(1_700_000_000_123);
            })
            .unwrap(),
            ts
        );
        assert_eq!(
            with(&|w| {
                w.int(1_700_000_000_123);
            })
            .unwrap(),
            ts
        );
        // Tag 1 with a float: RFC 8949 seconds.
        assert_eq!(
            with(&|w| {
                w.0.push(0xc1);
                w.0.push(0xfb);
                w.0.extend(1_700_000_000.123f64.to_be_bytes());
            })
            .unwrap(),
            ts
        );
        let e = with(&|w| {
            w.text("2023");
        })
        .unwrap_err();
        assert_eq!(
            e.message,
            "class java.lang.String can not be converted to milliseconds since epoch"
        );
        let e = with(&|w| {
            w.0.push(0xf5);
        })
        .unwrap_err();
        assert_eq!(
            e.message,
            "class java.lang.Boolean can not be converted to milliseconds since epoch"
        );
        // Another tag (0: a date string) is not a timestamp here.
        assert!(
            with(&|w| {
                w.0.push(0xc0);
                w.text("2023-11-14T22:13:20Z");
            })
            .is_err()
        );
    }

    fn cbor_value(body: &[u8]) -> Value {
        ciborium::de::from_reader(body).unwrap()
    }

    fn member<'a>(v: &'a Value, name: &str) -> &'a Value {
        v.as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {name} in {v:?}"))
    }

    fn round_trip<T>(json: serde_json::Value) -> (T, Value)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let value: T = serde_json::from_value(json).unwrap();
        let body = CborCodec.encode(&value);
        assert_eq!(decode::<T>(&body).unwrap(), value);
        (value, cbor_value(&body))
    }

    #[test]
    fn get_records_output_has_byte_strings_and_tag_1_millis() {
        let (_, v) = round_trip::<GetRecordsOutput>(serde_json::json!({
            "Records": [
                {"SequenceNumber": "1", "ApproximateArrivalTimestamp": 1700000000.123,
                 "Data": "AAEC/w==", "PartitionKey": "a"},
                {"SequenceNumber": "2", "ApproximateArrivalTimestamp": 1700000001.5,
                 "Data": "", "PartitionKey": "b", "EncryptionType": "NONE"}
            ],
            "NextShardIterator": "it",
            "MillisBehindLatest": 0
        }));
        let records = member(&v, "Records").as_array().unwrap();
        assert_eq!(
            member(&records[0], "Data"),
            &Value::Bytes(vec![0, 1, 2, 255])
        );
        assert_eq!(
            member(&records[0], "ApproximateArrivalTimestamp"),
            &Value::Tag(1, Box::new(Value::Integer(1_700_000_000_123i64.into())))
        );
        assert_eq!(member(&records[1], "Data"), &Value::Bytes(vec![]));
        assert_eq!(member(&v, "MillisBehindLatest"), &Value::Integer(0.into()));
    }

    #[test]
    fn describe_stream_and_list_shards_outputs_round_trip() {
        let shard = serde_json::json!({
            "ShardId": "shardId-000000000000",
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "340282366920938463463374607431768211455"},
            "SequenceNumberRange": {"StartingSequenceNumber": "4960"}
        });
        let (_, v) = round_trip::<DescribeStreamOutput>(serde_json::json!({
            "StreamDescription": {
                "StreamName": "s", "StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
                "StreamStatus": "ACTIVE", "StreamModeDetails": {"StreamMode": "PROVISIONED"},
                "Shards": [shard], "HasMoreShards": false, "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": 1700000000.0,
                "EnhancedMonitoring": [{"ShardLevelMetrics": []}], "EncryptionType": "NONE"
            }
        }));
        let d = member(&v, "StreamDescription");
        assert_eq!(
            member(d, "StreamCreationTimestamp"),
            &Value::Tag(1, Box::new(Value::Integer(1_700_000_000_000i64.into())))
        );
        assert_eq!(member(d, "HasMoreShards"), &Value::Bool(false));
        round_trip::<ListShardsOutput>(serde_json::json!({"Shards": [shard], "NextToken": "t"}));
        round_trip::<PutRecordOutput>(
            serde_json::json!({"ShardId": "shardId-000000000000", "SequenceNumber": "1"}),
        );
        round_trip::<PutRecordsOutput>(serde_json::json!({
            "FailedRecordCount": 1,
            "Records": [{"SequenceNumber": "1", "ShardId": "shardId-000000000000"},
                        {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}]
        }));
        round_trip::<SubscribeToShardEvent>(serde_json::json!({
            "Records": [{"SequenceNumber": "1", "ApproximateArrivalTimestamp": 1.001, "Data": "aGk=", "PartitionKey": "p"}],
            "ContinuationSequenceNumber": "1", "MillisBehindLatest": 5
        }));
    }

    #[test]
    fn inputs_round_trip() {
        round_trip::<PutRecordsInput>(serde_json::json!({
            "StreamName": "s", "Records": [{"Data": "AA==", "PartitionKey": "p", "ExplicitHashKey": "1"}]
        }));
        round_trip::<ListShardsInput>(serde_json::json!({
            "StreamName": "s", "MaxResults": 10, "StreamCreationTimestamp": 1700000000.5,
            "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": 1700000000.25}
        }));
        round_trip::<CreateStreamInput>(
            serde_json::json!({"StreamName": "s", "ShardCount": 2, "Tags": {"k": "v"}}),
        );
        round_trip::<GetRecordsInput>(serde_json::json!({"ShardIterator": "it", "Limit": 5}));
        round_trip::<SubscribeToShardInput>(serde_json::json!({
            "ConsumerARN": "arn", "ShardId": "shardId-000000000000",
            "StartingPosition": {"Type": "AT_TIMESTAMP", "Timestamp": 1700000000.0}
        }));
    }

    #[test]
    fn error_bodies_are_maps_with_type_and_message() {
        let err = ApiError::new(
            ErrorCode::ResourceNotFoundException,
            "Stream s under account 000000000000 not found.",
        );
        let v = cbor_value(&crate::protocol::error::cbor_error_body(&err));
        assert_eq!(
            member(&v, "__type").as_text(),
            Some("ResourceNotFoundException")
        );
        assert_eq!(member(&v, "message").as_text(), Some(err.message.as_str()));
        let v = cbor_value(&crate::protocol::error::cbor_message_body("gone"));
        assert_eq!(member(&v, "message").as_text(), Some("gone"));
    }

    #[test]
    fn wrong_types_use_aws_wording() {
        let body = |name: &str, f: &dyn Fn(&mut Jackson)| {
            let mut w = Jackson::default();
            w.start_object().field(name);
            f(&mut w);
            w.end();
            w.bytes()
        };
        let m = |b: Vec<u8>| message_of::<PutRecordInput>(&b);
        assert_eq!(
            m(body("StreamName", &|w| w.0.push(0xf5))),
            "class java.lang.Boolean can not be converted to an String"
        );
        assert_eq!(
            m(body("StreamName", &|w| {
                w.int(12);
            })),
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"
        );
        assert_eq!(
            m(body("StreamName", &|w| {
                w.start_array().end();
            })),
            "Start of list found where not expected"
        );
        assert_eq!(
            m(body("StreamName", &|w| {
                w.start_object().end();
            })),
            "Start of structure or map found where not expected."
        );
        assert_eq!(
            m(body("Data", &|w| w.0.push(0xf4))),
            "class java.lang.Boolean can not be converted to a Blob"
        );
        assert_eq!(
            m(body("Data", &|w| {
                w.int(1);
            })),
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"
        );
        let m = |b: Vec<u8>| message_of::<PutRecordsInput>(&b);
        assert_eq!(
            m(body("Records", &|w| {
                w.text("a");
            })),
            "Expected list or null"
        );
        assert_eq!(
            m(body("Records", &|w| {
                w.start_object().end();
            })),
            "Start of structure or map found where not expected."
        );
        assert_eq!(
            m(body("Records", &|w| {
                w.start_array().start_array().end().end();
            })),
            "Start of list found where not expected"
        );
        assert_eq!(
            m(body("DryRun", &|w| {
                w.text("hellowtf");
            })),
            "'HELLOWTF' can not be converted to an Boolean"
        );
        assert_eq!(
            m(body("DryRun", &|w| {
                w.int(1);
            })),
            "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"
        );
        let m = |b: Vec<u8>| message_of::<GetRecordsInput>(&b);
        assert_eq!(
            m(body("Limit", &|w| {
                w.text("10");
            })),
            "class java.lang.String can not be converted to an Integer"
        );
        assert_eq!(
            m(body("Limit", &|w| w.0.push(0xf5))),
            "class java.lang.Boolean can not be converted to an Integer"
        );
        // A float limit is floored, as AWS does for JSON.
        let mut ok = Jackson::default();
        ok.start_object().field("Limit").0.push(0xfb);
        ok.0.extend(2.7f64.to_be_bytes());
        ok.end();
        assert_eq!(
            decode::<GetRecordsInput>(&ok.bytes()).unwrap().limit,
            Some(2)
        );
    }

    fn serialization_without_message(body: &[u8]) {
        let e = decode::<PutRecordsInput>(body).unwrap_err();
        assert_eq!(e.code, ErrorCode::SerializationException, "{body:02x?}");
        assert_eq!(e.message, "", "{body:02x?}");
        assert!(check_well_formed(body).is_err(), "{body:02x?}");
    }

    #[test]
    fn malformed_bodies_are_serialization_exceptions_without_message() {
        let good = Jackson::default()
            .start_object()
            .field("StreamName")
            .text("s")
            .field("Records")
            .start_array()
            .start_object()
            .field("Data")
            .binary(b"abc")
            .end()
            .end()
            .end()
            .bytes();
        assert!(check_well_formed(&good).is_ok());
        decode::<PutRecordsInput>(&good).unwrap();
        // Every truncation.
        for n in 1..good.len() {
            serialization_without_message(&good[..n]);
        }
        // Trailing bytes, a second item, a stray break.
        for tail in [&[0x00][..], &[0xa0], &[0xff]] {
            let mut b = good.clone();
            b.extend_from_slice(tail);
            serialization_without_message(&b);
        }
        // Not a map at the top.
        for b in [
            &[0x80][..],
            &[0x61, 0x61],
            &[0x01],
            &[0xf6],
            &[0xc1, 0xa0],
            &[0xff],
        ] {
            serialization_without_message(b);
        }
        // Declared lengths far beyond the body: strings, arrays, maps, 64-bit.
        for b in [
            &[
                0xa1, 0x61, 0x61, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
            &[0xa1, 0x61, 0x61, 0x7a, 0x7f, 0xff, 0xff, 0xff, 0x61],
            &[
                0xa1, 0x61, 0x61, 0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,
            ],
            &[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            serialization_without_message(b);
        }
        // Indefinite-length abuse: odd map, chunk of another type, nested indefinite chunk,
        // indefinite integer, unclosed, reserved additional information, break as a key.
        for b in [
            &[0xbf, 0x61, 0x61, 0xff][..],
            &[0xa1, 0x61, 0x61, 0x5f, 0x61, 0x61, 0xff],
            &[0xa1, 0x61, 0x61, 0x7f, 0x7f, 0xff, 0xff],
            &[0xa1, 0x61, 0x61, 0x1f],
            &[0xbf, 0x61, 0x61, 0x9f],
            &[0xa1, 0x61, 0x61, 0x1c],
            &[0xa1, 0xff, 0x00],
            &[0xa1, 0x61, 0x61, 0xf8, 0x10],
            &[0xa1, 0x61, 0x61, 0xdf, 0x00],
            &[0xa1, 0x61, 0xff],
        ] {
            serialization_without_message(b);
        }
        // Nesting bombs: arrays, indefinite maps, tags.
        for (prefix, n) in [
            (&[0x81u8][..], 100_000),
            (&[0xbf, 0x61, 0x61], 10_000),
            (&[0xc6], 100_000),
        ] {
            let mut b = vec![0xa1, 0x61, 0x61];
            for _ in 0..n {
                b.extend_from_slice(prefix);
            }
            b.push(0x00);
            serialization_without_message(&b);
        }
        // Nesting just inside the limit is fine (and ignored: an unknown member).
        let mut b = vec![0xa1, 0x61, 0x61];
        b.extend(std::iter::repeat_n(0x81, MAX_DEPTH - 1));
        b.push(0x00);
        decode::<PutRecordsInput>(&b).unwrap();
    }

    #[test]
    fn empty_body_is_an_empty_structure() {
        assert_eq!(
            decode::<GetRecordsInput>(b"").unwrap(),
            GetRecordsInput::default()
        );
        assert!(check_well_formed(b"").is_ok());
        assert_eq!(
            decode::<GetRecordsInput>(&[0xd9, 0xd9, 0xf7, 0xa0]).unwrap(),
            GetRecordsInput::default()
        );
    }

    use crate::fuzzing::Rng;

    fn corpus() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut w = Jackson::default();
        w.start_object()
            .field("StreamName")
            .text("s")
            .field("Records")
            .start_array();
        for i in 0..3 {
            w.start_object()
                .field("Data")
                .binary(&vec![i as u8; 40 * i])
                .field("PartitionKey")
                .text("pk")
                .field("ExplicitHashKey")
                .text("12345")
                .end();
        }
        w.end().end();
        out.push(w.bytes());
        out.push(
            Jackson::default()
                .start_object()
                .field("StreamName")
                .text("s")
                .field("ShardId")
                .text("shardId-000000000000")
                .field("ShardIteratorType")
                .text("AT_TIMESTAMP")
                .field("Timestamp")
                .timestamp(1_700_000_000_123)
                .end()
                .bytes(),
        );
        out.push(
            Jackson::default()
                .start_object()
                .field("ShardIterator")
                .text("AAAAAAAAAAE=")
                .field("Limit")
                .int(10_000)
                .end()
                .bytes(),
        );
        out.push(
            Jackson::default()
                .start_object()
                .field("StreamName")
                .text("s")
                .field("ShardCount")
                .int(4)
                .field("Tags")
                .start_object()
                .field("k")
                .text("v")
                .end()
                .field("StreamModeDetails")
                .start_object()
                .field("StreamMode")
                .text("PROVISIONED")
                .end()
                .end()
                .bytes(),
        );
        out.push(
            Jackson::default()
                .start_object()
                .field("StreamName")
                .text("s")
                .field("MaxResults")
                .int(-5)
                .field("ShardFilter")
                .start_object()
                .field("Type")
                .text("AT_TIMESTAMP")
                .field("Timestamp")
                .timestamp(-1)
                .end()
                .end()
                .bytes(),
        );
        out.push(
            Jackson::default()
                .start_object()
                .field("ConsumerARN")
                .text("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1")
                .field("ShardId")
                .text("shardId-000000000000")
                .field("StartingPosition")
                .start_object()
                .field("Type")
                .text("LATEST")
                .end()
                .end()
                .bytes(),
        );
        out
    }

    fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
        const INTERESTING: [u8; 16] = [
            0x00, 0x17, 0x18, 0x1b, 0x1f, 0x5f, 0x7f, 0x9f, 0xbf, 0xc1, 0xd9, 0xf5, 0xf6, 0xfb,
            0xff, 0x80,
        ];
        let mut b = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            match rng.below(8) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = INTERESTING[rng.below(INTERESTING.len())],
                2 => b.truncate(at),
                // Inflate a length: the head's argument becomes 8 bytes of 0xff or 0x7f.
                3 => {
                    let major = b[at] & 0xe0;
                    let fill = if rng.below(2) == 0 { 0xff } else { 0x7f };
                    b.splice(
                        at..(at + 1).min(b.len()),
                        std::iter::once(major | 27).chain([fill; 8]),
                    );
                }
                // Splice in a piece of another body.
                4 => {
                    let other = &corpus[rng.below(corpus.len())];
                    let from = rng.below(other.len());
                    let to = from + rng.below(other.len() - from + 1);
                    b.splice(at..at, other[from..to].iter().copied());
                }
                // Deep nesting at a random point.
                5 => {
                    let opener = [0x81, 0x9f, 0xa1, 0xbf, 0xc1][rng.below(5)];
                    let n = 1 + rng.below(200);
                    b.splice(at..at, std::iter::repeat_n(opener, n));
                }
                6 => {
                    let n = rng.below(8);
                    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    b.splice(at..at, bytes);
                }
                _ => {
                    let end = (at + rng.below(16)).min(b.len());
                    let piece = b[at..end].to_vec();
                    b.splice(at..at, piece);
                }
            }
            if b.is_empty() {
                break;
            }
        }
        b
    }

    fn check<T: DeserializeOwned + Validate>(body: &[u8]) -> bool {
        match decode::<T>(body) {
            Ok(input) => {
                if let Err(e) = input.validate() {
                    assert!(
                        matches!(
                            e.code,
                            ErrorCode::ValidationException | ErrorCode::InvalidArgumentException
                        ),
                        "{e:?} for {body:02x?}"
                    );
                }
                true
            }
            Err(e) => {
                assert_eq!(e.code, ErrorCode::SerializationException, "{body:02x?}");
                false
            }
        }
    }

    /// Seeded mutations of valid Java-shaped bodies, decoded as every input they resemble:
    /// no panic, no runaway allocation, only `Ok`, a SerializationException or a validation
    /// error. `KINESIS_FUZZ_ITERATIONS` sets the count (default 20,000, well under a second in a
    /// debug build); `KINESIS_FUZZ_SEED` the seed.
    #[test]
    fn fuzzed_bodies_never_panic() {
        let mut run = crate::fuzzing::Run::new("cbor_body", 20_000, 0x5eed_cb02);
        let iterations = run.iterations();
        let corpus = corpus();
        for body in &corpus {
            assert!(check_well_formed(body).is_ok(), "{body:02x?}");
        }
        let (mut accepted, mut refused) = (0usize, 0usize);
        for i in 0..iterations {
            let body = mutate(&mut run.rng, &corpus);
            let (well_formed, ok) = run.input(
                i,
                || format!("{body:02x?}"),
                || {
                    let well_formed = check_well_formed(&body).is_ok();
                    let ok = [
                        check::<PutRecordsInput>(&body),
                        check::<PutRecordInput>(&body),
                        check::<GetShardIteratorInput>(&body),
                        check::<GetRecordsInput>(&body),
                        check::<CreateStreamInput>(&body),
                        check::<ListShardsInput>(&body),
                        check::<SubscribeToShardInput>(&body),
                    ];
                    (well_formed, ok)
                },
            );
            // A body the walker refuses is never decoded.
            if !well_formed && !body.is_empty() {
                assert!(ok.iter().all(|ok| !ok), "{body:02x?}");
            }
            if ok.iter().any(|ok| *ok) {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        eprintln!(
            "cbor fuzz: {iterations} bodies, {accepted} decoded as some input, {refused} refused"
        );
        assert_eq!(accepted + refused, iterations);
        run.finish();
    }
}
