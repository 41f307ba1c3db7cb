//! Request ids: `x-amzn-RequestId` (a UUID, as AWS sends) and `x-amz-id-2` (72 opaque bytes
//! in base64, as AWS sends; kinesalite `test/connection.js` checks both on every response).
//!
//! Ids only need to be unique, not secret, so they come from a counter run through
//! SplitMix64 (a bijection on `u64`, so distinct counters give distinct ids) under a random
//! per-process seed, rather than a `getrandom` system call per request.

use std::sync::atomic::{AtomicU64, Ordering};

/// The ids of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIds {
    /// `x-amzn-RequestId`: `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`, lower-case hex.
    pub request_id: String,
    /// `x-amz-id-2`: 72 bytes, standard base64.
    pub id_2: String,
}

/// Hands out [`RequestIds`]; shared by every connection.
#[derive(Debug)]
pub struct RequestIdGenerator {
    seed: u64,
    counter: AtomicU64,
}

impl RequestIdGenerator {
    /// A generator with a random seed, so ids differ across restarts.
    pub fn new() -> Self {
        let mut seed = [0u8; 8];
        // Without OS randomness the ids are still unique within this process; only
        // uniqueness across restarts suffers, so fall back to the clock.
        if getrandom::fill(&mut seed).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            seed = nanos.to_le_bytes();
        }
        Self::with_seed(u64::from_le_bytes(seed))
    }

    /// A generator with a fixed seed (tests).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            counter: AtomicU64::new(0),
        }
    }

    /// The next ids.
    pub fn next(&self) -> RequestIds {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Ten 64-bit words per request: two for the UUID, nine for id-2 (72 bytes).
        let base = n.wrapping_mul(16);
        let word = |i: u64| splitmix64(self.seed.wrapping_add(base.wrapping_add(i)));
        let hi = word(0);
        let lo = word(1);
        let mut uuid = [0u8; 16];
        uuid[..8].copy_from_slice(&hi.to_be_bytes());
        uuid[8..].copy_from_slice(&lo.to_be_bytes());
        uuid[6] = (uuid[6] & 0x0f) | 0x40; // version 4
        uuid[8] = (uuid[8] & 0x3f) | 0x80; // RFC 4122 variant
        let mut id_2 = [0u8; 72];
        for (i, chunk) in id_2.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&word(2 + i as u64).to_le_bytes());
        }
        RequestIds {
            request_id: format_uuid(&uuid),
            id_2: base64_simd::STANDARD.encode_to_string(id_2),
        }
    }
}

impl Default for RequestIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// SplitMix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn format_uuid(b: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn is_uuid(s: &str) -> bool {
        let groups: Vec<&str> = s.split('-').collect();
        groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && s.bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn request_id_is_a_lowercase_v4_uuid() {
        let ids = RequestIdGenerator::new().next();
        assert!(is_uuid(&ids.request_id), "{}", ids.request_id);
        assert_eq!(&ids.request_id[14..15], "4");
    }

    #[test]
    fn id_2_is_72_bytes_of_base64() {
        let ids = RequestIdGenerator::with_seed(7).next();
        let bytes = base64_simd::STANDARD.decode_to_vec(&ids.id_2).unwrap();
        assert_eq!(bytes.len(), 72);
    }

    #[test]
    fn ids_do_not_repeat() {
        let g = RequestIdGenerator::with_seed(u64::MAX - 3);
        let ids: HashSet<String> = (0..10_000).map(|_| g.next().request_id).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn different_seeds_give_different_ids() {
        assert_ne!(
            RequestIdGenerator::with_seed(1).next(),
            RequestIdGenerator::with_seed(2).next()
        );
    }
}
