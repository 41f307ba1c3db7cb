//! Shard iterators: opaque, authenticated tokens naming a position in a shard.
//!
//! The token has AWS's shape: standard base64 of 152 bytes (204 characters; AWS's are
//! 152 + 16k bytes, their first 8 bytes `00 00 00 00 00 00 00 01`, the rest 16-byte
//! blocks: kinesalite `createShardIterator` and `test/helpers.js` `assertShardIterator`,
//! pinned against AWS; the model allows 1 to 512 characters):
//!
//! | bytes    | field                                                                  |
//! |----------|------------------------------------------------------------------------|
//! | 0..8     | `00 00 00 00 00 00 00 01`, as AWS's                                    |
//! | 8        | this broker's layout version (2)                                       |
//! | 9..17    | stream uid, big-endian u64 (unique per stream incarnation)             |
//! | 17..21   | shard index, big-endian u32                                            |
//! | 21..29   | log offset of the next record to return, big-endian u64                |
//! | 29..37   | issue time, ms since the epoch (the wall reading), big-endian i64      |
//! | 37..45   | issue time on the broker's steady timeline (`Clock::steady_ms`), big-endian i64 |
//! | 45..53   | that steady timeline's identity (`Clock::timeline`), big-endian u64; 0 in tokens of older brokers |
//! | 53..120  | zero (reserved; covered by the MAC, so a token with anything else there is rejected) |
//! | 120..152 | HMAC-SHA256 over bytes 0..120 under the broker's secret (all 32 bytes) |
//!
//! The stream uid is never reused, so an iterator of a deleted stream is rejected even
//! when a stream of the same name exists again. The MAC makes forged or altered
//! iterators detectable without keeping any server-side state per iterator; the issue
//! time it covers makes them expire (`ITERATOR_TTL_MS`, checked by the read path).
//!
//! Expiry follows [`ShardIterator::age_ms`]: on the steady timeline that issued the token
//! its age is steady time elapsed, so wall-clock steps neither expire every iterator at once
//! (forward) nor keep one alive for the extra hour (back). A token from another timeline (a
//! previous run of the broker) is at least as old as this run, and as old as the wall clock
//! says when that is more: after a restart an old iterator lives at most its 5 minutes,
//! whatever the wall clock did while the broker was down.
//! Tokens of the older 45-byte layout no longer decode ("Invalid ShardIterator."); they
//! expired 5 minutes after they were issued anyway.

use base64_simd::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::clock::Clock;

/// AWS's first 8 bytes.
const PREFIX: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 1];
const VERSION: u8 = 2;
const BODY_LEN: usize = 120;
const MAC_LEN: usize = 32;
const TOKEN_LEN: usize = BODY_LEN + MAC_LEN;
/// Characters of a token: base64 of 152 bytes.
pub const TOKEN_CHARS: usize = TOKEN_LEN.div_ceil(3) * 4;

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
    /// When it was issued (ms since the epoch, the wall reading).
    pub issued_ms: i64,
    /// When it was issued on the steady timeline `timeline`.
    pub issued_steady_ms: i64,
    /// The steady timeline it was issued on (0: unknown, a token of an older broker).
    pub timeline: u64,
}

impl ShardIterator {
    /// A token for `offset` issued now by `clock`.
    pub fn issued_now(stream_uid: u64, shard_index: u32, offset: u64, clock: &Clock) -> Self {
        Self {
            stream_uid,
            shard_index,
            offset,
            issued_ms: clock.now_ms(),
            issued_steady_ms: clock.steady_ms(),
            timeline: clock.timeline(),
        }
    }

    /// How old the iterator is (ms) by `clock`: steady time since it was issued when
    /// `clock` issued it; otherwise the longer of the wall time since it was issued and the
    /// time since `clock` started (it was issued before that).
    pub fn age_ms(&self, clock: &Clock) -> i64 {
        clock.issued_age_ms(self.issued_ms, self.issued_steady_ms, self.timeline)
    }
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
        mac.finalize().into_bytes().into()
    }

    /// The token for `it`.
    pub fn encode(&self, it: &ShardIterator) -> String {
        let mut buf = [0u8; TOKEN_LEN];
        buf[..8].copy_from_slice(&PREFIX);
        buf[8] = VERSION;
        buf[9..17].copy_from_slice(&it.stream_uid.to_be_bytes());
        buf[17..21].copy_from_slice(&it.shard_index.to_be_bytes());
        buf[21..29].copy_from_slice(&it.offset.to_be_bytes());
        buf[29..37].copy_from_slice(&it.issued_ms.to_be_bytes());
        buf[37..45].copy_from_slice(&it.issued_steady_ms.to_be_bytes());
        buf[45..53].copy_from_slice(&it.timeline.to_be_bytes());
        let mac = self.mac(&buf[..BODY_LEN]);
        buf[BODY_LEN..].copy_from_slice(&mac);
        STANDARD.encode_to_string(buf)
    }

    /// Decodes and authenticates a token. `None` when it is not one of ours or was altered.
    pub fn decode(&self, token: &str) -> Option<ShardIterator> {
        // Length first: nothing longer than a token is ever decoded.
        if token.len() != TOKEN_CHARS {
            return None;
        }
        let raw = STANDARD.decode_to_vec(token).ok()?;
        if raw.len() != TOKEN_LEN || raw[..8] != PREFIX || raw[8] != VERSION {
            return None;
        }
        let expected = self.mac(&raw[..BODY_LEN]);
        // Constant-time comparison so the MAC cannot be guessed byte by byte.
        let diff = expected
            .iter()
            .zip(&raw[BODY_LEN..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 || raw[53..BODY_LEN].iter().any(|&b| b != 0) {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(raw[i..i + 8].try_into().unwrap_or([0; 8]));
        Some(ShardIterator {
            stream_uid: u64_at(9),
            shard_index: u32::from_be_bytes(raw[17..21].try_into().unwrap_or([0; 4])),
            offset: u64_at(21),
            issued_ms: u64_at(29) as i64,
            issued_steady_ms: u64_at(37) as i64,
            timeline: u64_at(45),
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
            issued_steady_ms: 1_763_999_999_000,
            timeline: 0x5EED,
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
        raw[25] ^= 1; // move the offset
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
    #[test]
    fn has_aws_shape() {
        let c = IteratorCodec::new([7; 32]);
        let token = c.encode(&sample());
        assert_eq!(token.len(), 204);
        assert!((1..=512).contains(&token.len()));
        let raw = STANDARD.decode_to_vec(&token).unwrap();
        assert_eq!(STANDARD.encode_to_string(&raw), token);
        assert_eq!((raw.len() - 152) % 16, 0);
        assert_eq!(raw[..8], [0, 0, 0, 0, 0, 0, 0, 1]);
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn age_on_the_issuing_timeline_ignores_wall_steps() {
        let clock = Clock::system();
        let it = ShardIterator::issued_now(1, 0, 0, &clock);
        clock.step_wall_ms(HOUR).unwrap();
        assert!(
            it.age_ms(&clock) < ITERATOR_TTL_MS,
            "a forward step expires nothing"
        );
        clock.step_wall_ms(-2 * HOUR).unwrap();
        clock.advance_ms(ITERATOR_TTL_MS + 1).unwrap();
        assert!(
            it.age_ms(&clock) > ITERATOR_TTL_MS,
            "a backward step lends no extra life"
        );
    }

    #[test]
    fn age_of_a_token_from_another_run_is_at_least_this_runs_age() {
        let clock = Clock::system();
        let earlier = ShardIterator {
            issued_ms: clock.now_ms() - 60_000,
            issued_steady_ms: 12,
            timeline: 0,
            ..sample()
        };
        let age = earlier.age_ms(&clock);
        assert!((60_000..70_000).contains(&age), "{age}");
        // Issued an hour "later" than now: the wall clock stepped back while the broker was
        // down. Its age is then this run's (it expires 5 minutes into the run), not -1 h.
        let ahead = ShardIterator {
            issued_ms: clock.now_ms() + HOUR,
            ..earlier
        };
        let age = ahead.age_ms(&clock);
        assert!((0..=clock.uptime_ms()).contains(&age), "{age}");
        let stale = ShardIterator {
            issued_ms: clock.now_ms() - ITERATOR_TTL_MS - 1,
            ..earlier
        };
        assert!(stale.age_ms(&clock) > ITERATOR_TTL_MS);
    }

    #[test]
    fn rejects_the_old_45_byte_layout() {
        let mut old = vec![1u8];
        old.extend_from_slice(&[0; 44]);
        let c = IteratorCodec::new([7; 32]);
        assert_eq!(c.decode(&STANDARD.encode_to_string(old)), None);
    }

    /// Bounded fuzz: mutated tokens (bytes flipped, cut, extended, re-signed under another
    /// key, characters changed) and random strings never panic and never decode, except a
    /// mutation that leaves the token unchanged.
    #[test]
    fn fuzz_decode_never_accepts_a_forgery() {
        let c = IteratorCodec::new([7; 32]);
        let other = IteratorCodec::new([9; 32]);
        let mut run = crate::fuzzing::Run::new("shard_iterator", 20_000, 0x17E2_A70B);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        for i in 0..run.iterations() {
            let rng = &mut run.rng;
            let it = ShardIterator {
                stream_uid: rng.next(),
                shard_index: rng.next() as u32,
                offset: rng.next(),
                issued_ms: rng.next() as i64,
                issued_steady_ms: rng.next() as i64,
                timeline: rng.next(),
            };
            let token = c.encode(&it);
            assert_eq!(c.decode(&token), Some(it));
            let candidate = match i % 5 {
                0 => {
                    let mut raw = STANDARD.decode_to_vec(&token).unwrap();
                    for _ in 0..=rng.below(4) {
                        let at = rng.below(raw.len());
                        raw[at] ^= 1 << rng.below(8);
                    }
                    STANDARD.encode_to_string(raw)
                }
                1 => {
                    let mut t = token.clone().into_bytes();
                    let at = rng.below(t.len());
                    t[at] = alphabet[rng.below(alphabet.len())];
                    String::from_utf8(t).unwrap()
                }
                2 => {
                    let mut t = token.clone();
                    if rng.below(2) == 0 {
                        t.truncate(rng.below(t.len()));
                    } else {
                        for _ in 0..=rng.below(8) {
                            t.push(alphabet[rng.below(alphabet.len())] as char);
                        }
                    }
                    t
                }
                3 => other.encode(&it),
                _ => {
                    let len = if rng.below(2) == 0 {
                        TOKEN_CHARS
                    } else {
                        rng.below(600)
                    };
                    (0..len)
                        .map(|_| alphabet[rng.below(alphabet.len())] as char)
                        .collect()
                }
            };
            match run.input(i, || candidate.clone(), || c.decode(&candidate)) {
                None => {}
                Some(got) => assert!(
                    candidate == token && got == it,
                    "accepted a forged iterator {candidate}"
                ),
            }
        }
        run.finish();
    }
}
