//! How the broker reaches functions: an Invoke endpoint (the Runtime Interface Emulator's
//! shape) served by a small hyper server here, runtime processes the broker starts itself
//! (a stdlib-only Python runtime interface client), and `/_broker/functions`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kinesis_broker::broker::esm::runtime::Outcome;
use kinesis_broker::config::FunctionSpec;
use serde_json::{Value, json};

use crate::common::*;

/// Every wait in these tests is bounded by this.
use crate::esm::{WAIT, free_port, http};

async fn put(client: &aws_sdk_kinesis::Client, stream: &str, items: &[&str]) {
    let entries = items
        .iter()
        .map(|d| {
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(blob(d.as_bytes().to_vec()))
                .build()
                .unwrap()
        })
        .collect();
    let out = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
}

async fn create_mapping(addr: SocketAddr, body: Value) -> String {
    let a = http(
        addr,
        "POST",
        "/2015-03-31/event-source-mappings",
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    a.body["UUID"].as_str().unwrap().to_string()
}

/// Waits until the mapping's LastProcessingResult satisfies `done`; returns it.
async fn wait_result(addr: SocketAddr, uuid: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = http(
            addr,
            "GET",
            &format!("/2015-03-31/event-source-mappings/{uuid}"),
            None,
        )
        .await;
        let result = got.body["LastProcessingResult"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if done(&result) {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; last result {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn decoded(body: &[u8]) -> Vec<String> {
    let event: Value = serde_json::from_slice(body).unwrap();
    event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let b64 = r["kinesis"]["data"].as_str().unwrap();
            String::from_utf8(base64_simd::STANDARD.decode_to_vec(b64).unwrap()).unwrap()
        })
        .collect()
}

/// What the Invoke endpoint answers, one per call, in order; the last one repeats.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// 200 with X-Amz-Function-Error (Lambda's Invoke).
    HeaderError,
    /// 200 whose body is the error (the emulator, which drops the header).
    ErrorBody,
    /// 500.
    ServerError,
    /// No answer within the function's timeout.
    Hang,
    /// 200 with a result.
    Ok,
}

type Calls = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A hyper server standing in for the Runtime Interface Emulator's Invoke endpoint.
async fn invoke_endpoint(script: Vec<Reply>) -> (SocketAddr, Calls, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls: Calls = Default::default();
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let seen = calls.clone();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let script = script.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            seen.lock().unwrap().push((path, body));
                            let reply = {
                                let mut s = script.lock().unwrap();
                                if s.len() > 1 {
                                    s.pop_front().unwrap()
                                } else {
                                    s[0]
                                }
                            };
                            let error = json!({"errorMessage": "boom", "errorType": "ValueError", "requestId": "x", "stackTrace": []}).to_string();
                            let mut r = hyper::Response::new(Full::new(Bytes::from(match reply {
                                Reply::Ok => "{\"ok\":true}".to_string(),
                                _ => error,
                            })));
                            match reply {
                                Reply::HeaderError => {
                                    r.headers_mut().insert(
                                        "X-Amz-Function-Error",
                                        "Unhandled".parse().unwrap(),
                                    );
                                }
                                Reply::ServerError => {
                                    *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR
                                }
                                Reply::Hang => tokio::time::sleep(Duration::from_secs(20)).await,
                                Reply::ErrorBody | Reply::Ok => {}
                            }
                            Ok::<_, Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, calls, connections)
}

#[tokio::test]
async fn an_invoke_url_function_error_in_any_shape_is_retried_until_success() {
    let (endpoint, calls, connections) = invoke_endpoint(vec![
        Reply::HeaderError,
        Reply::ErrorBody,
        Reply::ServerError,
        Reply::Hang,
        Reply::Ok,
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spec: FunctionSpec = format!("fn=http://{endpoint}?timeout=1").parse().unwrap();
    let h = start_server_in(dir.path(), move |c| c.functions = vec![spec]).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "inv", 1).await;
    put(&client, "inv", &["one", "two"]).await;
    let uuid = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("inv"), "StartingPosition": "TRIM_HORIZON"}),
    )
    .await;
    wait_result(h.local_addr(), &uuid, |r| r == "OK").await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 5, "four failures then the success");
    for (path, body) in &calls {
        assert_eq!(path, "/2015-03-31/functions/function/invocations");
        assert_eq!(body, &calls[0].1, "the same batch each time");
        assert_eq!(decoded(body), ["one", "two"]);
    }
    // Kept alive: one connection until the timed-out call abandoned it, one after.
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_invoke_url_is_a_function_error_the_mapping_gives_up_on() {
    let nobody = free_port();
    let dir = tempfile::tempdir().unwrap();
    let spec: FunctionSpec = format!("fn=http://{nobody}").parse().unwrap();
    let h = start_server_in(dir.path(), move |c| c.functions = vec![spec]).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "refused", 1).await;
    put(&client, "refused", &["x"]).await;
    let uuid = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("refused"), "StartingPosition": "TRIM_HORIZON", "MaximumRetryAttempts": 2}),
    )
    .await;
    let result = wait_result(h.local_addr(), &uuid, |r| r.contains("discarded")).await;
    assert!(
        result.contains("after 2 retries (MaximumRetryAttempts 2)"),
        "{result}"
    );
    h.shutdown().await.unwrap();
}

/// A runtime interface client on the standard library only, over one keep-alive
/// connection as the official clients use: writes `PID REQUEST-ID` to `$RUNTIME_LOG` for
/// each invocation, hangs on the first invocation while `$HANG_ONCE` exists (removing it),
/// and appends each record's data to `$RECORDS_OUT`.
const RUNTIME_PY: &str = r#"
import base64, http.client, json, os, time
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.split(":")
for v in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION"):
    assert os.environ.get(v), v
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    with open(os.environ["RUNTIME_LOG"], "a") as log:
        log.write(f"{os.getpid()} {rid}\n")
    try:
        os.unlink(os.environ["HANG_ONCE"])
        time.sleep(600)
    except FileNotFoundError:
        pass
    with open(os.environ["RECORDS_OUT"], "a") as out:
        for rec in event["Records"]:
            out.write(base64.b64decode(rec["kinesis"]["data"]).decode() + "\n")
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body=b"null")
    conn.getresponse().read()
"#;

fn runtime_command(dir: &Path) -> String {
    let script = dir.join("runtime.py");
    std::fs::write(&script, RUNTIME_PY).unwrap();
    format!(
        "RUNTIME_LOG={d}/runtime.log HANG_ONCE={d}/hang-once RECORDS_OUT={d}/records.txt exec python3 {s}",
        d = dir.display(),
        s = script.display()
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = lines(path);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} lines in {}; got {got:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn kill9(pid: &str) {
    let status = std::process::Command::new("kill")
        .args(["-9", pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Alive: has a /proc entry that is not a zombie.
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
            state != Some(Some('Z'))
        }
        Err(_) => false,
    }
}

/// Waits until `pid` has no /proc entry: dead and reaped.
async fn wait_gone(pid: &str) {
    let deadline = Instant::now() + WAIT;
    while std::fs::metadata(format!("/proc/{pid}")).is_ok() {
        assert!(Instant::now() < deadline, "{pid} still there (a zombie?)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_managed_runtime_killed_mid_batch_fails_the_batch_at_once_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("hang-once"), "").unwrap();
    // A timeout far beyond the test's own wait: only the closed connection can fail the
    // batch in time.
    let mut spec: FunctionSpec = "fn=runtime://127.0.0.1:0?timeout=600".parse().unwrap();
    spec.command = Some(runtime_command(&work));
    let h = start_server_in(&dir.path().join("data"), move |c| c.functions = vec![spec]).await;
    let client = client_for(h.local_addr());
    create_stream(&client, "managed", 1).await;
    put(&client, "managed", &["a", "b", "c"]).await;
    let uuid = create_mapping(
        h.local_addr(),
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("managed"), "StartingPosition": "TRIM_HORIZON"}),
    )
    .await;
    let first = wait_lines(&work.join("runtime.log"), 1).await;
    let (pid, request_id) = first[0].split_once(' ').unwrap();
    let pid = pid.to_string();
    let killed = Instant::now();
    kill9(&pid);
    let second = wait_lines(&work.join("runtime.log"), 2).await;
    let (new_pid, new_request) = second[1].split_once(' ').unwrap();
    assert_ne!(new_pid, pid, "a new runtime process took the retry");
    assert_ne!(new_request, request_id);
    wait_result(h.local_addr(), &uuid, |r| r == "OK").await;
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "the batch failed at once, not at the 600 s deadline"
    );
    assert_eq!(lines(&work.join("records.txt")), ["a", "b", "c"]);
    // `exec` made the runtime the broker's own child: once dead it is reaped, not a zombie.
    wait_gone(&pid).await;

    let listed = http(h.local_addr(), "GET", "/_broker/functions", None).await;
    let f = &listed.body["functions"][0];
    assert_eq!(f["name"], "fn");
    assert_eq!(f["kind"], "runtime");
    assert_ne!(f["runtime_api"], "127.0.0.1:0");

    h.shutdown().await.unwrap();
    assert!(
        std::fs::metadata(format!("/proc/{new_pid}")).is_err(),
        "shutdown stopped and reaped the runtime"
    );
}

#[tokio::test]
async fn concurrent_invocations_start_runtimes_up_to_the_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut spec: FunctionSpec = "fn=runtime://127.0.0.1:0?concurrency=2".parse().unwrap();
    spec.command = Some(runtime_command(&work));
    let h = start_server_in(&dir.path().join("data"), move |c| c.functions = vec![spec]).await;
    let function = h.broker().esm().functions()[0].clone();
    // Four invocations at once; the first runtime hangs on the first: a second runtime
    // starts for the rest, and no third (the concurrency is 2).
    std::fs::write(work.join("hang-once"), "").unwrap();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let f = function.clone();
            tokio::spawn(async move { f.invoke(Bytes::from_static(b"{\"Records\":[]}")).await })
        })
        .collect();
    let mut responses = 0;
    let mut timeouts = 0;
    for c in calls {
        match tokio::time::timeout(WAIT, c).await.unwrap().unwrap() {
            Outcome::Response(_) => responses += 1,
            Outcome::Error(e) => {
                assert!(e.contains("Task timed out after 3.00 seconds"), "{e}");
                timeouts += 1;
            }
        }
    }
    assert_eq!((responses, timeouts), (3, 1));
    let pids: std::collections::BTreeSet<String> = lines(&work.join("runtime.log"))
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    h.shutdown().await.unwrap();
    for pid in &pids {
        assert!(!alive(pid), "{pid} stopped");
    }
}

#[tokio::test]
async fn functions_are_declared_listed_and_removed_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let h = start_server_in(dir.path(), |_| {}).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "admin", 1).await;

    let empty = http(addr, "GET", "/_broker/functions", None).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, json!({"functions": []}));

    let bad = http(
        addr,
        "PUT",
        "/_broker/functions/fn",
        Some(&json!({"url": "runtime://127.0.0.1:9001?timeout=0"})),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"].as_str().unwrap().contains("timeout"),
        "{:?}",
        bad.body
    );
    let bad = http(
        addr,
        "PUT",
        "/_broker/functions/fn",
        Some(&json!({"url": "http://127.0.0.1:9001", "command": "python x"})),
    )
    .await;
    assert_eq!(bad.status, 400);

    let (endpoint, calls, _) = invoke_endpoint(vec![Reply::Ok]).await;
    let put_fn = http(
        addr,
        "PUT",
        "/_broker/functions/fn",
        Some(&json!({"url": format!("http://{endpoint}?timeout=10")})),
    )
    .await;
    assert_eq!(put_fn.status, 200, "{:?}", put_fn.body);
    assert_eq!(put_fn.body["kind"], "invoke");
    assert_eq!(put_fn.body["timeout_s"], 10);
    let listed = http(addr, "GET", "/_broker/functions", None).await;
    assert_eq!(listed.body["functions"][0]["name"], "fn");

    let uuid = create_mapping(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("admin"), "StartingPosition": "TRIM_HORIZON"}),
    )
    .await;
    put(&client, "admin", &["z"]).await;
    wait_result(addr, &uuid, |r| r == "OK").await;
    assert_eq!(decoded(&calls.lock().unwrap()[0].1), ["z"]);

    let in_use = http(addr, "DELETE", "/_broker/functions/fn", None).await;
    assert_eq!(in_use.status, 409);
    assert!(
        in_use.body["error"].as_str().unwrap().contains(&uuid),
        "{:?}",
        in_use.body
    );
    let gone = http(
        addr,
        "DELETE",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        None,
    )
    .await;
    assert_eq!(gone.status, 202);
    let removed = http(addr, "DELETE", "/_broker/functions/fn", None).await;
    assert_eq!(removed.status, 200, "{:?}", removed.body);
    let unknown = http(addr, "DELETE", "/_broker/functions/fn", None).await;
    assert_eq!(unknown.status, 404);
    let listed = http(addr, "GET", "/_broker/functions", None).await;
    assert_eq!(listed.body, json!({"functions": []}));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_runtime_killed_while_idle_is_noticed_before_an_invocation_goes_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut spec: FunctionSpec = "fn=runtime://127.0.0.1:0".parse().unwrap();
    spec.command = Some(runtime_command(&work));
    let h = start_server_in(&dir.path().join("data"), move |c| c.functions = vec![spec]).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "idle", 1).await;
    put(&client, "idle", &["first"]).await;
    // No retry at all: an invocation handed to the dead runtime would lose the batch.
    let uuid = create_mapping(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("idle"), "StartingPosition": "TRIM_HORIZON", "MaximumRetryAttempts": 0}),
    )
    .await;
    wait_result(addr, &uuid, |r| r == "OK").await;
    let first = wait_lines(&work.join("runtime.log"), 1).await;
    let pid = first[0].split(' ').next().unwrap().to_string();
    let idle = |n: u64| async move {
        let deadline = Instant::now() + WAIT;
        loop {
            let listed = http(addr, "GET", "/_broker/functions", None).await;
            if listed.body["functions"][0]["idle_runtimes"] == n {
                return;
            }
            assert!(Instant::now() < deadline, "{:?}", listed.body);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    idle(1).await;
    kill9(&pid);
    idle(0).await;
    put(&client, "idle", &["second"]).await;
    wait_lines(&work.join("records.txt"), 2).await;
    let result = wait_result(addr, &uuid, |r| r == "OK" || r.contains("discarded")).await;
    assert_eq!(result, "OK");
    assert_eq!(lines(&work.join("records.txt")), ["first", "second"]);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_runtime_command_that_exits_fails_the_invocations_instead_of_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec: FunctionSpec = "fn=runtime://127.0.0.1:0".parse().unwrap();
    spec.command = Some("echo no runtime here >&2; exit 3".into());
    let h = start_server_in(dir.path(), move |c| c.functions = vec![spec]).await;
    let addr = h.local_addr();
    let client = client_for(addr);
    create_stream(&client, "broken", 1).await;
    put(&client, "broken", &["x"]).await;
    let uuid = create_mapping(
        addr,
        json!({"FunctionName": "fn", "EventSourceArn": stream_arn("broken"), "StartingPosition": "TRIM_HORIZON", "MaximumRetryAttempts": 1}),
    )
    .await;
    let result = wait_result(addr, &uuid, |r| r.contains("discarded")).await;
    assert!(
        result.contains("after 1 retries (MaximumRetryAttempts 1)"),
        "{result}"
    );
    h.shutdown().await.unwrap();
}
