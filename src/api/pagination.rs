//! Opaque pagination tokens (`NextToken`) for the List operations.
//!
//! A token is standard base64 of a small JSON document naming the operation, the
//! caller's account and region, what it is paging over, where the last page ended and
//! when it was issued. Tokens expire after [`NEXT_TOKEN_TTL_MS`] as AWS's do, and a token
//! from another operation, account or region is rejected.

use base64_simd::STANDARD;
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, RequestContext};
use crate::api_error;

/// How long a `NextToken` is valid: 300 seconds, as ListShards documents.
pub const NEXT_TOKEN_TTL_MS: i64 = 300_000;

/// A decoded `NextToken`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken {
    /// The operation that issued it.
    #[serde(rename = "o")]
    pub operation: String,
    /// What is paged (e.g. the stream name for ListShards); empty when nothing.
    #[serde(rename = "s")]
    pub scope: String,
    /// The last item of the previous page; the next page starts after it.
    #[serde(rename = "a")]
    pub after: String,
    /// Issue time, ms.
    #[serde(rename = "t")]
    pub issued_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(flatten)]
    token: PageToken,
    #[serde(rename = "c")]
    account: String,
    #[serde(rename = "r")]
    region: String,
}

impl PageToken {
    /// The opaque string form.
    pub fn encode(self, ctx: &RequestContext) -> String {
        let env = Envelope {
            token: self,
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
        };
        STANDARD.encode_to_string(serde_json::to_vec(&env).unwrap_or_default())
    }

    /// Decodes a token sent to `operation`.
    pub fn decode(
        token: &str,
        operation: &str,
        ctx: &RequestContext,
        now_ms: i64,
    ) -> Result<PageToken, ApiError> {
        let invalid = || api_error!(InvalidArgumentException, "Invalid NextToken.");
        let raw = STANDARD.decode_to_vec(token).map_err(|_| invalid())?;
        let env: Envelope = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        if env.token.operation != operation
            || env.account != ctx.account_id
            || env.region != ctx.region
        {
            return Err(invalid());
        }
        if now_ms.saturating_sub(env.token.issued_ms) > NEXT_TOKEN_TTL_MS {
            return Err(api_error!(
                ExpiredNextTokenException,
                "The NextToken has expired. It is valid for {} seconds.",
                NEXT_TOKEN_TTL_MS / 1000
            ));
        }
        Ok(env.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        RequestContext {
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            request_id: "r".into(),
        }
    }

    fn token(issued_ms: i64) -> PageToken {
        PageToken {
            operation: "ListShards".into(),
            scope: "s".into(),
            after: "shardId-000000000001".into(),
            issued_ms,
        }
    }

    #[test]
    fn round_trips() {
        let t = token(1000);
        assert_eq!(
            PageToken::decode(&t.clone().encode(&ctx()), "ListShards", &ctx(), 2000).unwrap(),
            t
        );
    }

    #[test]
    fn expired_token_is_rejected_with_expired_error() {
        let e = PageToken::decode(
            &token(0).encode(&ctx()),
            "ListShards",
            &ctx(),
            NEXT_TOKEN_TTL_MS + 1,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::api::ErrorCode::ExpiredNextTokenException);
    }

    #[test]
    fn token_of_another_operation_or_account_is_invalid() {
        let e = PageToken::decode(&token(0).encode(&ctx()), "ListStreams", &ctx(), 1).unwrap_err();
        assert_eq!(e.code, crate::api::ErrorCode::InvalidArgumentException);
        let mut other = ctx();
        other.account_id = "111111111111".into();
        let e = PageToken::decode(&token(0).encode(&other), "ListShards", &ctx(), 1).unwrap_err();
        assert_eq!(e.code, crate::api::ErrorCode::InvalidArgumentException);
        assert!(PageToken::decode("%%%", "ListShards", &ctx(), 1).is_err());
    }

    #[test]
    fn a_forged_issue_time_cannot_overflow_the_expiry_check() {
        for issued_ms in [i64::MIN, i64::MAX] {
            let t = PageToken {
                issued_ms,
                ..token(0)
            };
            // Either answer is fine; what matters is that nothing panics.
            let _ = PageToken::decode(&t.encode(&ctx()), "ListShards", &ctx(), 1_764_000_000_000);
        }
    }
}
