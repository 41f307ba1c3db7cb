//! Sequence numbers: what PutRecord returns and AT_SEQUENCE_NUMBER takes back.
//!
//! A sequence number has AWS's shape: a 56-digit decimal whose hexadecimal form (47
//! digits) is AWS's "version 2" layout, as reverse-engineered by kinesalite
//! (`db/index.js` `stringifySequence`/`parseSequence`) and pinned there against live AWS
//! (`test/helpers.js` `assertSequenceNumber`). Hex digits, most significant first:
//!
//! | hex digits | bits | field                                                                |
//! |------------|------|----------------------------------------------------------------------|
//! | 0          | 4    | `2` (puts the number between 2^185 and 1.5·2^185)                    |
//! | 1..10      | 36   | the shard's creation time, whole seconds since the Unix epoch        |
//! | 10         | 4    | the shard index, capped at 15 (AWS: its last hex digit; see below)   |
//! | 11..27     | 64   | the counter: 0 (top bit, AWS rejects 8..f) · shard index (22) · log offset + 1 (41) |
//! | 27..29     | 8    | `00` (AWS sends 00)                                                  |
//! | 29..38     | 36   | the record's arrival time, whole seconds since the Unix epoch        |
//! | 38..46     | 32   | the shard index                                                      |
//! | 46         | 4    | the version, `2`                                                     |
//!
//! Properties the broker relies on:
//! - **Write order inside a shard**: creation time, shard index and the counter's index
//!   part are fixed for a shard, and the counter's offset part grows with the offset, so
//!   numbers strictly increase in write order (the arrival time, lower down, never decides).
//! - **Children above parents**: a child is created no earlier than its parents (creation
//!   second ≥) and has a larger index. In the same creation second the capped index digit
//!   is ≥, and when that digit ties too the counter's index part (above the offset) is
//!   larger, so every child number exceeds every parent number. (Only the first 16 shards
//!   get AWS's "last hex digit": a digit that wrapped from f to 0 would put a child below
//!   its parent.)
//! - **O(1) decoding** to (shard index, offset): the offset is the counter's low 41 bits
//!   minus one. A counter offset part of 0 is the shard's starting sequence number, which
//!   names no record (as kinesalite's first record has counter 1 when it arrives in the
//!   shard's creation second): AT it and AFTER it both start at the first record.
//! - **Arrival time** is recoverable to the second (AWS's field); the millisecond is in the
//!   record itself.
//!
//! Limits: shard indexes up to [`MAX_SHARD_INDEX`] (2^22 − 1 = 4,194,303) and offsets up to
//! [`MAX_OFFSET`] (2^41 − 2 = 2,199,023,255,550 records in one shard: 70 years at AWS's 1,000
//! records/s per shard). Past them the field saturates: such records all get the largest
//! number the shard can express, so they cannot be addressed by AT/AFTER_SEQUENCE_NUMBER
//! (TRIM_HORIZON, LATEST, AT_TIMESTAMP and shard iterators, which carry the full 64-bit
//! offset, still reach them). Creation and arrival seconds fit 36 bits; AWS rejects
//! creation seconds from 16,025,175,000 (year 2477) on.
//!
//! Parsing ([`AwsSequence::parse`]) follows kinesalite's `parseSequence`, which mirrors what
//! AWS accepts: numbers below 2^129 are AWS's old "version 0" layout, numbers between 2^185
//! and 1.5·2^185 carry their version in the last hex digit (1 and 2 are known), anything
//! else is invalid.

/// Bits of the counter's offset part.
const OFFSET_BITS: u32 = 41;
/// Bits of the counter's shard-index part.
const SHARD_BITS: u32 = 22;
/// Largest shard index the counter can carry.
pub const MAX_SHARD_INDEX: u32 = (1 << SHARD_BITS) - 1;
/// Largest log offset a sequence number can name (the counter holds offset + 1).
pub const MAX_OFFSET: u64 = (1 << OFFSET_BITS) - 2;
/// Creation seconds AWS refuses (kinesalite: "Date too large").
const MAX_CREATE_SECS: u64 = 16_025_175_000;
/// Largest value of a 36-bit seconds field.
const MAX_SECS: u64 = (1 << 36) - 1;
/// The version this broker writes.
pub const VERSION: u8 = 2;

/// A sequence number this broker writes, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceNumber {
    /// The shard's creation time, whole seconds.
    pub shard_created_s: u64,
    /// Index of the shard.
    pub shard_index: u32,
    /// Offset of the record in the shard's log; `None` for the shard's starting sequence
    /// number, which names no record.
    pub offset: Option<u64>,
    /// Arrival time in ms, truncated to the second the number carries (the shard's
    /// creation second for a starting number).
    pub arrival_ms: u64,
}

impl SequenceNumber {
    /// The sequence number of the record at `offset` of shard `shard_index` created at
    /// `shard_created_ms`, that arrived at `arrival_ms`.
    pub fn record(shard_created_ms: i64, shard_index: u32, offset: u64, arrival_ms: i64) -> Self {
        Self {
            shard_created_s: secs(shard_created_ms),
            shard_index,
            offset: Some(offset),
            arrival_ms: secs(arrival_ms) * 1000,
        }
    }

    /// The starting sequence number of a shard.
    pub fn start(shard_created_ms: i64, shard_index: u32) -> Self {
        Self {
            shard_created_s: secs(shard_created_ms),
            shard_index,
            offset: None,
            arrival_ms: secs(shard_created_ms) * 1000,
        }
    }

    /// The counter field: shard index above offset + 1 (0: the starting number).
    fn counter(&self) -> u64 {
        let index = self.shard_index.min(MAX_SHARD_INDEX) as u64;
        let seq = self.offset.map_or(0, |o| o.min(MAX_OFFSET) + 1);
        (index << OFFSET_BITS) | seq
    }

    /// The 188-bit value as (high 128 bits, low 128 bits).
    fn to_bits(self) -> (u128, u128) {
        let counter = self.counter() as u128;
        let lo = VERSION as u128
            | (self.shard_index as u128) << 4
            | ((self.arrival_ms / 1000).min(MAX_SECS) as u128) << 36
            // byte at bits 79..72 stays 0
            | (counter & ((1 << 48) - 1)) << 80;
        let hi = (counter >> 48)
            | (self.shard_index.min(15) as u128) << 16
            | (self.shard_created_s.min(MAX_SECS) as u128) << 20
            | 2 << 56;
        (hi, lo)
    }

    /// The decimal form sent on the wire (56 digits).
    pub fn encode(self) -> String {
        let (hi, lo) = self.to_bits();
        to_decimal(hi, lo)
    }
}

fn secs(ms: i64) -> u64 {
    (ms.max(0) / 1000) as u64
}

/// A sequence number as AWS parses it (kinesalite's `parseSequence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsSequence {
    /// 0, 1 or 2.
    pub version: u8,
    /// The shard creation time, whole seconds.
    pub shard_created_s: u64,
    /// The shard index it encodes; negative when its top hex digit is 8..f (AWS reads
    /// `80000000` as -2147483648).
    pub shard_index: i64,
    /// The arrival time, whole seconds (versions 1 and 2).
    pub arrival_s: Option<u64>,
    /// The counter (version 2).
    pub counter: u64,
    /// Version 2's hex digit 10 (high byte) and digits 27..29 (low byte), which AWS does
    /// not check: this broker writes the capped shard index and 0.
    pub unknown: u16,
}

impl AwsSequence {
    /// Parses a decimal as AWS does. `None` for what AWS reports as invalid: not a decimal,
    /// out of every version's range, an unknown version, a creation time past year 2477, a
    /// version-2 counter with its top bit set.
    pub fn parse(decimal: &str) -> Option<AwsSequence> {
        let hex = to_hex(decimal)?;
        let h = hex.as_bytes();
        // kinesalite: below 2^124 add 2^124; below 2^129 version 0; between 2^185 and
        // 1.5·2^185 the last digit; otherwise none.
        let version = if h.len() <= 32 || (h.len() == 33 && h[0] == b'1') {
            0
        } else if h.len() == 47 && h[0] == b'2' && h[1..].iter().any(|&c| c != b'0') {
            (h[46] as char).to_digit(16)? as u8
        } else {
            return None;
        };
        let hex = if h.len() < 32 {
            // below 2^124: kinesalite adds 2^124 ("1" then 31 digits)
            format!("1{hex:0>31}")
        } else {
            hex
        };
        let field = |a: usize, b: usize| -> Option<u64> {
            let s = hex.get(a.min(hex.len())..b.min(hex.len()))?;
            if s.is_empty() {
                return Some(0);
            }
            u64::from_str_radix(s, 16).ok()
        };
        match version {
            2 => {
                let counter = field(11, 27)?;
                if counter >> 63 != 0 {
                    return None;
                }
                let created = field(1, 10)?;
                if created >= MAX_CREATE_SECS {
                    return None;
                }
                let raw_shard = field(38, 46)?;
                let shard_index = if raw_shard >> 31 != 0 {
                    -(raw_shard as i64)
                } else {
                    raw_shard as i64
                };
                Some(AwsSequence {
                    version,
                    shard_created_s: created,
                    shard_index,
                    arrival_s: Some(field(29, 38)?),
                    counter,
                    unknown: (field(10, 11)? << 8 | field(27, 29)?) as u16,
                })
            }
            1 => Some(AwsSequence {
                version,
                shard_created_s: field(1, 10)?,
                shard_index: field(38, 46)? as i64,
                arrival_s: Some(field(13, 22)?),
                counter: field(36, 38)?,
                unknown: 0,
            }),
            0 => {
                let created = field(1, 10)?;
                if created >= MAX_CREATE_SECS {
                    return None;
                }
                Some(AwsSequence {
                    version,
                    shard_created_s: created,
                    shard_index: field(28, 32)? as i64,
                    arrival_s: None,
                    counter: 0,
                    unknown: 0,
                })
            }
            _ => None,
        }
    }

    /// The number as one this broker wrote: version 2 and a counter consistent with the
    /// shard index. `None` when it cannot be ours.
    pub fn ours(&self) -> Option<SequenceNumber> {
        if self.version != VERSION || self.shard_index < 0 {
            return None;
        }
        let shard_index = u32::try_from(self.shard_index).ok()?;
        let index_part = self.counter >> OFFSET_BITS;
        if index_part != shard_index.min(MAX_SHARD_INDEX) as u64
            || self.unknown != (shard_index.min(15) as u16) << 8
        {
            return None;
        }
        let seq = self.counter & ((1 << OFFSET_BITS) - 1);
        Some(SequenceNumber {
            shard_created_s: self.shard_created_s,
            shard_index,
            offset: seq.checked_sub(1),
            arrival_ms: self.arrival_s.unwrap_or(0).saturating_mul(1000),
        })
    }
}

impl SequenceNumber {
    /// Decodes a sequence number this broker wrote. `None` when AWS would call it invalid
    /// or it is not of this broker's version.
    pub fn decode(decimal: &str) -> Option<SequenceNumber> {
        AwsSequence::parse(decimal)?.ours()
    }
}

/// The shard id AWS prints for an index a sequence number encodes (kinesalite
/// `shardIdName`): negative indexes get a second `-` and 11 digits.
pub fn encoded_shard_id(index: i64) -> String {
    if index < 0 {
        format!("shardId--{:011}", index.unsigned_abs())
    } else {
        format!("shardId-{index:012}")
    }
}

/// Numeric order of two canonical decimal sequence numbers (no leading zeros): by length,
/// then digit by digit.
pub fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

/// Decimal of `hi · 2^128 + lo` (runs for every record GetRecords returns: no allocation but
/// the string).
fn to_decimal(hi: u128, lo: u128) -> String {
    // Little-endian u64 limbs, divided by 10^19 until zero; digits written from the right.
    let mut limbs = [lo as u64, (lo >> 64) as u64, hi as u64, (hi >> 64) as u64];
    const CHUNK: u128 = 10_000_000_000_000_000_000;
    let mut buf = [b'0'; 80];
    let mut end = buf.len();
    loop {
        let mut rem: u128 = 0;
        for l in limbs.iter_mut().rev() {
            let cur = (rem << 64) | *l as u128;
            *l = (cur / CHUNK) as u64;
            rem = cur % CHUNK;
        }
        let mut chunk = rem as u64;
        let last = limbs.iter().all(|&l| l == 0);
        for _ in 0..19 {
            end -= 1;
            buf[end] = b'0' + (chunk % 10) as u8;
            chunk /= 10;
            if last && chunk == 0 {
                break;
            }
        }
        if last {
            break;
        }
    }
    // Only ASCII digits were written.
    String::from_utf8_lossy(&buf[end..]).into_owned()
}

/// Lowercase hex (no leading zeros, "0" for zero) of a decimal string, or `None` when it
/// is not digits or is larger than any sequence number can be (more than 56 significant
/// digits: above 1.5·2^185 ≈ 7.4·10^55).
fn to_hex(decimal: &str) -> Option<String> {
    if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = decimal.trim_start_matches('0');
    if digits.len() > 56 {
        return None;
    }
    let mut limbs = [0u64; 4];
    for d in digits.bytes() {
        let mut carry = (d - b'0') as u128;
        for l in limbs.iter_mut() {
            let cur = *l as u128 * 10 + carry;
            *l = cur as u64;
            carry = cur >> 64;
        }
        if carry != 0 {
            return None;
        }
    }
    let mut out = String::with_capacity(48);
    for l in limbs.iter().rev() {
        if out.is_empty() {
            if *l != 0 {
                out.push_str(&format!("{l:x}"));
            }
        } else {
            out.push_str(&format!("{l:016x}"));
        }
    }
    if out.is_empty() {
        out.push('0');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_hex(hex: &str) -> String {
        // Test helper: hex (≤ 64 digits) to decimal.
        let padded = format!("{hex:0>64}");
        let hi = u128::from_str_radix(&padded[..32], 16).unwrap();
        let lo = u128::from_str_radix(&padded[32..], 16).unwrap();
        to_decimal(hi, lo)
    }

    fn hex_of(s: &SequenceNumber) -> String {
        to_hex(&s.encode()).unwrap()
    }

    const CREATED_MS: i64 = 1_764_000_000_123;

    #[test]
    fn has_aws_shape() {
        for index in [0u32, 1, 7] {
            let s = SequenceNumber::record(CREATED_MS, index, 42, CREATED_MS + 5_000);
            let dec = s.encode();
            assert_eq!(dec.len(), 56, "{dec}");
            let hex = hex_of(&s);
            // kinesalite's assertSequenceNumber, pinned against AWS:
            // ^20[0-9a-f]{8}IX[0-9a-f]{16}000[0-9a-f]{8}0000000IX2$
            assert_eq!(hex.len(), 47, "{hex}");
            assert_eq!(&hex[..2], "20");
            assert_eq!(&hex[10..11], &index.to_string());
            assert_eq!(&hex[27..30], "000");
            assert_eq!(&hex[38..45], "0000000");
            assert_eq!(&hex[45..], format!("{index}2"));
            assert_eq!(u64::from_str_radix(&hex[1..10], 16).unwrap(), 1_764_000_000);
            assert_eq!(
                u64::from_str_radix(&hex[29..38], 16).unwrap(),
                1_764_000_005
            );
        }
    }

    #[test]
    fn round_trips() {
        for (index, offset) in [
            (0, 0),
            (7, 42),
            (MAX_SHARD_INDEX, MAX_OFFSET),
            (16, 1 << 40),
        ] {
            let s = SequenceNumber::record(CREATED_MS, index, offset, CREATED_MS + 999_999);
            assert_eq!(SequenceNumber::decode(&s.encode()), Some(s));
        }
        let start = SequenceNumber::start(CREATED_MS, 3);
        assert_eq!(SequenceNumber::decode(&start.encode()), Some(start));
        assert_eq!(start.offset, None);
    }

    fn lt(a: &SequenceNumber, b: &SequenceNumber) -> bool {
        compare(&a.encode(), &b.encode()).is_lt()
    }

    #[test]
    fn increases_in_write_order_whatever_the_arrival_time() {
        let a = SequenceNumber::record(CREATED_MS, 3, 1, CREATED_MS + 9_000);
        let b = SequenceNumber::record(CREATED_MS, 3, 2, CREATED_MS + 1_000);
        assert!(lt(&a, &b));
        let start = SequenceNumber::start(CREATED_MS, 3);
        let first = SequenceNumber::record(CREATED_MS, 3, 0, CREATED_MS);
        assert!(lt(&start, &first));
    }

    #[test]
    fn children_are_above_parents_even_in_the_same_second() {
        for (parent, child) in [(0u32, 1u32), (14, 15), (15, 16), (16, 17), (3, 40)] {
            let p = SequenceNumber::record(CREATED_MS, parent, MAX_OFFSET, CREATED_MS + 60_000);
            let c = SequenceNumber::start(CREATED_MS, child);
            assert!(lt(&p, &c), "{parent} -> {child}");
            let later = SequenceNumber::start(CREATED_MS + 1_000, child);
            assert!(lt(&p, &later));
        }
    }

    #[test]
    fn offsets_past_the_limit_saturate() {
        let a = SequenceNumber::record(CREATED_MS, 1, MAX_OFFSET + 5, CREATED_MS);
        let d = SequenceNumber::decode(&a.encode()).unwrap();
        assert_eq!(d.offset, Some(MAX_OFFSET));
    }

    #[test]
    fn parses_as_kinesalite_pins_it() {
        // Valid: all zero, version 2 and 1; an 8 near the end reads as a negative shard.
        let v2 = AwsSequence::parse(&from_hex("20000000000000000000000000000000000000000000002"))
            .unwrap();
        assert_eq!((v2.version, v2.shard_index), (2, 0));
        let v1 = AwsSequence::parse(&from_hex("20000000000000000000000000000000000000000000001"))
            .unwrap();
        assert_eq!(v1.version, 1);
        let neg = AwsSequence::parse(&from_hex("20000000000000000000000000000000000000800000002"))
            .unwrap();
        assert_eq!(neg.shard_index, -2_147_483_648);
        assert_eq!(encoded_shard_id(neg.shard_index), "shardId--02147483648");
        // Small numbers are version 0: '5' encodes shard 5, '0' shard 0.
        let five = AwsSequence::parse("5").unwrap();
        assert_eq!((five.version, five.shard_index), (0, 5));
        assert_eq!(AwsSequence::parse("0").unwrap().version, 0);
        // Invalid: versions 0 (at exactly 2^185), 3, 4, a leading 3 or 1, an 8 in the
        // counter, a large date, all f.
        for hex in [
            "20000000000000000000000000000000000000000000000",
            "20000000000000000000000000000000000000000000003",
            "20000000000000000000000000000000000000000000004",
            "30000000000000000000000000000000000000000000001",
            "1ffffffffff7fffffffffffffff000000000007fffffff2",
            "20000000000800000000000000000000000000000000002",
            "13bb2cc3d80000000000000000000000",
            "2ffffffffff7fffffffffffffff000000000007fffffff2",
        ] {
            assert_eq!(AwsSequence::parse(&from_hex(hex)), None, "{hex}");
        }
        assert_eq!(
            from_hex("13bb2cc3d80000000000000000000000"),
            "26227199374822427428162556223570313216"
        );
        assert_eq!(AwsSequence::parse("abc"), None);
        assert_eq!(AwsSequence::parse(""), None);
        assert_eq!(AwsSequence::parse(&"9".repeat(60)), None);
    }

    #[test]
    fn the_old_39_digit_form_is_not_ours() {
        // arrival ms << 86 | shard << 64 | offset, as brokers before issue 16 wrote.
        let old: u128 = (1_764_000_000_123u128 << 86) | (1 << 64) | 5;
        assert_eq!(SequenceNumber::decode(&old.to_string()), None);
    }

    #[test]
    fn decimal_conversions_agree() {
        for v in [0u128, 1, 9, 10, u64::MAX as u128, u128::MAX] {
            assert_eq!(to_decimal(0, v), v.to_string());
            assert_eq!(to_hex(&v.to_string()).unwrap(), format!("{v:x}"));
        }
        assert_eq!(to_hex("0007").unwrap(), "7");
    }

    /// Bounded fuzz: mutations of valid numbers and random strings never panic, and what
    /// decodes re-encodes to itself (one number, one meaning).
    #[test]
    fn fuzz_parse() {
        let mut run = crate::fuzzing::Run::new("sequence_number", 20_000, 0x5EC0_F0A7);
        let n = run.iterations();
        let mut decoded = 0u64;
        for i in 0..n {
            let rng = &mut run.rng;
            let s = match i % 4 {
                0 | 1 => {
                    let valid = SequenceNumber::record(
                        rng.below(1 << 34) as i64 * 1000,
                        rng.below(1 << 23) as u32,
                        rng.next() >> rng.below(64),
                        rng.below(1 << 35) as i64 * 1000,
                    )
                    .encode();
                    let mut b = valid.into_bytes();
                    for _ in 0..=rng.below(3) {
                        match rng.below(4) {
                            0 if !b.is_empty() => {
                                let at = rng.below(b.len());
                                b[at] = b'0' + rng.below(10) as u8;
                            }
                            1 if !b.is_empty() => {
                                b.remove(rng.below(b.len()));
                            }
                            2 => {
                                let at = rng.below(b.len() + 1);
                                b.insert(at, b'0' + rng.below(10) as u8);
                            }
                            _ => {
                                let at = rng.below(b.len() + 1);
                                b.insert(at, rng.below(128) as u8);
                            }
                        }
                    }
                    String::from_utf8_lossy(&b).into_owned()
                }
                2 => {
                    let len = rng.below(70);
                    (0..len)
                        .map(|_| (b'0' + rng.below(10) as u8) as char)
                        .collect()
                }
                _ => {
                    let len = rng.below(70);
                    (0..len)
                        .map(|_| char::from_u32(rng.below(0x250) as u32).unwrap_or('x'))
                        .collect()
                }
            };
            let (_, decoded_number) = run.input(
                i,
                || s.clone(),
                || (AwsSequence::parse(&s), SequenceNumber::decode(&s)),
            );
            if let Some(d) = decoded_number {
                decoded += 1;
                // Canonical decimals round-trip; a decoded number always names its shard.
                if !s.starts_with('0') {
                    assert_eq!(d.encode(), s, "{s}");
                }
            }
        }
        run.finish();
        assert!(n < 100 || decoded > 0, "no mutation kept a valid number");
    }
}
