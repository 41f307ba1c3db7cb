//! The verifier against requests signed by `client::sigv4` and by AWS's own test vectors.

use super::*;
use hyper::header::{HeaderName, HeaderValue};

const KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const ACCOUNT: &str = "123456789012";
// 2015-08-30T12:36:00Z, the AWS test suite's request time.
const SUITE_TIME: i64 = 1_440_938_160;
const SUITE_DATE: &str = "20150830T123600Z";

fn verifier_at(now_secs: i64) -> Verifier {
    let creds = Credentials::parse(
        "t",
        &format!(
            "[suite]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\naccount_id = {ACCOUNT}\n\
             [other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\naccount_id = 210987654321\n"
        ),
    )
    .unwrap();
    let clock = Clock::system();
    let wall = clock.now_ms();
    clock.advance_ms(now_secs * 1000 - wall).unwrap();
    Verifier::new(creds, clock)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in pairs {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

struct Req {
    method: &'static str,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    fn signed(&self) -> SignedRequest<'_> {
        SignedRequest {
            method: self.method,
            path: &self.path,
            query: self.query.as_deref(),
            authority: None,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// A Kinesis-style POST signed with `secret` at `amz_date` for `region`/`service`.
fn kinesis_post(secret: &str, amz_date: &str, region: &str, service: &str, body: &[u8]) -> Req {
    let date = &amz_date[..8];
    let mut pairs = vec![
        ("host", "127.0.0.1:4567"),
        ("x-amz-date", amz_date),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "Kinesis_20131202.ListStreams"),
    ];
    let hash = sigv4::sha256_hex(body);
    let canonical = sigv4::canonical_request("POST", "/", "", &pairs, &hash);
    let scope = sigv4::credential_scope(date, region, service);
    let to_sign = sigv4::string_to_sign(amz_date, &scope, &canonical.text);
    let sig = sigv4::signature(&sigv4::signing_key(secret, date, region, service), &to_sign);
    let auth = sigv4::authorization(KEY, &scope, &canonical.signed_headers, &sig);
    pairs.push(("authorization", &auth));
    Req {
        method: "POST",
        path: "/".into(),
        query: None,
        headers: headers(&pairs),
        body: body.to_vec(),
    }
}

fn err(v: &Verifier, req: &Req, service: &str) -> (ErrorCode, String) {
    let e = v.verify(&req.signed(), service).unwrap_err();
    (e.code, e.message)
}

#[test]
fn aws_suite_vectors_verify() {
    // get-vanilla and post-vanilla of AWS's SigV4 test suite, signatures as published.
    let v = verifier_at(SUITE_TIME);
    for (method, signature) in [
        (
            "GET",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "POST",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
    ] {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}"
        );
        let req = Req {
            method,
            path: "/".into(),
            query: None,
            headers: headers(&[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", SUITE_DATE),
                ("authorization", &auth),
            ]),
            body: Vec::new(),
        };
        let ok = v.verify(&req.signed(), "service").unwrap();
        assert_eq!(ok.account_id, ACCOUNT);
        assert_eq!(ok.region, "us-east-1");
        assert_eq!(ok.access_key_id, KEY);
    }
}

#[test]
fn aws_suite_vector_with_query_and_http2_authority() {
    // get-vanilla-query-order-key-case; the host comes from the URI authority (HTTP/2).
    let v = verifier_at(SUITE_TIME);
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500";
    let h = headers(&[("x-amz-date", SUITE_DATE), ("authorization", auth)]);
    let req = SignedRequest {
        method: "GET",
        path: "/",
        query: Some("Param2=value2&Param1=value1"),
        authority: Some("example.amazonaws.com"),
        headers: &h,
        body: b"",
    };
    assert!(v.verify(&req, "service").is_ok());
}

#[test]
fn right_key_gives_the_files_account() {
    let v = verifier_at(SUITE_TIME);
    let req = kinesis_post(SECRET, SUITE_DATE, "eu-west-1", "kinesis", b"{}");
    let ok = v.verify(&req.signed(), "kinesis").unwrap();
    assert_eq!(ok.account_id, ACCOUNT);
    assert_eq!(ok.region, "eu-west-1");
    assert_eq!(v.cached_signing_keys(), 1);
    v.verify(&req.signed(), "kinesis").unwrap();
    assert_eq!(v.cached_signing_keys(), 1, "the derived key is reused");
}

#[test]
fn wrong_secret_is_invalid_signature_with_the_canonical_request() {
    let v = verifier_at(SUITE_TIME);
    let req = kinesis_post("not-the-secret", SUITE_DATE, "us-east-1", "kinesis", b"{}");
    let (code, message) = err(&v, &req, "kinesis");
    assert_eq!(code, ErrorCode::InvalidSignatureException);
    assert!(message.starts_with(SIGNATURE_MISMATCH), "{message}");
    assert!(
        message
            .contains("\n\nThe Canonical String for this request should have been\n'POST\n/\n\n"),
        "{message}"
    );
    assert!(message.contains("\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/kinesis/aws4_request\n"));
}

#[test]
fn unknown_key_is_unrecognized_client() {
    let v = verifier_at(SUITE_TIME);
    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    let auth = req.headers["authorization"]
        .to_str()
        .unwrap()
        .replace(KEY, "AKIDNOBODY");
    req.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        err(&v, &req, "kinesis"),
        (
            ErrorCode::UnrecognizedClientException,
            UNKNOWN_KEY.to_string()
        )
    );
}

#[test]
fn tampered_body_or_signed_header_fails() {
    let v = verifier_at(SUITE_TIME);
    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    req.body = b"{\"Limit\":1}".to_vec();
    assert_eq!(
        err(&v, &req, "kinesis").0,
        ErrorCode::InvalidSignatureException
    );

    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    req.headers.insert(
        "x-amz-target",
        HeaderValue::from_static("Kinesis_20131202.DeleteStream"),
    );
    assert_eq!(
        err(&v, &req, "kinesis").0,
        ErrorCode::InvalidSignatureException
    );

    // An unsigned header may change: it is not covered.
    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    req.headers
        .insert("user-agent", HeaderValue::from_static("anything"));
    assert!(v.verify(&req.signed(), "kinesis").is_ok());
}

#[test]
fn content_sha256_must_match_the_body_unless_unsigned() {
    let v = verifier_at(SUITE_TIME);
    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    req.headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_str(&sigv4::sha256_hex(b"other")).unwrap(),
    );
    let (code, message) = err(&v, &req, "kinesis");
    assert_eq!(code, ErrorCode::InvalidSignatureException);
    assert!(message.contains("x-amz-content-sha256"), "{message}");

    // Signed with UNSIGNED-PAYLOAD: the body is not covered, as AWS allows.
    let amz_date = SUITE_DATE;
    let pairs = [
        ("host", "h"),
        ("x-amz-date", amz_date),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ];
    let canonical = sigv4::canonical_request("POST", "/", "", &pairs, "UNSIGNED-PAYLOAD");
    let scope = sigv4::credential_scope("20150830", "us-east-1", "kinesis");
    let sig = sigv4::signature(
        &sigv4::signing_key(SECRET, "20150830", "us-east-1", "kinesis"),
        &sigv4::string_to_sign(amz_date, &scope, &canonical.text),
    );
    let auth = sigv4::authorization(KEY, &scope, &canonical.signed_headers, &sig);
    let mut all = pairs.to_vec();
    all.push(("authorization", &auth));
    let req = Req {
        method: "POST",
        path: "/".into(),
        query: None,
        headers: headers(&all),
        body: b"whatever".to_vec(),
    };
    assert!(v.verify(&req.signed(), "kinesis").is_ok());
}

#[test]
fn skew_beyond_five_minutes_is_expired_or_not_yet_current() {
    let req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    // Exactly 5 minutes either way is still fine.
    assert!(
        verifier_at(SUITE_TIME + 300)
            .verify(&req.signed(), "kinesis")
            .is_ok()
    );
    assert!(
        verifier_at(SUITE_TIME - 300)
            .verify(&req.signed(), "kinesis")
            .is_ok()
    );
    assert_eq!(
        err(&verifier_at(SUITE_TIME + 20 * 60), &req, "kinesis"),
        (
            ErrorCode::InvalidSignatureException,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T125100Z (20150830T125600Z - 5 min.)".into()
        )
    );
    assert_eq!(
        err(&verifier_at(SUITE_TIME - 10 * 60), &req, "kinesis"),
        (
            ErrorCode::InvalidSignatureException,
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123100Z (20150830T122600Z + 5 min.)".into()
        )
    );
}

#[test]
fn wrong_service_region_terminator_and_date_are_listed_together() {
    let v = verifier_at(SUITE_TIME);
    let req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "lambda", b"{}");
    assert_eq!(
        err(&v, &req, "kinesis"),
        (
            ErrorCode::InvalidSignatureException,
            "Credential should be scoped to correct service: 'kinesis'.".into()
        )
    );
    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    let auth = req.headers["authorization"].to_str().unwrap().replace(
        "20150830/us-east-1/kinesis/aws4_request",
        "20150829/US_EAST/kinesis/aws5_request",
    );
    req.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        err(&v, &req, "lambda"),
        (
            ErrorCode::InvalidSignatureException,
            "Credential should be scoped to a valid region, not 'US_EAST'. \
             Credential should be scoped to correct service: 'lambda'. \
             Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. \
             Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150829' != '20150830', from '20150830T123600Z'."
                .into()
        )
    );
}

#[test]
fn malformed_date_algorithm_and_unsigned_host() {
    let v = verifier_at(SUITE_TIME);
    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    req.headers.insert(
        "x-amz-date",
        HeaderValue::from_static("2015-08-30T12:36:00Z"),
    );
    assert_eq!(
        err(&v, &req, "kinesis"),
        (
            ErrorCode::IncompleteSignatureException,
            "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'. See http://en.wikipedia.org/wiki/ISO_8601".into()
        )
    );

    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    let auth = req.headers["authorization"]
        .to_str()
        .unwrap()
        .replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA25 ");
    req.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        err(&v, &req, "kinesis"),
        (
            ErrorCode::IncompleteSignatureException,
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA25' (only AWS4-HMAC-SHA256 for now). "
                .into()
        )
    );

    let mut req = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    let auth = req.headers["authorization"].to_str().unwrap().replace(
        "SignedHeaders=content-type;host;",
        "SignedHeaders=content-type;",
    );
    req.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    assert_eq!(
        err(&v, &req, "kinesis"),
        (
            ErrorCode::InvalidSignatureException,
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into()
        )
    );
}

#[test]
fn session_token_is_refused_even_when_signed() {
    let v = verifier_at(SUITE_TIME);
    let pairs = [
        ("host", "h"),
        ("x-amz-date", SUITE_DATE),
        ("x-amz-security-token", "token"),
    ];
    let hash = sigv4::sha256_hex(b"");
    let canonical = sigv4::canonical_request("POST", "/", "", &pairs, &hash);
    let scope = sigv4::credential_scope("20150830", "us-east-1", "kinesis");
    let sig = sigv4::signature(
        &sigv4::signing_key(SECRET, "20150830", "us-east-1", "kinesis"),
        &sigv4::string_to_sign(SUITE_DATE, &scope, &canonical.text),
    );
    let auth = sigv4::authorization(KEY, &scope, &canonical.signed_headers, &sig);
    let mut all = pairs.to_vec();
    all.push(("authorization", &auth));
    let req = Req {
        method: "POST",
        path: "/".into(),
        query: None,
        headers: headers(&all),
        body: Vec::new(),
    };
    assert_eq!(
        err(&v, &req, "kinesis").0,
        ErrorCode::UnrecognizedClientException
    );
}

/// A presigned GET of `path` with `expires` seconds, signed at `amz_date`.
fn presigned(path: &str, amz_date: &str, expires: &str, secret: &str) -> Req {
    let date = &amz_date[..8];
    let scope = sigv4::credential_scope(date, "us-east-1", "lambda");
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&FunctionName=f",
        sigv4::uri_encode(&format!("{KEY}/{scope}"), false)
    );
    let canonical = sigv4::canonical_request(
        "GET",
        &sigv4::canonical_uri(path),
        &sigv4::canonical_query(&query),
        &[("host", "h")],
        &sigv4::sha256_hex(b""),
    );
    let sig = sigv4::signature(
        &sigv4::signing_key(secret, date, "us-east-1", "lambda"),
        &sigv4::string_to_sign(amz_date, &scope, &canonical.text),
    );
    Req {
        method: "GET",
        path: path.into(),
        query: Some(format!("{query}&X-Amz-Signature={sig}")),
        headers: headers(&[("host", "h")]),
        body: Vec::new(),
    }
}

#[test]
fn presigned_requests_verify_until_they_expire() {
    let path = "/2015-03-31/event-source-mappings";
    let req = presigned(path, SUITE_DATE, "600", SECRET);
    assert_eq!(
        verifier_at(SUITE_TIME + 599)
            .verify(&req.signed(), "lambda")
            .unwrap()
            .account_id,
        ACCOUNT
    );
    assert_eq!(
        err(&verifier_at(SUITE_TIME + 601), &req, "lambda"),
        (
            ErrorCode::InvalidSignatureException,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124601Z - 600 sec.)".into()
        )
    );
    let bad = presigned(path, SUITE_DATE, "600", "wrong");
    assert_eq!(
        err(&verifier_at(SUITE_TIME), &bad, "lambda").0,
        ErrorCode::InvalidSignatureException
    );
    let week = presigned(path, SUITE_DATE, "604801", SECRET);
    assert_eq!(
        err(&verifier_at(SUITE_TIME), &week, "lambda"),
        (
            ErrorCode::IncompleteSignatureException,
            "X-Amz-Expires must be less than a week (in seconds) that is 604800".into()
        )
    );
    // Tampering with a signed query parameter breaks it.
    let mut tampered = presigned(path, SUITE_DATE, "600", SECRET);
    tampered.query = tampered
        .query
        .map(|q| q.replace("FunctionName=f", "FunctionName=g"));
    assert_eq!(
        err(&verifier_at(SUITE_TIME), &tampered, "lambda").0,
        ErrorCode::InvalidSignatureException
    );
}

#[test]
fn ten_thousand_signed_headers_are_refused_without_panic() {
    let v = verifier_at(SUITE_TIME);
    let names: Vec<String> = (0..10_000).map(|i| format!("x-h{i}")).collect();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={KEY}/20150830/us-east-1/kinesis/aws4_request, SignedHeaders=host;{}, Signature={}",
        names.join(";"),
        "0".repeat(64)
    );
    let req = Req {
        method: "POST",
        path: "/".into(),
        query: None,
        headers: headers(&[
            ("host", "h"),
            ("x-amz-date", SUITE_DATE),
            ("authorization", &auth),
        ]),
        body: Vec::new(),
    };
    let (code, _) = err(&v, &req, "kinesis");
    assert_eq!(code, ErrorCode::InvalidSignatureException);
}

#[test]
fn huge_scope_is_incomplete_or_unrecognized_without_panic() {
    let v = verifier_at(SUITE_TIME);
    let huge = "k".repeat(100_000);
    for credential in [
        format!("{huge}/20150830/us-east-1/kinesis/aws4_request"),
        format!("{KEY}/20150830/{huge}/kinesis/aws4_request"),
        format!("{KEY}/{}", "a/".repeat(50_000)),
    ] {
        let auth =
            format!("AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=00");
        let req = Req {
            method: "POST",
            path: "/".into(),
            query: None,
            headers: headers(&[
                ("host", "h"),
                ("x-amz-date", SUITE_DATE),
                ("authorization", &auth),
            ]),
            body: Vec::new(),
        };
        let (code, _) = err(&v, &req, "kinesis");
        assert!(
            matches!(
                code,
                ErrorCode::IncompleteSignatureException
                    | ErrorCode::InvalidSignatureException
                    | ErrorCode::UnrecognizedClientException
            ),
            "{code:?}"
        );
    }
}

#[test]
fn fuzzed_authorization_headers_and_queries_never_panic() {
    let v = verifier_at(SUITE_TIME);
    let good = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    let good_auth = good.headers["authorization"].to_str().unwrap().to_string();
    let good_query = presigned("/", SUITE_DATE, "600", SECRET).query.unwrap();
    let alphabet: &[u8] = b"AWS4-HMAC-SHA256 =,;/%&+Credential SignedHeaders Signature X-Amz-Date 0123456789abcdef\xff";
    let mut run = crate::fuzzing::Run::new("sigv4_header_and_query", 2_000, 0x5167_4a11);
    for i in 0..run.iterations() {
        let rng = &mut run.rng;
        let mut auth = good_auth.clone().into_bytes();
        let mut query = good_query.clone().into_bytes();
        for target in [&mut auth, &mut query] {
            for _ in 0..=rng.below(8) {
                let at = rng.below(target.len() + 1);
                match rng.below(4) {
                    0 if at < target.len() => {
                        target.remove(at);
                    }
                    1 => target.insert(at, alphabet[rng.below(alphabet.len())]),
                    2 if at < target.len() => target[at] = alphabet[rng.below(alphabet.len())],
                    _ => target.truncate(at),
                }
            }
        }
        let query = String::from_utf8_lossy(&query).into_owned();
        let date = if rng.chance(4) {
            "2015083OT123600Z"
        } else {
            SUITE_DATE
        };
        let mut h = headers(&[("host", "h"), ("x-amz-date", date)]);
        if !rng.chance(3) {
            // Header values may hold any byte but controls; a lossy copy stands in for them.
            if let Ok(value) = HeaderValue::from_bytes(&auth) {
                h.insert("authorization", value);
            }
        }
        let req = SignedRequest {
            method: "POST",
            path: "/",
            query: if rng.chance(2) { Some(&query) } else { None },
            authority: None,
            headers: &h,
            body: b"{}",
        };
        let _ = run.input(
            i,
            || format!("{} {query:?}", crate::fuzzing::show(&auth)),
            || v.verify(&req, "kinesis").map(|_| ()),
        );
    }
    run.finish();
}

#[test]
fn the_js_sdks_http2_signature_over_authority_verifies() {
    // @aws-sdk/client-kinesis over HTTP/2 (NodeHttp2Handler, its default) signs the
    // `:authority` pseudo-header instead of `host`: "SignedHeaders=:authority;...".
    let amz_date = "20261206T215440Z";
    let date = &amz_date[..8];
    let v = verifier_at(1_796_594_080);
    let body = b"{}";
    let hash = sigv4::sha256_hex(body);
    let pairs = [
        (":authority", "127.0.0.1:4567"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-date", amz_date),
        ("x-amz-target", "Kinesis_20131202.ListStreams"),
    ];
    let canonical = sigv4::canonical_request("POST", "/", "", &pairs, &hash);
    assert!(canonical.signed_headers.starts_with(":authority;"));
    let scope = sigv4::credential_scope(date, "us-east-1", "kinesis");
    let to_sign = sigv4::string_to_sign(amz_date, &scope, &canonical.text);
    let sig = sigv4::signature(
        &sigv4::signing_key(SECRET, date, "us-east-1", "kinesis"),
        &to_sign,
    );
    let auth = sigv4::authorization(KEY, &scope, &canonical.signed_headers, &sig);
    let h = headers(&[
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-date", amz_date),
        ("x-amz-target", "Kinesis_20131202.ListStreams"),
        ("authorization", &auth),
    ]);
    let mut req = SignedRequest {
        method: "POST",
        path: "/",
        query: None,
        authority: Some("127.0.0.1:4567"),
        headers: &h,
        body,
    };
    assert!(v.verify(&req, "kinesis").is_ok());
    // The authority is part of what was signed.
    req.authority = Some("127.0.0.1:9999");
    assert_eq!(
        v.verify(&req, "kinesis").unwrap_err().code,
        ErrorCode::InvalidSignatureException
    );
}

#[test]
fn shape_errors_are_authenticates_whichever_path_finds_them() {
    // The verifier skips `auth::authenticate` for a header it sees is complete; for every
    // other shape it must answer exactly as `authenticate` does.
    let good = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    assert!(header_shape_is_complete(Some(good), true, None));
    let incomplete_headers = [
        // The first Credential counts for `authenticate`, and it is empty.
        "AWS4-HMAC-SHA256 Credential= Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256",
    ];
    let v = verifier_at(SUITE_TIME);
    for auth in incomplete_headers {
        assert!(!header_shape_is_complete(Some(auth), true, None), "{auth}");
        let h = headers(&[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", SUITE_DATE),
            ("authorization", auth),
        ]);
        let request = SignedRequest {
            method: "GET",
            path: "/",
            query: None,
            authority: None,
            headers: &h,
            body: b"",
        };
        let got = v.verify(&request, "service").unwrap_err();
        let want = auth::authenticate(AuthInput {
            authorization: Some(auth),
            has_date_header: true,
            query: None,
        })
        .unwrap_err();
        assert_eq!((got.code, got.message), (want.code, want.message), "{auth}");
    }
    assert!(!header_shape_is_complete(Some(good), false, None));
    assert!(!header_shape_is_complete(
        Some(good),
        true,
        Some("X-Amz-Algorithm=x")
    ));
    assert!(!header_shape_is_complete(None, true, None));
}

#[test]
fn the_reused_canonical_buffer_never_carries_one_request_into_the_next() {
    let v = verifier_at(SUITE_TIME);
    let big = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", &[b'x'; 70_000]);
    let small = kinesis_post(SECRET, SUITE_DATE, "us-east-1", "kinesis", b"{}");
    let forged = kinesis_post("wrong", SUITE_DATE, "us-east-1", "kinesis", b"{}");
    for _ in 0..3 {
        v.verify(&big.signed(), "kinesis").unwrap();
        v.verify(&small.signed(), "kinesis").unwrap();
        let (code, message) = err(&v, &forged, "kinesis");
        assert_eq!(code, ErrorCode::InvalidSignatureException);
        let canonical_tail = format!(
            "\ncontent-type;host;x-amz-date;x-amz-target\n{}'",
            sigv4::sha256_hex(b"{}")
        );
        assert!(message.contains(&canonical_tail), "{message}");
    }
}
