//! Receipt handles: opaque, authenticated tokens naming one delivery of one record by one
//! queue, so that a handle can be checked without any per-handle state on the server.
//!
//! The token is URL-safe base64 (no padding) of 46 bytes (62 characters; the model
//! allows 1 to 1,024):
//!
//! | bytes  | field                                                                  |
//! |--------|------------------------------------------------------------------------|
//! | 0      | layout version (1)                                                     |
//! | 1..9   | queue uid, big-endian u64 (random per queue incarnation)               |
//! | 9..13  | shard index, big-endian u32                                            |
//! | 13..21 | log offset of the record in that shard, big-endian u64                 |
//! | 21..29 | delivery number, big-endian u64 (unique per delivery within the queue) |
//! | 29     | path: 0 the normal receive path, 1 the dead-letter path                |
//! | 30..46 | first 16 bytes of HMAC-SHA256 over bytes 0..30 under the receipt key   |
//!
//! The MAC makes forged or altered handles detectable; the queue uid makes a handle of
//! another queue (or of a deleted queue whose name was reused) foreign; the delivery number
//! makes a handle stale as soon as the record is delivered again, since the queue only
//! honours the delivery number it issued last. The receipt key is derived from the broker's
//! iterator secret with a fixed label, so a shard iterator's MAC can never pass as a
//! receipt handle's or the other way round.

use base64_simd::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const BODY_LEN: usize = 30;
const MAC_LEN: usize = 16;
const TOKEN_LEN: usize = BODY_LEN + MAC_LEN;
/// Domain separation between receipt handles and shard iterators signed from one secret.
const KEY_LABEL: &[u8] = b"kinesis-broker queue receipt handles v1";

/// Which set of operations a handle belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// ReceiveQueueRecords, AcknowledgeQueueRecords, UpdateQueueRecordsVisibility.
    Normal,
    /// The dead-letter operations.
    DeadLetter,
}

/// A decoded, authenticated receipt handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// The queue incarnation that issued it.
    pub queue_uid: u64,
    /// The shard of the record.
    pub shard_index: u32,
    /// The record's offset in its shard.
    pub offset: u64,
    /// Which delivery of the record this handle names.
    pub delivery: u64,
    /// The path it was issued on.
    pub path: Path,
}

/// Signs and verifies receipt handles.
#[derive(Clone)]
pub struct ReceiptCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for ReceiptCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptCodec { key: <secret> }")
    }
}

impl ReceiptCodec {
    /// A codec whose key is derived from the broker's 32-byte secret.
    pub fn new(secret: &[u8; 32]) -> Self {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(KEY_LABEL);
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(body);
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The handle for `receipt`.
    pub fn encode(&self, receipt: &Receipt) -> String {
        let mut token = [0u8; TOKEN_LEN];
        token[0] = VERSION;
        token[1..9].copy_from_slice(&receipt.queue_uid.to_be_bytes());
        token[9..13].copy_from_slice(&receipt.shard_index.to_be_bytes());
        token[13..21].copy_from_slice(&receipt.offset.to_be_bytes());
        token[21..29].copy_from_slice(&receipt.delivery.to_be_bytes());
        token[29] = match receipt.path {
            Path::Normal => 0,
            Path::DeadLetter => 1,
        };
        let mac = self.mac(&token[..BODY_LEN]);
        token[BODY_LEN..].copy_from_slice(&mac);
        URL_SAFE_NO_PAD.encode_to_string(token)
    }

    /// The receipt a handle names, or `None` for anything this broker did not issue.
    pub fn decode(&self, handle: &str) -> Option<Receipt> {
        let raw = URL_SAFE_NO_PAD.decode_to_vec(handle).ok()?;
        let token: [u8; TOKEN_LEN] = raw.try_into().ok()?;
        let expected = self.mac(&token[..BODY_LEN]);
        // Constant-time comparison: the handle comes from outside.
        let diff = expected
            .iter()
            .zip(&token[BODY_LEN..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 || token[0] != VERSION {
            return None;
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&token[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let mut shard = [0u8; 4];
        shard.copy_from_slice(&token[9..13]);
        let path = match token[29] {
            0 => Path::Normal,
            1 => Path::DeadLetter,
            _ => return None,
        };
        Some(Receipt {
            queue_uid: u64_at(1),
            shard_index: u32::from_be_bytes(shard),
            offset: u64_at(13),
            delivery: u64_at(21),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            queue_uid: 0xdead_beef_0123_4567,
            shard_index: 7,
            offset: 1_234_567,
            delivery: 42,
            path: Path::DeadLetter,
        }
    }

    #[test]
    fn handle_round_trips() {
        let codec = ReceiptCodec::new(&[9; 32]);
        let handle = codec.encode(&receipt());
        assert_eq!(handle.len(), 62);
        assert_eq!(codec.decode(&handle), Some(receipt()));
    }

    #[test]
    fn altered_handle_is_rejected_at_every_byte() {
        let codec = ReceiptCodec::new(&[9; 32]);
        let raw = URL_SAFE_NO_PAD
            .decode_to_vec(codec.encode(&receipt()))
            .unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                codec.decode(&URL_SAFE_NO_PAD.encode_to_string(&bad)),
                None,
                "byte {i}"
            );
        }
    }

    #[test]
    fn handle_signed_under_another_secret_is_rejected() {
        let handle = ReceiptCodec::new(&[1; 32]).encode(&receipt());
        assert_eq!(ReceiptCodec::new(&[2; 32]).decode(&handle), None);
    }

    #[test]
    fn malformed_handles_are_rejected_without_panicking() {
        let codec = ReceiptCodec::new(&[9; 32]);
        for bad in ["", "x", "%%%%", &"A".repeat(62), &"A".repeat(1024), "é"] {
            assert_eq!(codec.decode(bad), None, "{bad}");
        }
    }
}

/// Bounded fuzzing of receipt-handle decoding (see `crate::fuzzing`): mutated valid handles
/// (bits flipped in the decoded token, characters replaced, cut, extended, spliced, signed
/// under another secret, the path byte out of range with a valid MAC impossible to forge)
/// and random strings up to past the model's 1,024 characters never panic, never hang and
/// never decode, except the unmodified handle.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::fuzzing::{Run, damage, show};

    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=%\0\xff";

    #[test]
    fn fuzzed_receipt_handles_never_decode_unless_issued() {
        let codec = ReceiptCodec::new(&[3; 32]);
        let other = ReceiptCodec::new(&[4; 32]);
        let mut run = Run::new("receipt_handle", 20_000, 0x4ece_1970);
        for i in 0..run.iterations() {
            let rng = &mut run.rng;
            let receipt = Receipt {
                queue_uid: rng.next(),
                shard_index: rng.next() as u32,
                offset: rng.next() >> rng.below(64),
                delivery: rng.next() >> rng.below(64),
                path: if rng.chance(2) {
                    Path::Normal
                } else {
                    Path::DeadLetter
                },
            };
            let handle = codec.encode(&receipt);
            let candidate: Vec<u8> = match rng.below(5) {
                0 => {
                    let mut raw = URL_SAFE_NO_PAD.decode_to_vec(&handle).unwrap();
                    for _ in 0..=rng.below(3) {
                        damage(rng, &mut raw, &[], &[]);
                    }
                    URL_SAFE_NO_PAD.encode_to_string(raw).into_bytes()
                }
                1 => other.encode(&receipt).into_bytes(),
                2 => (0..rng.below(1_100))
                    .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                    .collect(),
                _ => {
                    let mut text = handle.clone().into_bytes();
                    let spliced = other.encode(&receipt).into_bytes();
                    for _ in 0..=rng.below(3) {
                        damage(rng, &mut text, ALPHABET, &spliced);
                    }
                    text
                }
            };
            let text = String::from_utf8_lossy(&candidate).into_owned();
            let decoded = run.input(i, || show(&candidate), || codec.decode(&text));
            if let Some(got) = decoded {
                assert!(
                    text == handle && got == receipt,
                    "accepted a handle it did not issue: {text}"
                );
            }
        }
        run.finish();
    }
}
