//! A function reached through an Invoke endpoint (`NAME=http://HOST:PORT`): the broker POSTs
//! each event as Lambda's Invoke API would receive it, to the Runtime Interface Emulator's
//! `/2015-03-31/functions/function/invocations` by default.
//!
//! Lambda's Invoke answers a function error with a 200 and `X-Amz-Function-Error`; the
//! emulator drops that header and answers a 200 whose body is the error
//! (`{"errorMessage", "errorType", ...}`), so either counts as a function error. So do a
//! refused connection, any other status, and the function's timeout passed.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::runtime::Outcome;

/// Idle keep-alive connections kept per endpoint: more than a mapping's concurrent batches
/// rarely need, and a bound on sockets held open.
const MAX_IDLE_CONNECTIONS: usize = 16;
/// An idle connection older than this is closed (the emulator keeps none for long anyway).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may take to open; the function's timeout bounds it too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How much of an error body a function error keeps.
const MAX_ERROR_TEXT: usize = 4096;

/// An Invoke endpoint and its connection pool.
pub struct InvokeUrl {
    uri: Uri,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for InvokeUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvokeUrl").field("uri", &self.uri).finish()
    }
}

impl InvokeUrl {
    /// A client of `url` (an `http://` URL with its path) whose invocations last at most
    /// `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("{url:?}: not a URL ({e})"))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS)
            .pool_idle_timeout(IDLE_TIMEOUT)
            // Without a timer the pool never expires an idle connection.
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            uri,
            timeout,
            client,
        })
    }

    /// POSTs `payload` and reads the outcome. Cancel-safe.
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        match tokio::time::timeout(self.timeout, self.call(payload)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Error(format!(
                "Task timed out after {:.2} seconds",
                self.timeout.as_secs_f64()
            )),
        }
    }

    async fn call(&self, payload: Bytes) -> Outcome {
        let request = Request::post(self.uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(payload));
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Error(format!("cannot build a request to {}: {e}", self.uri));
            }
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Error(format!(
                    "cannot reach the function at {}: {}",
                    self.uri,
                    error_chain(&e)
                ));
            }
        };
        let status = response.status();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                return Outcome::Error(format!(
                    "the function's answer from {} broke off: {e}",
                    self.uri
                ));
            }
        };
        if !status.is_success() {
            return Outcome::Error(format!(
                "the Invoke endpoint {} answered {status}: {}",
                self.uri,
                excerpt(&body)
            ));
        }
        if function_error.is_some() || is_error_shaped(&body) {
            return Outcome::Error(excerpt(&body));
        }
        Outcome::Response(body)
    }
}

/// A body a runtime client posts for a failed handler: a JSON object with `errorMessage`
/// and `errorType`, as the emulator passes it on.
fn is_error_shaped(body: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return false;
    };
    map.contains_key("errorMessage") && map.contains_key("errorType")
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.into_owned(),
    }
}

/// The error and its causes ("client error (Connect): tcp connect error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shaped_bodies_are_objects_with_message_and_type() {
        assert!(is_error_shaped(
            br#"{"errorMessage":"boom","errorType":"ValueError","requestId":"x","stackTrace":[]}"#
        ));
        assert!(!is_error_shaped(br#"{"errorMessage":"only a message"}"#));
        assert!(!is_error_shaped(
            br#"[{"errorMessage":"a","errorType":"b"}]"#
        ));
        assert!(!is_error_shaped(b"null"));
        assert!(!is_error_shaped(b"not json"));
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_function_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let f = InvokeUrl::new(
            &format!("http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"),
            Duration::from_secs(5),
        )
        .unwrap();
        let outcome = f.invoke(Bytes::from_static(b"{}")).await;
        assert!(
            matches!(&outcome, Outcome::Error(e) if e.contains("cannot reach")),
            "{outcome:?}"
        );
    }
}
