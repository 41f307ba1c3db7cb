//! AWS Signature Version 4, step by step (canonical request, string to sign, signing key,
//! signature), as plain functions over strings so that the client signs with them and a
//! server-side verifier can recompute a caller's signature with the very same code.
//!
//! Reference: AWS's "Create a signed AWS API request" and its SigV4 test suite, whose
//! vectors the tests below reproduce.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// The only algorithm SigV4 names in its headers.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The scope's terminator.
pub const TERMINATOR: &str = "aws4_request";

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// Hex SHA-256 of a payload: the last line of the canonical request.
pub fn sha256_hex(payload: &[u8]) -> String {
    hex(&Sha256::digest(payload))
}

/// Lower-case hex of a 32-byte digest, on the stack: the verifier needs two per request.
#[derive(Clone, Copy)]
pub struct Hex32([u8; 64]);

impl Hex32 {
    /// The hex of `bytes`.
    pub fn new(bytes: &[u8; 32]) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in bytes.iter().enumerate() {
            out[2 * i] = DIGITS[(b >> 4) as usize];
            out[2 * i + 1] = DIGITS[(b & 0xf) as usize];
        }
        Self(out)
    }

    /// The hex SHA-256 of `payload`.
    pub fn sha256(payload: &[u8]) -> Self {
        Self::new(&Sha256::digest(payload).into())
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `(YYYYMMDDTHHMMSSZ, YYYYMMDD)` for `time`: the `X-Amz-Date` value and the scope's date.
pub fn amz_date(time: SystemTime) -> (String, String) {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (y, m, d) = crate::client::time::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let date = format!("{y:04}{m:02}{d:02}");
    (
        format!(
            "{date}T{:02}{:02}{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ),
        date,
    )
}

/// RFC 3986 percent-encoding as SigV4 wants it: everything but `A-Za-z0-9-._~` is
/// encoded, upper-case hex; `/` is kept when `keep_slash` (paths), encoded otherwise.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical URI of a path for every service but S3: `.` and `..` segments resolved,
/// empty segments dropped (a trailing `/` kept), each segment percent-encoded.
pub fn canonical_uri(path: &str) -> String {
    canonical_uri_cow(path).into_owned()
}

/// [`canonical_uri`], borrowed when the path is canonical already (`/`, as every Kinesis
/// call's is).
pub fn canonical_uri_cow(path: &str) -> std::borrow::Cow<'_, str> {
    if path == "/" {
        return std::borrow::Cow::Borrowed("/");
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s, false))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if path.len() > 1 && path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

/// The canonical query string: pairs percent-encoded, sorted by name then value.
/// `query` is the raw query (after `?`), already percent-encoded or not: it is decoded first
/// so that both spellings sign the same.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (
                (bytes[i + 1] as char).to_digit(16),
                (bytes[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A canonical request and the signed-headers list it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// The six lines, joined by `\n`.
    pub text: String,
    /// `host;x-amz-date;...`: lower-case names, sorted, `;`-separated.
    pub signed_headers: String,
}

/// Builds the canonical request. `headers` are the headers to sign, in any order and case;
/// names are lower-cased and sorted, values trimmed with inner runs of spaces collapsed,
/// repeated names joined with `,`. `canonical_uri` and `canonical_query` are already
/// canonical (see [`canonical_uri`], [`canonical_query`]).
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> CanonicalRequest {
    let mut text = String::new();
    let signed = write_canonical_request(
        &mut text,
        method,
        canonical_uri,
        canonical_query,
        headers,
        payload_hash,
    );
    CanonicalRequest {
        signed_headers: text[signed].to_string(),
        text,
    }
}

/// [`canonical_request`] into `text` (cleared first), so that a caller building one per
/// request can reuse one buffer; returns where the signed-headers list lies in it.
pub fn write_canonical_request<N: AsRef<str>, V: AsRef<str>>(
    text: &mut String,
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(N, V)],
    payload_hash: &str,
) -> std::ops::Range<usize> {
    // Borrowed where possible: the verifier builds one of these per request, and a name or
    // value needs a copy only when it has upper case or whitespace to collapse.
    let mut sorted: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> = headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_ref();
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Owned(name.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(name)
            };
            (name, collapse_whitespace(value.as_ref()))
        })
        .collect();
    // Stable, so repeated headers keep their order when joined.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let capacity = method.len()
        + canonical_uri.len()
        + canonical_query.len()
        + payload_hash.len()
        + sorted
            .iter()
            .map(|(n, v)| 2 * n.len() + v.len() + 3)
            .sum::<usize>()
        + 8;
    text.clear();
    text.reserve(capacity);
    text.push_str(method);
    text.push('\n');
    text.push_str(canonical_uri);
    text.push('\n');
    text.push_str(canonical_query);
    text.push('\n');
    let mut previous: Option<&str> = None;
    for (name, value) in &sorted {
        if previous == Some(name.as_ref()) {
            // A repeated header: its values joined with commas on one line.
            text.pop();
            text.push(',');
        } else {
            text.push_str(name);
            text.push(':');
        }
        text.push_str(value);
        text.push('\n');
        previous = Some(name.as_ref());
    }
    text.push('\n');
    let signed_start = text.len();
    let mut previous: Option<&str> = None;
    for (name, _) in &sorted {
        if previous != Some(name.as_ref()) {
            if previous.is_some() {
                text.push(';');
            }
            text.push_str(name);
        }
        previous = Some(name.as_ref());
    }
    let signed_end = text.len();
    text.push('\n');
    text.push_str(payload_hash);
    signed_start..signed_end
}

/// A header value trimmed, inner runs of whitespace collapsed to one space; borrowed when
/// it is already so.
fn collapse_whitespace(value: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = value.trim_matches(|c: char| c.is_whitespace());
    let mut previous_space = false;
    let clean = trimmed.chars().all(|c| {
        let ok = c == ' ' && !previous_space || !c.is_whitespace();
        previous_space = c == ' ';
        ok
    });
    if clean {
        std::borrow::Cow::Borrowed(trimmed)
    } else {
        std::borrow::Cow::Owned(trimmed.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// `DATE/REGION/SERVICE/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/{TERMINATOR}")
}

/// The string to sign: algorithm, request time, scope and the canonical request's hash.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The signing key derived from the secret for one day, region and service.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, TERMINATOR.as_bytes())
}

/// The hex signature of `string_to_sign` under `signing_key`.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&hmac(signing_key, string_to_sign.as_bytes()))
}

/// Whether `hex_signature` is the signature of `string_to_sign` under `signing_key`, compared
/// in constant time (`hmac`'s `verify_slice`) so that the time taken says nothing about how
/// many leading bytes were right. Anything that is not 64 hex digits is simply wrong.
pub fn verify_signature(signing_key: &[u8; 32], string_to_sign: &str, hex_signature: &str) -> bool {
    verify_signature_of_parts(signing_key, &[string_to_sign], hex_signature)
}

/// [`verify_signature`] of the string to sign given as consecutive pieces, so that a
/// verifier need not assemble it (nor allocate) on the success path.
pub fn verify_signature_of_parts(
    signing_key: &[u8; 32],
    string_to_sign: &[&str],
    hex_signature: &str,
) -> bool {
    let Some(given) = unhex32(hex_signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(signing_key) else {
        return false;
    };
    for part in string_to_sign {
        mac.update(part.as_bytes());
    }
    mac.verify_slice(&given).is_ok()
}

/// 64 hex digits (either case) → 32 bytes.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC) → seconds since the epoch; `None` for
/// anything else, including impossible dates such as month 13.
pub fn parse_amz_date(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = value.get(range)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (h, mi, s) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = crate::client::time::days_from_civil(y, mo as u32, d as u32);
    // Day 31 of a 30-day month rolls into the next month: refuse it rather than guess.
    if crate::client::time::civil_from_days(days) != (y, mo as u32, d as u32) {
        return None;
    }
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Seconds since the epoch → `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(secs: i64) -> String {
    let (y, m, d) = crate::client::time::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The `Authorization` header value.
pub fn authorization(
    access_key_id: &str,
    scope: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The AWS SigV4 test suite's credentials and request time.
    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const AMZ_DATE: &str = "20150830T123600Z";
    const DATE: &str = "20150830";
    const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Signs one request of the suite; returns (canonical request, string to sign, Authorization).
    fn sign(
        method: &str,
        path: &str,
        extra_headers: &[(&str, &str)],
        body: &str,
    ) -> (String, String, String) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut headers = vec![("Host", "example.amazonaws.com"), ("X-Amz-Date", AMZ_DATE)];
        headers.extend_from_slice(extra_headers);
        let canonical = canonical_request(
            method,
            &canonical_uri(path),
            &canonical_query(query),
            &headers,
            &sha256_hex(body.as_bytes()),
        );
        let scope = credential_scope(DATE, "us-east-1", "service");
        let to_sign = string_to_sign(AMZ_DATE, &scope, &canonical.text);
        let key = signing_key(SECRET, DATE, "us-east-1", "service");
        let auth = authorization(
            ACCESS_KEY,
            &scope,
            &canonical.signed_headers,
            &signature(&key, &to_sign),
        );
        (canonical.text, to_sign, auth)
    }

    fn expect_signature(auth: &str, signed_headers: &str, signature: &str) {
        assert_eq!(
            auth,
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
            )
        );
    }

    #[test]
    fn get_vanilla() {
        let (canonical, to_sign, auth) = sign("GET", "/", &[], "");
        assert_eq!(
            canonical,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_HASH}"
            )
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        expect_signature(
            &auth,
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
    }

    #[test]
    fn post_vanilla() {
        let (_, to_sign, auth) = sign("POST", "/", &[], "");
        assert!(
            to_sign.ends_with("553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87")
        );
        expect_signature(
            &auth,
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        );
    }

    #[test]
    fn query_parameters_are_sorted_by_name_then_value() {
        let (_, _, auth) = sign("GET", "/?Param2=value2&Param1=value1", &[], "");
        expect_signature(
            &auth,
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        );
        let (canonical, _, auth) = sign("GET", "/?Param1=value2&Param1=Value1", &[], "");
        assert!(
            canonical.contains("\nParam1=Value1&Param1=value2\n"),
            "{canonical}"
        );
        expect_signature(
            &auth,
            "host;x-amz-date",
            "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
        );
        let (canonical, _, auth) = sign("GET", "/?ሴ=bar", &[], "");
        assert!(canonical.contains("\n%E1%88%B4=bar\n"), "{canonical}");
        expect_signature(
            &auth,
            "host;x-amz-date",
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        );
    }

    #[test]
    fn header_values_are_trimmed_and_names_sorted() {
        let (canonical, _, auth) = sign(
            "GET",
            "/",
            &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            "",
        );
        assert!(
            canonical.contains("my-header1:value1\nmy-header2:\"a b c\"\n"),
            "{canonical}"
        );
        expect_signature(
            &auth,
            "host;my-header1;my-header2;x-amz-date",
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        );
        let (_, _, auth) = sign("POST", "/", &[("my-header1", "VALUE1")], "");
        expect_signature(
            &auth,
            "host;my-header1;x-amz-date",
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        );
    }

    #[test]
    fn session_token_is_signed() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        let (_, _, auth) = sign("POST", "/", &[("X-Amz-Security-Token", token)], "");
        expect_signature(
            &auth,
            "host;x-amz-date;x-amz-security-token",
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        );
    }

    #[test]
    fn body_is_hashed_into_the_signature() {
        let (canonical, _, auth) = sign(
            "POST",
            "/",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "Param1=value1",
        );
        assert!(
            canonical.ends_with("9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
        );
        expect_signature(
            &auth,
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        );
    }

    #[test]
    fn paths_are_normalized_and_encoded() {
        let (_, _, auth) = sign("GET", "/example1/example2/../..", &[], "");
        expect_signature(
            &auth,
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        );
        let (_, _, auth) = sign("GET", "//example//", &[], "");
        expect_signature(
            &auth,
            "host;x-amz-date",
            "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        );
        let (_, _, auth) = sign("GET", "/example space/", &[], "");
        expect_signature(
            &auth,
            "host;x-amz-date",
            "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        );
        let (_, _, auth) = sign("GET", "/ሴ", &[], "");
        expect_signature(
            &auth,
            "host;x-amz-date",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        );
        let (_, _, auth) = sign("GET", "/./example", &[], "");
        expect_signature(
            &auth,
            "host;x-amz-date",
            "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
        );
    }

    #[test]
    fn signing_key_matches_the_documented_derivation() {
        // AWS's "Deriving the signing key" example (IAM, 2012-02-15).
        let key = signing_key(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn signature_verifies_in_constant_time_and_only_when_right() {
        let key = signing_key(SECRET, DATE, "us-east-1", "service");
        let (_, to_sign, _) = sign("GET", "/", &[], "");
        let right = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        assert!(verify_signature(&key, &to_sign, right));
        assert!(verify_signature(&key, &to_sign, &right.to_uppercase()));
        assert!(!verify_signature(&key, &to_sign, &right.replace('5', "6")));
        assert!(!verify_signature(&key, &to_sign, &right[..63]));
        assert!(!verify_signature(&key, &to_sign, ""));
        assert!(!verify_signature(&key, &to_sign, &"zz".repeat(32)));
        let other = signing_key("wrong", DATE, "us-east-1", "service");
        assert!(!verify_signature(&other, &to_sign, right));
    }

    #[test]
    fn amz_dates_parse_and_format_round_trip() {
        assert_eq!(parse_amz_date(AMZ_DATE), Some(1_440_938_160));
        assert_eq!(format_amz_date(1_440_938_160), AMZ_DATE);
        for bad in [
            "",
            "2015",
            "20150830T123600",
            "20150830 123600Z",
            "20151330T123600Z",
            "20150231T123600Z",
            "20150830T246000Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "20150830T12360éZ",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn amz_date_formats_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), (AMZ_DATE.to_string(), DATE.to_string()));
    }
}
