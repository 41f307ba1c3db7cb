//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`): how
//! SubscribeToShard's events travel inside one long HTTP response.
//!
//! A message, all integers big-endian (AWS "Event stream encoding", and
//! `aws-smithy-eventstream`'s `frame.rs`, which every Rust SDK decodes with):
//!
//! | bytes | field | meaning |
//! | --- | --- | --- |
//! | 4 | total length | the whole message, prelude and trailing CRC included |
//! | 4 | headers length | bytes of the headers section |
//! | 4 | prelude CRC | CRC32 (IEEE) of the 8 bytes above |
//! | n | headers | repeated: name length (1), name (UTF-8), type (1), value |
//! | m | payload | the event body (JSON or CBOR of the event shape) |
//! | 4 | message CRC | CRC32 of everything before it |
//!
//! Header value types: 0 true, 1 false, 2 byte, 3 int16, 4 int32, 5 int64 (no value bytes
//! for the booleans, then 1/2/4/8 bytes), 6 byte array and 7 string (2-byte length, then
//! the bytes), 8 timestamp (int64 ms), 9 UUID (16 bytes). The broker writes only strings;
//! the decoder (tests, the load generator) reads every type.
//!
//! Kinesis uses three kinds of message: `:message-type` `event` with `:event-type`
//! `initial-response` (payload `{}`), then `SubscribeToShardEvent`; and `:message-type`
//! `exception` with `:exception-type` the error code and a `{"message": …}` payload.

/// Largest message accepted by [`decode`]: 16 MiB, as `aws-smithy-eventstream` allows.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest headers section a message may have: 128 KiB, as the AWS SDKs allow.
pub const MAX_HEADERS_BYTES: usize = 128 * 1024;

const PRELUDE_BYTES: usize = 12;
const TRAILER_BYTES: usize = 4;

/// The `Content-Type` of an event-stream response.
pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// A header value as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 and 1.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6.
    Bytes(Vec<u8>),
    /// Type 7.
    String(String),
    /// Type 8: milliseconds since the epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Headers in wire order.
    pub headers: Vec<(String, HeaderValue)>,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// The string value of header `name`, if present and a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes are needed (not an error for a streaming reader).
    #[error("incomplete message")]
    Incomplete,
    /// The prelude's CRC does not match.
    #[error("prelude checksum mismatch")]
    PreludeCrc,
    /// The message CRC does not match.
    #[error("message checksum mismatch")]
    MessageCrc,
    /// Lengths out of range or inconsistent.
    #[error("invalid lengths: {0}")]
    Length(&'static str),
    /// A header that cannot be read.
    #[error("invalid header: {0}")]
    Header(&'static str),
}

/// Encodes one message whose headers are all strings.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    encode_with(headers, payload.len(), |out| out.extend_from_slice(payload))
}

/// Encodes one message whose payload `write_payload` appends in place (no copy of the
/// payload into the frame); `size_hint` is the payload's expected size.
pub fn encode_with(
    headers: &[(&str, &str)],
    size_hint: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let headers_len: usize = headers
        .iter()
        .map(|(n, v)| 1 + n.len() + 1 + 2 + v.len())
        .sum();
    let mut out = Vec::with_capacity(PRELUDE_BYTES + headers_len + size_hint + TRAILER_BYTES);
    out.extend_from_slice(&[0; PRELUDE_BYTES]);
    for (name, value) in headers {
        // Names are our own constants (< 256 bytes); values are AWS error codes, content
        // types and event names (< 64 KiB).
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(7);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    write_payload(&mut out);
    let total = out.len() + TRAILER_BYTES;
    out[0..4].copy_from_slice(&(total as u32).to_be_bytes());
    out[4..8].copy_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out[..8]);
    out[8..12].copy_from_slice(&prelude_crc.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An `event` message of type `event_type` with a payload in `content_type`.
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    event_with(event_type, content_type, payload.len(), |out| {
        out.extend_from_slice(payload)
    })
}

/// [`event`] with the payload written in place by `write_payload`.
pub fn event_with(
    event_type: &str,
    content_type: &str,
    size_hint: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    encode_with(
        &[
            (":event-type", event_type),
            (":content-type", content_type),
            (":message-type", "event"),
        ],
        size_hint,
        write_payload,
    )
}

/// An `exception` message for error code `code` with a payload in `content_type`.
pub fn exception(code: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":exception-type", code),
            (":content-type", content_type),
            (":message-type", "exception"),
        ],
        payload,
    )
}

/// Decodes the first message of `buf`, returning it and the bytes it took.
/// [`DecodeError::Incomplete`] means `buf` holds a valid start but not all of it.
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    if buf.len() < PRELUDE_BYTES {
        return Err(DecodeError::Incomplete);
    }
    let total = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let headers_len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let prelude_crc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if crc32fast::hash(&buf[..8]) != prelude_crc {
        return Err(DecodeError::PreludeCrc);
    }
    if total > MAX_MESSAGE_BYTES {
        return Err(DecodeError::Length("message too large"));
    }
    if headers_len > MAX_HEADERS_BYTES {
        return Err(DecodeError::Length("headers too large"));
    }
    if total < PRELUDE_BYTES + TRAILER_BYTES + headers_len {
        return Err(DecodeError::Length("total shorter than its parts"));
    }
    if buf.len() < total {
        return Err(DecodeError::Incomplete);
    }
    let body = &buf[..total - TRAILER_BYTES];
    let crc = u32::from_be_bytes([
        buf[total - 4],
        buf[total - 3],
        buf[total - 2],
        buf[total - 1],
    ]);
    if crc32fast::hash(body) != crc {
        return Err(DecodeError::MessageCrc);
    }
    let headers = decode_headers(&body[PRELUDE_BYTES..PRELUDE_BYTES + headers_len])?;
    let payload = body[PRELUDE_BYTES + headers_len..].to_vec();
    Ok((Message { headers, payload }, total))
}

fn decode_headers(mut buf: &[u8]) -> Result<Vec<(String, HeaderValue)>, DecodeError> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
        if buf.len() < n {
            return Err(DecodeError::Header("truncated"));
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Ok(head)
    }
    let mut headers = Vec::new();
    while !buf.is_empty() {
        let name_len = take(&mut buf, 1)?[0] as usize;
        if name_len == 0 {
            return Err(DecodeError::Header("empty name"));
        }
        let name = std::str::from_utf8(take(&mut buf, name_len)?)
            .map_err(|_| DecodeError::Header("name is not UTF-8"))?
            .to_string();
        let kind = take(&mut buf, 1)?[0];
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(take(&mut buf, 1)?[0] as i8),
            3 => HeaderValue::Int16(i16::from_be_bytes(
                take(&mut buf, 2)?.try_into().expect("2 bytes"),
            )),
            4 => HeaderValue::Int32(i32::from_be_bytes(
                take(&mut buf, 4)?.try_into().expect("4 bytes"),
            )),
            5 | 8 => {
                let v = i64::from_be_bytes(take(&mut buf, 8)?.try_into().expect("8 bytes"));
                if kind == 5 {
                    HeaderValue::Int64(v)
                } else {
                    HeaderValue::Timestamp(v)
                }
            }
            6 | 7 => {
                let len = u16::from_be_bytes(take(&mut buf, 2)?.try_into().expect("2 bytes"));
                let bytes = take(&mut buf, len as usize)?;
                if kind == 6 {
                    HeaderValue::Bytes(bytes.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(bytes)
                            .map_err(|_| DecodeError::Header("string is not UTF-8"))?
                            .to_string(),
                    )
                }
            }
            9 => HeaderValue::Uuid(take(&mut buf, 16)?.try_into().expect("16 bytes")),
            _ => return Err(DecodeError::Header("unknown value type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's "empty message" test vector (the event-stream spec's test suite, also in
    /// aws-smithy-eventstream): `00000010 00000000 05c248eb 7d98c8ff`.
    #[test]
    fn empty_message_has_aws_layout() {
        let bytes = encode(&[], b"");
        // total 16, headers 0, prelude CRC of those 8 bytes, then the message CRC.
        assert_eq!(&bytes[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &0x05c2_48ebu32.to_be_bytes());
        assert_eq!(&bytes[12..], &0x7d98_c8ffu32.to_be_bytes());
    }

    #[test]
    fn event_round_trips() {
        let bytes = event("SubscribeToShardEvent", "application/x-amz-json-1.1", b"{}");
        let (msg, used) = decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(msg.header(":event-type"), Some("SubscribeToShardEvent"));
        assert_eq!(msg.header(":message-type"), Some("event"));
        assert_eq!(
            msg.header(":content-type"),
            Some("application/x-amz-json-1.1")
        );
        assert_eq!(msg.payload, b"{}");
    }

    #[test]
    fn every_prefix_is_incomplete_and_every_flip_is_caught() {
        let bytes = exception(
            "ResourceInUseException",
            "application/json",
            br#"{"message":"x"}"#,
        );
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(decode(&bad).is_err(), "flip at {i} decoded");
        }
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&u32::MAX.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&prelude);
        prelude.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode(&prelude),
            Err(DecodeError::Length("message too large"))
        );
    }

    #[test]
    fn all_header_types_decode() {
        let mut headers = Vec::new();
        let mut push = |name: &str, kind: u8, value: &[u8]| {
            headers.push(name.len() as u8);
            headers.extend_from_slice(name.as_bytes());
            headers.push(kind);
            headers.extend_from_slice(value);
        };
        push("t", 0, &[]);
        push("f", 1, &[]);
        push("b", 2, &[0xff]);
        push("s", 3, &7i16.to_be_bytes());
        push("i", 4, &8i32.to_be_bytes());
        push("l", 5, &9i64.to_be_bytes());
        push("y", 6, &[0, 2, 1, 2]);
        push("ts", 8, &10i64.to_be_bytes());
        push("u", 9, &[3; 16]);
        let total = PRELUDE_BYTES + headers.len() + TRAILER_BYTES;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(total as u32).to_be_bytes());
        bytes.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes.extend_from_slice(&headers);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        let (msg, _) = decode(&bytes).unwrap();
        let values: Vec<HeaderValue> = msg.headers.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            vec![
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Int16(7),
                HeaderValue::Int32(8),
                HeaderValue::Int64(9),
                HeaderValue::Bytes(vec![1, 2]),
                HeaderValue::Timestamp(10),
                HeaderValue::Uuid([3; 16]),
            ]
        );
    }

    /// Seeded mutations of valid messages (bit flips, truncations, inflated lengths with
    /// recomputed CRCs so the length checks themselves are reached, header-type swaps,
    /// splices): never a panic, never a message beyond the input, and an unmodified message
    /// always decodes. `KINESIS_FUZZ_ITERATIONS` (default 20,000) sets the run.
    #[test]
    fn fuzzed_frames_never_panic() {
        let corpus = [
            event(
                "SubscribeToShardEvent",
                "application/x-amz-json-1.1",
                br#"{"Records":[]}"#,
            ),
            event("initial-response", "application/x-amz-cbor-1.1", &[0xa0]),
            exception(
                "ResourceInUseException",
                "application/json",
                br#"{"message":"m"}"#,
            ),
            encode(&[], b""),
        ];
        let mut run = crate::fuzzing::Run::new("event_stream_frame", 20_000, 0xe5e5_f00d);
        for i in 0..run.iterations() {
            let rng = &mut run.rng;
            let mut bytes = corpus[rng.below(corpus.len())].clone();
            let mut fix_crcs = false;
            for _ in 0..=rng.below(3) {
                match rng.below(6) {
                    0 if !bytes.is_empty() => {
                        let at = rng.below(bytes.len());
                        bytes[at] ^= 1 << rng.below(8);
                    }
                    1 => bytes.truncate(rng.below(bytes.len() + 1)),
                    2 if bytes.len() >= 8 => {
                        // Inflate or shrink a declared length, keeping the CRCs valid.
                        let field = if rng.chance(2) { 0 } else { 4 };
                        let value = match rng.below(3) {
                            0 => u32::MAX,
                            1 => rng.next() as u32,
                            _ => rng.below(64) as u32,
                        };
                        bytes[field..field + 4].copy_from_slice(&value.to_be_bytes());
                        fix_crcs = true;
                    }
                    3 if bytes.len() > PRELUDE_BYTES + 2 => {
                        // A header value type outside 0..=9, or a different one.
                        let at = PRELUDE_BYTES + rng.below(bytes.len() - PRELUDE_BYTES);
                        bytes[at] = rng.below(256) as u8;
                        fix_crcs = true;
                    }
                    4 => {
                        let other = &corpus[rng.below(corpus.len())];
                        let cut = rng.below(other.len());
                        bytes.extend_from_slice(&other[cut..]);
                    }
                    _ => bytes.extend((0..rng.below(32)).map(|_| rng.next() as u8)),
                }
            }
            if fix_crcs && bytes.len() >= PRELUDE_BYTES {
                let crc = crc32fast::hash(&bytes[..8]);
                bytes[8..12].copy_from_slice(&crc.to_be_bytes());
                let total = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
                if total >= PRELUDE_BYTES + TRAILER_BYTES && total <= bytes.len() {
                    let crc = crc32fast::hash(&bytes[..total - TRAILER_BYTES]);
                    bytes[total - 4..total].copy_from_slice(&crc.to_be_bytes());
                }
            }
            if let Ok((msg, used)) =
                run.input(i, || crate::fuzzing::show(&bytes), || decode(&bytes))
            {
                assert!(used <= bytes.len(), "iteration {i}");
                assert!(msg.payload.len() < used, "iteration {i}");
            }
        }
        run.finish();
        for message in &corpus {
            assert_eq!(decode(message).map(|(_, n)| n), Ok(message.len()));
        }
    }
}
