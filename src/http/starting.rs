//! The port while storage is being recovered: probes get an answer instead of a refused
//! connection, so `/ready` can say why the broker is not ready yet (Kubernetes and Docker
//! show the reason) and clients get a status their SDK retries.
//!
//! Recovery (opening every shard log, replaying the queue journals) happens before the
//! broker exists, so nothing here may touch it: each connection gets one fixed answer and
//! is closed (no keep-alive), which guarantees that no connection accepted here outlives
//! the start and that the real server sees every request that follows.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::observe::{HEALTH_PATH, READY_PATH};

/// Why `/ready` answers 503 during the start.
pub const STARTING_REASON: &str = "starting: storage is being recovered";

/// A client that connects during the start and sends nothing is dropped after this.
const STARTING_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `until` (the recovery) while answering every connection on `listeners` with the
/// start-up answer; returns its output. Connections still open when it finishes are cut.
pub async fn answer_while<T>(listeners: &[&TcpListener], until: impl Future<Output = T>) -> T {
    let mut connections = JoinSet::new();
    tokio::pin!(until);
    loop {
        let accept_any = async {
            let accepts = listeners.iter().map(|l| Box::pin(l.accept()));
            match accepts.len() {
                0 => std::future::pending().await,
                _ => futures_first(accepts).await,
            }
        };
        tokio::select! {
            biased;
            out = &mut until => {
                connections.abort_all();
                return out;
            }
            accepted = accept_any => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(answer_connection(stream));
                }
                while connections.try_join_next().is_some() {}
            }
        }
    }
}

/// The first of several futures to complete (the listeners are few: one or two).
async fn futures_first<F: Future + Unpin>(futures: impl Iterator<Item = F>) -> F::Output {
    let mut futures: Vec<F> = futures.collect();
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(out) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(out);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn answer_connection(stream: TcpStream) {
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(answer(&req)) }),
        );
    let _ = tokio::time::timeout(STARTING_CONNECTION_TIMEOUT, served).await;
}

/// `/health` 200 (the process is alive), `/ready` 503 with the reason, anything else 503
/// with `Retry-After`: the SDKs retry a 503, so a client started together with the broker
/// waits for it instead of failing.
fn answer(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        HEALTH_PATH | super::handler::HEALTH_PATH => {
            (StatusCode::OK, serde_json::json!({"status": "ok"}))
        }
        READY_PATH => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not ready", "reason": STARTING_REASON}),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "__type": "ServiceUnavailableException",
                "message": "The broker is starting: storage is being recovered. Retry shortly."
            }),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("the start-up answer closes the connection")
            .unwrap();
        out
    }

    #[tokio::test]
    async fn probes_are_answered_during_recovery_and_the_listener_is_handed_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (done, recovered) = tokio::sync::oneshot::channel::<u32>();
        let probe = tokio::spawn(async move {
            let ready = get(addr, "GET", READY_PATH).await;
            let health = get(addr, "GET", HEALTH_PATH).await;
            let kinesis = get(addr, "POST", "/").await;
            let _ = done.send(7);
            (ready, health, kinesis)
        });
        let out = answer_while(&[&listener], async { recovered.await.unwrap() }).await;
        assert_eq!(out, 7);
        let (ready, health, kinesis) = probe.await.unwrap();
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        assert!(ready.contains(STARTING_REASON), "{ready}");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(kinesis.starts_with("HTTP/1.1 503"), "{kinesis}");
        assert!(kinesis.to_ascii_lowercase().contains("retry-after: 1"));
        assert!(kinesis.contains("ServiceUnavailableException"));
        // The listener is usable by the real server afterwards.
        let client = tokio::spawn(TcpStream::connect(addr));
        let (accepted, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        drop(accepted);
        client.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_silent_connection_does_not_hold_up_the_start() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = TcpStream::connect(addr).await.unwrap();
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            answer_while(&[&listener], async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                1
            }),
        )
        .await
        .expect("recovery's end is not delayed by an idle client");
        assert_eq!(out, 1);
        drop(silent);
    }
}
