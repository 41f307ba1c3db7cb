//! The on-failure destination: when a mapping discards a batch (MaximumRetryAttempts or
//! MaximumRecordAgeInSeconds), Lambda sends an invocation record describing it (not the
//! records themselves). Here the destination is a Kinesis stream of this broker (our
//! extension: Lambda itself takes SQS, SNS, S3 or Kafka), written through the broker's
//! normal write path.

use serde_json::{Value, json};

use super::batch::Item;
use crate::broker::stream::StreamKey;
use crate::broker::write::PutEntry;
use crate::broker::{Broker, hash};

/// Why a batch was discarded, as Lambda names it in `requestContext.condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// MaximumRetryAttempts reached.
    RetryAttemptsExhausted,
    /// A record older than MaximumRecordAgeInSeconds.
    RecordAgeExceeded,
}

impl Condition {
    /// Lambda's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Self::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// A discarded batch, as the invocation record describes it.
pub struct Discard<'a> {
    /// The records (in order).
    pub items: &'a [Item],
    /// The shard.
    pub shard_id: &'a str,
    /// The source stream.
    pub stream_arn: &'a str,
    /// The function.
    pub function_arn: &'a str,
    /// Why.
    pub condition: Condition,
    /// Invocations of this batch.
    pub invoke_count: u32,
    /// Whether the last invocation ended in a function error (else the function answered,
    /// reporting item failures, or was never invoked).
    pub function_error: bool,
    /// When, ms since the epoch.
    pub now_ms: i64,
    /// The id of the record (Lambda's request id).
    pub request_id: &'a str,
}

/// Lambda's invocation record for a discarded Kinesis batch.
pub fn invocation_record(d: &Discard<'_>) -> Value {
    let first = d.items.first();
    let last = d.items.last();
    json!({
        "requestContext": {
            "requestId": d.request_id,
            "functionArn": d.function_arn,
            "condition": d.condition.as_str(),
            "approximateInvokeCount": d.invoke_count,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": if d.function_error { json!("Unhandled") } else { Value::Null },
        },
        "version": "1.0",
        "timestamp": iso8601_ms(d.now_ms),
        "KinesisBatchInfo": {
            "shardId": d.shard_id,
            "startSequenceNumber": first.map(|i| i.sequence_number.as_str()),
            "endSequenceNumber": last.map(|i| i.sequence_number.as_str()),
            "approximateArrivalOfFirstRecord": first.map(|i| iso8601_ms(i.arrival_ms)),
            "approximateArrivalOfLastRecord": last.map(|i| iso8601_ms(i.arrival_ms)),
            "batchSize": d.items.len(),
            "streamArn": d.stream_arn,
        },
    })
}

/// `2019-11-14T00:38:06.021Z`, as Lambda writes its timestamps.
pub fn iso8601_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian, day 0 = 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Attempts at writing the record when the destination stream throttles.
const WRITE_ATTEMPTS: usize = 5;

/// Writes `record` to the destination stream `arn` with partition key `partition_key`.
pub async fn write(
    broker: &Broker,
    arn: &str,
    partition_key: &str,
    record: &Value,
) -> Result<String, String> {
    let key = StreamKey::from_arn(arn)
        .ok_or_else(|| format!("on-failure destination {arn} is not a Kinesis stream ARN"))?;
    let stream = broker
        .stream(&key)
        .map_err(|_| format!("on-failure destination stream {arn} does not exist"))?;
    let data = record.to_string().into_bytes();
    let entry = PutEntry {
        hash_key: hash::partition_key_hash(partition_key.as_bytes()),
        partition_key: partition_key.as_bytes(),
        explicit_hash_key: None,
        data: &data,
    };
    let mut last_error = String::new();
    for attempt in 0..WRITE_ATTEMPTS {
        match broker.put(&stream, std::slice::from_ref(&entry), 0).await {
            Ok(mut results) => match results.pop() {
                Some(Ok(written)) => return Ok(written.sequence_number),
                Some(Err(e)) => last_error = e.to_string(),
                None => last_error = "no result".into(),
            },
            Err(e) => last_error = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
    }
    Err(format!(
        "cannot write to on-failure destination {arn}: {last_error}"
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn esm_timestamps_are_lambdas_iso_8601_with_milliseconds() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_ms(1_573_691_886_021), "2019-11-14T00:38:06.021Z");
        assert_eq!(iso8601_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn esm_the_invocation_record_has_lambdas_shape() {
        let items: Vec<Item> = [(1_573_691_884_835, "s1"), (1_573_691_885_580, "s2")]
            .into_iter()
            .map(|(t, s)| Item {
                offset: 0,
                arrival_ms: t,
                partition_key: Bytes::from_static(b"k"),
                data: Bytes::new(),
                sequence_number: s.into(),
            })
            .collect();
        let r = invocation_record(&Discard {
            items: &items,
            shard_id: "shardId-000000000001",
            stream_arn: "arn:aws:kinesis:us-east-2:123456789012:stream/mystream",
            function_arn: "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
            condition: Condition::RetryAttemptsExhausted,
            invoke_count: 3,
            function_error: true,
            now_ms: 1_573_691_886_021,
            request_id: "c9b8fa9f-5a7f-4a5e-af9c-0c604cde93a5",
        });
        assert_eq!(
            r,
            json!({
                "requestContext": {
                    "requestId": "c9b8fa9f-5a7f-4a5e-af9c-0c604cde93a5",
                    "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": 3
                },
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "version": "1.0",
                "timestamp": "2019-11-14T00:38:06.021Z",
                "KinesisBatchInfo": {
                    "shardId": "shardId-000000000001",
                    "startSequenceNumber": "s1",
                    "endSequenceNumber": "s2",
                    "approximateArrivalOfFirstRecord": "2019-11-14T00:38:04.835Z",
                    "approximateArrivalOfLastRecord": "2019-11-14T00:38:05.580Z",
                    "batchSize": 2,
                    "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"
                }
            })
        );
    }
}
