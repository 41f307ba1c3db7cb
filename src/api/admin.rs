//! The admin endpoints under `/_broker/`, outside the Kinesis namespace (AWS routes
//! nothing there): fault injection and the broker's clock. JSON in, JSON out.
//!
//! | method and path          | body / answer                                              |
//! |--------------------------|------------------------------------------------------------|
//! | `GET /_broker/faults`    | → `{"config": FaultConfig, "counts": {...}}`               |
//! | `PUT /_broker/faults`    | `FaultConfig` → the same as GET; 400 `{"error"}` if invalid |
//! | `DELETE /_broker/faults` | → faults off                                               |
//! | `GET /_broker/clock`     | → `{"now_ms", "offset_ms", "steady_ms", "wall_step_ms"}`   |
//! | `POST /_broker/clock`    | `{"advance_ms": N}` (time passes) or `{"step_wall_ms": N}` (the wall clock steps) → the same as GET |
//! | `GET /_broker/functions` | → `{"functions": [Function]}`                              |
//! | `PUT /_broker/functions/{name}` | `{"url", "command"?}` → `Function`; 400 `{"error"}` if invalid |
//! | `DELETE /_broker/functions/{name}` | → the `Function` removed; 404 if unknown, 409 while a mapping uses it |
//! | `GET /_broker/event-source-mappings` | → `{"EventSourceMappings": [MappingStats]}` |
//! | `GET /_broker/event-source-mappings/{UUID}` | → `MappingStats`; 404 if unknown |
//! | `GET /_broker/throughput?StreamARN=ARN` | → the stream's throughput history and readers (the console's); 404 `{"message":"Stream not found"}` |
//!
//! `FaultConfig` is `{"seed": u64, "global": Rules, "streams": {"name": Rules}}` with
//! `Rules` = `{"record_failure_rate", "record_failure" ("ProvisionedThroughputExceededException"
//! or "InternalFailure"), "internal_failure_rate", "service_unavailable_rate",
//! "get_records_failure_rate", "latency_ms": ms or [min, max]}` (see `broker::faults`).
//!
//! A function's `url` is what `--function NAME=URL` takes (`runtime://127.0.0.1:PORT` or
//! `http://HOST:PORT`, with `?timeout=SECONDS&concurrency=N`), its `command` what
//! `--function-command NAME=COMMAND` takes. `Function` is `{"name", "url", "kind"
//! ("runtime" or "invoke"), "timeout_s", ...}`, with `"runtime_api"`, `"concurrency"`,
//! `"idle_runtimes"`, `"waiting"`, `"in_flight"` and `"command"` for a Runtime API function.
//!
//! `MappingStats` is a mapping's `UUID`, `FunctionName`, `EventSourceArn`, `State`,
//! `LastProcessingResult`, `IteratorAgeMilliseconds` and its counters since the broker started
//! (`Invocations`, `Errors`, `Retries`, `Bisections`, `DiscardedBatches`, `DiscardedRecords`,
//! `DeliveredRecords`, `FilteredOutRecords`; see `broker::esm::stats`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use crate::broker::Broker;
use crate::broker::esm::functions::FunctionAdminError;
use crate::broker::faults::FaultConfig;

/// The path prefix of every admin endpoint.
pub const ADMIN_PREFIX: &str = "/_broker/";
/// The function endpoints, answered asynchronously ([`functions`]): declaring a function
/// binds its port and removing one waits for its runtime processes to stop.
pub const FUNCTIONS_PATH: &str = "/_broker/functions";
/// The console's throughput history of a stream (`?StreamARN=`).
pub const THROUGHPUT_PATH: &str = "/_broker/throughput";
/// Event-source mappings' counters and iterator age.
pub const MAPPING_STATS_PATH: &str = "/_broker/event-source-mappings";

/// Answers `/_broker/functions[/{name}]`, or `None` for any other path or method.
pub async fn functions(
    broker: &Arc<Broker>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Option<(u16, String)> {
    let rest = path.strip_prefix(FUNCTIONS_PATH)?;
    let name = match rest {
        "" | "/" => None,
        _ => Some(rest.strip_prefix('/')?.trim_end_matches('/')),
    };
    let answer = match (method, name) {
        ("GET", None) => Ok(broker.list_functions()),
        ("GET", Some(name)) => broker
            .esm()
            .functions()
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| f.to_json())
            .ok_or_else(|| FunctionAdminError::NotFound(format!("no function {name}"))),
        ("PUT", Some(name)) => broker.put_function(name, body).await,
        ("DELETE", Some(name)) => broker.delete_function(name).await,
        _ => return None,
    };
    Some(match answer {
        Ok(v) => (200, v.to_string()),
        Err(FunctionAdminError::Invalid(e)) => bad_request(e),
        Err(FunctionAdminError::NotFound(e)) => (404, json!({ "error": e }).to_string()),
        Err(FunctionAdminError::InUse(e)) => (409, json!({ "error": e }).to_string()),
    })
}

/// Answers `GET /_broker/throughput?StreamARN=<arn>`: the stream's throughput points of
/// the last 15 minutes and its readers (see `Broker::throughput`), 404
/// `{"message":"Stream not found"}` for a stream that does not exist, 400 without an ARN.
pub fn throughput(broker: &Broker, query: Option<&str>) -> (u16, String) {
    let arn = query.and_then(|q| {
        crate::protocol::query::parse_query(q)
            .into_iter()
            .find(|(k, _)| k == "StreamARN")
            .map(|(_, v)| v)
    });
    let Some(arn) = arn else {
        return (
            400,
            json!({"message": "StreamARN query parameter required"}).to_string(),
        );
    };
    match broker.throughput(&arn) {
        Some(v) => (200, v.to_string()),
        None => (404, json!({"message": "Stream not found"}).to_string()),
    }
}

/// Answers admin requests. The HTTP layer routes `/_broker/...` here.
pub trait AdminHandler: Send + Sync {
    /// The answer (status, JSON body) for `method path` with `body`, or `None` when no
    /// such endpoint exists.
    fn handle(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)>;

    /// The broker, when this server has one: Lambda's event-source-mapping API is served
    /// on the same port.
    fn broker(&self) -> Option<Arc<Broker>> {
        None
    }
}

/// The admin endpoints of a broker.
pub struct BrokerAdmin {
    broker: Arc<Broker>,
}

impl BrokerAdmin {
    /// Admin over `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }

    fn faults(&self) -> (u16, String) {
        let f = self.broker.faults();
        (
            200,
            json!({"config": f.config(), "counts": f.counts()}).to_string(),
        )
    }

    fn clock(&self) -> (u16, String) {
        let c = self.broker.clock();
        (
            200,
            json!({
                "now_ms": c.now_ms(),
                "offset_ms": c.offset_ms(),
                "steady_ms": c.steady_ms(),
                "wall_step_ms": c.wall_step_ms(),
            })
            .to_string(),
        )
    }
}

fn bad_request(message: String) -> (u16, String) {
    (400, json!({ "error": message }).to_string())
}

/// A `POST /_broker/clock` body: exactly one of the two moves.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockMove {
    /// Time passing: both readings move.
    advance_ms: Option<i64>,
    /// A wall-clock step: the steady reading stays.
    step_wall_ms: Option<i64>,
}

const CLOCK_BODY: &str = r#"expected {"advance_ms": N} or {"step_wall_ms": N}"#;

impl AdminHandler for BrokerAdmin {
    fn broker(&self) -> Option<Arc<Broker>> {
        Some(self.broker.clone())
    }

    fn handle(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
        if method == "GET"
            && let Some(rest) = path.strip_prefix(MAPPING_STATS_PATH)
        {
            let uuid = match rest.trim_end_matches('/') {
                "" => None,
                r => Some(r.strip_prefix('/')?),
            };
            return Some(match self.broker.mapping_stats(uuid) {
                Some(v) => (200, v.to_string()),
                None => (
                    404,
                    json!({ "error": "no such event-source mapping" }).to_string(),
                ),
            });
        }
        Some(match (method, path) {
            ("GET", "/_broker/faults") => self.faults(),
            ("PUT", "/_broker/faults") => match serde_json::from_slice::<FaultConfig>(body) {
                Ok(config) => match config.validate() {
                    Ok(()) => {
                        self.broker.faults().configure(config);
                        self.faults()
                    }
                    Err(e) => bad_request(e),
                },
                Err(e) => bad_request(format!("not a fault configuration: {e}")),
            },
            ("DELETE", "/_broker/faults") => {
                self.broker.faults().configure(FaultConfig::default());
                self.faults()
            }
            ("GET", "/_broker/clock") => self.clock(),
            ("POST", "/_broker/clock") => {
                let clock = self.broker.clock();
                match serde_json::from_slice::<ClockMove>(body) {
                    Ok(ClockMove {
                        advance_ms: Some(ms),
                        step_wall_ms: None,
                    }) => match clock.advance_ms(ms) {
                        Ok(()) => {
                            tracing::info!(advance_ms = ms, "broker clock moved");
                            self.clock()
                        }
                        Err(e) => bad_request(e),
                    },
                    Ok(ClockMove {
                        advance_ms: None,
                        step_wall_ms: Some(ms),
                    }) => match clock.step_wall_ms(ms) {
                        Ok(()) => {
                            tracing::info!(step_wall_ms = ms, "broker wall clock stepped");
                            self.clock()
                        }
                        Err(e) => bad_request(e),
                    },
                    Ok(_) => bad_request(format!("{CLOCK_BODY}: exactly one of them")),
                    Err(e) => bad_request(format!("{CLOCK_BODY}: {e}")),
                }
            }
            _ => return None,
        })
    }
}

/// Bounded fuzzing of the admin endpoints' request decoding (see `crate::fuzzing`): methods,
/// `/_broker/*` paths (mutated from the real ones), the throughput query string, fault
/// configurations, clock advances and function URLs, damaged at the byte and the JSON
/// level. Every answer is `None` (no such endpoint) or a status with a JSON body; nothing
/// panics or hangs. `PUT /_broker/functions/{name}` is decoded through its URL parser only
/// (`FunctionSpec::parse_url`): a valid one would bind ports and start processes.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::config::{Config, FunctionSpec};
    use crate::fuzzing::{Rng, Run, damage, show};

    const PATH_BYTES: &[u8] =
        b"/_brokerfaultsclockfunctionsevent-source-mappingsthroughput?&=%./\0\xff ";
    const JSON_BYTES: &[u8] = b"{}[],:\"\\0123456789-eE.+tfn \0\xff";

    fn bodies() -> Vec<Vec<u8>> {
        [
            r#"{"seed":7,"global":{"record_failure_rate":0.5,"record_failure":"InternalFailure","internal_failure_rate":0.1,"service_unavailable_rate":0,"get_records_failure_rate":0.2,"latency_ms":[1,5]},"streams":{"s":{"latency_ms":3,"record_failure":"ProvisionedThroughputExceededException"}}}"#,
            r#"{"advance_ms":1000}"#,
            r#"{"advance_ms":-9223372036854775808}"#,
            r#"{"url":"runtime://127.0.0.1:9001?timeout=3&concurrency=2","command":"true"}"#,
            "",
        ]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect()
    }

    fn mutated(rng: &mut Rng, seeds: &[Vec<u8>], alphabet: &[u8]) -> Vec<u8> {
        let mut b = seeds[rng.below(seeds.len())].clone();
        let other = &seeds[rng.below(seeds.len())];
        for _ in 0..rng.below(4) {
            damage(rng, &mut b, alphabet, other);
        }
        if rng.chance(20) {
            // Huge numbers where the decoder expects u64, i64 and f64.
            let huge = [
                "1e999",
                "-1e999",
                "18446744073709551616",
                "NaN",
                "-0",
                "1e-400",
            ];
            let text = String::from_utf8_lossy(&b).into_owned();
            let at = ["7", "1000", "0.5", "3", "[1,5]"][rng.below(5)];
            b = text
                .replacen(at, huge[rng.below(huge.len())], 1)
                .into_bytes();
        }
        b
    }

    #[test]
    fn fuzzed_admin_requests_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = Config::new();
        config.data_dir = dir.path().to_path_buf();
        let broker = runtime.block_on(async { Broker::open(&config).unwrap() });
        let admin = BrokerAdmin::new(broker.clone());
        let paths: Vec<Vec<u8>> = [
            "/_broker/faults",
            "/_broker/clock",
            "/_broker/functions",
            "/_broker/functions/f",
            "/_broker/event-source-mappings",
            "/_broker/event-source-mappings/5b8c0e8e-0000-4000-8000-000000000000",
            "/_broker/throughput",
            "StreamARN=arn%3Aaws%3Akinesis%3Aus-east-1%3A000000000000%3Astream%2Fs&x=%zz",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
        let bodies = bodies();
        let methods = ["GET", "PUT", "POST", "DELETE", "PATCH", "get", ""];
        let mut run = Run::new("admin_api", 20_000, 0xad31_2026);
        for i in 0..run.iterations() {
            let rng = &mut run.rng;
            let method = methods[rng.below(methods.len())];
            let path = String::from_utf8_lossy(&mutated(rng, &paths, PATH_BYTES)).into_owned();
            let body = mutated(rng, &bodies, JSON_BYTES);
            let url =
                String::from_utf8_lossy(&mutated(rng, &bodies[3..4], PATH_BYTES)).into_owned();
            let kind = rng.below(4);
            let shown = || format!("{method} {path:?} {} url {url:?}", show(&body));
            run.input(i, shown, || match kind {
                0 => {
                    if let Some((status, answer)) = admin.handle(method, &path, &body) {
                        assert!((200..500).contains(&status), "{status}");
                        serde_json::from_str::<serde_json::Value>(&answer).unwrap();
                    }
                }
                1 => {
                    let (status, answer) = throughput(&broker, Some(&path));
                    assert!(matches!(status, 400 | 404), "{status}");
                    serde_json::from_str::<serde_json::Value>(&answer).unwrap();
                }
                2 => {
                    // Only what cannot declare a function: see the module's comment.
                    let method = if method == "PUT" { "GET" } else { method };
                    let answer = runtime.block_on(functions(&broker, method, &path, &body));
                    if let Some((status, answer)) = answer {
                        assert!((200..500).contains(&status), "{status}");
                        serde_json::from_str::<serde_json::Value>(&answer).unwrap();
                    }
                }
                _ => {
                    let name = path.rsplit('/').next().unwrap_or_default();
                    let _ = FunctionSpec::parse_url(name, &url);
                }
            });
        }
        run.finish();
    }
}
