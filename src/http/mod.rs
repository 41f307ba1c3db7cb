//! The HTTP server: accepts connections, speaks HTTP/1.1 and HTTP/2 (h2c, prior knowledge)
//! on the same port, or both over TLS chosen by ALPN ([`tls`]), reads bodies under a size
//! limit, and hands each request to [`handler::respond`].
//!
//! Nothing here knows about the broker: [`serve`] takes any [`Kinesis`] implementation, so
//! tests can drive the wire protocol with a stand-in.

pub mod auth;
pub mod connections;
pub mod credentials;
pub mod handler;
pub mod lambda;
pub mod observe;
pub mod request_id;
pub mod shutdown;
pub mod sigv4_verify;
pub mod starting;
pub mod tls;

use crate::api::{ApiError, ErrorCode, Kinesis};
use crate::protocol::{ContentType, WireFormat};
use bytes::{Bytes, BytesMut};
use connections::{Admission, ConnectionLimits, ConnectionState, InFlight, Registration, Registry};
use handler::{Reply, RequestHead};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use request_id::{RequestIdGenerator, RequestIds};
pub use shutdown::{Shutdown, ShutdownTrigger};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, warn};

/// Largest request body accepted, in bytes: 16 MiB.
///
/// The largest valid Kinesis request is a `PutRecords` of 10 MiB of record data, which
/// grows by a third once base64-encoded in JSON (≈13.4 MiB) plus partition keys and JSON
/// syntax. Anything larger is answered with 413 `RequestEntityTooLargeException` as soon
/// as it is known to be too large (at once when `Content-Length` says so); the rest is
/// never buffered. (kinesalite uses 7 MiB, from when requests carried at most 5 MiB.)
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How much of an oversized body is read and thrown away after the 413 is sent, so that the
/// answer reaches the client cleanly: 64 MiB (see `ActivityIo` for HTTP/1.1, `ReplyBody`
/// for HTTP/2).
pub const MAX_DISCARD_BYTES: u64 = 64 * 1024 * 1024;

/// During a lingering close (see `ActivityIo`), how long the client may stay silent before
/// the socket is closed anyway.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Time allowed for a request's headers to arrive once hyper starts waiting for them, for
/// HTTP/1.1: 60 s. hyper (1.x) also runs this clock while an idle keep-alive connection
/// waits for its next request, so it is the idle timeout of HTTP/1.1 connections as well;
/// hence a minute (an AWS load balancer's default idle timeout) rather than the few
/// seconds a header alone would need. A client reusing a pooled connection just as it is
/// closed sees a reset, which the SDKs retry; a longer timeout makes that rarer.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest gap allowed between two pieces of a request body, unless configured otherwise
/// ([`ConnectionLimits::body_read_timeout`]). A client that stops sending mid-body (a body
/// shorter than its `Content-Length`, a chunked body never terminated) gets 408
/// `RequestTimeoutException` and the connection is closed, instead of holding a task forever.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection on which nothing has been read or written for this long is closed
/// (gracefully: in-flight requests finish first; if even that makes no progress for as
/// long again, it is dropped). Covers HTTP/2 connections, which have no header timeout,
/// and HTTP/1.1 connections stuck mid-request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often an HTTP/2 connection is pinged, and how long a ping may go unanswered, to
/// find peers that vanished without closing the socket.
pub const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// See [`HTTP2_KEEP_ALIVE_INTERVAL`].
pub const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Concurrent requests per HTTP/2 connection, so one socket cannot hold an unbounded number
/// of request tasks (hyper's default is 200). Enough for a consumer subscribed to every
/// shard of a large stream over one connection (`SubscribeToShard` streams, a later issue).
pub const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 128;

/// After the shutdown signal, how long in-flight requests get to finish before their
/// connections are dropped.
pub const SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// First and last pause after a failed `accept` (out of file descriptors, say): it doubles
/// from the first to the last and is reset by the next success. The server never stops
/// accepting because of such an error.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// See [`ACCEPT_BACKOFF_MIN`].
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What every connection shares.
struct App<K> {
    service: K,
    /// The `/_broker/` endpoints, when the server has any.
    admin: Option<Arc<dyn crate::api::admin::AdminHandler>>,
    ids: Arc<RequestIdGenerator>,
    /// Connections, requests by operation and error, readiness.
    metrics: Arc<crate::metrics::ServerMetrics>,
    /// `--auth verify`: every request but the probes and the console's files is signed.
    verifier: Option<Arc<sigv4_verify::Verifier>>,
    /// See [`ConnectionLimits::body_read_timeout`].
    body_read_timeout: Duration,
}

/// Serves `listener` until `shutdown` fires, then stops accepting, gives in-flight
/// requests up to [`SHUTDOWN_GRACE_PERIOD`] and returns once every connection is closed.
pub async fn serve<K: Kinesis + 'static>(listener: TcpListener, service: K, shutdown: Shutdown) {
    serve_with_admin(listener, service, None, shutdown).await
}

/// [`serve`], with the admin endpoints under `/_broker/` answered by `admin`.
pub async fn serve_with_admin<K: Kinesis + 'static>(
    listener: TcpListener,
    service: K,
    admin: Option<Arc<dyn crate::api::admin::AdminHandler>>,
    shutdown: Shutdown,
) {
    serve_listener(
        listener,
        service,
        admin,
        None,
        None,
        ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// [`serve_with_admin`], speaking HTTPS when `tls` is given, checking signatures with
/// `verifier` when there is one (`--auth verify`), and serving at most
/// `limits.max_connections` connections at once (see [`connections`]).
pub async fn serve_listener<K: Kinesis + 'static>(
    listener: TcpListener,
    service: K,
    admin: Option<Arc<dyn crate::api::admin::AdminHandler>>,
    tls: Option<tls::ServerTls>,
    verifier: Option<Arc<sigv4_verify::Verifier>>,
    limits: ConnectionLimits,
    mut shutdown: Shutdown,
) {
    let metrics = match admin.as_ref().and_then(|a| a.broker()) {
        Some(broker) => broker.server_metrics().clone(),
        None => {
            // A stand-in service: nothing to recover, ready at once.
            let m = crate::metrics::ServerMetrics::default();
            m.set_phase(crate::metrics::Phase::Serving);
            Arc::new(m)
        }
    };
    let app = Arc::new(App {
        service,
        admin,
        ids: Arc::new(RequestIdGenerator::new()),
        metrics,
        verifier,
        body_read_timeout: limits.body_read_timeout,
    });
    let registry = Registry::new(limits.max_connections);
    let cap = registry.max_connections() as i64;
    app.metrics
        .connection_limit
        .fetch_add(cap, Ordering::Relaxed);
    // A JoinSet rather than mini-redis' mpsc drop-guard: besides waiting for the last
    // connection, it can abort the stragglers once the grace period is over.
    let mut connections = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;

    loop {
        // Reap finished connections so the set does not grow with every client ever seen.
        while connections.try_join_next().is_some() {}

        // Accepted before a place is found for it: at the cap, a client actually waiting is
        // what justifies closing someone's idle connection. It is held (one descriptor over
        // the cap at most) while that connection closes.
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    accepted
                }
                Err(e) => {
                    warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.recv() => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let registration = match registry.admit(&mut shutdown).await {
            Admission::Admitted {
                registration,
                evicted,
            } => {
                if evicted {
                    app.metrics
                        .idle_connections_evicted
                        .fetch_add(1, Ordering::Relaxed);
                }
                registration
            }
            Admission::ShuttingDown => break,
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(
            serve_connection(stream, app, tls, registration, shutdown)
                .instrument(tracing::debug_span!("conn", %peer)),
        );
    }
    app.metrics
        .connection_limit
        .fetch_sub(cap, Ordering::Relaxed);

    drop(listener);
    let open = connections.len();
    if open > 0 {
        info!(connections = open, "waiting for in-flight requests");
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE_PERIOD, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = connections.len(),
            grace_ms = SHUTDOWN_GRACE_PERIOD.as_millis() as u64,
            "grace period over, dropping connections"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection until the client closes it, it idles out, it is evicted to make
/// room for a new client, or shutdown drains it.
async fn serve_connection<K: Kinesis + 'static>(
    stream: TcpStream,
    app: Arc<App<K>>,
    tls: Option<tls::ServerTls>,
    registration: Registration,
    mut shutdown: Shutdown,
) {
    // Responses are written whole; waiting for more bytes to coalesce only adds latency.
    let _ = stream.set_nodelay(true);
    let _open = crate::metrics::server::ConnectionGuard::new(&app.metrics);
    let activity = Arc::new(Activity::new());
    // TLS sits above `ActivityIo`, so a lingering close still drains the raw socket, after
    // the close_notify.
    let io = ActivityIo::new(stream, activity.clone());
    let state = registration.state.clone();
    let Some(tls) = tls else {
        let io = AutoAnswerIo::new(io, app.clone(), activity.clone(), state.clone());
        return serve_http(TokioIo::new(io), app, activity, state, shutdown).await;
    };
    let handshake = tokio::select! {
        handshake = tls.accept(io) => handshake,
        _ = shutdown.recv() => return,
        _ = state.evicted() => return,
    };
    match handshake {
        Ok(io) => {
            let io = AutoAnswerIo::new(io, app.clone(), activity.clone(), state.clone());
            serve_http(TokioIo::new(io), app, activity, state, shutdown).await
        }
        Err(e) => {
            debug!(error = %e, "dropping connection");
            app.metrics
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// HTTP/1.1 or HTTP/2 (whichever the client speaks first) over `io`.
async fn serve_http<K, I>(
    io: I,
    app: Arc<App<K>>,
    activity: Arc<Activity>,
    state: Arc<ConnectionState>,
    mut shutdown: Shutdown,
) where
    K: Kinesis + 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity_for_requests = activity.clone();
    let state_for_requests = state.clone();

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
        .max_concurrent_streams(HTTP2_MAX_CONCURRENT_STREAMS);

    let service = hyper::service::service_fn(move |req| {
        let in_flight = state_for_requests.request();
        handle(app.clone(), activity_for_requests.clone(), in_flight, req)
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);

    let mut draining = false;
    // Set once evicted: past it, a connection with nothing in flight is dropped (a request
    // head trickling in, an HTTP/2 peer not closing after GOAWAY).
    let mut eviction_deadline: Option<tokio::time::Instant> = None;
    loop {
        let idle_deadline = tokio::time::Instant::from_std(activity.last() + IDLE_TIMEOUT);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.recv(), if !draining => {
                // HTTP/1.1: finish the request in flight, then close. HTTP/2: GOAWAY,
                // finish open streams.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = state.evicted(), if eviction_deadline.is_none() => {
                debug!("closing idle connection to make room for a new client");
                conn.as_mut().graceful_shutdown();
                draining = true;
                eviction_deadline = Some(tokio::time::Instant::now() + connections::EVICTION_GRACE);
            }
            _ = sleep_until_some(eviction_deadline) => {
                if !state.busy() {
                    debug!("evicted connection still open, dropping it");
                    return;
                }
                // A request arrived just as it was chosen: it finishes (HTTP/1.1 with
                // `Connection: close`), under the idle timeout like any other.
                eviction_deadline = Some(tokio::time::Instant::now() + IDLE_TIMEOUT);
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                if activity.last().elapsed() < IDLE_TIMEOUT {
                    continue; // there was traffic since the deadline was computed
                }
                if draining {
                    debug!("no progress while draining, dropping connection");
                    return;
                }
                debug!("idle, closing connection");
                conn.as_mut().graceful_shutdown();
                draining = true;
                activity.touch();
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Why a request's body could not be read. Each gets an answer, then the connection is
/// closed: after a broken body, where the next request would start is unknown.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("request body larger than {MAX_REQUEST_BODY_BYTES} bytes")]
    TooLarge,
    #[error("no request body data for {0:?}")]
    Timeout(Duration),
    #[error("reading the request body: {0}")]
    Read(#[from] hyper::Error),
}

/// The hyper service: read the body, answer, add the common headers.
async fn handle<K: Kinesis + 'static>(
    app: Arc<App<K>>,
    conn: Arc<Activity>,
    in_flight: InFlight,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, std::convert::Infallible> {
    let ids = app.ids.next();
    let (parts, mut request_body) = req.into_parts();
    let cors = parts.headers.contains_key(hyper::header::ORIGIN);

    let body = match read_body(&mut request_body, app.body_read_timeout).await {
        Ok(body) => body,
        Err(error) => {
            let format = match ContentType::parse(
                parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
            ) {
                ContentType::Wire(format) => format,
                _ => WireFormat::Json11,
            };
            let reply = match &error {
                BodyError::TooLarge => Reply::error(
                    format,
                    &ApiError::new(
                        ErrorCode::RequestEntityTooLargeException,
                        format!(
                            "Request body is larger than the maximum of {MAX_REQUEST_BODY_BYTES} bytes."
                        ),
                    ),
                ),
                // The name the SDKs retry as transient (aws-runtime `TRANSIENT_ERRORS`,
                // botocore `_TRANSIENT_ERROR_CODES`): the client may simply have stalled.
                BodyError::Timeout(after) => handler::Reply::transport_error(
                    hyper::StatusCode::REQUEST_TIMEOUT,
                    "RequestTimeoutException",
                    &format!(
                        "The request body stopped arriving: nothing was received for {} ms \
                         (a body shorter than its Content-Length, or a chunked body that \
                         never ended).",
                        after.as_millis()
                    ),
                ),
                BodyError::Read(e) => Reply::error(
                    format,
                    &ApiError::new(
                        ErrorCode::SerializationException,
                        // hyper's own text is generic ("error reading a body from
                        // connection"); its cause says what was wrong.
                        match std::error::Error::source(e) {
                            Some(cause) => {
                                format!("The request body could not be read as HTTP: {cause}.")
                            }
                            None => format!("The request body could not be read as HTTP: {e}."),
                        },
                    ),
                ),
            };
            debug!(%error, "request body refused, closing the connection after the answer");
            log_reply(&parts.method, &reply, &ids, 0);
            app.metrics.request(operation_label(&parts), reply.error);
            let mut response = handler::finish(reply, cors, &ids);
            response.body_mut().in_flight = Some(in_flight);
            if parts.version <= hyper::Version::HTTP_11 {
                // Answer, close, and drain what the client still sends while closing (a
                // lingering close, see `ActivityIo`). Draining inside the response instead
                // would hold its end back from clients that stop sending once refused.
                response
                    .headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                conn.linger.store(true, Ordering::Relaxed);
            } else {
                // HTTP/2: dropping the request body before the answer is out would reset the
                // stream and lose the answer, so it is kept, and drained within the stream's
                // flow control, until then.
                let budget = if matches!(error, BodyError::TooLarge)
                    && request_body.size_hint().lower() <= MAX_DISCARD_BYTES
                {
                    MAX_DISCARD_BYTES
                } else {
                    0
                };
                response.body_mut().drain_after(request_body, budget);
            }
            return Ok(response);
        }
    };

    // The request runs in its own task so that a panic in an operation becomes an
    // `InternalFailure` for this request instead of a dropped connection. A side effect,
    // wanted: a client that hangs up (or a connection dropped after the shutdown grace
    // period) does not cancel an operation half-way, e.g. between two shards' appends of a
    // PutRecords.
    let body_len = body.len();
    let method = parts.method.clone();
    let operation = operation_label(&parts);
    let metrics = app.metrics.clone();
    let task_ids = ids.clone();
    let task = tokio::spawn(async move {
        let path = parts.uri.path();
        let head = RequestHead {
            method: &parts.method,
            path,
            query: parts.uri.query(),
            headers: &parts.headers,
            authority: parts.uri.authority().map(|a| a.as_str()),
            verifier: app.verifier.as_deref(),
        };
        if crate::console::routes(path) {
            return crate::console::respond(&parts.method, path);
        }
        if head.verifier.is_some()
            && path.starts_with(crate::api::admin::ADMIN_PREFIX)
            && path != handler::HEALTH_PATH
            && let Err(err) = head.authenticate(&body, sigv4_verify::service::KINESIS)
        {
            // The admin endpoints move the clock and inject faults: operator tools, so any
            // known key may use them, but only a known key.
            return Reply::error(WireFormat::Json11, &err);
        }
        if let Some(reply) = observe::respond(&head, app.admin.as_ref(), &app.metrics) {
            return reply;
        }
        if lambda::routes(path)
            && let Some(broker) = app.admin.as_ref().and_then(|a| a.broker())
        {
            return lambda::respond(&broker, &head, body).await;
        }
        if path.starts_with(crate::api::admin::FUNCTIONS_PATH)
            && let Some(broker) = app.admin.as_ref().and_then(|a| a.broker())
            && let Some((status, json)) =
                crate::api::admin::functions(&broker, parts.method.as_str(), path, &body).await
        {
            let status = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
            return Reply::json(status, json);
        }
        if path.starts_with(crate::api::admin::ADMIN_PREFIX)
            && let Some(admin) = &app.admin
            && let Some((status, json)) = admin.handle(parts.method.as_str(), path, &body)
        {
            let status = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
            return Reply::json(status, json);
        }
        handler::respond(&app.service, &head, body, &task_ids).await
    });
    let reply = match task.await {
        Ok(reply) => reply,
        Err(e) => {
            error!(error = %e, request_id = %ids.request_id, "request handler failed");
            Reply::error(
                WireFormat::Json11,
                &ApiError::new(
                    ErrorCode::InternalFailure,
                    "The server encountered an internal error.",
                ),
            )
        }
    };
    log_reply(&method, &reply, &ids, body_len);
    metrics.request(operation, reply.error);
    let mut response = handler::finish(reply, cors, &ids);
    // Held until hyper drops the body, i.e. until the whole answer (a SubscribeToShard
    // stream included) is written: until then the connection is busy, never evicted.
    response.body_mut().in_flight = Some(in_flight);
    Ok(response)
}

/// The operation a request counts under: its Kinesis operation when `X-Amz-Target` names
/// one, else the endpoint its path routes to.
fn operation_label(parts: &hyper::http::request::Parts) -> &'static str {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    match handler::Target::parse(target).operation() {
        Some(op) => op.as_str(),
        None => observe::endpoint_label(parts.uri.path()),
    }
}

fn log_reply(method: &hyper::Method, reply: &Reply, ids: &RequestIds, body_len: usize) {
    let status = reply.status.as_u16();
    if reply.status.is_server_error() {
        warn!(%method, status, error = reply.error, request_id = %ids.request_id, body_len, "request failed");
    } else {
        debug!(%method, status, error = reply.error, request_id = %ids.request_id, body_len, "request");
    }
}

/// Reads a whole body, refusing more than [`MAX_REQUEST_BODY_BYTES`] and giving up when
/// nothing arrives for `stall_timeout`.
async fn read_body(body: &mut Incoming, stall_timeout: Duration) -> Result<Bytes, BodyError> {
    let hint = body.size_hint();
    // A declared Content-Length over the limit is refused before reading anything.
    if hint.lower() > MAX_REQUEST_BODY_BYTES as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::with_capacity(
        hint.exact().unwrap_or(0).min(MAX_REQUEST_BODY_BYTES as u64) as usize,
    );
    loop {
        let frame = match tokio::time::timeout(stall_timeout, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout(stall_timeout)),
            Ok(None) => break,
            Ok(Some(frame)) => frame?,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_REQUEST_BODY_BYTES {
                return Err(BodyError::TooLarge);
            }
            if buf.is_empty() && body.is_end_stream() {
                // The whole body arrived in one piece: no copy.
                return Ok(data);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A response body: the whole answer in one piece.
///
/// For a request refused over HTTP/2 as too large it also keeps the request body, draining
/// it, until the answer's bytes are out, and only then ends the stream: dropping the request
/// body earlier would reset the stream and lose the answer.
pub struct ReplyBody {
    data: Option<Bytes>,
    drain: Option<Drain>,
    /// SubscribeToShard: events framed as they arrive, after `data` (the initial response).
    events: Option<(WireFormat, crate::api::EventStream)>,
    /// Marks the connection busy while the answer is being written.
    in_flight: Option<InFlight>,
}

/// The rest of a refused request body, being read and dropped.
struct Drain {
    body: Incoming,
    discarded: u64,
    /// Most bytes to throw away before giving up.
    budget: u64,
    /// Fires when the client has sent nothing for [`BODY_READ_TIMEOUT`].
    stall: Pin<Box<tokio::time::Sleep>>,
}

impl ReplyBody {
    /// A body of `data`.
    pub fn new(data: Bytes) -> Self {
        Self {
            data: Some(data).filter(|d| !d.is_empty()),
            drain: None,
            events: None,
            in_flight: None,
        }
    }

    /// After the data, streams `events` in the event-stream framing until they end. Polled
    /// only as fast as the connection sends (HTTP/2 flow control, the socket's buffer), so
    /// a consumer that stops reading stops its session at its small event buffer.
    pub fn stream_events(&mut self, format: WireFormat, events: crate::api::EventStream) {
        self.events = Some((format, events));
    }

    /// Ends the response only once `request` has ended or `budget` bytes of it have been
    /// thrown away (0: just keep it alive until the answer is out).
    fn drain_after(&mut self, request: Incoming, budget: u64) {
        self.drain = Some(Drain {
            body: request,
            discarded: 0,
            budget,
            stall: Box::pin(tokio::time::sleep(BODY_READ_TIMEOUT)),
        });
    }
}

impl Drain {
    /// `Ready` once draining is over: the body ended, failed, stalled, or went over the
    /// budget (the connection is then not reused).
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.budget == 0 {
            return Poll::Ready(());
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    self.discarded += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if self.discarded > self.budget {
                        return Poll::Ready(());
                    }
                    let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
                    self.stall.as_mut().reset(deadline);
                }
                Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                Poll::Pending => return self.stall.as_mut().poll(cx),
            }
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(data))));
        }
        if let Some((format, events)) = this.events.as_mut() {
            match events.poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let frame = format.event_message(&item);
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(frame))));
                }
                Poll::Ready(None) => this.events = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        if let Some(drain) = this.drain.as_mut() {
            std::task::ready!(drain.poll_done(cx));
            this.drain = None;
        }
        this.in_flight = None;
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.drain.is_none() && self.events.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.events.is_some() {
            // Unknown length: HTTP/1.1 sends it chunked, HTTP/2 as DATA frames until the end.
            return hyper::body::SizeHint::default();
        }
        match (&self.data, &self.drain) {
            // Unknown length: an exact one would let hyper end the response (and drop
            // this body, draining or not) as soon as the answer's bytes are written.
            (_, Some(_)) => hyper::body::SizeHint::default(),
            (data, None) => {
                hyper::body::SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// What a connection's socket and its request handler share: when it last moved a byte
/// (for [`IDLE_TIMEOUT`]) and whether it must linger when closed.
struct Activity {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last read or write.
    last_ms: AtomicU64,
    /// Set when an answer leaves request bytes unread: the close then drains them first.
    linger: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            linger: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A socket that records when it last read or wrote a byte, and closes with a "lingering
/// close" when asked to (Apache's `lingering_close`): after its FIN it reads and drops what
/// the client is still sending, for at most [`MAX_DISCARD_BYTES`] and until the client has
/// been silent for [`LINGER_TIMEOUT`]. Closing a socket with unread data makes the kernel
/// answer with a reset, which can destroy a response the client has not read yet; that is
/// what happens to a client still uploading an oversized body when it is refused.
struct ActivityIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    write_shut: bool,
    lingered: u64,
    linger_stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ActivityIo {
    fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            write_shut: false,
            lingered: 0,
            linger_stall: None,
        }
    }

    /// Reads and drops incoming bytes until EOF, an error, the budget or the stall timer.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let stall = self
            .linger_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(LINGER_TIMEOUT)));
        let mut scratch = [0u8; 8192];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.lingered += buf.filled().len() as u64;
                    if self.lingered > MAX_DISCARD_BYTES {
                        return Poll::Ready(());
                    }
                    stall
                        .as_mut()
                        .reset(tokio::time::Instant::now() + LINGER_TIMEOUT);
                }
                Poll::Ready(_) => return Poll::Ready(()), // EOF or error
                Poll::Pending => return stall.as_mut().poll(cx),
            }
        }
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_shut {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.write_shut = true;
        }
        if this.activity.linger.load(Ordering::Relaxed) {
            std::task::ready!(this.poll_linger(cx));
        }
        Poll::Ready(Ok(()))
    }
}

/// The answers hyper (1.x) writes by itself, before any service sees the request, when a
/// request head cannot be parsed (`proto::h1::role::Server::on_error`): an empty 400 (bad
/// request line or header, e.g. a `Content-Length` that is not a number), 431 (more than
/// 100 headers, or a head over ~400 KiB) or 414 (a URI over 65,534 bytes), each
/// `connection: close`. hyper has no hook for them, so they are recognised on their way
/// out, byte for byte, and replaced.
const HYPER_AUTOMATIC_ANSWERS: [(u16, &str, &str); 3] = [
    (
        400,
        "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: ",
        "The request could not be parsed as HTTP/1.1: a malformed request line or header (a \
         Content-Length that is not a number, an invalid header name or value, or an \
         unsupported Transfer-Encoding).",
    ),
    (
        431,
        "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: ",
        "Request header fields too large: at most 100 headers, and at most about 400 KiB of \
         request line and headers, are accepted.",
    ),
    (
        414,
        "HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: ",
        "Request URI too long: at most 65,534 bytes are accepted.",
    ),
];

/// Length of an HTTP date (`Sun, 06 Dec 2026 23:05:11 GMT`).
const HTTP_DATE_LEN: usize = 29;

/// Between hyper and the socket (or TLS): replaces hyper's empty automatic answers to
/// unparsable request heads ([`HYPER_AUTOMATIC_ANSWERS`]) with an AWS-shaped one, JSON
/// `{"__type":"SerializationException","message":…}` with a request id, and asks for a
/// lingering close, since the rest of such a request (the headers past the hundredth, say)
/// is still unread and closing over it would reset the connection and lose the answer.
///
/// A write is replaced only when it is exactly such an answer, as its only content, while no
/// request of this connection is in flight: hyper writes them in one piece on a connection
/// whose service was never called for that request, and nothing of ours has that shape.
struct AutoAnswerIo<T> {
    inner: T,
    ids: Arc<RequestIdGenerator>,
    metrics: Arc<crate::metrics::ServerMetrics>,
    activity: Arc<Activity>,
    state: Arc<ConnectionState>,
    /// The replacement, and how much of it is written; hyper was told it all was.
    pending: Option<(Bytes, usize)>,
}

impl<T> AutoAnswerIo<T> {
    fn new<K>(
        inner: T,
        app: Arc<App<K>>,
        activity: Arc<Activity>,
        state: Arc<ConnectionState>,
    ) -> Self {
        Self {
            inner,
            ids: app.ids.clone(),
            metrics: app.metrics.clone(),
            activity,
            state,
            pending: None,
        }
    }

    /// The AWS-shaped answer standing in for `written`, if it is one of hyper's own.
    fn replacement(&self, written: &[u8]) -> Option<Bytes> {
        if self.state.busy() {
            return None;
        }
        let (status, head, message) = HYPER_AUTOMATIC_ANSWERS.iter().find(|(_, head, _)| {
            written.len() == head.len() + HTTP_DATE_LEN + 4
                && written.starts_with(head.as_bytes())
                && written.ends_with(b"\r\n\r\n")
        })?;
        let date = std::str::from_utf8(&written[head.len()..head.len() + HTTP_DATE_LEN]).ok()?;
        let reason = &head["HTTP/1.1 ".len()..head.find("\r\n")?];
        let code = "SerializationException";
        let body = handler::transport_error_body(code, message);
        let ids = self.ids.next();
        debug!(status, request_id = %ids.request_id, "unparsable request head answered");
        self.metrics.request(UNPARSED_REQUEST_LABEL, Some(code));
        Some(Bytes::from(format!(
            "HTTP/1.1 {reason}\r\ncontent-type: {}\r\nx-amzn-requestid: {}\r\n\
             x-amz-id-2: {}\r\ncontent-length: {}\r\nconnection: close\r\ndate: {date}\r\n\r\n{body}",
            WireFormat::Json11.content_type(),
            ids.request_id,
            ids.id_2,
            body.len(),
        )))
    }
}

/// The operation a request whose head could not be parsed counts under in the metrics.
const UNPARSED_REQUEST_LABEL: &str = "unparsed";

impl<T: AsyncWrite + Unpin> AutoAnswerIo<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = self.pending.as_mut() {
            let n =
                std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == answer.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in place of hyper's automatic answer when it is one.
    fn intercept(&mut self, buf: &[u8], cx: &mut Context<'_>) -> Option<io::Result<usize>> {
        let answer = self.replacement(buf)?;
        self.pending = Some((answer, 0));
        self.activity.linger.store(true, Ordering::Relaxed);
        match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Some(Err(e)),
            // The rest goes out on flush or shutdown, which hyper calls next.
            _ => Some(Ok(buf.len())),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AutoAnswerIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AutoAnswerIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        if let Some(result) = this.intercept(buf, cx) {
            return Poll::Ready(result);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && let Some(result) = this.intercept(only, cx)
        {
            return Poll::Ready(result);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
