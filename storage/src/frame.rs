//! The record frame: the unit written to a segment, one per record.
//!
//! # Frame format (version 1)
//!
//! All integers are little-endian. A frame starts right after the previous one; there is no
//! padding or alignment.
//!
//! | Bytes        | Field        | Encoding | Meaning                                                     |
//! |--------------|--------------|----------|-------------------------------------------------------------|
//! | 0..4         | `body_len`   | u32      | length of everything after the CRC: `24 + pk + ehk + data`  |
//! | 4..8         | `crc`        | u32      | CRC-32 (IEEE, `crc32fast`) of bytes `8 .. 8 + body_len`     |
//! | 8..16        | `offset`     | u64      | the record's log offset (dense, starts at 0)                |
//! | 16..24       | `arrival_ms` | i64      | arrival time, ms since the Unix epoch (monotonic per log)   |
//! | 24..26       | `pk_len`     | u16      | partition key length                                        |
//! | 26..28       | `ehk_len`    | u16      | explicit hash key length; `0xFFFF` = no explicit hash key   |
//! | 28..32       | `data_len`   | u32      | data length                                                 |
//! | 32..         | payload      | bytes    | partition key, then explicit hash key, then data            |
//!
//! `body_len == 0` can never be a real frame (the fixed part alone is 24 bytes), so a zero
//! length word marks the end of the written part of a preallocated, zero-filled segment.
//!
//! Why a CRC per record and not per batch: the reader returns any record range and checks each
//! record it returns without reading its neighbours; measured, the per-record CRC costs well
//! under 10% of append throughput for 1 KiB records (see `storage/README.md`).
//! The offset is inside the CRC so that a stale but intact frame left at the wrong position can
//! never be mistaken for the next record.

use crate::{Error, Record, RecordView, Result};

/// Size of the fixed part of a frame (length, CRC and the fields up to `data_len`).
pub(crate) const FRAME_HEADER_BYTES: usize = 32;
/// Bytes before the CRC-covered body: `body_len` and `crc`.
const PREFIX_BYTES: usize = 8;
/// Size of the fixed part covered by the CRC.
const BODY_FIXED_BYTES: usize = FRAME_HEADER_BYTES - PREFIX_BYTES;
/// `ehk_len` value meaning "no explicit hash key".
const NO_EHK: u16 = u16::MAX;
/// Longest partition key the format can hold.
pub(crate) const MAX_PK_BYTES: usize = u16::MAX as usize;
/// Longest explicit hash key the format can hold (`0xFFFF` is taken by "absent").
pub(crate) const MAX_EHK_BYTES: usize = u16::MAX as usize - 1;

/// Encoded size of `r`'s frame. Call [`validate`] first.
#[inline]
pub(crate) fn frame_len(r: &Record<'_>) -> usize {
    FRAME_HEADER_BYTES
        + r.partition_key.len()
        + r.explicit_hash_key.map_or(0, <[u8]>::len)
        + r.data.len()
}

/// Checks that `r`'s fields fit the format's length fields.
pub(crate) fn validate(r: &Record<'_>) -> Result<()> {
    if r.partition_key.len() > MAX_PK_BYTES {
        return Err(Error::FieldTooLong {
            field: "partition_key",
            len: r.partition_key.len(),
            max: MAX_PK_BYTES,
        });
    }
    if let Some(ehk) = r.explicit_hash_key
        && ehk.len() > MAX_EHK_BYTES
    {
        return Err(Error::FieldTooLong {
            field: "explicit_hash_key",
            len: ehk.len(),
            max: MAX_EHK_BYTES,
        });
    }
    // The whole frame must fit the u32 length word.
    let max_data = u32::MAX as usize - BODY_FIXED_BYTES - MAX_PK_BYTES - MAX_EHK_BYTES;
    if r.data.len() > max_data {
        return Err(Error::FieldTooLong {
            field: "data",
            len: r.data.len(),
            max: max_data,
        });
    }
    Ok(())
}

/// Appends `r`'s frame to `out`, with `offset` and `arrival_ms`. Call [`validate`] first.
///
/// This is the only function that writes frames; [`decode`] is the only one that reads them.
/// It appends rather than filling a slice: the writer reuses one buffer per log, and a
/// slice would have to be zero-filled first only to be overwritten.
pub(crate) fn encode(out: &mut Vec<u8>, offset: u64, arrival_ms: i64, r: &Record<'_>) {
    let pk = r.partition_key;
    let ehk = r.explicit_hash_key.unwrap_or(&[]);
    let ehk_len: u16 = match r.explicit_hash_key {
        // validate() bounds these lengths; the casts cannot truncate.
        Some(e) => e.len() as u16,
        None => NO_EHK,
    };
    let start = out.len();
    let len = frame_len(r);
    let body_len = (len - PREFIX_BYTES) as u32;
    out.reserve(len);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the CRC, once the body is there
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&arrival_ms.to_le_bytes());
    out.extend_from_slice(&(pk.len() as u16).to_le_bytes());
    out.extend_from_slice(&ehk_len.to_le_bytes());
    out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
    out.extend_from_slice(pk);
    out.extend_from_slice(ehk);
    out.extend_from_slice(r.data);
    let crc = crc32fast::hash(&out[start + PREFIX_BYTES..]);
    out[start + 4..start + PREFIX_BYTES].copy_from_slice(&crc.to_le_bytes());
}

/// What [`decode`] found at a position.
#[derive(Debug)]
pub(crate) enum Decoded<'a> {
    /// A zero length word, or fewer than 4 bytes left: the end of the written data.
    End,
    /// A valid frame, and its total encoded length.
    Frame(RecordView<'a>, usize),
    /// Bytes that are not a valid frame; the reason says which check failed.
    Bad(&'static str),
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
#[inline]
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes the frame at the start of `buf` (which ends at the last byte the caller may read).
///
/// With `check_crc` false only the lengths are checked: use it only on bytes whose CRC was
/// already verified.
pub(crate) fn decode(buf: &[u8], check_crc: bool) -> Decoded<'_> {
    if buf.len() < 4 {
        return Decoded::End;
    }
    let body_len = u32_at(buf, 0) as usize;
    if body_len == 0 {
        return Decoded::End;
    }
    if body_len < BODY_FIXED_BYTES {
        return Decoded::Bad("frame length smaller than the fixed header");
    }
    let total = match body_len.checked_add(PREFIX_BYTES) {
        Some(t) if t <= buf.len() => t,
        _ => return Decoded::Bad("frame length runs past the end of the segment"),
    };
    let body = &buf[PREFIX_BYTES..total];
    if check_crc && crc32fast::hash(body) != u32_at(buf, 4) {
        return Decoded::Bad("CRC mismatch");
    }
    let offset = u64_at(body, 0);
    let arrival_ms = u64_at(body, 8) as i64;
    let pk_len = u16_at(body, 16) as usize;
    let ehk_raw = u16_at(body, 18);
    let ehk_len = if ehk_raw == NO_EHK {
        0
    } else {
        ehk_raw as usize
    };
    let data_len = u32_at(body, 20) as usize;
    if BODY_FIXED_BYTES + pk_len + ehk_len + data_len != body_len {
        return Decoded::Bad("field lengths disagree with the frame length");
    }
    let mut p = BODY_FIXED_BYTES;
    let partition_key = &body[p..p + pk_len];
    p += pk_len;
    let explicit_hash_key = if ehk_raw == NO_EHK {
        None
    } else {
        Some(&body[p..p + ehk_len])
    };
    p += ehk_len;
    let data = &body[p..p + data_len];
    Decoded::Frame(
        RecordView {
            offset,
            arrival_ms,
            partition_key,
            explicit_hash_key,
            data,
        },
        total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(pk: &'a [u8], ehk: Option<&'a [u8]>, data: &'a [u8]) -> Record<'a> {
        Record {
            partition_key: pk,
            explicit_hash_key: ehk,
            data,
        }
    }

    /// Pins the exact bytes of one frame: an accidental format change fails here.
    #[test]
    fn frame_format_changed_golden_bytes() {
        let r = rec(b"pk", Some(b"42"), b"hello");
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1_700_000_000_123, &r);
        let expected: Vec<u8> = [
            &[33, 0, 0, 0][..],                  // body_len = 24 + 2 + 2 + 5
            &[0, 0, 0, 0][..],                   // crc placeholder, checked below
            &[7, 0, 0, 0, 0, 0, 0, 0][..],       // offset
            &1_700_000_000_123i64.to_le_bytes(), // arrival
            &[2, 0][..],                         // pk_len
            &[2, 0][..],                         // ehk_len
            &[5, 0, 0, 0][..],                   // data_len
            b"pk",
            b"42",
            b"hello",
        ]
        .concat();
        assert_eq!(buf.len(), 41);
        assert_eq!(&buf[0..4], &expected[0..4]);
        assert_eq!(&buf[8..], &expected[8..]);
        // The CRC value itself is pinned too (CRC-32/IEEE of bytes 8..).
        assert_eq!(
            u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]),
            GOLDEN_CRC
        );
    }

    /// CRC-32/IEEE of the golden body, computed independently (Python `zlib.crc32`).
    const GOLDEN_CRC: u32 = 0x84DA_873C;

    #[test]
    fn decode_round_trip_loses_fields() {
        for r in [
            rec(b"", None, b""),
            rec(b"k", None, b"data"),
            rec(b"key", Some(b""), &[9u8; 300]),
        ] {
            let mut buf = vec![0xAB; 3]; // appended after what is there
            encode(&mut buf, 3, -5, &r);
            buf.drain(..3);
            let n = frame_len(&r);
            assert_eq!(buf.len(), n);
            buf.extend([0u8; 10]);
            match decode(&buf, true) {
                Decoded::Frame(v, len) => {
                    assert_eq!(len, n);
                    assert_eq!((v.offset, v.arrival_ms), (3, -5));
                    assert_eq!(v.partition_key, r.partition_key);
                    assert_eq!(v.explicit_hash_key, r.explicit_hash_key);
                    assert_eq!(v.data, r.data);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn decode_accepts_flipped_bit() {
        let r = rec(b"k", None, b"payload");
        let mut buf = Vec::new();
        encode(&mut buf, 0, 0, &r);
        for i in 4..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert!(
                matches!(decode(&b, true), Decoded::Bad(_)),
                "flip at byte {i} not detected"
            );
        }
    }

    #[test]
    fn decode_reads_past_buffer_on_torn_frame() {
        let r = rec(b"k", None, b"payload");
        let mut buf = Vec::new();
        encode(&mut buf, 0, 0, &r);
        for cut in 4..buf.len() {
            assert!(
                matches!(decode(&buf[..cut], true), Decoded::Bad(_)),
                "torn at {cut}"
            );
        }
        assert!(matches!(decode(&[0u8; 64], true), Decoded::End));
    }
}
