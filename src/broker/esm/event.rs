//! Lambda's Kinesis event, as AWS builds it: one shard per event, records in order.

use serde_json::{Value, json};

/// Lambda caps an invocation's payload at 6 MB.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Bytes of event around each record besides its data and key (field names, ARNs, ids).
pub const RECORD_OVERHEAD_BYTES: usize = 600;

/// What one record of the event needs.
pub struct EventRecord<'a> {
    /// The partition key.
    pub partition_key: &'a [u8],
    /// The record's data.
    pub data: &'a [u8],
    /// The sequence number.
    pub sequence_number: String,
    /// Arrival, ms since the epoch.
    pub arrival_ms: i64,
}

/// Where the records come from.
pub struct Source<'a> {
    /// `shardId-…`.
    pub shard_id: &'a str,
    /// The stream's ARN.
    pub stream_arn: &'a str,
    /// The stream's region.
    pub region: &'a str,
    /// The stream's account.
    pub account: &'a str,
}

/// A record's size in the event (base64 data, key, overhead), for the 6 MB cap.
pub fn record_size(partition_key_len: usize, data_len: usize) -> usize {
    data_len.div_ceil(3) * 4 + partition_key_len + RECORD_OVERHEAD_BYTES
}

/// The JSON of one record.
pub fn record(source: &Source<'_>, r: &EventRecord<'_>) -> Value {
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": String::from_utf8_lossy(r.partition_key),
            "sequenceNumber": r.sequence_number,
            "data": base64_simd::STANDARD.encode_to_string(r.data),
            "approximateArrivalTimestamp": r.arrival_ms as f64 / 1000.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{}:{}", source.shard_id, r.sequence_number),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": format!("arn:aws:iam::{}:role/kinesis-broker", source.account),
        "awsRegion": source.region,
        "eventSourceARN": source.stream_arn,
    })
}

/// The records of one shard's event as a JSON array, written straight into one buffer in
/// AWS's member order. Building a `Value` tree per record (as [`record`] does) cost several
/// times the GetRecords path per record; this is the delivery path's encoder, and
/// [`record`] stays for filters and as the reference the tests compare it with.
pub fn records_json<'a>(
    source: &Source<'_>,
    records: impl ExactSizeIterator<Item = EventRecord<'a>>,
) -> Vec<u8> {
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    // Every record of the batch shares these: escaped once.
    let id_prefix = quoted(&format!("{}:", source.shard_id));
    let id_prefix = &id_prefix[..id_prefix.len() - 1];
    let tail = format!(
        ",\"eventName\":\"aws:kinesis:record\",\"invokeIdentityArn\":{},\"awsRegion\":{},\"eventSourceARN\":{}}}",
        quoted(&format!(
            "arn:aws:iam::{}:role/kinesis-broker",
            source.account
        )),
        quoted(source.region),
        quoted(source.stream_arn),
    );
    let mut out = Vec::with_capacity(records.len() * (RECORD_OVERHEAD_BYTES + 64));
    out.push(b'[');
    for (i, r) in records.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"kinesis\":{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":");
        let _ = serde_json::to_writer(&mut out, &*String::from_utf8_lossy(r.partition_key));
        out.extend_from_slice(b",\"sequenceNumber\":\"");
        // Sequence numbers are decimal digits: nothing to escape.
        out.extend_from_slice(r.sequence_number.as_bytes());
        out.extend_from_slice(b"\",\"data\":\"");
        base64_simd::STANDARD.encode_append(r.data, &mut out);
        out.extend_from_slice(b"\",\"approximateArrivalTimestamp\":");
        let _ = serde_json::to_writer(&mut out, &(r.arrival_ms as f64 / 1000.0));
        out.extend_from_slice(
            b"},\"eventSource\":\"aws:kinesis\",\"eventVersion\":\"1.0\",\"eventID\":",
        );
        out.extend_from_slice(id_prefix.as_bytes());
        out.extend_from_slice(r.sequence_number.as_bytes());
        out.push(b'"');
        out.extend_from_slice(tail.as_bytes());
    }
    out.push(b']');
    out
}

/// The event `{"Records": RECORDS}` around an array from [`records_json`].
pub fn event_of(records_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records_json.len() + 13);
    out.extend_from_slice(b"{\"Records\":");
    out.extend_from_slice(records_json);
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esm_the_direct_encoder_writes_what_the_reference_builds() {
        let source = Source {
            shard_id: "shardId-000000000003",
            stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/s\"q",
            region: "eu-west-1",
            account: "123456789012",
        };
        let keys: [&[u8]; 3] = [b"k1", "clé \"\\ \n".as_bytes(), &[0xff, 0x41]];
        let datas: [&[u8]; 3] = [b"", b"hello", &[0u8, 1, 2, 255, 254]];
        let make = |i: usize| EventRecord {
            partition_key: keys[i],
            data: datas[i],
            sequence_number: format!("4959033827149025660855969253836157109592157598913658889{i}"),
            arrival_ms: 1_545_084_650_987 + i as i64 * 1000,
        };
        let direct = records_json(&source, (0..3).map(make));
        let parsed: Value = serde_json::from_slice(&direct).expect("valid JSON");
        let reference: Vec<Value> = (0..3).map(|i| record(&source, &make(i))).collect();
        assert_eq!(parsed, Value::Array(reference));
        let text = String::from_utf8(direct).unwrap();
        assert!(
            text.starts_with(
                r#"[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"k1","sequenceNumber":"#
            ),
            "AWS's member order: {text}"
        );
        assert!(text.contains(
            r#""approximateArrivalTimestamp":1545084650.987},"eventSource":"aws:kinesis""#
        ));
        let empty = records_json(&source, std::iter::empty());
        assert_eq!(event_of(&empty), br#"{"Records":[]}"#);
        let event: Value =
            serde_json::from_slice(&event_of(&records_json(&source, (0..1).map(make)))).unwrap();
        assert_eq!(
            event["Records"][0]["eventID"],
            format!("shardId-000000000003:{}", make(0).sequence_number)
        );
    }
}
