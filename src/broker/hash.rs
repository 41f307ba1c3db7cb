//! The 128-bit hash key space: routing a record to a shard, and splitting the space
//! evenly among shards exactly as AWS does.

use md5::{Digest, Md5};

/// The largest hash key: 2^128 - 1.
pub const MAX_HASH_KEY: u128 = u128::MAX;

/// The hash key of a partition key: its MD5 digest read as a big-endian 128-bit integer.
pub fn partition_key_hash(partition_key: &[u8]) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key).into())
}

/// Parses an `ExplicitHashKey` (a decimal string). `None` when it is not a decimal
/// integer in `0..=2^128-1`.
pub fn parse_hash_key(decimal: &str) -> Option<u128> {
    if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    decimal.parse::<u128>().ok()
}

/// An inclusive range of hash keys owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HashRange {
    /// First hash key in the range.
    #[serde(with = "u128_string")]
    pub start: u128,
    /// Last hash key in the range (inclusive).
    #[serde(with = "u128_string")]
    pub end: u128,
}

impl HashRange {
    /// True when `key` lies in the range.
    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }
}

/// The ranges of `count` new shards covering the whole key space, as AWS lays them out:
/// each shard gets `floor(2^128 / count)` keys and the last one takes the remainder.
/// (A stream created with 4 shards on AWS starts shard 1 at 85070591730234615865843651857942052864,
/// which is 2^128 / 4.)
pub fn even_split(count: u32) -> Vec<HashRange> {
    assert!(count > 0, "a stream has at least one shard");
    // 2^128 / count without overflowing: (2^128 - 1) / count, corrected for the cases where
    // count divides 2^128 exactly (powers of two).
    if count == 1 {
        // 2^128 / 1 does not fit in a u128.
        return vec![HashRange {
            start: 0,
            end: MAX_HASH_KEY,
        }];
    }
    let count128 = count as u128;
    let mut step = MAX_HASH_KEY / count128;
    if MAX_HASH_KEY % count128 == count128 - 1 {
        step += 1;
    }
    (0..count128)
        .map(|i| HashRange {
            start: i * step,
            end: if i + 1 == count128 {
                MAX_HASH_KEY
            } else {
                (i + 1) * step - 1
            },
        })
        .collect()
}

/// Serde helper: u128 as a decimal string, since JSON numbers lose precision past 2^53.
pub(crate) mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_routing_matches_big_endian_digest() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(partition_key_hash(b"a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn even_split_of_four_matches_aws_boundaries() {
        let r = even_split(4);
        assert_eq!(r[0].start, 0);
        assert_eq!(r[1].start, 85070591730234615865843651857942052864);
        assert_eq!(r[3].end, MAX_HASH_KEY);
        for w in r.windows(2) {
            assert_eq!(w[0].end + 1, w[1].start);
        }
    }

    #[test]
    fn even_split_of_three_leaves_remainder_to_last_shard() {
        let r = even_split(3);
        assert_eq!(r[1].start, 113427455640312821154458202477256070485);
        assert_eq!(r[2].end, MAX_HASH_KEY);
        for w in r.windows(2) {
            assert_eq!(w[0].end + 1, w[1].start);
        }
    }

    #[test]
    fn one_shard_covers_everything() {
        assert_eq!(
            even_split(1),
            vec![HashRange {
                start: 0,
                end: MAX_HASH_KEY
            }]
        );
    }

    #[test]
    fn parse_hash_key_rejects_out_of_range_and_junk() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Some(MAX_HASH_KEY)
        );
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key(""), None);
        assert_eq!(parse_hash_key("1a"), None);
    }
}
