//! A minimal Kinesis JSON 1.1 client: one keep-alive HTTP/1.1 connection per task (hyper's
//! low-level `client::conn::http1`), every request signed with AWS Signature Version 4
//! (dummy credentials, real signature).

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

/// Where requests go.
#[derive(Debug)]
pub struct Endpoint {
    /// Resolved socket address.
    pub addr: SocketAddr,
    /// `host[:port]` as given, sent in `Host` and signed.
    pub authority: String,
}

impl Endpoint {
    /// Parses `http://host:port`. Only plain HTTP. Refuses anything that does not resolve
    /// to a loopback address unless `allow_remote`.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err(
                "https endpoints are not supported: point the load at a plain-HTTP port".into(),
            );
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let authority = rest.split('/').next().unwrap_or("").to_string();
        if authority.is_empty() {
            return Err(format!("no host in endpoint '{url}'"));
        }
        let with_port = if authority.starts_with('[') {
            if authority.contains("]:") {
                authority.clone()
            } else {
                format!("{authority}:80")
            }
        } else if authority.contains(':') {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let addrs: Vec<SocketAddr> = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve '{authority}': {e}"))?
            .collect();
        let Some(addr) = addrs.first().copied() else {
            return Err(format!("'{authority}' resolves to no address"));
        };
        if !allow_remote && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "'{authority}' is not a loopback address ({addr}); load generation against other \
                 machines needs --allow-remote"
            ));
        }
        Ok(Self { addr, authority })
    }
}

/// SigV4 with static (dummy) credentials.
#[derive(Debug)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// The signing key of the day it was derived for.
    pub key_cache: std::sync::Mutex<Option<(String, [u8; 32])>>,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of a payload, for `Signer::authorization`.
pub fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// (`YYYYMMDD'T'HHMMSS'Z'`, `YYYYMMDD`) for a time.
pub fn amz_date(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    let full = format!(
        "{date}T{:02}{:02}{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    (full, date)
}

impl Signer {
    /// The `Authorization` header for a `POST /` carrying the four signed headers.
    pub fn authorization(
        &self,
        host: &str,
        target: &str,
        amz_date: &str,
        date: &str,
        payload_hash: &str,
    ) -> String {
        const SIGNED: &str = "content-type;host;x-amz-date;x-amz-target";
        let canonical = format!(
            "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n\n{SIGNED}\n{payload_hash}"
        );
        let scope = format!("{date}/{}/kinesis/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let k_signing = {
            let mut cache = self.key_cache.lock().unwrap();
            match &*cache {
                Some((day, key)) if day == date => *key,
                _ => {
                    let k_date = hmac(
                        format!("AWS4{}", self.secret_key).as_bytes(),
                        date.as_bytes(),
                    );
                    let k_region = hmac(&k_date, self.region.as_bytes());
                    let k_service = hmac(&k_region, b"kinesis");
                    let key = hmac(&k_service, b"aws4_request");
                    *cache = Some((date.to_string(), key));
                    key
                }
            }
        };
        let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={SIGNED}, Signature={signature}",
            self.access_key
        )
    }
}

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Why a call failed; `kind()` is the key in the failure counts.
#[derive(Debug)]
pub enum CallError {
    /// Connect, write or read failed.
    Transport(String),
    /// No complete answer within the request timeout.
    Timeout,
    /// An error answer: the AWS `__type` (after any `#`), or `HTTP<status>`.
    Api {
        status: u16,
        kind: String,
        message: String,
    },
}

impl CallError {
    pub fn kind(&self) -> String {
        match self {
            CallError::Transport(_) => "TransportError".into(),
            CallError::Timeout => "Timeout".into(),
            CallError::Api { kind, .. } => kind.clone(),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "transport error: {e}"),
            CallError::Timeout => write!(f, "timeout"),
            CallError::Api {
                status,
                kind,
                message,
            } => write!(f, "HTTP {status} {kind}: {message}"),
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody<'a> {
    #[serde(rename = "__type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(alias = "Message", borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// Shared by every connection of a run.
#[derive(Debug)]
pub struct Client {
    pub endpoint: Endpoint,
    /// One signer per account the run spreads its streams over (`--accounts`); index 0 is
    /// `--access-key`.
    pub signers: Vec<Signer>,
    pub timeout: Duration,
}

impl Client {
    /// A signed `POST /` calling `op` with `body`, signed for account (signer) `account`;
    /// `hash` is the body's SHA-256 (hex) when the caller has it already.
    pub fn request(
        &self,
        op: &str,
        body: Bytes,
        hash: Option<&str>,
        account: usize,
    ) -> Result<hyper::Request<Full<Bytes>>, CallError> {
        let target = format!("Kinesis_20131202.{op}");
        let (amz_date, date) = amz_date(SystemTime::now());
        let computed;
        let hash = match hash {
            Some(h) => h,
            None => {
                computed = payload_hash(&body);
                &computed
            }
        };
        let auth = self.signers[account % self.signers.len()].authorization(
            &self.endpoint.authority,
            &target,
            &amz_date,
            &date,
            hash,
        );
        hyper::Request::post("/")
            .header("host", &self.endpoint.authority)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", target)
            .header("x-amz-date", amz_date)
            .header("authorization", auth)
            .header("content-length", body.len())
            .header("user-agent", "kinesis-loadgen/0.1")
            .body(Full::new(body))
            .map_err(|e| CallError::Transport(format!("request: {e}")))
    }

    /// Opens a connection of its own for one streamed answer (SubscribeToShard): sends
    /// `op` and returns once the status and headers are in (within the request timeout).
    /// An error status comes back as `CallError::Api`, its body read; a 200's body is the
    /// caller's to read, for as long as it lasts. The connection closes when the returned
    /// `StreamedAnswer` is dropped.
    pub async fn open_streamed(
        &self,
        op: &str,
        body: Bytes,
        account: usize,
    ) -> Result<StreamedAnswer, CallError> {
        let request = self.request(op, body, None, account)?;
        let connect = async {
            let stream = TcpStream::connect(self.endpoint.addr)
                .await
                .map_err(|e| CallError::Transport(format!("connect: {e}")))?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| CallError::Transport(format!("handshake: {e}")))?;
            let conn = tokio::spawn(async move {
                let _ = conn.await;
            });
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(e) => {
                    conn.abort();
                    return Err(CallError::Transport(format!("send: {e}")));
                }
            };
            Ok((sender, conn, response))
        };
        let (sender, conn, response) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| CallError::Timeout)??;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut answer = StreamedAnswer {
            _sender: sender,
            conn,
            content_type,
            body: response.into_body(),
        };
        if status == 200 {
            return Ok(answer);
        }
        let body = match tokio::time::timeout(self.timeout, (&mut answer.body).collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => return Err(CallError::Transport(format!("body: {e}"))),
            Err(_) => return Err(CallError::Timeout),
        };
        Err(api_error(status, &body))
    }
}

impl Client {
    /// One signed call of a REST API on the same endpoint (Lambda's event-source-mapping
    /// API: `service` "lambda"), on a connection of its own: (status, body). For the few
    /// control calls of a run, not for load.
    pub async fn rest(
        &self,
        service: &str,
        method: hyper::Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), CallError> {
        let signer = &self.signers[0];
        let (amz_date, date) = amz_date(SystemTime::now());
        let hash = payload_hash(&body);
        let host = &self.endpoint.authority;
        // The paths used here (`/2015-03-31/event-source-mappings/<UUID>`) need no encoding.
        const SIGNED: &str = "content-type;host;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n\ncontent-type:application/json\nhost:{host}\nx-amz-date:{amz_date}\n\n{SIGNED}\n{hash}"
        );
        let scope = format!("{date}/{}/{service}/aws4_request", signer.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let k_date = hmac(
            format!("AWS4{}", signer.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k_region = hmac(&k_date, signer.region.as_bytes());
        let k_service = hmac(&k_region, service.as_bytes());
        let k_signing = hmac(&k_service, b"aws4_request");
        let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={SIGNED}, Signature={signature}",
            signer.access_key
        );
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json")
            .header("x-amz-date", amz_date)
            .header("authorization", auth)
            .header("content-length", body.len())
            .header("user-agent", "kinesis-loadgen/0.1")
            .body(Full::new(body))
            .map_err(|e| CallError::Transport(format!("request: {e}")))?;
        let call = async {
            let stream = TcpStream::connect(self.endpoint.addr)
                .await
                .map_err(|e| CallError::Transport(format!("connect: {e}")))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| CallError::Transport(format!("handshake: {e}")))?;
            let conn = tokio::spawn(async move {
                let _ = conn.await;
            });
            let answer = async {
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| CallError::Transport(format!("send: {e}")))?;
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| CallError::Transport(format!("body: {e}")))?
                    .to_bytes();
                Ok((status, body))
            }
            .await;
            conn.abort();
            answer
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| CallError::Timeout)?
    }
}

/// A streamed 200 answer on a connection of its own (see [`Client::open_streamed`]).
pub struct StreamedAnswer {
    /// Kept so the connection is not shut down under the answer.
    _sender: SendRequest<Full<Bytes>>,
    conn: tokio::task::JoinHandle<()>,
    /// The answer's `Content-Type`.
    pub content_type: String,
    /// The answer's body, read frame by frame.
    pub body: hyper::body::Incoming,
}

impl Drop for StreamedAnswer {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// The error a non-200 answer carries: the AWS `__type` (after any `#`) and message, or
/// `HTTP<status>` and the start of the body.
pub fn api_error(status: u16, body: &[u8]) -> CallError {
    let (kind, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            kind: Some(k),
            message,
        }) => (
            k.rsplit('#').next().unwrap_or(&k).to_string(),
            message.map(|m| m.into_owned()).unwrap_or_default(),
        ),
        _ => (
            format!("HTTP{status}"),
            String::from_utf8_lossy(body).chars().take(200).collect(),
        ),
    };
    CallError::Api {
        status,
        kind,
        message,
    }
}

/// One keep-alive connection, reopened after a failure.
pub struct Conn {
    client: Arc<Client>,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened, including the first.
    pub connects: u64,
    /// Which of the client's signers (accounts) signs the next calls.
    pub account: usize,
}

impl Conn {
    pub fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            sender: None,
            connects: 0,
            account: 0,
        }
    }

    async fn connect(&mut self) -> Result<(), CallError> {
        let stream = TcpStream::connect(self.client.endpoint.addr)
            .await
            .map_err(|e| CallError::Transport(format!("connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CallError::Transport(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        self.connects += 1;
        Ok(())
    }

    /// Calls `op` with a JSON body; `hash` is the body's precomputed SHA-256 (hex) when the
    /// caller reuses bodies. Returns the body of a 200 answer.
    pub async fn call(
        &mut self,
        op: &str,
        body: Bytes,
        hash: Option<&str>,
    ) -> Result<Bytes, CallError> {
        let timeout = self.client.timeout;
        match tokio::time::timeout(timeout, self.call_inner(op, body, hash)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection is in an unknown state: drop it.
                self.sender = None;
                Err(CallError::Timeout)
            }
        }
    }

    async fn call_inner(
        &mut self,
        op: &str,
        body: Bytes,
        hash: Option<&str>,
    ) -> Result<Bytes, CallError> {
        if let Some(sender) = &mut self.sender
            && sender.ready().await.is_err()
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            self.connect().await?;
        }
        let request = self.client.request(op, body, hash, self.account)?;
        let sender = self.sender.as_mut().expect("connected above");
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(CallError::Transport(format!("send: {e}")));
            }
        };
        let status = response.status().as_u16();
        let body = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(CallError::Transport(format!("body: {e}")));
            }
        };
        if status == 200 {
            return Ok(body);
        }
        Err(api_error(status, &body))
    }

    /// `call` with a `serde_json::Value` body, for the control plane.
    pub async fn call_json(
        &mut self,
        op: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let bytes = self.call(op, Bytes::from(body.to_string()), None).await?;
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CallError::Transport(format!("bad JSON answer: {e}")))
    }
}

/// Checks the date formatting and the SigV4 key derivation against known answers (the
/// key-derivation example of AWS's SigV4 documentation); run at start-up, it costs microseconds.
pub fn self_check() -> Result<(), String> {
    let t = UNIX_EPOCH + Duration::from_secs(1_764_078_540);
    if amz_date(t) != ("20251125T134900Z".to_string(), "20251125".to_string()) {
        return Err(format!("date formatting is wrong: {:?}", amz_date(t)));
    }
    let k_date = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20120215");
    let k_region = hmac(&k_date, b"us-east-1");
    let k_service = hmac(&k_region, b"iam");
    let k_signing = hmac(&k_service, b"aws4_request");
    if hex(&k_signing) != "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d" {
        return Err("SigV4 key derivation is wrong".into());
    }
    Ok(())
}
