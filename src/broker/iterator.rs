//! Shard iterators: opaque, authenticated tokens naming a position in a shard.
//!
//! The token is standard base64 (as AWS's are) of:
//!
//! | bytes  | field                                                             |
//! |--------|-------------------------------------------------------------------|
//! | 0      | format version (1)                                                |
//! | 1..9   | stream uid, big-endian u64 (unique per stream incarnation)        |
//! | 9..13  | shard index, big-endian u32                                       |
//! | 13..21 | log offset of the next record to return, big-endian u64          |
//! | 21..29 | issue time, ms since the epoch, big-endian i64                   |
//! | 29..45 | HMAC-SHA256 over bytes 0..29 under the broker's secret, first 16 bytes |
//!
//! The stream uid is never reused, so an iterator of a deleted stream is rejected even
//! when a stream of the same name exists again. The MAC makes forged or altered
//! iterators detectable without keeping any server-side state per iterator.

use base64_simd::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const BODY_LEN: usize = 29;
const MAC_LEN: usize = 16;
const TOKEN_LEN: usize = BODY_LEN + MAC_LEN;

/// How long an iterator stays valid: 5 minutes, as on AWS.
pub const ITERATOR_TTL_MS: i64 = 5 * 60 * 1000;

/// A decoded, authenticated iterator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardIterator {
    /// The stream incarnation it belongs to.
    pub stream_uid: u64,
    /// The shard.
    pub shard_index: u32,
    /// Offset of the next record to return.
    pub offset: u64,
    /// When it was issued (ms since the epoch).
    pub issued_ms: i64,
}

/// Signs and verifies iterators with a per-data-directory secret.
#[derive(Clone)]
pub struct IteratorCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for IteratorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IteratorCodec { key: <secret> }")
    }
}

impl IteratorCodec {
    /// A codec signing with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The token for `it`.
    pub fn encode(&self, it: &ShardIterator) -> String {
        let mut buf = [0u8; TOKEN_LEN];
        buf[0] = VERSION;
        buf[1..9].copy_from_slice(&it.stream_uid.to_be_bytes());
        buf[9..13].copy_from_slice(&it.shard_index.to_be_bytes());
        buf[13..21].copy_from_slice(&it.offset.to_be_bytes());
        buf[21..29].copy_from_slice(&it.issued_ms.to_be_bytes());
        let mac = self.mac(&buf[..BODY_LEN]);
        buf[BODY_LEN..].copy_from_slice(&mac);
        STANDARD.encode_to_string(buf)
    }

    /// Decodes and authenticates a token. `None` when it is not one of ours or was altered.
    pub fn decode(&self, token: &str) -> Option<ShardIterator> {
        let raw = STANDARD.decode_to_vec(token).ok()?;
        if raw.len() != TOKEN_LEN || raw[0] != VERSION {
            return None;
        }
        let expected = self.mac(&raw[..BODY_LEN]);
        // Constant-time comparison so the MAC cannot be guessed byte by byte.
        let diff = expected
            .iter()
            .zip(&raw[BODY_LEN..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(raw[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(ShardIterator {
            stream_uid: u64_at(1),
            shard_index: u32::from_be_bytes(raw[9..13].try_into().unwrap_or([0; 4])),
            offset: u64_at(13),
            issued_ms: u64_at(21) as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShardIterator {
        ShardIterator {
            stream_uid: 3,
            shard_index: 1,
            offset: 99,
            issued_ms: 1_764_000_000_000,
        }
    }

    #[test]
    fn round_trips() {
        let c = IteratorCodec::new([7; 32]);
        assert_eq!(c.decode(&c.encode(&sample())), Some(sample()));
    }

    #[test]
    fn rejects_altered_token() {
        let c = IteratorCodec::new([7; 32]);
        let mut raw = STANDARD.decode_to_vec(c.encode(&sample())).unwrap();
        raw[15] ^= 1; // move the offset
        assert_eq!(c.decode(&STANDARD.encode_to_string(raw)), None);
    }

    #[test]
    fn rejects_token_signed_by_another_secret() {
        let a = IteratorCodec::new([7; 32]);
        let b = IteratorCodec::new([8; 32]);
        assert_eq!(b.decode(&a.encode(&sample())), None);
    }

    #[test]
    fn rejects_garbage() {
        let c = IteratorCodec::new([7; 32]);
        assert_eq!(c.decode("not base64 !!"), None);
        assert_eq!(c.decode("AAAA"), None);
        assert_eq!(c.decode(""), None);
    }
}
