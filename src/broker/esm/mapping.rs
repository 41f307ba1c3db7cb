//! An event-source mapping's settings as Lambda names them, with Lambda's ranges and
//! defaults for Kinesis sources, and the settings this broker does not implement yet
//! (refused, never accepted and ignored).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Lambda's default BatchSize for Kinesis.
pub const DEFAULT_BATCH_SIZE: u32 = 100;
/// Lambda's largest BatchSize for Kinesis.
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// Lambda's largest MaximumBatchingWindowInSeconds.
pub const MAX_BATCHING_WINDOW_S: u32 = 300;
/// Lambda's largest MaximumRetryAttempts (−1 is infinite).
pub const MAX_RETRY_ATTEMPTS: i32 = 10_000;
/// MaximumRecordAgeInSeconds' range besides −1 (infinite).
pub const RECORD_AGE_RANGE_S: (i32, i32) = (60, 604_800);

/// Where a mapping starts reading a shard it has no checkpoint for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    /// The oldest retained record.
    TrimHorizon,
    /// After the newest record at creation.
    Latest,
    /// The first record at or after `StartingPositionTimestamp`.
    AtTimestamp,
}

impl StartingPosition {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "TRIM_HORIZON" => Some(Self::TrimHorizon),
            "LATEST" => Some(Self::Latest),
            "AT_TIMESTAMP" => Some(Self::AtTimestamp),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::TrimHorizon => "TRIM_HORIZON",
            Self::Latest => "LATEST",
            Self::AtTimestamp => "AT_TIMESTAMP",
        }
    }
}

/// A mapping's persisted settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingConfig {
    /// The mapping's id.
    pub uuid: String,
    /// The stream's ARN.
    pub event_source_arn: String,
    /// The function's name (declared with `--function`).
    pub function_name: String,
    /// The function's ARN (account and region of the caller).
    pub function_arn: String,
    /// Where to start shards without a checkpoint.
    pub starting_position: StartingPosition,
    /// For AT_TIMESTAMP: ms since the epoch.
    pub starting_position_timestamp_ms: Option<i64>,
    /// Records per invocation, at most.
    pub batch_size: u32,
    /// How long to wait for a fuller batch, seconds.
    pub batching_window_s: u32,
    /// Retries of a failing batch before it is discarded; −1 = until it succeeds.
    pub max_retry_attempts: i32,
    /// Age past which a failing batch is discarded; −1 = never.
    pub max_record_age_s: i32,
    /// Whether records are delivered.
    pub enabled: bool,
    /// Last change, ms since the epoch.
    pub last_modified_ms: i64,
    /// Why the state last changed.
    pub state_transition_reason: String,
    /// Batches of one shard in flight at once (1–10); each partition key stays in one lane.
    #[serde(default = "one")]
    pub parallelization_factor: u32,
    /// Whether a failing batch is split in two, each half retried.
    #[serde(default)]
    pub bisect_on_error: bool,
    /// FunctionResponseTypes contains ReportBatchItemFailures.
    #[serde(default)]
    pub report_batch_item_failures: bool,
    /// The on-failure destination: a Kinesis stream ARN of this broker.
    #[serde(default)]
    pub on_failure_destination: Option<String>,
    /// Tumbling window length, seconds (0 = none).
    #[serde(default)]
    pub tumbling_window_s: u32,
    /// FilterCriteria as Lambda shows it back (`{"Filters": [{"Pattern": …}]}`), validated.
    #[serde(default)]
    pub filter_criteria: Option<Value>,
}

fn one() -> u32 {
    1
}

/// Lambda's only FunctionResponseTypes value.
pub const REPORT_BATCH_ITEM_FAILURES: &str = "ReportBatchItemFailures";
/// TumblingWindowInSeconds' largest value.
pub const MAX_TUMBLING_WINDOW_S: u32 = 900;
/// ParallelizationFactor's range.
pub const PARALLELIZATION_RANGE: (u32, u32) = (1, 10);

/// An InvalidParameterValueException's message.
pub type Invalid = String;

fn unsupported(what: &str) -> Invalid {
    format!("{what} is not supported by kinesis-broker yet.")
}

fn int(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, Invalid> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} must be an integer.")),
    }
}

fn string<'a>(body: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Invalid> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} must be a string.")),
    }
}

fn boolean(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, Invalid> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{name} must be a boolean.")),
    }
}

/// Refuses the settings this broker does not implement, when set to anything but their
/// default (AWS would honour them; silently ignoring them would mislead).
pub fn refuse_unsupported(body: &Map<String, Value>) -> Result<(), Invalid> {
    let set = |name: &str| match body.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => o
            .values()
            .any(|v| !v.is_null() && v != &json!({}) && v != &json!([])),
        Some(_) => true,
    };
    for name in [
        "Topics",
        "Queues",
        "SourceAccessConfigurations",
        "SelfManagedEventSource",
        "ScalingConfig",
        "MetricsConfig",
        "ProvisionedPollerConfig",
        "KMSKeyArn",
    ] {
        if set(name) {
            return Err(unsupported(name));
        }
    }
    Ok(())
}

/// The settings shared by create and update: applies those present in `body` to `config`,
/// checking Lambda's ranges.
pub fn apply_settings(
    config: &mut MappingConfig,
    body: &Map<String, Value>,
) -> Result<(), Invalid> {
    refuse_unsupported(body)?;
    if let Some(criteria) = body.get("FilterCriteria") {
        super::filter::Filters::parse(criteria)?;
        config.filter_criteria = super::filter::Filters::normalized(criteria);
    }
    if let Some(b) = int(body, "BatchSize")? {
        if !(1..=MAX_BATCH_SIZE as i64).contains(&b) {
            return Err(format!(
                "1 validation error detected: Value '{b}' at 'batchSize' failed to satisfy constraint: Member must have value between 1 and {MAX_BATCH_SIZE}"
            ));
        }
        config.batch_size = b as u32;
    }
    if let Some(w) = int(body, "MaximumBatchingWindowInSeconds")? {
        if !(0..=MAX_BATCHING_WINDOW_S as i64).contains(&w) {
            return Err(format!(
                "1 validation error detected: Value '{w}' at 'maximumBatchingWindowInSeconds' failed to satisfy constraint: Member must have value between 0 and {MAX_BATCHING_WINDOW_S}"
            ));
        }
        config.batching_window_s = w as u32;
    }
    if let Some(r) = int(body, "MaximumRetryAttempts")? {
        if !(-1..=MAX_RETRY_ATTEMPTS as i64).contains(&r) {
            return Err(format!(
                "1 validation error detected: Value '{r}' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value between -1 and {MAX_RETRY_ATTEMPTS}"
            ));
        }
        config.max_retry_attempts = r as i32;
    }
    if let Some(a) = int(body, "MaximumRecordAgeInSeconds")? {
        let (lo, hi) = RECORD_AGE_RANGE_S;
        if a != -1 && !(lo as i64..=hi as i64).contains(&a) {
            return Err(format!(
                "1 validation error detected: Value '{a}' at 'maximumRecordAgeInSeconds' failed to satisfy constraint: Member must be -1 or between {lo} and {hi}"
            ));
        }
        config.max_record_age_s = a as i32;
    }
    if let Some(e) = boolean(body, "Enabled")? {
        config.enabled = e;
    }
    if let Some(p) = int(body, "ParallelizationFactor")? {
        let (lo, hi) = PARALLELIZATION_RANGE;
        if !(lo as i64..=hi as i64).contains(&p) {
            return Err(format!(
                "1 validation error detected: Value '{p}' at 'parallelizationFactor' failed to satisfy constraint: Member must have value between {lo} and {hi}"
            ));
        }
        config.parallelization_factor = p as u32;
    }
    if let Some(b) = boolean(body, "BisectBatchOnFunctionError")? {
        config.bisect_on_error = b;
    }
    if let Some(types) = function_response_types(body)? {
        config.report_batch_item_failures = types;
    }
    if let Some(destination) = on_failure_destination(body)? {
        config.on_failure_destination = destination;
    }
    if let Some(t) = int(body, "TumblingWindowInSeconds")? {
        if !(0..=MAX_TUMBLING_WINDOW_S as i64).contains(&t) {
            return Err(format!(
                "1 validation error detected: Value '{t}' at 'tumblingWindowInSeconds' failed to satisfy constraint: Member must have value between 0 and {MAX_TUMBLING_WINDOW_S}"
            ));
        }
        config.tumbling_window_s = t as u32;
    }
    if config.tumbling_window_s > 0 && config.parallelization_factor > 1 {
        return Err(unsupported(
            "TumblingWindowInSeconds together with a ParallelizationFactor greater than 1",
        ));
    }
    Ok(())
}

/// FunctionResponseTypes: `Some(true)` with ReportBatchItemFailures, `Some(false)` for an
/// empty list, `None` when absent.
fn function_response_types(body: &Map<String, Value>) -> Result<Option<bool>, Invalid> {
    let list = match body.get("FunctionResponseTypes") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("FunctionResponseTypes must be a list of strings.".into()),
    };
    let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
    if names.len() != list.len() || names.iter().any(|n| *n != REPORT_BATCH_ITEM_FAILURES) {
        let shown = list
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "1 validation error detected: Value '[{shown}]' at 'functionResponseTypes' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [{REPORT_BATCH_ITEM_FAILURES}]]"
        ));
    }
    Ok(Some(!names.is_empty()))
}

/// DestinationConfig: `Some(None)` clears the destination, `Some(Some(arn))` sets it. Only
/// a Kinesis stream can be served locally; SQS, SNS, S3 and Kafka destinations are refused
/// rather than accepted and never written.
fn on_failure_destination(body: &Map<String, Value>) -> Result<Option<Option<String>>, Invalid> {
    let config = match body.get("DestinationConfig") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("DestinationConfig must be a structure.".into()),
    };
    if let Some(on_success) = config.get("OnSuccess")
        && !on_success.is_null()
        && on_success != &json!({})
    {
        return Err(
            "Unsupported DestinationConfig parameter for given event source mapping type: OnSuccess is not supported for Kinesis event sources."
                .into(),
        );
    }
    let destination = match config.get("OnFailure") {
        None | Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(o)) => match o.get("Destination") {
            None | Some(Value::Null) => return Ok(Some(None)),
            Some(Value::String(s)) if s.is_empty() => return Ok(Some(None)),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err("DestinationConfig.OnFailure.Destination must be a string.".into());
            }
        },
        Some(_) => return Err("DestinationConfig.OnFailure must be a structure.".into()),
    };
    if crate::broker::stream::StreamKey::from_arn(&destination).is_none() {
        return Err(format!(
            "The provided destination ARN {destination} is not supported by kinesis-broker: only Kinesis streams of this broker (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME) are served as on-failure destinations; SQS queues, SNS topics, S3 buckets and Kafka clusters are not."
        ));
    }
    Ok(Some(Some(destination)))
}

/// The new mapping a CreateEventSourceMapping body describes (the stream and function
/// are checked by the caller).
pub fn parse_create(
    body: &Map<String, Value>,
    uuid: String,
    function_arn: String,
    function_name: String,
    now_ms: i64,
) -> Result<MappingConfig, Invalid> {
    let arn = string(body, "EventSourceArn")?
        .ok_or("EventSourceArn is required for a Kinesis event source.")?
        .to_string();
    let position = string(body, "StartingPosition")?
        .ok_or("StartingPosition is required for a Kinesis event source.")?;
    let starting_position = StartingPosition::parse(position).ok_or_else(|| {
        format!(
            "1 validation error detected: Value '{position}' at 'startingPosition' failed to satisfy constraint: Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]"
        )
    })?;
    let timestamp = match body.get("StartingPositionTimestamp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .map(|s| (s * 1000.0) as i64)
                .ok_or("StartingPositionTimestamp must be a timestamp in seconds.")?,
        ),
    };
    let starting_position_timestamp_ms = match (starting_position, timestamp) {
        (StartingPosition::AtTimestamp, None) => {
            return Err(
                "StartingPositionTimestamp is required with StartingPosition AT_TIMESTAMP.".into(),
            );
        }
        (StartingPosition::AtTimestamp, Some(t)) if t > now_ms => {
            return Err("StartingPositionTimestamp cannot be in the future.".into());
        }
        (StartingPosition::AtTimestamp, t) => t,
        (_, Some(_)) => {
            return Err(
                "StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP."
                    .into(),
            );
        }
        (_, None) => None,
    };
    let mut config = MappingConfig {
        uuid,
        event_source_arn: arn,
        function_name,
        function_arn,
        starting_position,
        starting_position_timestamp_ms,
        batch_size: DEFAULT_BATCH_SIZE,
        batching_window_s: 0,
        max_retry_attempts: -1,
        max_record_age_s: -1,
        enabled: true,
        last_modified_ms: now_ms,
        state_transition_reason: "USER_INITIATED".into(),
        parallelization_factor: 1,
        bisect_on_error: false,
        report_batch_item_failures: false,
        on_failure_destination: None,
        tumbling_window_s: 0,
        filter_criteria: None,
    };
    apply_settings(&mut config, body)?;
    Ok(config)
}

impl MappingConfig {
    /// Lambda's `EventSourceMappingConfiguration` for this mapping in `state`.
    pub fn to_json(&self, state: &str, last_processing_result: &str) -> Value {
        let mut out = json!({
            "UUID": self.uuid,
            "StartingPosition": self.starting_position.as_str(),
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.batching_window_s,
            "ParallelizationFactor": self.parallelization_factor,
            "EventSourceArn": self.event_source_arn,
            "FunctionArn": self.function_arn,
            "LastModified": self.last_modified_ms as f64 / 1000.0,
            "LastProcessingResult": last_processing_result,
            "State": state,
            "StateTransitionReason": self.state_transition_reason,
            "DestinationConfig": {"OnFailure": match &self.on_failure_destination {
                Some(d) => json!({"Destination": d}),
                None => json!({}),
            }},
            "MaximumRecordAgeInSeconds": self.max_record_age_s,
            "BisectBatchOnFunctionError": self.bisect_on_error,
            "MaximumRetryAttempts": self.max_retry_attempts,
            "TumblingWindowInSeconds": self.tumbling_window_s,
            "FunctionResponseTypes": if self.report_batch_item_failures {
                json!([REPORT_BATCH_ITEM_FAILURES])
            } else {
                json!([])
            },
            "EventSourceMappingArn": format!(
                "{}:event-source-mapping:{}",
                self.function_arn
                    .rsplit_once(":function:")
                    .map_or("", |(prefix, _)| prefix),
                self.uuid
            ),
        });
        if let Some(t) = self.starting_position_timestamp_ms {
            out["StartingPositionTimestamp"] = json!(t as f64 / 1000.0);
        }
        if let Some(criteria) = &self.filter_criteria {
            out["FilterCriteria"] = criteria.clone();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esm_a_mapping_saved_before_the_delivery_settings_loads_with_their_defaults() {
        let old = json!({
            "uuid": "u", "event_source_arn": "arn:aws:kinesis:us-east-1:000000000000:stream/s",
            "function_name": "fn", "function_arn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
            "starting_position": "TRIM_HORIZON", "starting_position_timestamp_ms": null,
            "batch_size": 100, "batching_window_s": 0, "max_retry_attempts": -1,
            "max_record_age_s": -1, "enabled": true, "last_modified_ms": 0,
            "state_transition_reason": "USER_INITIATED"
        });
        let c: MappingConfig = serde_json::from_value(old).unwrap();
        assert_eq!(c.parallelization_factor, 1);
        assert!(!c.bisect_on_error && !c.report_batch_item_failures);
        assert_eq!(c.on_failure_destination, None);
        assert_eq!(c.tumbling_window_s, 0);
    }
}
