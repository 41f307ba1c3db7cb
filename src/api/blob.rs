//! The model's `blob` and `timestamp` shapes, written by hand and referred to by the
//! generated types.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Binary data (`Data` in PutRecord, GetRecords' records): base64 in JSON, a byte string in
/// binary encodings (decided by `is_human_readable`).
///
/// `Debug` prints the length only, so logs never carry record data.
///
/// The bytes are `Bytes` so that GetRecords can hand out record data still in the segment's
/// map ([`storage::SharedData`]) and base64-encode it from there, with no copy per record.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Blob(pub bytes::Bytes);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Blob {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(v.into())
    }
}

impl From<storage::SharedData> for Blob {
    fn from(data: storage::SharedData) -> Self {
        Blob(bytes::Bytes::from_owner(data))
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            // Handed to serde_json as an already-quoted raw value: base64 text never needs
            // escaping, and serde_json's string escaper inspects one byte at a time, which
            // made it the largest cost of GetRecords (up to 10 MiB of record data per answer).
            // serde_json still checks the text, with its word-at-a-time scanner. The text is
            // built in a buffer reused by the thread: a GetRecords answer has up to 10,000.
            thread_local! {
                static QUOTED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
            }
            QUOTED.with(|cell| {
                // A Blob never serializes another Blob, so the buffer is never borrowed twice;
                // should that change, fall back to a buffer of its own rather than panic.
                let mut own = String::new();
                let mut guard = cell.try_borrow_mut().ok();
                let quoted: &mut String = guard.as_deref_mut().unwrap_or(&mut own);
                quoted.clear();
                quoted.reserve(base64_simd::STANDARD.encoded_length(self.0.len()) + 2);
                quoted.push('"');
                base64_simd::STANDARD.encode_append(&self.0, quoted);
                quoted.push('"');
                let raw: &serde_json::value::RawValue =
                    serde_json::from_str(quoted).map_err(serde::ser::Error::custom)?;
                raw.serialize(serializer)
            })
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

/// Largest decoded blob that goes into the shared decode buffer; larger ones get their own.
const POOLED_BLOB_MAX: usize = 16 * 1024;
/// Size of each shared decode buffer.
const DECODE_POOL_BYTES: usize = 256 * 1024;

/// [`decode_base64`], but small blobs are cut from a buffer shared by the thread's recent
/// blobs, so a PutRecords of 500 records makes a few allocations instead of 500. Per-record
/// allocations were the broker's largest cause of waiting on the allocator's locks: the two
/// workers free each other's records. A buffer is freed when its last blob is dropped.
fn decode_base64_pooled(text: &[u8]) -> Result<bytes::Bytes, String> {
    thread_local! {
        static POOL: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
    }
    let len = match base64_simd::STANDARD.decoded_length(text) {
        Ok(len) if len <= POOLED_BLOB_MAX => len,
        // Too large to pool, or invalid: the plain path (and its AWS error message).
        _ => return decode_base64(text).map(bytes::Bytes::from),
    };
    POOL.with(|cell| {
        let Ok(mut pool) = cell.try_borrow_mut() else {
            return decode_base64(text).map(bytes::Bytes::from);
        };
        if pool.capacity() < len {
            *pool = bytes::BytesMut::with_capacity(DECODE_POOL_BYTES);
        }
        pool.resize(len, 0);
        let out = base64_simd::AsOut::as_out(&mut pool[..]);
        if base64_simd::STANDARD.decode(text, out).is_err() {
            pool.clear();
            return decode_base64(text).map(bytes::Bytes::from);
        }
        Ok(pool.split().freeze())
    })
}

/// A copy of `data` (a CBOR byte string), small ones cut from the thread's shared buffer
/// like [`decode_base64_pooled`]'s, for the same reason.
fn copy_pooled(data: &[u8]) -> bytes::Bytes {
    thread_local! {
        static POOL: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
    }
    if data.len() > POOLED_BLOB_MAX {
        return bytes::Bytes::copy_from_slice(data);
    }
    POOL.with(|cell| {
        let Ok(mut pool) = cell.try_borrow_mut() else {
            return bytes::Bytes::copy_from_slice(data);
        };
        if pool.capacity() < data.len() {
            *pool = bytes::BytesMut::with_capacity(DECODE_POOL_BYTES);
        }
        pool.extend_from_slice(data);
        pool.split().freeze()
    })
}

/// Decodes a JSON blob: padded standard base64, the only form AWS (Coral) accepts.
///
/// Decoding is SIMD (`base64-simd`): on PutRecords it runs over every byte of every
/// request, and the scalar decoder was the broker's largest single user of CPU.
pub(crate) fn decode_base64(text: &[u8]) -> Result<Vec<u8>, String> {
    base64_simd::STANDARD
        .decode_to_vec(text)
        .map_err(|_| base64_error(text))
}

/// AWS's `SerializationException` text for blob text it cannot decode, pinned by
/// kinesalite's tests against the live service (`mhart/kinesalite` `test/helpers.js`
/// `assertType`, `Blob`) and checked in the order its `validations/index.js` checks:
///
/// 1. a length (in Java `char`s, UTF-16 units) that is not a multiple of 4:
///    `'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5`
/// 2. a character outside `A-Za-z0-9+/=`, or a `=` followed by anything but `=`, first one
///    in the text: `'=+/=' can not be converted to a Blob: Invalid Base64 character: '='`
/// 3. anything else (non-zero bits after the last character, padding alone):
///    `'+/+=' can not be converted to a Blob: Invalid last non-pad Base64 character dectected`
///    ("dectected" is AWS's spelling).
fn base64_error(text: &[u8]) -> String {
    let shown = String::from_utf8_lossy(text);
    let java_length = shown.encode_utf16().count();
    let reason = if !java_length.is_multiple_of(4) {
        format!("Base64 encoded length is expected a multiple of 4 bytes but found: {java_length}")
    } else if let Some(c) = invalid_base64_char(&shown) {
        format!("Invalid Base64 character: '{c}'")
    } else {
        "Invalid last non-pad Base64 character dectected".to_string()
    };
    format!("'{shown}' can not be converted to a Blob: {reason}")
}

/// The first character AWS calls invalid: outside the standard alphabet and `=`, or a `=`
/// that is followed by something other than `=`.
fn invalid_base64_char(text: &str) -> Option<char> {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let valid = c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=';
        if !valid || (c == '=' && chars.peek().is_some_and(|&next| next != '=')) {
            return Some(c);
        }
    }
    None
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// In text formats the blob is base64 text, which arrives as a `str` or, when asked
        /// for bytes, as the raw string contents: serde_json then skips its UTF-8 check,
        /// which base64 decoding makes redundant (any non-ASCII byte is invalid base64).
        struct Base64TextVisitor;
        impl<'de> Visitor<'de> for Base64TextVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
                self.visit_bytes(v.as_bytes())
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                decode_base64_pooled(v).map(Blob).map_err(E::custom)
            }
        }
        /// In binary formats (CBOR) the blob is a byte string as it is: the Java SDKs write
        /// `ByteBuffer` members with Jackson's `writeBinary`. A text string is read as
        /// base64, as in JSON: Jackson's `getBinaryValue` (the SDKs' own reader) and
        /// kinesalite's CBOR validation (`checkType`, `Blob`) both take one.
        struct ByteStringVisitor;
        impl<'de> Visitor<'de> for ByteStringVisitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string or base64 text")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(copy_pooled(v)))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Blob, E> {
                decode_base64_pooled(v.as_bytes())
                    .map(Blob)
                    .map_err(E::custom)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_bytes(Base64TextVisitor)
        } else {
            // `any`, not `bytes`: ciborium's `deserialize_bytes` refuses text strings.
            deserializer.deserialize_any(ByteStringVisitor)
        }
    }
}

/// A point in time, kept as milliseconds since the Unix epoch.
///
/// On the JSON wire it is epoch seconds as a number with a fraction (`1700000000.123`),
/// as AWS sends and the SDKs send.
///
/// In CBOR (`is_human_readable` false) it is tag 1 holding epoch **milliseconds** as an
/// integer: what the Java SDKs write (v1 `SdkCborGenerator.writeValue(Date)` and v2
/// `SdkCborGenerator.writeValue(Instant)`: `writeTag(1)`, `writeNumber(toEpochMilli())`) and
/// the only form they read back (v2 parses `UNIX_TIMESTAMP_MILLIS` with `Long.parseLong`, so
/// a float would fail it). On input an integer is milliseconds with or without the tag
/// (Jackson, the SDKs' and Coral's parser, ignores tags); a float is read as RFC 8949's
/// epoch seconds, which is what generic CBOR encoders put under tag 1 (no Java SDK sends one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub millis: i64,
}

impl Timestamp {
    /// From milliseconds since the epoch.
    pub fn from_millis(millis: i64) -> Self {
        Self { millis }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_f64(self.millis as f64 / 1000.0)
        } else {
            ciborium::tag::Required::<i64, CBOR_TAG_EPOCH>(self.millis).serialize(serializer)
        }
    }
}

/// CBOR's epoch-based date/time tag (RFC 8949 section 3.4.2), which the Java SDK fills with
/// milliseconds.
const CBOR_TAG_EPOCH: u64 = 1;

/// What AWS calls a timestamp it cannot read (kinesalite `validations/index.js`, `checkType`).
const TIMESTAMP_EXPECTED: &str = "milliseconds since epoch";

/// The number inside a CBOR timestamp, before its unit is decided.
enum CborEpoch {
    Millis(i64),
    Seconds(f64),
}

impl<'de> Deserialize<'de> for CborEpoch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CborEpoch;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(TIMESTAMP_EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<CborEpoch, E> {
                Ok(CborEpoch::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CborEpoch, E> {
                Ok(CborEpoch::Millis(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<CborEpoch, E> {
                // A bignum (tags 2/3): saturated, and then refused by range validation.
                Ok(CborEpoch::Millis(i64::try_from(v).unwrap_or(if v < 0 {
                    i64::MIN
                } else {
                    i64::MAX
                })))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<CborEpoch, E> {
                Ok(CborEpoch::Millis(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<CborEpoch, E> {
                if !v.is_finite() {
                    return Err(E::custom("timestamp must be a finite number"));
                }
                Ok(CborEpoch::Seconds(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl<'de> Visitor<'de> for TsVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("epoch seconds")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                if !v.is_finite() {
                    return Err(E::custom("timestamp must be a finite number"));
                }
                Ok(Timestamp::from_millis((v * 1000.0).round() as i64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp::from_millis(v.saturating_mul(1000)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp::from_millis(
                    i64::try_from(v).unwrap_or(i64::MAX).saturating_mul(1000),
                ))
            }
        }
        if deserializer.is_human_readable() {
            return deserializer.deserialize_any(TsVisitor);
        }
        // CBOR: the tag is optional (Jackson ignores it), but another tag than 1 is not a
        // timestamp.
        let ciborium::tag::Captured(tag, epoch) =
            ciborium::tag::Captured::<CborEpoch>::deserialize(deserializer)?;
        if tag.is_some_and(|t| t != CBOR_TAG_EPOCH) {
            return Err(de::Error::invalid_type(
                de::Unexpected::Other("tag"),
                &TIMESTAMP_EXPECTED,
            ));
        }
        Ok(match epoch {
            CborEpoch::Millis(ms) => Timestamp::from_millis(ms),
            // `as` saturates, and a finite f64 cannot be NaN.
            CborEpoch::Seconds(s) => Timestamp::from_millis((s * 1000.0).round() as i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blobs cut from the shared decode buffer keep their own bytes: across buffer
    /// boundaries, after the buffer moved on, and beside an invalid blob and a large one.
    #[test]
    fn pooled_blobs_stay_intact_across_buffers() {
        let originals: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| {
                let len = (i as usize * 37) % (POOLED_BLOB_MAX + 2);
                (0..len).map(|j| (i as usize + j) as u8).collect()
            })
            .collect();
        let blobs: Vec<Blob> = originals
            .iter()
            .map(|o| {
                let json = format!("\"{}\"", base64_simd::STANDARD.encode_to_string(o));
                assert!(serde_json::from_str::<Blob>("\"QUJD=\"").is_err());
                serde_json::from_str::<Blob>(&json).unwrap()
            })
            .collect();
        assert!(originals.iter().map(Vec::len).sum::<usize>() > 4 * DECODE_POOL_BYTES);
        for (o, b) in originals.iter().zip(&blobs) {
            assert_eq!(b.as_slice(), o.as_slice());
        }
        let err = serde_json::from_str::<Blob>("\"23456\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("multiple of 4 bytes but found: 5"), "{err}");
    }

    #[test]
    fn blob_is_quoted_base64_in_json_and_round_trips() {
        let blob = Blob::from(b"hello \x00\xff".to_vec());
        let json = serde_json::to_string(&blob).unwrap();
        assert_eq!(json, r#""aGVsbG8gAP8=""#);
        // The generic value serializer understands the raw form too.
        assert_eq!(
            serde_json::to_value(&blob).unwrap(),
            serde_json::Value::String("aGVsbG8gAP8=".into())
        );
        assert_eq!(serde_json::from_str::<Blob>(&json).unwrap(), blob);
        assert_eq!(serde_json::to_string(&Blob::default()).unwrap(), r#""""#);
    }
}
