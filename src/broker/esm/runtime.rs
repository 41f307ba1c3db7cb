//! A function reached through the Lambda Runtime API: the broker serves
//! `/2018-06-01/runtime/...` on the function's own port; runtime interface clients
//! (`awslambdaric`, `aws-lambda-ric`, `lambda_runtime`) long-poll `invocation/next` and post
//! `response` or `error`. A POST to `error` is a function error whatever its headers, and so
//! is a deadline passed, and so is the close of the connection that took the invocation (the
//! runtime process died: no need to wait for the deadline).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};

pub use super::functions::Function;

/// Lambda's default function timeout.
pub const DEFAULT_TIMEOUT: Duration = crate::config::DEFAULT_FUNCTION_TIMEOUT;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered (its response body).
    Response(Bytes),
    /// The function failed: its error body, or why the broker counts it as failed.
    Error(String),
}

struct Queued {
    id: String,
    payload: Bytes,
    handed_out: oneshot::Sender<()>,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queues {
    waiting: VecDeque<Queued>,
    in_flight: HashMap<String, oneshot::Sender<Outcome>>,
}

/// The Runtime API side of one function: its invocation queue.
pub struct RuntimeApi {
    /// The declared name.
    pub name: String,
    /// The function's timeout.
    pub timeout: Duration,
    queues: Mutex<Queues>,
    ready: Notify,
    /// Runtime clients waiting in `invocation/next` now.
    idle: AtomicUsize,
    /// `invocation/next` requests ever received (a runtime that never sent one never
    /// started).
    polls: AtomicUsize,
    /// Signalled when the queue or the runtimes' state changes (the process pool scales on it).
    pub(super) changed: Notify,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("name", &self.name)
            .finish()
    }
}

/// What the process pool scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Invocations no runtime has taken yet.
    pub waiting: usize,
    /// Invocations a runtime is working on.
    pub in_flight: usize,
    /// Runtime clients waiting for an invocation.
    pub idle: usize,
}

struct IdleGuard<'a>(&'a RuntimeApi);

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        self.0.idle.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

impl RuntimeApi {
    /// A function with nothing queued.
    pub fn new(name: String, timeout: Duration) -> Self {
        Self {
            name,
            timeout,
            queues: Default::default(),
            ready: Notify::new(),
            idle: AtomicUsize::new(0),
            polls: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    /// How many `invocation/next` requests ever came.
    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    /// The queue and the runtimes now.
    pub fn load(&self) -> Load {
        let q = self.queues();
        Load {
            waiting: q.waiting.len(),
            in_flight: q.in_flight.len(),
            idle: self.idle.load(Ordering::SeqCst),
        }
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Invokes the function with `payload` and waits for its outcome: queued until a
    /// runtime client asks for it, then at most the timeout. Cancel-safe: dropping the
    /// future withdraws the invocation (a late answer is refused).
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        let id = new_request_id();
        let (handed_tx, handed_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        self.queues().waiting.push_back(Queued {
            id: id.clone(),
            payload,
            handed_out: handed_tx,
            reply: reply_tx,
        });
        self.ready.notify_one();
        self.changed.notify_one();
        let _withdraw = Withdraw {
            function: self,
            id: &id,
        };
        let mut reply_rx = reply_rx;
        if handed_rx.await.is_err() {
            // Refused before any runtime took it (see `fail_waiting`), or dropped.
            return reply_rx
                .try_recv()
                .unwrap_or_else(|_| Outcome::Error("the invocation was dropped".into()));
        }
        match tokio::time::timeout(self.timeout, reply_rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Error("the invocation was dropped".into()),
            Err(_) => Outcome::Error(format!(
                "Task timed out after {:.2} seconds",
                self.timeout.as_secs_f64()
            )),
        }
    }

    /// The next invocation for a runtime client: (id, payload), once one is queued.
    async fn next(&self) -> (String, Bytes) {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.idle.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_one();
        let _idle = IdleGuard(self);
        loop {
            let notified = self.ready.notified();
            {
                let mut q = self.queues();
                while let Some(item) = q.waiting.pop_front() {
                    if item.handed_out.send(()).is_ok() {
                        q.in_flight.insert(item.id.clone(), item.reply);
                        if !q.waiting.is_empty() {
                            self.ready.notify_one();
                        }
                        return (item.id, item.payload);
                    }
                }
            }
            notified.await;
        }
    }

    /// Fails every invocation no runtime has taken yet with `why` (the runtimes started for
    /// them exited first); returns how many.
    pub fn fail_waiting(&self, why: &str) -> usize {
        let failed: Vec<Queued> = self.queues().waiting.drain(..).collect();
        let n = failed.len();
        for item in failed {
            let _ = item.reply.send(Outcome::Error(why.to_string()));
        }
        n
    }

    /// Ends an invocation handed out; false when it is unknown (withdrawn, timed out).
    fn finish(&self, id: &str, outcome: Outcome) -> bool {
        match self.queues().in_flight.remove(id) {
            Some(reply) => reply.send(outcome).is_ok(),
            None => false,
        }
    }
}

struct Withdraw<'a> {
    function: &'a RuntimeApi,
    id: &'a str,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let mut q = self.function.queues();
        q.waiting.retain(|item| item.id != self.id);
        q.in_flight.remove(self.id);
    }
}

fn new_request_id() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    format_uuid(b)
}

/// Formats 16 random bytes as a version-4 UUID.
pub fn format_uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Why an invocation fails when its runtime's connection closes before it answered.
pub const CONNECTION_CLOSED: &str = "the runtime's connection closed before it answered the invocation (the runtime process exited?)";

/// Serves the Runtime API of `function` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    function: Arc<RuntimeApi>,
    arn: String,
    now_ms: impl Fn() -> i64 + Send + Sync + 'static,
    mut shutdown: watch::Receiver<bool>,
) {
    let now_ms = Arc::new(now_ms);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let function = function.clone();
        let arn = arn.clone();
        let now_ms = now_ms.clone();
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            // The invocations this connection took and has not answered yet.
            let taken: Arc<Mutex<HashSet<String>>> = Default::default();
            let service = {
                let function = function.clone();
                let taken = taken.clone();
                hyper::service::service_fn(move |req| {
                    let function = function.clone();
                    let arn = arn.clone();
                    let now_ms = now_ms.clone();
                    let taken = taken.clone();
                    async move {
                        Ok::<_, Infallible>(answer(&function, &arn, &*now_ms, &taken, req).await)
                    }
                })
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            let orphans: Vec<String> = taken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for id in orphans {
                if function.finish(&id, Outcome::Error(CONNECTION_CLOSED.into())) {
                    tracing::info!(function = %function.name, request_id = %id, "{CONNECTION_CLOSED}");
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

const PREFIX: &str = "/2018-06-01/runtime/";

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Whether the client means to keep the connection for its next request (HTTP/1.1 without
/// `Connection: close`, or HTTP/1.0 with `keep-alive`).
fn is_persistent(req: &Request<Incoming>) -> bool {
    let connection = req
        .headers()
        .get_all(hyper::header::CONNECTION)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    if req.version() == hyper::Version::HTTP_10 {
        connection.iter().any(|t| t == "keep-alive")
    } else {
        !connection.iter().any(|t| t == "close")
    }
}

async fn answer(
    function: &RuntimeApi,
    arn: &str,
    now_ms: &(dyn Fn() -> i64 + Send + Sync),
    taken: &Mutex<HashSet<String>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let persistent = is_persistent(&req);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => {
            let (id, payload) = function.next().await;
            // A client that said it will close this connection posts its answer on
            // another: only a persistent connection's close means the runtime is gone.
            if persistent {
                taken
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone());
            }
            let deadline = now_ms() + function.timeout.as_millis() as i64;
            let mut r = Response::new(Full::new(payload));
            let h = r.headers_mut();
            let value = |s: &str| {
                hyper::header::HeaderValue::from_str(s)
                    .unwrap_or(hyper::header::HeaderValue::from_static(""))
            };
            h.insert(hyper::header::CONTENT_TYPE, value("application/json"));
            h.insert("Lambda-Runtime-Aws-Request-Id", value(&id));
            h.insert("Lambda-Runtime-Deadline-Ms", value(&deadline.to_string()));
            h.insert("Lambda-Runtime-Invoked-Function-Arn", value(arn));
            h.insert(
                "Lambda-Runtime-Trace-Id",
                value(&format!(
                    "Root=1-{:08x}-{};Parent={};Sampled=0",
                    now_ms() / 1000,
                    &id.replace('-', "")[..24],
                    &id.replace('-', "")[..16]
                )),
            );
            r
        }
        (&Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            taken.lock().unwrap_or_else(|e| e.into_inner()).remove(*id);
            let outcome = if *kind == "response" {
                Outcome::Response(body)
            } else {
                Outcome::Error(String::from_utf8_lossy(&body).into_owned())
            };
            if function.finish(id, outcome) {
                reply(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
            } else {
                reply(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"errorMessage": format!("Invalid request ID: {id}"), "errorType": "InvalidRequestID"}),
                )
            }
        }
        (&Method::POST, ["init", "error"]) => {
            tracing::error!(function = %function.name, error = %String::from_utf8_lossy(&body), "the function's runtime failed to initialise");
            reply(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            serde_json::json!({"errorMessage": "not found", "errorType": "NotFound"}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(timeout_ms: u64) -> Arc<RuntimeApi> {
        Arc::new(RuntimeApi::new(
            "f".into(),
            Duration::from_millis(timeout_ms),
        ))
    }

    #[tokio::test]
    async fn a_response_ends_the_invocation_with_its_body() {
        let f = function(5_000);
        let taker = f.clone();
        let runtime = tokio::spawn(async move {
            let (id, payload) = taker.next().await;
            assert_eq!(payload, Bytes::from_static(b"{}"));
            assert!(taker.finish(&id, Outcome::Response(Bytes::from_static(b"ok"))));
        });
        let outcome = f.invoke(Bytes::from_static(b"{}")).await;
        assert_eq!(outcome, Outcome::Response(Bytes::from_static(b"ok")));
        runtime.await.unwrap();
    }

    #[tokio::test]
    async fn a_passed_deadline_is_a_function_error_and_a_late_answer_is_refused() {
        let f = function(50);
        let taker = f.clone();
        let runtime = tokio::spawn(async move { taker.next().await.0 });
        let outcome = f.invoke(Bytes::from_static(b"{}")).await;
        assert!(
            matches!(&outcome, Outcome::Error(e) if e.contains("timed out")),
            "{outcome:?}"
        );
        let id = runtime.await.unwrap();
        assert!(!f.finish(&id, Outcome::Response(Bytes::new())));
    }

    #[tokio::test]
    async fn invocations_no_runtime_took_can_be_failed_with_a_reason() {
        let f = function(5_000);
        let waiting = {
            let f = f.clone();
            tokio::spawn(async move { f.invoke(Bytes::from_static(b"{}")).await })
        };
        while f.load().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(f.fail_waiting("the runtime exited"), 1);
        assert_eq!(
            waiting.await.unwrap(),
            Outcome::Error("the runtime exited".into())
        );
        assert_eq!(f.load().waiting, 0);
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
