//! Who is calling: the SigV4 credential, read from the `Authorization` header or from a
//! presigned query string. The signature itself is not verified yet (a later issue); only
//! its presence and shape, as AWS checks them before verifying, with AWS's messages.
//!
//! Sources for the wording and the order of the checks: kinesalite (`mhart/kinesalite`,
//! `index.js` and `test/connection.js`), which reproduces AWS byte for byte, and, for the
//! credential scope, AWS's own answers quoted in `aws/aws-sdk-go#1042`,
//! `kubernetes-sigs/aws-iam-authenticator#374` and
//! `prometheus-community/yet-another-cloudwatch-exporter#169`
//! ("Credential must have exactly 5 slash-delimited elements, e.g.
//! keyid/date/region/service/term, got '...'", `IncompleteSignatureException`, 400).

use crate::api::{ApiError, ErrorCode, RequestContext};

/// The parts of the request that authentication looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthInput<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// Whether an `X-Amz-Date` or a `Date` header is present.
    pub has_date_header: bool,
    /// The raw query string (after `?`), if any.
    pub query: Option<&'a str>,
}

/// The caller as far as routing is concerned: the namespace its streams live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key id from the credential.
    pub access_key_id: String,
    /// The 12-digit account: the access key id when it is 12 digits, else
    /// [`RequestContext::DEFAULT_ACCOUNT_ID`].
    pub account_id: String,
    /// The region of the credential scope, else [`RequestContext::DEFAULT_REGION`].
    pub region: String,
}

/// The SigV4 header parameters AWS requires, in the order it reports them missing.
const HEADER_PARAMS: [&str; 3] = ["Credential", "Signature", "SignedHeaders"];
/// The presigned-URL query parameters AWS requires, in the order it reports them missing.
const QUERY_PARAMS: [&str; 5] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-SignedHeaders",
    "X-Amz-Date",
];

/// Checks the request carries a well-formed SigV4 credential and says whose it is.
///
/// Order and wording follow AWS: both a header and a presigned query →
/// `InvalidSignatureException`; neither → `MissingAuthenticationTokenException`; missing
/// parts → `IncompleteSignatureException` listing every missing part; then the credential
/// scope must have five parts.
pub fn authenticate(input: AuthInput<'_>) -> Result<Caller, ApiError> {
    let query = input.query.map(parse_query).unwrap_or_default();
    let query_get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let presigned = query_get("X-Amz-Algorithm").is_some();

    let credential = match (input.authorization, presigned) {
        (Some(_), true) => {
            return Err(ApiError::new(
                ErrorCode::InvalidSignatureException,
                "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
            ));
        }
        (None, false) => {
            return Err(ApiError::new(
                ErrorCode::MissingAuthenticationTokenException,
                "Missing Authentication Token",
            ));
        }
        (Some(header), false) => {
            let params = parse_authorization(header);
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| *v)
                    .filter(|v| !v.is_empty())
            };
            let mut message = String::new();
            for name in HEADER_PARAMS {
                if get(name).is_none() {
                    message.push_str(&format!(
                        "Authorization header requires '{name}' parameter. "
                    ));
                }
            }
            if !input.has_date_header {
                message.push_str(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
                );
            }
            if !message.is_empty() {
                message.push_str("Authorization=");
                message.push_str(header);
                return Err(ApiError::new(
                    ErrorCode::IncompleteSignatureException,
                    message,
                ));
            }
            get("Credential").unwrap_or_default().to_string()
        }
        (None, true) => {
            let mut message = String::new();
            for name in QUERY_PARAMS {
                if query_get(name).is_none_or(str::is_empty) {
                    message.push_str(&format!(
                        "AWS query-string parameters must include '{name}'. "
                    ));
                }
            }
            if !message.is_empty() {
                message.push_str("Re-examine the query-string parameters.");
                return Err(ApiError::new(
                    ErrorCode::IncompleteSignatureException,
                    message,
                ));
            }
            query_get("X-Amz-Credential")
                .unwrap_or_default()
                .to_string()
        }
    };
    caller_from_credential(&credential)
}

/// `AKID/20261125/us-east-1/kinesis/aws4_request` → the caller. Only the shape is checked;
/// the date, service and terminator are the signature check's business (a later issue).
fn caller_from_credential(credential: &str) -> Result<Caller, ApiError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, _date, region, _service, _terminator] = parts[..] else {
        return Err(ApiError::new(
            ErrorCode::IncompleteSignatureException,
            format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{credential}'"
            ),
        ));
    };
    let account_id =
        if access_key_id.len() == 12 && access_key_id.bytes().all(|b| b.is_ascii_digit()) {
            access_key_id.to_string()
        } else {
            RequestContext::DEFAULT_ACCOUNT_ID.to_string()
        };
    let region = if region.is_empty() {
        RequestContext::DEFAULT_REGION
    } else {
        region
    };
    Ok(Caller {
        access_key_id: access_key_id.to_string(),
        account_id,
        region: region.to_string(),
    })
}

/// The `key=value` parameters after the algorithm in an `Authorization` header, split on
/// commas and spaces as AWS does (`Signature=b Credential=a`, `Signature=b,Credential=a` and
/// `Signature=b, Credential=a` all parse; kinesalite `index.js`).
fn parse_authorization(header: &str) -> Vec<(&str, &str)> {
    header
        .split([',', ' '])
        .skip(1)
        .filter(|token| !token.is_empty())
        .map(|token| token.trim().split_once('=').unwrap_or((token.trim(), "")))
        .collect()
}

pub(crate) use crate::protocol::query::parse_query;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/eu-west-1/kinesis/aws4_request, \
                        SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abc123";

    fn header(value: &str) -> AuthInput<'_> {
        AuthInput {
            authorization: Some(value),
            has_date_header: true,
            query: None,
        }
    }

    fn err(input: AuthInput<'_>) -> (ErrorCode, String) {
        let e = authenticate(input).unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn good_header_gives_region_and_default_account() {
        let caller = authenticate(header(GOOD)).unwrap();
        assert_eq!(caller.access_key_id, "AKIDEXAMPLE");
        assert_eq!(caller.account_id, "000000000000");
        assert_eq!(caller.region, "eu-west-1");
    }

    #[test]
    fn twelve_digit_access_key_is_the_account() {
        let h = GOOD.replace("AKIDEXAMPLE", "123456789012");
        assert_eq!(authenticate(header(&h)).unwrap().account_id, "123456789012");
        let h = GOOD.replace("AKIDEXAMPLE", "1234567890123");
        assert_eq!(authenticate(header(&h)).unwrap().account_id, "000000000000");
        let h = GOOD.replace("AKIDEXAMPLE", "12345678901a");
        assert_eq!(authenticate(header(&h)).unwrap().account_id, "000000000000");
    }

    #[test]
    fn missing_header_and_query_is_missing_token() {
        let (code, message) = err(AuthInput {
            has_date_header: true,
            ..Default::default()
        });
        assert_eq!(code, ErrorCode::MissingAuthenticationTokenException);
        assert_eq!(message, "Missing Authentication Token");
    }

    #[test]
    fn query_without_algorithm_is_missing_token() {
        let q = "X-Amz-Credential=a&X-Amz-Signature=b&X-Amz-SignedHeaders=c&X-Amz-Date=d";
        let (code, _) = err(AuthInput {
            query: Some(q),
            ..Default::default()
        });
        assert_eq!(code, ErrorCode::MissingAuthenticationTokenException);
    }

    #[test]
    fn header_without_any_parameter_lists_everything_missing() {
        let (code, message) = err(AuthInput {
            authorization: Some("X"),
            has_date_header: false,
            query: None,
        });
        assert_eq!(code, ErrorCode::IncompleteSignatureException);
        assert_eq!(
            message,
            "Authorization header requires 'Credential' parameter. \
             Authorization header requires 'Signature' parameter. \
             Authorization header requires 'SignedHeaders' parameter. \
             Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
             Authorization=X"
        );
    }

    #[test]
    fn header_missing_signed_headers_in_every_separator_style() {
        for h in [
            "AWS4- Signature=b Credential=a",
            "AWS4- Signature=b,Credential=a",
            "AWS4- Signature=b, Credential=a",
        ] {
            let (code, message) = err(header(h));
            assert_eq!(code, ErrorCode::IncompleteSignatureException);
            assert_eq!(
                message,
                format!(
                    "Authorization header requires 'SignedHeaders' parameter. Authorization={h}"
                )
            );
        }
    }

    #[test]
    fn header_missing_credential_or_signature() {
        let (_, message) = err(header("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=x"));
        assert_eq!(
            message,
            "Authorization header requires 'Credential' parameter. Authorization=AWS4-HMAC-SHA256 SignedHeaders=host, Signature=x"
        );
        let (_, message) = err(header(
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=",
        ));
        assert!(
            message
                .starts_with("Authorization header requires 'Signature' parameter. Authorization="),
            "{message}"
        );
    }

    #[test]
    fn header_without_date_is_incomplete() {
        let (code, message) = err(AuthInput {
            authorization: Some(GOOD),
            has_date_header: false,
            query: None,
        });
        assert_eq!(code, ErrorCode::IncompleteSignatureException);
        assert_eq!(
            message,
            format!(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={GOOD}"
            )
        );
    }

    #[test]
    fn bad_credential_scope_is_incomplete() {
        let (code, message) = err(header(
            "AWS4- Signature=b, Credential=a, SignedHeaders=host",
        ));
        assert_eq!(code, ErrorCode::IncompleteSignatureException);
        assert_eq!(
            message,
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'a'"
        );
        let (_, message) = err(header(
            "AWS4- Signature=b, Credential=A/B/20261125/us-east-1/kinesis/aws4_request, SignedHeaders=host",
        ));
        assert!(
            message.ends_with("got 'A/B/20261125/us-east-1/kinesis/aws4_request'"),
            "{message}"
        );
    }

    #[test]
    fn empty_region_falls_back_to_default() {
        let caller = authenticate(header(
            "AWS4- Signature=b, Credential=K/d//kinesis/aws4_request, SignedHeaders=host",
        ))
        .unwrap();
        assert_eq!(caller.region, "us-east-1");
    }

    #[test]
    fn both_header_and_presigned_query_is_invalid_signature() {
        let (code, message) = err(AuthInput {
            authorization: Some("X"),
            has_date_header: true,
            query: Some("X-Amz-Algorithm"),
        });
        assert_eq!(code, ErrorCode::InvalidSignatureException);
        assert_eq!(
            message,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."
        );
    }

    #[test]
    fn header_with_unrelated_query_is_checked_as_header() {
        let (code, message) = err(AuthInput {
            authorization: Some("X"),
            has_date_header: true,
            query: Some("X-Amz-Algorith"),
        });
        assert_eq!(code, ErrorCode::IncompleteSignatureException);
        assert!(message.starts_with("Authorization header requires 'Credential' parameter."));
    }

    #[test]
    fn presigned_query_lists_missing_parameters() {
        let (code, message) = err(AuthInput {
            query: Some("X-Amz-Algorithm"),
            ..Default::default()
        });
        assert_eq!(code, ErrorCode::IncompleteSignatureException);
        assert_eq!(
            message,
            "AWS query-string parameters must include 'X-Amz-Algorithm'. \
             AWS query-string parameters must include 'X-Amz-Credential'. \
             AWS query-string parameters must include 'X-Amz-Signature'. \
             AWS query-string parameters must include 'X-Amz-SignedHeaders'. \
             AWS query-string parameters must include 'X-Amz-Date'. \
             Re-examine the query-string parameters."
        );
        let q = "X-Amz-Algorithm=a&X-Amz-Credential=b&X-Amz-Signature=c&X-Amz-Date=d";
        let (_, message) = err(AuthInput {
            query: Some(q),
            ..Default::default()
        });
        assert_eq!(
            message,
            "AWS query-string parameters must include 'X-Amz-SignedHeaders'. Re-examine the query-string parameters."
        );
    }

    #[test]
    fn presigned_query_credential_is_percent_decoded() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=123456789012%2F20261125%2Fap-south-1%2Fkinesis%2Faws4_request\
                 &X-Amz-Signature=c&X-Amz-SignedHeaders=host&X-Amz-Date=20261125T000000Z";
        let caller = authenticate(AuthInput {
            query: Some(q),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(caller.account_id, "123456789012");
        assert_eq!(caller.region, "ap-south-1");
    }
}
