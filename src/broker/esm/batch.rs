//! What a function's answer means for the batch it was given, as Lambda reads it for
//! Kinesis ("Configuring partial batch response with Kinesis Data Streams and Lambda").

use bytes::Bytes;
use serde_json::Value;

/// One record of a batch, owned (batches outlive the log read that found them).
#[derive(Debug, Clone)]
pub struct Item {
    /// The record's offset in its shard.
    pub offset: u64,
    /// Arrival, ms since the epoch.
    pub arrival_ms: i64,
    /// The partition key.
    pub partition_key: Bytes,
    /// The data.
    pub data: Bytes,
    /// The sequence number.
    pub sequence_number: String,
}

/// How an invocation that returned (no function error) ended for its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every record succeeded: checkpoint past the batch.
    Success,
    /// The records before this index succeeded; retry from it (the lowest sequence number
    /// reported).
    FailedFrom(usize),
    /// The whole batch failed.
    Failure(String),
}

/// Reads a response under ReportBatchItemFailures. Full success: a null or empty response,
/// a response without `batchItemFailures`, or with it null or empty. Full failure: an
/// `itemIdentifier` that is empty, null, missing (a bad key name) or names no record of the
/// batch. Otherwise the lowest sequence number reported is the checkpoint.
pub fn batch_item_failures(body: &[u8], items: &[Item]) -> Verdict {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Verdict::Success;
    }
    let response: Value = match serde_json::from_slice(trimmed) {
        Ok(v) => v,
        // A response that is not JSON reports no failure: Lambda only reads the member.
        Err(_) => return Verdict::Success,
    };
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Verdict::Success,
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Verdict::Failure(format!(
                "batchItemFailures is not a list: {other}; the whole batch failed"
            ));
        }
    };
    let mut lowest: Option<usize> = None;
    for failure in failures {
        let id = match failure.get("itemIdentifier") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => {
                return Verdict::Failure(format!(
                    "batchItemFailures entry {failure} has no itemIdentifier; the whole batch failed"
                ));
            }
        };
        let Some(index) = items.iter().position(|i| i.sequence_number == id) else {
            return Verdict::Failure(format!(
                "itemIdentifier {id} names no record of the batch; the whole batch failed"
            ));
        };
        lowest = Some(lowest.map_or(index, |l| l.min(index)));
    }
    match lowest {
        None => Verdict::Success,
        Some(i) => Verdict::FailedFrom(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                offset: i as u64,
                arrival_ms: 0,
                partition_key: Bytes::from_static(b"k"),
                data: Bytes::new(),
                sequence_number: format!("seq{i}"),
            })
            .collect()
    }

    #[test]
    fn esm_full_success_forms() {
        let b = items(3);
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": null}"#,
            r#"{"batchItemFailures": []}"#,
            r#""done""#,
        ] {
            assert_eq!(
                batch_item_failures(body.as_bytes(), &b),
                Verdict::Success,
                "{body}"
            );
        }
    }

    #[test]
    fn esm_the_lowest_reported_sequence_number_is_the_checkpoint() {
        let b = items(5);
        let body = r#"{"batchItemFailures": [{"itemIdentifier": "seq3"}, {"itemIdentifier": "seq1"}, {"itemIdentifier": "seq4"}]}"#;
        assert_eq!(
            batch_item_failures(body.as_bytes(), &b),
            Verdict::FailedFrom(1)
        );
    }

    #[test]
    fn esm_bad_item_identifiers_fail_the_whole_batch() {
        let b = items(3);
        for body in [
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifer": "seq1"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "seq1"}, {}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "other"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": 1}]}"#,
            r#"{"batchItemFailures": "seq1"}"#,
        ] {
            assert!(
                matches!(
                    batch_item_failures(body.as_bytes(), &b),
                    Verdict::Failure(_)
                ),
                "{body}"
            );
        }
    }
}
