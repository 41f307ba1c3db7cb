//! Sequence numbers: what PutRecord returns and AT_SEQUENCE_NUMBER takes back.
//!
//! A sequence number is a decimal string of a 128-bit integer laid out as
//!
//! | bits    | width | field                                                     |
//! |---------|-------|-----------------------------------------------------------|
//! | 127..86 | 42    | arrival time, ms since the Unix epoch (monotonic per shard) |
//! | 85..64  | 22    | shard index (the number in `shardId-000000000007`)        |
//! | 63..0   | 64    | the record's offset in the shard's log                    |
//!
//! Why this layout: the time in the high bits orders records across shards the way AWS
//! users expect (a later write has a larger number), and makes a child shard's numbers
//! larger than its parents' (children are created later and have larger indexes). The
//! low bits make the number decodable back to (shard, offset), so seeking is direct and
//! a sequence number from another shard is recognised and rejected.

/// Bits of the shard index field.
const SHARD_BITS: u32 = 22;
/// Largest shard index a sequence number can carry.
pub const MAX_SHARD_INDEX: u32 = (1 << SHARD_BITS) - 1;
/// Largest arrival time a sequence number can carry (year 2109).
const MAX_TIME_MS: u64 = (1 << 42) - 1;

/// A decoded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceNumber {
    /// Arrival time in ms.
    pub arrival_ms: u64,
    /// Index of the shard the record is in.
    pub shard_index: u32,
    /// Offset of the record in that shard's log.
    pub offset: u64,
}

impl SequenceNumber {
    /// The 128-bit value.
    pub fn to_u128(self) -> u128 {
        ((self.arrival_ms.min(MAX_TIME_MS) as u128) << 86)
            | ((self.shard_index as u128) << 64)
            | self.offset as u128
    }

    /// The decimal form sent on the wire.
    pub fn encode(self) -> String {
        self.to_u128().to_string()
    }

    /// Decodes a decimal sequence number. `None` when it is not a decimal number that fits
    /// in 128 bits (AWS reports those as invalid).
    pub fn decode(decimal: &str) -> Option<SequenceNumber> {
        let v = super::hash::parse_hash_key(decimal)?;
        Some(SequenceNumber {
            arrival_ms: (v >> 86) as u64,
            shard_index: ((v >> 64) as u32) & MAX_SHARD_INDEX,
            offset: v as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_decimal() {
        let s = SequenceNumber {
            arrival_ms: 1_764_000_000_123,
            shard_index: 7,
            offset: 42,
        };
        assert_eq!(SequenceNumber::decode(&s.encode()), Some(s));
    }

    #[test]
    fn later_arrival_orders_before_shard_and_offset() {
        let a = SequenceNumber {
            arrival_ms: 10,
            shard_index: 9,
            offset: 1000,
        };
        let b = SequenceNumber {
            arrival_ms: 11,
            shard_index: 0,
            offset: 0,
        };
        assert!(a.to_u128() < b.to_u128());
    }

    #[test]
    fn same_time_orders_by_offset_within_shard() {
        let a = SequenceNumber {
            arrival_ms: 10,
            shard_index: 3,
            offset: 1,
        };
        let b = SequenceNumber {
            arrival_ms: 10,
            shard_index: 3,
            offset: 2,
        };
        assert!(a.encode().parse::<u128>().unwrap() < b.encode().parse::<u128>().unwrap());
    }

    #[test]
    fn decode_rejects_non_numbers_and_overflow() {
        assert_eq!(SequenceNumber::decode("abc"), None);
        assert_eq!(
            SequenceNumber::decode("340282366920938463463374607431768211456"),
            None
        );
        assert!(SequenceNumber::decode("0").is_some());
    }
}
