//! Lambda's event-source-mapping operations: one file per operation, each of the same
//! shape as the Kinesis ones — take the request (a JSON object, or the query of a list),
//! check what belongs to the request, call the broker's typed mapping operations, build
//! Lambda's `EventSourceMappingConfiguration`. HTTP (routing, authentication, the error's
//! wire shape) stays in `http::lambda`.
//!
//! The settings themselves are parsed and rendered by `broker::esm::mapping`
//! (`parse_create`, `apply_settings`, `to_json`), which this layer calls.

pub mod create_event_source_mapping;
pub mod delete_event_source_mapping;
pub mod get_event_source_mapping;
pub mod list_event_source_mappings;
pub mod update_event_source_mapping;

use serde_json::{Map, Value};

use crate::broker::esm::{EsmError, MappingView};

/// A Lambda error: its code (`X-Amzn-ErrorType`), HTTP status, `Type` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaError {
    /// Lambda's error code, e.g. `ResourceNotFoundException`.
    pub code: &'static str,
    /// The HTTP status Lambda answers it with.
    pub status: u16,
    /// Lambda's `Type` member: `User` for the caller's mistakes, `Service` for ours.
    pub kind: &'static str,
    /// The message, in Lambda's words where known.
    pub message: String,
}

impl LambdaError {
    /// 400 InvalidParameterValueException.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "InvalidParameterValueException",
            status: 400,
            kind: "User",
            message: message.into(),
        }
    }

    /// 400 InvalidRequestContentException: the body is not a JSON object.
    pub fn bad_content(message: impl Into<String>) -> Self {
        Self {
            code: "InvalidRequestContentException",
            status: 400,
            kind: "User",
            message: message.into(),
        }
    }
}

impl LambdaError {
    /// The member the message travels in: Lambda's model spells it `Message` for some
    /// errors and `message` for others, and typed SDKs read the modeled name.
    pub fn message_member(&self) -> &'static str {
        match self.code {
            "ResourceNotFoundException" | "ResourceInUseException" | "ServiceException" => {
                "Message"
            }
            _ => "message",
        }
    }
}

impl From<EsmError> for LambdaError {
    fn from(e: EsmError) -> Self {
        let (code, status, kind, message) = match e {
            EsmError::Invalid(m) => ("InvalidParameterValueException", 400, "User", m),
            EsmError::NotFound(m) => ("ResourceNotFoundException", 404, "User", m),
            EsmError::Conflict(m) => ("ResourceConflictException", 409, "User", m),
            EsmError::InUse(m) => ("ResourceInUseException", 400, "User", m),
            EsmError::Service(m) => ("ServiceException", 500, "Service", m),
        };
        Self {
            code,
            status,
            kind,
            message,
        }
    }
}

/// A request body: Lambda's members by name.
pub type Body = Map<String, Value>;

/// Lambda's `EventSourceMappingConfiguration` for what the broker shows of a mapping.
pub fn configuration(view: &MappingView) -> Value {
    view.config
        .to_json(view.state.as_str(), &view.last_processing_result)
}

/// Bounded fuzzing of the event-source-mapping API's request decoding (see
/// `crate::fuzzing`): Create and Update bodies (mutated from a body using every member the
/// broker reads, filter patterns included, damaged at the byte level and with members
/// swapped for other JSON types or huge numbers) through `mapping::parse_create` and
/// `mapping::apply_settings`; the list query string, a mapping's UUID path, and the routed
/// Get/Update/Delete on a broker without mappings. Nothing panics or hangs, and every
/// refusal is a 4xx Lambda error.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::broker::Broker;
    use crate::broker::esm::mapping;
    use crate::config::Config;
    use crate::fuzzing::{Rng, Run, damage, show};

    const JSON_BYTES: &[u8] = b"{}[],:\"\\0123456789-eE.+tfn \0\xff";
    const QUERY_BYTES: &[u8] = b"FunctionNameEventSourceArnMarkerMaxItems=&%2F0123456789-+ \0\xff";

    const CREATE: &str = r#"{"FunctionName":"f","EventSourceArn":"arn:aws:kinesis:us-east-1:000000000000:stream/s","StartingPosition":"AT_TIMESTAMP","StartingPositionTimestamp":1700000000.5,"BatchSize":100,"MaximumBatchingWindowInSeconds":2,"ParallelizationFactor":3,"MaximumRetryAttempts":-1,"MaximumRecordAgeInSeconds":60,"BisectBatchOnFunctionError":true,"TumblingWindowInSeconds":0,"FunctionResponseTypes":["ReportBatchItemFailures"],"Enabled":false,"DestinationConfig":{"OnFailure":{"Destination":"arn:aws:kinesis:us-east-1:000000000000:stream/dlq"}},"FilterCriteria":{"Filters":[{"Pattern":"{\"data\":{\"n\":[{\"numeric\":[\">\",1,\"<=\",5]}],\"s\":[{\"prefix\":\"a\"},{\"anything-but\":[\"b\"]},{\"exists\":true}],\"x\":[\"v\",null,3]}}"}]}}"#;
    const UPDATE: &str = r#"{"BatchSize":10,"Enabled":true,"FilterCriteria":{"Filters":[{"Pattern":"{\"partitionKey\":[{\"suffix\":\"z\"}]}"}]},"DestinationConfig":{"OnFailure":{}},"MaximumRetryAttempts":10000}"#;

    /// A member of `value` (at any depth) replaced by another JSON type or a huge number.
    fn swap_member(rng: &mut Rng, value: &mut serde_json::Value) {
        let replacement = match rng.below(8) {
            0 => serde_json::Value::Null,
            1 => serde_json::json!([]),
            2 => serde_json::json!({}),
            3 => serde_json::json!(1e300),
            4 => serde_json::json!(-1),
            5 => serde_json::json!(u64::MAX),
            6 => serde_json::json!("x".repeat(rng.below(5_000))),
            _ => serde_json::json!(true),
        };
        descend(rng, value, replacement);
    }

    fn descend(rng: &mut Rng, at: &mut serde_json::Value, replacement: serde_json::Value) {
        let deeper = rng.chance(2);
        let child = match at {
            serde_json::Value::Object(o) if !o.is_empty() => {
                let k = rng.below(o.len());
                o.values_mut().nth(k)
            }
            serde_json::Value::Array(a) if !a.is_empty() => {
                let k = rng.below(a.len());
                a.get_mut(k)
            }
            _ => None,
        };
        match child {
            Some(c) if deeper => descend(rng, c, replacement),
            Some(c) => *c = replacement,
            None => *at = replacement,
        }
    }

    fn body(rng: &mut Rng, seed: &str) -> Vec<u8> {
        let mut value: serde_json::Value = serde_json::from_str(seed).unwrap();
        for _ in 0..rng.below(3) {
            swap_member(rng, &mut value);
        }
        if rng.chance(4)
            && let Some(pattern) = value
                .pointer_mut("/FilterCriteria/Filters/0/Pattern")
                .and_then(|p| p.as_str().map(str::to_string))
        {
            // Damage inside the pattern: a second JSON decoder.
            let mut p = pattern.into_bytes();
            for _ in 0..=rng.below(3) {
                damage(rng, &mut p, JSON_BYTES, b"[{\"numeric\":[\"<\",1e999]}]");
            }
            value["FilterCriteria"]["Filters"][0]["Pattern"] =
                serde_json::Value::String(String::from_utf8_lossy(&p).into_owned());
        }
        let mut bytes = serde_json::to_vec(&value).unwrap();
        if rng.chance(3) {
            for _ in 0..=rng.below(3) {
                damage(rng, &mut bytes, JSON_BYTES, UPDATE.as_bytes());
            }
        }
        bytes
    }

    /// The body as the HTTP layer reads it: a JSON object, or refused.
    fn object(bytes: &[u8]) -> Option<Body> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        }
    }

    fn check(result: Result<Value, LambdaError>) {
        if let Err(e) = result {
            assert!((400..500).contains(&e.status), "{e:?}");
        }
    }

    #[test]
    fn fuzzed_mapping_requests_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config::new();
        config.data_dir = dir.path().to_path_buf();
        let broker = runtime.block_on(async { Broker::open(&config).unwrap() });
        let queries = [
            b"FunctionName=f&EventSourceArn=arn%3Aaws%3Akinesis%3Aus-east-1%3A000000000000%3Astream%2Fs&Marker=1&MaxItems=50".to_vec(),
            b"MaxItems=99999999999999999999999&Marker=18446744073709551615".to_vec(),
        ];
        let now_ms = 1_700_000_001_000;
        let mut run = Run::new("lambda_mapping_api", 5_000, 0x1a3b_da00);
        for i in 0..run.iterations() {
            let rng = &mut run.rng;
            let create = body(rng, CREATE);
            let update = body(rng, UPDATE);
            let mut query = queries[rng.below(queries.len())].clone();
            for _ in 0..rng.below(4) {
                damage(rng, &mut query, QUERY_BYTES, &queries[0]);
            }
            let query = String::from_utf8_lossy(&query).into_owned();
            let kind = rng.below(4);
            let shown = || {
                format!(
                    "create {} update {} query {query:?}",
                    show(&create),
                    show(&update)
                )
            };
            run.input(i, shown, || match kind {
                0 | 1 => {
                    let Some(create) = object(&create) else {
                        return;
                    };
                    let parsed = mapping::parse_create(
                        &create,
                        "u".into(),
                        "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
                        "f".into(),
                        now_ms,
                    );
                    if let (Ok(mut config), Some(update)) = (parsed, object(&update)) {
                        let _ = mapping::apply_settings(&mut config, &update);
                    }
                }
                2 => {
                    let pairs = crate::protocol::query::parse_query(&query);
                    let get = |name: &str| {
                        pairs
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.as_str())
                    };
                    check(list_event_source_mappings::handle(
                        &broker,
                        &list_event_source_mappings::ListQuery {
                            function_name: get("FunctionName"),
                            event_source_arn: get("EventSourceArn"),
                            marker: get("Marker"),
                            max_items: get("MaxItems"),
                        },
                    ));
                }
                _ => {
                    // A UUID path of the routed operations, on a broker without mappings.
                    let uuid = query.as_str();
                    check(get_event_source_mapping::handle(&broker, uuid));
                    if let Some(update) = object(&update) {
                        check(
                            runtime.block_on(update_event_source_mapping::handle(
                                &broker, uuid, &update,
                            )),
                        );
                    }
                    check(runtime.block_on(delete_event_source_mapping::handle(&broker, uuid)));
                }
            });
        }
        run.finish();
    }
}
