//! A mapping's delivery counters since the broker started, and how far behind the stream it
//! is: what Lambda shows operators of a stream mapping in CloudWatch (Invocations, Errors,
//! IteratorAge, …). Lambda's API has no member for them (`LastProcessingResult` is one
//! sentence), so they are served at `GET /_broker/event-source-mappings[/{UUID}]` and on
//! `GET /metrics` (`kinesis_broker_esm_*_total`, by UUID and function; the iterator age as
//! `kinesis_broker_reader_lag_milliseconds`). Each count is a relaxed atomic add.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// The counters of one mapping.
#[derive(Debug, Default)]
pub struct MappingStats {
    invocations: AtomicU64,
    function_errors: AtomicU64,
    retries: AtomicU64,
    bisections: AtomicU64,
    discarded_batches: AtomicU64,
    discarded_records: AtomicU64,
    delivered_records: AtomicU64,
    filtered_records: AtomicU64,
}

/// What happened, for [`MappingStats::count`].
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// The function was invoked (a retry, a split half and a window's final call included).
    Invocation,
    /// An invocation ended in a function error, a timeout or a runtime gone.
    FunctionError,
    /// A failed batch is tried again (splits are not retries).
    Retry,
    /// A failing batch was split in two.
    Bisection,
    /// A batch of `n` records was given up on by the mapping's policy.
    Discarded(u64),
    /// `n` records were delivered successfully.
    Delivered(u64),
    /// A record matched none of the mapping's filters.
    Filtered,
}

impl MappingStats {
    /// Counts `event`.
    pub fn count(&self, event: Event) {
        let add = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match event {
            Event::Invocation => add(&self.invocations, 1),
            Event::FunctionError => add(&self.function_errors, 1),
            Event::Retry => add(&self.retries, 1),
            Event::Bisection => add(&self.bisections, 1),
            Event::Discarded(n) => {
                add(&self.discarded_batches, 1);
                add(&self.discarded_records, n);
            }
            Event::Delivered(n) => add(&self.delivered_records, n),
            Event::Filtered => add(&self.filtered_records, 1),
        }
    }

    /// The counters as JSON, with CloudWatch's names where Lambda has one.
    pub fn to_json(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "Invocations": get(&self.invocations),
            "Errors": get(&self.function_errors),
            "Retries": get(&self.retries),
            "Bisections": get(&self.bisections),
            "DiscardedBatches": get(&self.discarded_batches),
            "DiscardedRecords": get(&self.discarded_records),
            "DeliveredRecords": get(&self.delivered_records),
            "FilteredOutRecords": get(&self.filtered_records),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esm_stats_count_each_event_kind() {
        let s = MappingStats::default();
        for e in [
            Event::Invocation,
            Event::Invocation,
            Event::FunctionError,
            Event::Retry,
            Event::Bisection,
            Event::Discarded(7),
            Event::Delivered(5),
            Event::Filtered,
        ] {
            s.count(e);
        }
        assert_eq!(
            s.to_json(),
            json!({"Invocations": 2, "Errors": 1, "Retries": 1, "Bisections": 1,
                "DiscardedBatches": 1, "DiscardedRecords": 7, "DeliveredRecords": 5,
                "FilteredOutRecords": 1})
        );
    }
}
