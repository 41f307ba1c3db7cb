//! `--auth verify`: recomputes the caller's SigV4 signature with the secret of its access key
//! (from the credentials file) and answers as AWS does when it does not match.
//!
//! The checks run in the order AWS's front end (Coral) runs them, as dynalite's author recorded
//! it from the live service (`mhart/dynalite` `index.js`, 2013) and kinesalite reproduces for
//! the shape checks of [`super::auth`], which run first:
//!
//! 1. shape ([`super::auth::authenticate`]): Missing/IncompleteSignature, both header and query;
//! 2. the request date: not ISO 8601 basic → `IncompleteSignatureException`; more than
//!    [`MAX_SKEW_SECS`] away from the broker's clock (offset included) →
//!    `InvalidSignatureException` "Signature expired: …" / "Signature not yet current: …";
//! 3. `host` among the signed headers → else `InvalidSignatureException`;
//! 4. the algorithm → `IncompleteSignatureException`;
//! 5. the credential scope: region, service, terminator, date, every mismatch listed in one
//!    `InvalidSignatureException`;
//! 6. the access key → `UnrecognizedClientException`;
//! 7. the signature (constant time) → `InvalidSignatureException` with the canonical request
//!    and string to sign the broker computed, as AWS prints them;
//! 8. a session token, which no key of the file has → `UnrecognizedClientException`.
//!
//! The canonical request is built by `client::sigv4` (the broker's own client signs with it),
//! over the headers the client chose to sign.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;

use hyper::header::{HeaderMap, HeaderValue};

use super::auth::{self, AuthInput};
use super::credentials::Credentials;
use crate::api::{ApiError, ErrorCode};
use crate::broker::clock::Clock;
use crate::client::sigv4;

/// How far a request's date may be from the broker's clock, either way: 5 minutes (the
/// window Kinesis's "Signature expired: … (… - 5 min.)" names).
pub const MAX_SKEW_SECS: i64 = 300;
/// Longest `X-Amz-Expires` of a presigned request: 7 days, as for every SigV4 presign.
pub const MAX_PRESIGN_EXPIRES_SECS: i64 = 604_800;
/// Derived signing keys kept (key × day × region × service). When full the cache starts
/// over: rebuilding a key costs four HMACs, so a cache flooded by odd scopes costs little.
pub const MAX_CACHED_SIGNING_KEYS: usize = 4096;

/// Capacity of the per-thread canonical-request buffer kept between requests; a request
/// with a larger canonical request (thousands of signed headers) frees its buffer after use.
const MAX_KEPT_CANONICAL_BYTES: usize = 16 * 1024;

thread_local! {
    /// The canonical request being checked, reused by every request this thread verifies.
    static CANONICAL_REQUEST: RefCell<String> = const { RefCell::new(String::new()) };
}

/// AWS's text for a signature that does not match.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. \
     Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
/// AWS's text for an access key it does not know.
pub const UNKNOWN_KEY: &str = "The security token included in the request is invalid.";

/// The service names of the credential scope.
pub mod service {
    /// Kinesis Data Streams (JSON, CBOR, the console, the admin endpoints).
    pub const KINESIS: &str = "kinesis";
    /// Lambda's event-source-mapping API.
    pub const LAMBDA: &str = "lambda";
}

/// The parts of a request a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `POST`, `GET`, ...
    pub method: &'a str,
    /// The path as it came on the wire (still percent-encoded).
    pub path: &'a str,
    /// The raw query, without `?`.
    pub query: Option<&'a str>,
    /// The URI's authority: HTTP/2 carries the host there (`:authority`), not in a header.
    pub authority: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// Who a verified request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id that signed.
    pub access_key_id: String,
    /// The account of that key, from the credentials file.
    pub account_id: String,
    /// The region of the credential scope.
    pub region: String,
}

/// Checks signatures against the keys of a credentials file.
pub struct Verifier {
    credentials: Credentials,
    clock: Clock,
    signing_keys: Mutex<HashMap<String, [u8; 32]>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

/// The signature parameters, from the `Authorization` header or the presigned query.
struct Signature<'a> {
    algorithm: &'a str,
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    /// Presigned only: `X-Amz-Expires`, unparsed.
    expires: Option<&'a str>,
    presigned: bool,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSignatureException, message)
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::IncompleteSignatureException, message)
}

impl Verifier {
    /// A verifier of `credentials`' keys, telling time by `clock` (the broker's, so that
    /// `/_broker/clock` moves the skew window too).
    pub fn new(credentials: Credentials, clock: Clock) -> Self {
        Self {
            credentials,
            clock,
            signing_keys: Mutex::new(HashMap::new()),
        }
    }

    /// The keys this verifier knows.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Verifies `request`'s signature for `expected_service`; the caller's account comes from
    /// its key. Errors are AWS's, in AWS's order (see the module documentation).
    ///
    /// On the success path everything is borrowed from the request (header values, the
    /// `Authorization` parameters, the scope) and the canonical request is built in a
    /// per-thread buffer: a PutRecord pays for the hashes and little else.
    pub fn verify(
        &self,
        request: &SignedRequest<'_>,
        expected_service: &str,
    ) -> Result<Verified, ApiError> {
        let header = |name: &str| request.headers.get(name).map(header_text);
        let authorization = header("authorization");
        let has_date_header =
            request.headers.contains_key("x-amz-date") || request.headers.contains_key("date");
        // 1. The shape. `auth::authenticate` allocates its answer; a well-formed header
        // (the common case) is recognised without it, anything else gets its errors.
        if !header_shape_is_complete(authorization.as_deref(), has_date_header, request.query) {
            auth::authenticate(AuthInput {
                authorization: authorization.as_deref(),
                has_date_header,
                query: request.query,
            })?;
        }
        // Only a presigned request reads its query's parameters.
        let query = match (&authorization, request.query) {
            (None, Some(query)) => auth::parse_query(query),
            _ => Vec::new(),
        };
        let query_get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let sig = match &authorization {
            Some(value) => parse_authorization(value),
            None => Signature {
                algorithm: query_get("X-Amz-Algorithm").unwrap_or_default(),
                credential: query_get("X-Amz-Credential").unwrap_or_default(),
                signed_headers: query_get("X-Amz-SignedHeaders").unwrap_or_default(),
                signature: query_get("X-Amz-Signature").unwrap_or_default(),
                expires: query_get("X-Amz-Expires"),
                presigned: true,
            },
        };

        // 2. The date and the clock.
        let date_value: Cow<'_, str> = if sig.presigned {
            Cow::Borrowed(query_get("X-Amz-Date").unwrap_or_default())
        } else {
            header("x-amz-date")
                .or_else(|| header("date"))
                .unwrap_or_default()
        };
        let date_value = date_value.as_ref();
        let Some(request_time) = sigv4::parse_amz_date(date_value) else {
            return Err(incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{date_value}'. See http://en.wikipedia.org/wiki/ISO_8601"
            )));
        };
        let now = self.clock.now_ms().div_euclid(1000);
        let valid_for = match (sig.expires, sig.presigned) {
            (Some(expires), true) => {
                let secs = expires
                    .parse::<i64>()
                    .ok()
                    .filter(|s| *s >= 0)
                    .ok_or_else(|| {
                        incomplete(format!(
                            "X-Amz-Expires must be a non-negative integer, got '{expires}'"
                        ))
                    })?;
                if secs > MAX_PRESIGN_EXPIRES_SECS {
                    return Err(incomplete(format!(
                        "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES_SECS}"
                    )));
                }
                Some(secs)
            }
            _ => None,
        };
        check_clock(request_time, now, valid_for)?;

        // 3. Host must be signed.
        let signed_names = || {
            sig.signed_headers.split(';').map(|n| {
                let n = n.trim();
                if n.bytes().any(|b| b.is_ascii_uppercase()) {
                    Cow::Owned(n.to_ascii_lowercase())
                } else {
                    Cow::Borrowed(n)
                }
            })
        };
        // The JS SDK v3 over HTTP/2 signs the `:authority` pseudo-header instead of `host`
        // (AWS's HTTP/2 endpoints accept it): either names the host.
        if !signed_names().any(|n| n == "host" || n == ":authority") {
            return Err(invalid(
                "'Host' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }

        // 4. The algorithm.
        if sig.algorithm != sigv4::ALGORITHM {
            return Err(incomplete(format!(
                "Unsupported AWS 'algorithm': '{}' (only {} for now). ",
                sig.algorithm,
                sigv4::ALGORITHM
            )));
        }

        // 5. The scope (its five parts were checked by `authenticate`).
        let mut parts = sig.credential.split('/');
        let (
            Some(access_key_id),
            Some(scope_date),
            Some(region),
            Some(scope_service),
            Some(terminator),
            None,
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
                sig.credential
            )));
        };
        let mut problems = Vec::new();
        if !valid_region(region) {
            problems.push(format!(
                "Credential should be scoped to a valid region, not '{region}'."
            ));
        }
        if scope_service != expected_service {
            problems.push(format!(
                "Credential should be scoped to correct service: '{expected_service}'."
            ));
        }
        if terminator != sigv4::TERMINATOR {
            problems.push(format!(
                "Credential should be scoped with a valid terminator: '{}', not '{terminator}'.",
                sigv4::TERMINATOR
            ));
        }
        if scope_date != &date_value[..8] {
            problems.push(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{}', from '{date_value}'.",
                &date_value[..8]
            ));
        }
        if !problems.is_empty() {
            return Err(invalid(problems.join(" ")));
        }

        // 6. The key.
        let Some(identity) = self.credentials.get(access_key_id) else {
            return Err(ApiError::new(
                ErrorCode::UnrecognizedClientException,
                UNKNOWN_KEY,
            ));
        };

        // 7. The signature.
        let body_hash = sigv4::Hex32::sha256(request.body);
        let payload_hash = payload_hash(request, &body_hash)?;
        let canonical_query = canonical_query(request.query, sig.presigned);
        let mut headers: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(8);
        for name in signed_names() {
            if name == ":authority" {
                headers.push((name, Cow::Borrowed(request.authority.unwrap_or_default())));
                continue;
            }
            let mut found = false;
            for value in request.headers.get_all(name.as_ref()) {
                found = true;
                headers.push((name.clone(), header_text(value)));
            }
            if !found && name == "host" {
                headers.push((name, Cow::Borrowed(request.authority.unwrap_or_default())));
            }
        }
        let canonical_uri = sigv4::canonical_uri_cow(request.path);
        // The credential, once its key id is cut off, is the scope: its parts were just
        // checked to be the date, region, service and terminator.
        let scope = &sig.credential[access_key_id.len() + 1..];
        let key = self.signing_key(
            sig.credential,
            &identity.secret_access_key,
            scope_date,
            region,
            scope_service,
        );
        let matches = CANONICAL_REQUEST.with_borrow_mut(|text| {
            sigv4::write_canonical_request(
                text,
                request.method,
                &canonical_uri,
                &canonical_query,
                &headers,
                &payload_hash,
            );
            let canonical_hash = sigv4::Hex32::sha256(text.as_bytes());
            let matches = sigv4::verify_signature_of_parts(
                &key,
                &[
                    sigv4::ALGORITHM,
                    "\n",
                    date_value,
                    "\n",
                    scope,
                    "\n",
                    canonical_hash.as_str(),
                ],
                sig.signature,
            );
            if text.capacity() > MAX_KEPT_CANONICAL_BYTES {
                // One huge request must not pin its buffer in every worker for good.
                *text = String::new();
            }
            matches
        });
        if !matches {
            let canonical = sigv4::canonical_request(
                request.method,
                &canonical_uri,
                &canonical_query,
                &headers
                    .iter()
                    .map(|(n, v)| (n.as_ref(), v.as_ref()))
                    .collect::<Vec<_>>(),
                &payload_hash,
            );
            let string_to_sign = sigv4::string_to_sign(date_value, scope, &canonical.text);
            return Err(invalid(format!(
                "{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n",
                canonical.text
            )));
        }

        // 8. A session token: the file issues none.
        let token = if sig.presigned {
            query_get("X-Amz-Security-Token").is_some()
        } else {
            request.headers.contains_key("x-amz-security-token")
        };
        if token {
            return Err(ApiError::new(
                ErrorCode::UnrecognizedClientException,
                UNKNOWN_KEY,
            ));
        }

        Ok(Verified {
            access_key_id: access_key_id.to_string(),
            account_id: identity.account_id.clone(),
            region: region.to_string(),
        })
    }

    /// The derived key of a credential (`KEY/DATE/REGION/SERVICE/aws4_request`, already
    /// checked), cached under the credential text itself so that a hit allocates nothing.
    fn signing_key(
        &self,
        credential: &str,
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        // A poisoned lock only means another request panicked mid-insert; the map is still
        // a valid cache.
        let mut keys = self
            .signing_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(key) = keys.get(credential) {
            return *key;
        }
        let key = sigv4::signing_key(secret, date, region, service);
        if keys.len() >= MAX_CACHED_SIGNING_KEYS {
            keys.clear();
        }
        keys.insert(credential.to_string(), key);
        key
    }

    /// Derived keys currently cached (for tests).
    pub fn cached_signing_keys(&self) -> usize {
        self.signing_keys
            .lock()
            .map(|k| k.len())
            .unwrap_or_default()
    }
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`; a
/// parameter given twice counts with its last value.
fn parse_authorization(value: &str) -> Signature<'_> {
    let mut sig = Signature {
        algorithm: value.split(' ').next().unwrap_or_default(),
        credential: "",
        signed_headers: "",
        signature: "",
        expires: None,
        presigned: false,
    };
    for token in value.split([',', ' ']).skip(1) {
        let Some((name, v)) = token.trim().split_once('=') else {
            continue;
        };
        match name {
            "Credential" => sig.credential = v,
            "SignedHeaders" => sig.signed_headers = v,
            "Signature" => sig.signature = v,
            _ => {}
        }
    }
    sig
}

/// Whether [`auth::authenticate`] would accept this request's shape, decided without
/// allocating; `false` whenever in doubt (a query, a missing part), and the caller then asks
/// `authenticate` itself for AWS's error. Mirrors its checks: an `Authorization` header and
/// no presigned query, a date header, the first `Credential`, `Signature` and
/// `SignedHeaders` non-empty, a credential of five slash-separated parts.
fn header_shape_is_complete(
    authorization: Option<&str>,
    has_date_header: bool,
    query: Option<&str>,
) -> bool {
    let Some(header) = authorization else {
        return false;
    };
    if !has_date_header || query.is_some_and(|q| !q.is_empty()) {
        return false;
    }
    let first = |wanted: &str| {
        header
            .split([',', ' '])
            .skip(1)
            .filter(|token| !token.is_empty())
            .map(|token| token.trim().split_once('=').unwrap_or((token.trim(), "")))
            .find(|(name, _)| *name == wanted)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    };
    first("Signature").is_some()
        && first("SignedHeaders").is_some()
        && first("Credential").is_some_and(|c| c.split('/').count() == 5)
}

/// A header value as text: borrowed unless it holds bytes that are not UTF-8.
fn header_text(value: &HeaderValue) -> Cow<'_, str> {
    String::from_utf8_lossy(value.as_bytes())
}

/// A region name as AWS spells them (`us-east-1`, `eu-central-2`, a local `test-region`):
/// lower-case letters, digits and dashes.
fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Header-signed: the request time within ±[`MAX_SKEW_SECS`] of now. Presigned: not in the
/// future by more than the skew, and not older than its `X-Amz-Expires`.
fn check_clock(request_time: i64, now: i64, valid_for: Option<i64>) -> Result<(), ApiError> {
    let fmt = sigv4::format_amz_date;
    let (oldest, window) = match valid_for {
        Some(secs) => (now - secs, format!("{secs} sec.")),
        None => (now - MAX_SKEW_SECS, "5 min.".to_string()),
    };
    if request_time < oldest {
        return Err(invalid(format!(
            "Signature expired: {} is now earlier than {} ({} - {window})",
            fmt(request_time),
            fmt(oldest),
            fmt(now)
        )));
    }
    let latest = now + MAX_SKEW_SECS;
    if request_time > latest {
        return Err(invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            fmt(request_time),
            fmt(latest),
            fmt(now)
        )));
    }
    Ok(())
}

/// The last line of the canonical request: what `x-amz-content-sha256` says when it names an
/// unsigned or streamed payload, else the body's hash, which a hash in that header must equal
/// (or the header would sign a body other than the one sent).
fn payload_hash<'a>(
    request: &SignedRequest<'a>,
    body_hash: &'a sigv4::Hex32,
) -> Result<Cow<'a, str>, ApiError> {
    let Some(declared) = request.headers.get("x-amz-content-sha256") else {
        return Ok(Cow::Borrowed(body_hash.as_str()));
    };
    let declared = header_text(declared);
    if declared == "UNSIGNED-PAYLOAD"
        || declared.starts_with("STREAMING-")
        || declared.eq_ignore_ascii_case(body_hash.as_str())
    {
        return Ok(declared);
    }
    Err(invalid(format!(
        "{SIGNATURE_MISMATCH} The x-amz-content-sha256 header does not match the request body."
    )))
}

/// The canonical query: all parameters but a presigned request's own signature.
fn canonical_query(query: Option<&str>, presigned: bool) -> Cow<'static, str> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Cow::Borrowed("");
    };
    if !presigned {
        return Cow::Owned(sigv4::canonical_query(query));
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            name != "X-Amz-Signature"
        })
        .collect();
    Cow::Owned(sigv4::canonical_query(&kept.join("&")))
}

#[cfg(test)]
mod tests;
