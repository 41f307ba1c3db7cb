//! Tumbling windows ("Implementing stateful Kinesis Data Streams processing in Lambda"):
//! each record belongs to the window of its arrival time; the function gets the state it
//! returned for the window so far with each batch of the window, and one final invocation
//! (`isFinalInvokeForWindow`) once the window is over. A state over 1 MB terminates the
//! window early: a final invocation flagged `isWindowTerminatedEarly`, then the same window
//! goes on with a fresh state.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Lambda's cap on a window's state, per shard.
pub const MAX_STATE_BYTES: usize = 1024 * 1024;

/// A shard's open window, persisted with its checkpoint (so a restart resumes the window's
/// state together with the records it accounts for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// The window's start, ms since the epoch (a multiple of its length).
    pub start_ms: i64,
    /// The state the function last returned for it.
    pub state: Value,
}

impl OpenWindow {
    /// A window starting at `start_ms` with an empty state.
    pub fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            state: Value::Object(Map::new()),
        }
    }
}

/// The start of the window of `arrival_ms` (windows are aligned on multiples of their length).
pub fn window_start(arrival_ms: i64, window_s: u32) -> i64 {
    let len = i64::from(window_s.max(1)) * 1000;
    arrival_ms.div_euclid(len) * len
}

/// What an invocation of a window carries besides its records.
pub struct WindowFields<'a> {
    /// The window.
    pub window: &'a OpenWindow,
    /// Its length, seconds.
    pub window_s: u32,
    /// The shard.
    pub shard_id: &'a str,
    /// The stream.
    pub stream_arn: &'a str,
    /// The window's last invocation.
    pub is_final: bool,
    /// Ended because its state passed 1 MB.
    pub terminated_early: bool,
}

/// Lambda's `KinesisTimeWindowEvent`: the records plus `window`, `state`, `shardId`,
/// `eventSourceARN`, `isFinalInvokeForWindow` and `isWindowTerminatedEarly`.
pub fn event(records_json: &[u8], f: &WindowFields<'_>) -> Vec<u8> {
    let end_ms = f.window.start_ms + i64::from(f.window_s) * 1000;
    let rest = json!({
        "window": {
            "start": iso8601_s(f.window.start_ms),
            "end": iso8601_s(end_ms),
        },
        "state": f.window.state,
        "shardId": f.shard_id,
        "eventSourceARN": f.stream_arn,
        "isFinalInvokeForWindow": f.is_final,
        "isWindowTerminatedEarly": f.terminated_early,
    })
    .to_string();
    // `{"Records": RECORDS, …rest}`: the records arrive encoded (event::records_json).
    let mut out = super::event::event_of(records_json);
    out.pop();
    out.push(b',');
    out.extend_from_slice(&rest.as_bytes()[1..]);
    out
}

/// The state a windowed invocation returned: `None` when the response has no `state`
/// member (Lambda counts that as a failed invocation).
pub fn returned_state(body: &[u8]) -> Option<Value> {
    let response: Value = serde_json::from_slice(body.trim_ascii()).ok()?;
    match response.get("state") {
        None | Some(Value::Null) => None,
        Some(state) => Some(state.clone()),
    }
}

/// `2020-12-09T07:04:00Z`: window bounds are whole seconds in AWS's examples.
fn iso8601_s(ms: i64) -> String {
    let with_ms = super::destination::iso8601_ms(ms);
    format!("{}Z", &with_ms[..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esm_windows_are_aligned_on_their_length() {
        assert_eq!(window_start(1_607_497_475_000, 120), 1_607_497_440_000);
        assert_eq!(window_start(1_607_497_440_000, 120), 1_607_497_440_000);
        assert_eq!(window_start(1_607_497_559_999, 120), 1_607_497_440_000);
    }

    #[test]
    fn esm_the_window_event_has_lambdas_members() {
        let w = OpenWindow {
            start_ms: 1_607_497_440_000,
            state: json!({"1": 282}),
        };
        let e: Value = serde_json::from_slice(&event(
            b"[]",
            &WindowFields {
                window: &w,
                window_s: 120,
                shard_id: "shardId-000000000006",
                stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/lambda-stream",
                is_final: true,
                terminated_early: false,
            },
        ))
        .unwrap();
        assert_eq!(
            e,
            json!({
                "Records": [],
                "window": {"start": "2020-12-09T07:04:00Z", "end": "2020-12-09T07:06:00Z"},
                "state": {"1": 282},
                "shardId": "shardId-000000000006",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/lambda-stream",
                "isFinalInvokeForWindow": true,
                "isWindowTerminatedEarly": false
            })
        );
        assert_eq!(
            returned_state(br#"{"state": {"a": 1}}"#),
            Some(json!({"a": 1}))
        );
        assert_eq!(returned_state(br#"{"batchItemFailures": []}"#), None);
        assert_eq!(returned_state(b"null"), None);
    }
}
