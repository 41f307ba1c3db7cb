//! A small Kinesis client over the JSON 1.1 protocol (`POST /`, `X-Amz-Target:
//! Kinesis_20131202.<Operation>`), signed with [`super::sigv4`]: the calls the command line
//! needs, nothing more. http or https (rustls, the system's roots plus any CA bundle).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

use super::credentials::Settings;
use super::sigv4;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "Kinesis_20131202.";
/// Longest a single call may take; GetRecords answers at once, so this is generous.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts for calls that fail for a transient reason (see [`ClientError::is_transient`]).
const TRANSIENT_ATTEMPTS: u32 = 5;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The service answered with an error: its type (after any `#`) and message.
    #[error("{code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// AWS error type, e.g. `ResourceNotFoundException`.
        code: String,
        /// The service's message.
        message: String,
    },
    /// Could not connect, send or read.
    #[error("cannot reach {endpoint}: {reason}")]
    Transport {
        /// Endpoint called.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The endpoint or settings cannot work.
    #[error("{0}")]
    Config(String),
    /// A 200 answer that is not what the operation returns.
    #[error("unexpected answer to {operation}: {reason}")]
    BadAnswer {
        /// Operation called.
        operation: String,
        /// What was wrong.
        reason: String,
    },
}

impl ClientError {
    /// The AWS error type, when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth retrying the same call: throttling, 5xx answers, connection trouble.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Api { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "LimitExceededException"
                            | "ProvisionedThroughputExceededException"
                            | "ThrottlingException"
                            | "InternalFailure"
                            | "ServiceUnavailable"
                    )
            }
            ClientError::Transport { .. } => true,
            ClientError::Config(_) | ClientError::BadAnswer { .. } => false,
        }
    }
}

/// A signed Kinesis client for one endpoint, region and credential.
#[derive(Debug, Clone)]
pub struct KinesisClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `http(s)://host:port` as given.
    endpoint: String,
    /// `host:port`, the `Host` header.
    authority: String,
    settings: Settings,
}

impl KinesisClient {
    /// A client for `settings`; refuses endpoints it cannot talk to, and CA bundles that
    /// cannot be read.
    pub fn new(settings: Settings) -> Result<Self, ClientError> {
        let uri: hyper::Uri = settings.endpoint_url.parse().map_err(|e| {
            ClientError::Config(format!(
                "endpoint {:?}: not a URL ({e})",
                settings.endpoint_url
            ))
        })?;
        let scheme = match uri.scheme_str() {
            Some(scheme @ ("http" | "https")) => scheme.to_string(),
            _ => {
                return Err(ClientError::Config(format!(
                    "endpoint {:?}: give http://HOST:PORT or https://HOST[:PORT]",
                    settings.endpoint_url
                )));
            }
        };
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| {
                ClientError::Config(format!("endpoint {:?} has no host", settings.endpoint_url))
            })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let tls = tls_config(scheme == "https", settings.ca_bundle.as_deref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            http,
            endpoint: format!("{scheme}://{authority}"),
            authority,
            settings,
        })
    }

    /// The endpoint called, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One signed call, retried a few times with backoff when it fails transiently
    /// (except for `ProvisionedThroughputExceededException`, which callers pace themselves).
    pub async fn call(&self, operation: &str, input: &Value) -> Result<Value, ClientError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.call_once(operation, input).await {
                Err(e)
                    if e.is_transient()
                        && e.code() != Some("ProvisionedThroughputExceededException")
                        && attempt < TRANSIENT_ATTEMPTS =>
                {
                    tokio::time::sleep(jitter(delay)).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One signed call, no retry.
    pub async fn call_once(&self, operation: &str, input: &Value) -> Result<Value, ClientError> {
        let body = Bytes::from(input.to_string());
        let target = format!("{TARGET_PREFIX}{operation}");
        let (amz_date, date) = sigv4::amz_date(SystemTime::now());
        let payload_hash = sigv4::sha256_hex(&body);
        let credentials = &self.settings.credentials;
        let mut headers: Vec<(&str, &str)> = vec![
            ("content-type", CONTENT_TYPE),
            ("host", &self.authority),
            ("x-amz-date", &amz_date),
            ("x-amz-target", &target),
        ];
        if let Some(token) = &credentials.session_token {
            headers.push(("x-amz-security-token", token));
        }
        let canonical = sigv4::canonical_request("POST", "/", "", &headers, &payload_hash);
        let scope = sigv4::credential_scope(&date, &self.settings.region, "kinesis");
        let to_sign = sigv4::string_to_sign(&amz_date, &scope, &canonical.text);
        let key = sigv4::signing_key(
            &credentials.secret_access_key,
            &date,
            &self.settings.region,
            "kinesis",
        );
        let authorization = sigv4::authorization(
            &credentials.access_key_id,
            &scope,
            &canonical.signed_headers,
            &sigv4::signature(&key, &to_sign),
        );
        let mut request = hyper::Request::post(format!("{}/", self.endpoint));
        for (name, value) in &headers {
            if *name != "host" {
                request = request.header(*name, *value);
            }
        }
        let request = request
            .header("authorization", authorization)
            .header(
                "user-agent",
                concat!("kinesis-broker-cli/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .map_err(|e| ClientError::Config(format!("cannot build the request: {e}")))?;
        let transport = |reason: String| ClientError::Transport {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| transport(error_chain(&e)))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok::<_, ClientError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))??;
        if status != 200 {
            return Err(api_error(status, &body));
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer {
            operation: operation.to_string(),
            reason: e.to_string(),
        })
    }

    async fn typed<T: for<'de> Deserialize<'de>>(
        &self,
        operation: &str,
        input: Value,
    ) -> Result<T, ClientError> {
        let answer = self.call(operation, &input).await?;
        serde_json::from_value(answer).map_err(|e| ClientError::BadAnswer {
            operation: operation.to_string(),
            reason: e.to_string(),
        })
    }

    /// Every stream name of the account (ListStreams, following `NextToken`).
    pub async fn list_stream_names(&self) -> Result<Vec<String>, ClientError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Page {
            #[serde(default)]
            stream_names: Vec<String>,
            #[serde(default)]
            has_more_streams: bool,
            next_token: Option<String>,
        }
        let mut names: Vec<String> = Vec::new();
        let mut input = json!({});
        loop {
            let page: Page = self.typed("ListStreams", input).await?;
            let got_some = !page.stream_names.is_empty();
            names.extend(page.stream_names);
            if !page.has_more_streams {
                return Ok(names);
            }
            input = match (page.next_token, names.last()) {
                (Some(token), _) => json!({ "NextToken": token }),
                // Servers that predate NextToken page by the last name seen.
                (None, Some(last)) if got_some => json!({ "ExclusiveStartStreamName": last }),
                _ => return Ok(names),
            };
        }
    }

    /// DescribeStreamSummary.
    pub async fn describe_stream_summary(
        &self,
        stream: &str,
    ) -> Result<StreamSummary, ClientError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            stream_description_summary: StreamSummary,
        }
        let answer: Answer = self
            .typed("DescribeStreamSummary", json!({ "StreamName": stream }))
            .await?;
        Ok(answer.stream_description_summary)
    }

    /// Every shard of the stream, closed ones included (ListShards, following `NextToken`).
    pub async fn list_shards(&self, stream: &str) -> Result<Vec<Shard>, ClientError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Page {
            #[serde(default)]
            shards: Vec<Shard>,
            next_token: Option<String>,
        }
        let mut shards = Vec::new();
        let mut input = json!({ "StreamName": stream });
        loop {
            let page: Page = self.typed("ListShards", input).await?;
            shards.extend(page.shards);
            match page.next_token {
                // With NextToken, ListShards refuses StreamName.
                Some(token) => input = json!({ "NextToken": token }),
                None => return Ok(shards),
            }
        }
    }

    /// GetShardIterator; `position` is the iterator type and its argument.
    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        position: &Position,
    ) -> Result<String, ClientError> {
        let mut input = json!({ "StreamName": stream, "ShardId": shard_id });
        match position {
            Position::TrimHorizon => input["ShardIteratorType"] = json!("TRIM_HORIZON"),
            Position::Latest => input["ShardIteratorType"] = json!("LATEST"),
            Position::AtSequence(seq) => {
                input["ShardIteratorType"] = json!("AT_SEQUENCE_NUMBER");
                input["StartingSequenceNumber"] = json!(seq);
            }
            Position::AfterSequence(seq) => {
                input["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                input["StartingSequenceNumber"] = json!(seq);
            }
            Position::AtTimestamp(ms) => {
                input["ShardIteratorType"] = json!("AT_TIMESTAMP");
                input["Timestamp"] = json!(*ms as f64 / 1000.0);
            }
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            shard_iterator: String,
        }
        let answer: Answer = self.typed("GetShardIterator", input).await?;
        Ok(answer.shard_iterator)
    }

    /// One GetRecords call, not retried (the caller paces and backs off per shard).
    pub async fn get_records(
        &self,
        iterator: &str,
        limit: Option<u32>,
    ) -> Result<RecordsPage, ClientError> {
        let mut input = json!({ "ShardIterator": iterator });
        if let Some(limit) = limit {
            input["Limit"] = json!(limit);
        }
        let answer = self.call_once("GetRecords", &input).await?;
        serde_json::from_value(answer).map_err(|e| ClientError::BadAnswer {
            operation: "GetRecords".into(),
            reason: e.to_string(),
        })
    }

    /// One PutRecords call, not retried: the answer says which records failed.
    pub async fn put_records(
        &self,
        stream: &str,
        entries: &[(&[u8], &str)],
    ) -> Result<PutRecordsAnswer, ClientError> {
        let records: Vec<Value> = entries
            .iter()
            .map(|(data, key)| {
                json!({
                    "Data": base64_simd::STANDARD.encode_to_string(data),
                    "PartitionKey": key,
                })
            })
            .collect();
        let answer = self
            .call_once(
                "PutRecords",
                &json!({ "StreamName": stream, "Records": records }),
            )
            .await?;
        serde_json::from_value(answer).map_err(|e| ClientError::BadAnswer {
            operation: "PutRecords".into(),
            reason: e.to_string(),
        })
    }
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// The oldest record kept.
    TrimHorizon,
    /// Just after the newest record.
    Latest,
    /// At this sequence number.
    AtSequence(String),
    /// Just after this sequence number.
    AfterSequence(String),
    /// At the first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(i64),
}

/// DescribeStreamSummary's `StreamDescriptionSummary`, the fields the table shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    /// Name.
    pub stream_name: String,
    /// CREATING, ACTIVE, UPDATING, DELETING.
    pub stream_status: String,
    /// PROVISIONED or ON_DEMAND (absent from older answers: provisioned).
    #[serde(default)]
    pub stream_mode_details: Option<StreamModeDetails>,
    /// Open shards.
    #[serde(default)]
    pub open_shard_count: Option<u64>,
    /// Retention in hours.
    #[serde(default)]
    pub retention_period_hours: Option<u64>,
}

/// `StreamModeDetails`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamModeDetails {
    /// PROVISIONED or ON_DEMAND.
    pub stream_mode: String,
}

/// A shard as ListShards describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// The shard it was split from or merged from.
    #[serde(default)]
    pub parent_shard_id: Option<String>,
    /// The other shard of a merge.
    #[serde(default)]
    pub adjacent_parent_shard_id: Option<String>,
    /// Its sequence numbers; an ending one means the shard is closed.
    pub sequence_number_range: SequenceNumberRange,
}

/// `SequenceNumberRange`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    /// First sequence number.
    pub starting_sequence_number: String,
    /// Last one, once the shard is closed.
    #[serde(default)]
    pub ending_sequence_number: Option<String>,
}

/// GetRecords' answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordsPage {
    /// The records, oldest first.
    #[serde(default)]
    pub records: Vec<Record>,
    /// Absent once a closed shard has been read to its end.
    #[serde(default)]
    pub next_shard_iterator: Option<String>,
    /// How far behind the tip the answer is.
    #[serde(default)]
    pub millis_behind_latest: Option<u64>,
}

/// A record as GetRecords returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Base64 of the data.
    pub data: String,
    /// Arrival time, epoch seconds with a fraction.
    #[serde(default)]
    pub approximate_arrival_timestamp: Option<f64>,
}

/// PutRecords' answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsAnswer {
    /// How many records failed.
    #[serde(default)]
    pub failed_record_count: u64,
    /// One result per record sent, in order.
    pub records: Vec<PutRecordsResult>,
}

/// One record's outcome in PutRecords.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResult {
    /// Set when the record was written.
    #[serde(default)]
    pub sequence_number: Option<String>,
    /// Set when it failed: `ProvisionedThroughputExceededException` or `InternalFailure`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Why.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// The error a non-200 answer carries: `__type` (after any `#`) and `message`/`Message`.
/// Trusts the system's roots and every certificate of `ca_bundle`. Unlike botocore, which
/// trusts only the bundle when one is given, the system's roots stay: one setting then
/// serves both a local broker with its own certificate and AWS. For an http endpoint
/// nothing is loaded (and a CA bundle meant for another endpoint does not get in the way).
fn tls_config(
    https: bool,
    ca_bundle: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let ca_bundle = ca_bundle.filter(|_| https);
    // Unreadable system certificates are not fatal: a CA bundle may be all that is needed.
    if https {
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(path) = ca_bundle {
        let certs = crate::http::tls::read_certs(path)
            .map_err(|e| ClientError::Config(format!("CA bundle: {e}")))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ClientError::Config(format!("CA bundle {}: {e}", path.display())))?;
        }
    }
    if https && roots.is_empty() {
        return Err(ClientError::Config(
            "no trusted certificates: none found on the system and no CA bundle given (--ca-bundle, AWS_CA_BUNDLE)".into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::http::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn api_error(status: u16, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match field("__type") {
        Some(kind) => ClientError::Api {
            status,
            code: kind.rsplit('#').next().unwrap_or(&kind).to_string(),
            message: field("message")
                .or_else(|| field("Message"))
                .unwrap_or_default(),
        },
        None => ClientError::Api {
            status,
            code: format!("HTTP{status}"),
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
        },
    }
}

/// An error and its sources on one line: hyper's top-level errors say little by themselves.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `delay` scaled by a random factor in [0.5, 1.5), so that retries spread out.
pub fn jitter(delay: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let factor = if getrandom::fill(&mut byte).is_ok() {
        0.5 + f64::from(byte[0]) / 256.0
    } else {
        1.0
    };
    delay.mul_f64(factor)
}
