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

/// The event `{"Records": [...]}`.
pub fn event(records: Vec<Value>) -> Vec<u8> {
    json!({ "Records": records }).to_string().into_bytes()
}
