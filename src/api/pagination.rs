//! Opaque pagination tokens (`NextToken`) for the List operations.
//!
//! A token is standard base64 of a small JSON document naming the operation, the
//! caller's account and region, what it is paging over, where the last page ended and
//! when it was issued. Tokens expire after [`NEXT_TOKEN_TTL_MS`] as AWS's do, and a token
//! from another operation, account or region is rejected.
//!
//! The issue time is kept on both clock readings, with the steady timeline's id, and the
//! age is judged as a shard iterator's (`Clock::issued_age_ms`): a wall-clock step neither
//! expires every token at once (forward) nor keeps them alive for the extra hour (back).

use base64_simd::STANDARD;
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, RequestContext, Timestamp};
use crate::api_error;
use crate::broker::Clock;

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
    /// Issue time, ms (the wall reading).
    #[serde(rename = "t")]
    pub issued_ms: i64,
}

/// When a token was issued on the steady timeline, beside the wall time in the token.
#[derive(Serialize, Deserialize)]
struct Issued {
    /// Issue time on the steady timeline `timeline` (0 in tokens of older brokers).
    #[serde(rename = "st", default)]
    steady_ms: i64,
    /// The steady timeline's id (0 in tokens of older brokers: another timeline).
    #[serde(rename = "tl", default)]
    timeline: u64,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(flatten)]
    token: PageToken,
    #[serde(rename = "c")]
    account: String,
    #[serde(rename = "r")]
    region: String,
    #[serde(flatten)]
    issued: Issued,
}

impl PageToken {
    /// The opaque string form, issued now by `clock`.
    pub fn encode(self, ctx: &RequestContext, clock: &Clock) -> String {
        let env = Envelope {
            token: self,
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
            issued: Issued {
                steady_ms: clock.steady_ms(),
                timeline: clock.timeline(),
            },
        };
        STANDARD.encode_to_string(serde_json::to_vec(&env).unwrap_or_default())
    }

    /// Decodes a token sent to `operation`, judging its age by `clock`.
    pub fn decode(
        token: &str,
        operation: &str,
        ctx: &RequestContext,
        clock: &Clock,
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
        let age = clock.issued_age_ms(
            env.token.issued_ms,
            env.issued.steady_ms,
            env.issued.timeline,
        );
        if age > NEXT_TOKEN_TTL_MS {
            return Err(api_error!(
                ExpiredNextTokenException,
                "The NextToken has expired. It is valid for {} seconds.",
                NEXT_TOKEN_TTL_MS / 1000
            ));
        }
        Ok(env.token)
    }
}

/// Where a List operation that pages by name resumes: items sorted by name, each page
/// starting after the last name of the previous one.
#[derive(Debug)]
pub struct NamePages<'a> {
    operation: &'static str,
    ctx: &'a RequestContext,
    scope: String,
    after: Option<String>,
    clock: &'a Clock,
}

impl<'a> NamePages<'a> {
    /// Reads `next_token` (none: the first page). A token belongs to the scope it was
    /// issued under (e.g. the filter), so one issued under another scope is invalid.
    pub fn resume(
        operation: &'static str,
        ctx: &'a RequestContext,
        scope: String,
        next_token: Option<&str>,
        clock: &'a Clock,
    ) -> Result<NamePages<'a>, ApiError> {
        let after = match next_token {
            Some(token) => {
                let page = PageToken::decode(token, operation, ctx, clock)?;
                if page.scope != scope {
                    return Err(api_error!(InvalidArgumentException, "Invalid NextToken."));
                }
                Some(page.after)
            }
            None => None,
        };
        Ok(NamePages {
            operation,
            ctx,
            scope,
            after,
            clock,
        })
    }

    /// Whether `name` comes after the previous page, so belongs to this one or a later one.
    pub fn is_after_previous(&self, name: &str) -> bool {
        self.after.as_deref().is_none_or(|a| name > a)
    }

    /// The first `limit` of `items` (those after the previous page, by name) and the token
    /// for the rest, if any are left.
    pub fn page<T>(
        self,
        mut items: Vec<T>,
        limit: usize,
        name: impl Fn(&T) -> &str,
    ) -> (Vec<T>, Option<String>) {
        let has_more = items.len() > limit;
        items.truncate(limit);
        let next_token = match (has_more, items.last()) {
            (true, Some(last)) => Some(
                PageToken {
                    operation: self.operation.into(),
                    scope: self.scope,
                    after: name(last).to_string(),
                    issued_ms: self.clock.now_ms(),
                }
                .encode(self.ctx, self.clock),
            ),
            _ => None,
        };
        (items, next_token)
    }
}

/// The `StreamFilter` of ListQueues and ListChannels: stream ARNs, each optionally with a
/// `StreamCreationTimestamp` telling the stream from an earlier one of the same name.
#[derive(Debug, Default)]
pub struct StreamFilter {
    /// (ARN, creation second): clients send the timestamp as a float, so it is compared to
    /// the second.
    streams: Vec<(String, Option<i64>)>,
}

impl StreamFilter {
    /// From the request's (`StreamARN`, `StreamCreationTimestamp`) pairs.
    pub fn new(streams: impl IntoIterator<Item = (Option<String>, Option<Timestamp>)>) -> Self {
        StreamFilter {
            streams: streams
                .into_iter()
                .map(|(arn, created)| {
                    (
                        arn.unwrap_or_default(),
                        created.map(|t| t.millis.div_euclid(1000)),
                    )
                })
                .collect(),
        }
    }

    /// The page-token scope: a token belongs to the filter it was issued under.
    pub fn scope(&self) -> String {
        self.streams
            .iter()
            .map(|(arn, ts)| format!("{arn}@{}", ts.map_or(String::new(), |t| t.to_string())))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether a resource on this stream incarnation is listed (all are without a filter).
    pub fn admits(&self, stream_arn: &str, stream_created_ms: i64) -> bool {
        self.streams.is_empty()
            || self.streams.iter().any(|(arn, ts)| {
                arn == stream_arn && ts.is_none_or(|t| t == stream_created_ms.div_euclid(1000))
            })
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
        let clock = Clock::system();
        let t = token(clock.now_ms());
        assert_eq!(
            PageToken::decode(
                &t.clone().encode(&ctx(), &clock),
                "ListShards",
                &ctx(),
                &clock
            )
            .unwrap(),
            t
        );
    }

    #[test]
    fn expired_token_is_rejected_with_expired_error() {
        let clock = Clock::system();
        let t = token(clock.now_ms()).encode(&ctx(), &clock);
        clock.advance_ms(NEXT_TOKEN_TTL_MS + 1).unwrap();
        let e = PageToken::decode(&t, "ListShards", &ctx(), &clock).unwrap_err();
        assert_eq!(e.code, crate::api::ErrorCode::ExpiredNextTokenException);
    }

    #[test]
    fn wall_steps_neither_expire_tokens_nor_keep_them_alive() {
        const HOUR: i64 = 3_600_000;
        let clock = Clock::system();
        let t = token(clock.now_ms()).encode(&ctx(), &clock);
        clock.step_wall_ms(HOUR).unwrap();
        PageToken::decode(&t, "ListShards", &ctx(), &clock)
            .expect("a forward step expired a fresh token");
        clock.step_wall_ms(-2 * HOUR).unwrap();
        clock.advance_ms(NEXT_TOKEN_TTL_MS + 1).unwrap();
        let e = PageToken::decode(&t, "ListShards", &ctx(), &clock)
            .expect_err("a backward step kept a token alive past 300 s");
        assert_eq!(e.code, crate::api::ErrorCode::ExpiredNextTokenException);
    }

    #[test]
    fn a_token_of_a_previous_run_lives_at_most_its_300_s_into_this_one() {
        let before = Clock::system();
        let t = token(before.now_ms()).encode(&ctx(), &before);
        // The next process runs on a wall clock an hour behind.
        let after = Clock::system_stepped(-3_600_000).unwrap();
        PageToken::decode(&t, "ListShards", &ctx(), &after).expect("seconds old");
        after.advance_ms(NEXT_TOKEN_TTL_MS + 1).unwrap();
        let e = PageToken::decode(&t, "ListShards", &ctx(), &after).unwrap_err();
        assert_eq!(e.code, crate::api::ErrorCode::ExpiredNextTokenException);
    }

    #[test]
    fn token_of_another_operation_or_account_is_invalid() {
        let clock = Clock::system();
        let fresh = || token(clock.now_ms());
        let e = PageToken::decode(
            &fresh().encode(&ctx(), &clock),
            "ListStreams",
            &ctx(),
            &clock,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::api::ErrorCode::InvalidArgumentException);
        let mut other = ctx();
        other.account_id = "111111111111".into();
        let e = PageToken::decode(
            &fresh().encode(&other, &clock),
            "ListShards",
            &ctx(),
            &clock,
        )
        .unwrap_err();
        assert_eq!(e.code, crate::api::ErrorCode::InvalidArgumentException);
        assert!(PageToken::decode("%%%", "ListShards", &ctx(), &clock).is_err());
    }

    #[test]
    fn a_forged_issue_time_cannot_overflow_the_expiry_check() {
        let clock = Clock::system();
        for issued_ms in [i64::MIN, i64::MAX] {
            let t = PageToken {
                issued_ms,
                ..token(0)
            };
            // Either answer is fine; what matters is that nothing panics.
            let _ = PageToken::decode(&t.encode(&ctx(), &clock), "ListShards", &ctx(), &clock);
        }
    }
}

/// Bounded fuzzing of `NextToken` decoding (see `crate::fuzzing`): mutated tokens (the
/// decoded JSON damaged, its fields swapped for other types, huge or negative issue times,
/// deep nesting, the base64 text itself damaged) and random strings up to past the model's
/// 1 MiB never panic or hang; each is refused with `InvalidArgumentException` or
/// `ExpiredNextTokenException`, or names exactly this operation, account and region.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::api::ErrorCode;
    use crate::fuzzing::{Run, damage, show};

    const JSON_BYTES: &[u8] = b"{}[],:\"\\0123456789-eE.+tfn ocrsa\0\xff";
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n";

    fn ctx() -> RequestContext {
        RequestContext {
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn fuzzed_next_tokens_are_refused_in_aws_errors() {
        let ctx = ctx();
        let clock = Clock::system();
        let now = clock.now_ms();
        let operations = [
            "ListShards",
            "ListStreams",
            "ListStreamConsumers",
            "ListQueues",
        ];
        let mut run = Run::new("next_token", 20_000, 0x9a6e_7013);
        for i in 0..run.iterations() {
            let rng = &mut run.rng;
            let operation = operations[rng.below(operations.len())];
            let valid = PageToken {
                operation: operations[rng.below(operations.len())].into(),
                scope: "s".repeat(rng.below(130)),
                after: format!("shardId-{:012}", rng.below(1_000_000)),
                issued_ms: now - rng.below(600_000) as i64,
            };
            let token = valid.encode(&ctx, &clock);
            let mut json = STANDARD.decode_to_vec(&token).unwrap();
            let candidate: Vec<u8> = match rng.below(6) {
                0 | 1 => {
                    for _ in 0..=rng.below(3) {
                        damage(
                            rng,
                            &mut json,
                            JSON_BYTES,
                            br#""t":-9223372036854775808,"o":[{"c":1e999}]"#,
                        );
                    }
                    STANDARD.encode_to_string(json).into_bytes()
                }
                2 => {
                    // Each field as another JSON type, or an issue time far outside i64.
                    let text = String::from_utf8(json).unwrap();
                    let field =
                        ["\"o\":", "\"s\":", "\"a\":", "\"t\":", "\"c\":", "\"r\":"][rng.below(6)];
                    let value = [
                        "null,\"x\":",
                        "[],\"x\":",
                        "{},\"x\":",
                        "1e400,\"x\":",
                        "-99999999999999999999999,\"x\":",
                        "\"\\ud800\",\"x\":",
                        "9223372036854775807,\"x\":",
                    ][rng.below(7)];
                    STANDARD
                        .encode_to_string(text.replacen(field, &format!("{field}{value}"), 1))
                        .into_bytes()
                }
                3 => {
                    let depth = if rng.chance(100) {
                        100_000
                    } else {
                        rng.below(200)
                    };
                    let mut deep = b"{\"o\":".to_vec();
                    deep.extend(std::iter::repeat_n(b'[', depth));
                    STANDARD.encode_to_string(deep).into_bytes()
                }
                4 => {
                    let longest = if rng.chance(1_000) { 1_100_000 } else { 400 };
                    (0..rng.below(longest))
                        .map(|_| B64[rng.below(B64.len())])
                        .collect()
                }
                _ => {
                    let mut text = token.clone().into_bytes();
                    for _ in 0..=rng.below(3) {
                        damage(rng, &mut text, B64, &[]);
                    }
                    text
                }
            };
            let text = String::from_utf8_lossy(&candidate).into_owned();
            let outcome = run.input(
                i,
                || show(&candidate),
                || PageToken::decode(&text, operation, &ctx, &clock),
            );
            match outcome {
                Ok(got) => assert_eq!(got.operation, operation, "{text}"),
                Err(e) => match e.code {
                    ErrorCode::InvalidArgumentException => {
                        assert_eq!(e.message, "Invalid NextToken.")
                    }
                    ErrorCode::ExpiredNextTokenException => {}
                    other => panic!("{other:?} for {text}"),
                },
            }
        }
        run.finish();
    }
}
