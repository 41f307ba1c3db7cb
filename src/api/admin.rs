//! The admin endpoints under `/_broker/`, outside the Kinesis namespace (AWS routes
//! nothing there): fault injection and the broker's clock. JSON in, JSON out.
//!
//! | method and path          | body / answer                                              |
//! |--------------------------|------------------------------------------------------------|
//! | `GET /_broker/faults`    | → `{"config": FaultConfig, "counts": {...}}`               |
//! | `PUT /_broker/faults`    | `FaultConfig` → the same as GET; 400 `{"error"}` if invalid |
//! | `DELETE /_broker/faults` | → faults off                                               |
//! | `GET /_broker/clock`     | → `{"now_ms": ..., "offset_ms": ...}`                     |
//! | `POST /_broker/clock`    | `{"advance_ms": N}` → the same as GET                      |
//!
//! `FaultConfig` is `{"seed": u64, "global": Rules, "streams": {"name": Rules}}` with
//! `Rules` = `{"record_failure_rate", "record_failure" ("ProvisionedThroughputExceededException"
//! or "InternalFailure"), "internal_failure_rate", "service_unavailable_rate",
//! "get_records_failure_rate", "latency_ms": ms or [min, max]}` (see `broker::faults`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use crate::broker::Broker;
use crate::broker::faults::FaultConfig;

/// The path prefix of every admin endpoint.
pub const ADMIN_PREFIX: &str = "/_broker/";

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
            json!({"now_ms": c.now_ms(), "offset_ms": c.offset_ms()}).to_string(),
        )
    }
}

fn bad_request(message: String) -> (u16, String) {
    (400, json!({ "error": message }).to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    advance_ms: i64,
}

impl AdminHandler for BrokerAdmin {
    fn broker(&self) -> Option<Arc<Broker>> {
        Some(self.broker.clone())
    }

    fn handle(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
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
            ("POST", "/_broker/clock") => match serde_json::from_slice::<Advance>(body) {
                Ok(a) => match self.broker.clock().advance_ms(a.advance_ms) {
                    Ok(()) => {
                        tracing::info!(advance_ms = a.advance_ms, "broker clock moved");
                        self.clock()
                    }
                    Err(e) => bad_request(e),
                },
                Err(e) => bad_request(format!("expected {{\"advance_ms\": N}}: {e}")),
            },
            _ => return None,
        })
    }
}
