//! What several operations share: naming the stream a request is about, turning broker
//! errors into AWS's, and shaping shards for output.

use crate::api::generated::{HashKeyRange, SequenceNumberRange, Shard as ShardOutput};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::faults::{RecordFault, RequestFault};
use std::sync::Arc;

use crate::broker::fanout::registry::{ConsumerMeta, parse_consumer_arn};
use crate::broker::stream::{Shard, Stream, StreamKey};
use crate::broker::{Broker, Error, catalog::StreamStatus};

/// The stream a request names by `StreamName` and/or `StreamARN`, scoped to the caller's
/// account and region (or, for an ARN, to the ARN's).
pub fn stream_key(
    ctx: &RequestContext,
    name: Option<&str>,
    arn: Option<&str>,
) -> Result<StreamKey, ApiError> {
    match (name, arn) {
        (_, Some(arn)) => {
            let key = parse_stream_arn(arn)
                .ok_or_else(|| api_error!(InvalidArgumentException, "Invalid StreamARN: {arn}."))?;
            if let Some(name) = name
                && name != key.name
            {
                return Err(api_error!(
                    InvalidArgumentException,
                    "StreamARN {arn} does not name stream {name}."
                ));
            }
            Ok(key)
        }
        (Some(name), None) => Ok(StreamKey {
            account: ctx.account_id.clone(),
            region: ctx.region.clone(),
            name: name.to_string(),
        }),
        // Same wording as ListShards' pinned "Either NextToken or StreamName should be provided."
        (None, None) => Err(api_error!(
            InvalidArgumentException,
            "Either StreamName or StreamARN should be provided."
        )),
    }
}

/// The consumer a DescribeStreamConsumer or DeregisterStreamConsumer request names: by
/// `ConsumerARN`, or by `StreamARN` and `ConsumerName`. All three may be given as long as
/// they agree, as AWS documents.
pub fn named_consumer(
    broker: &Broker,
    ctx: &RequestContext,
    consumer_arn: Option<&str>,
    consumer_name: Option<&str>,
    stream_arn: Option<&str>,
) -> Result<(Arc<Stream>, ConsumerMeta), ApiError> {
    match (consumer_arn, consumer_name, stream_arn) {
        (Some(arn), name, stream_arn) => {
            let parsed = parse_consumer_arn(arn)
                .ok_or_else(|| Error::InvalidConsumerArn(arn.to_string()))?;
            if let Some(name) = name
                && name != parsed.name
            {
                return Err(api_error!(
                    InvalidArgumentException,
                    "ConsumerARN {arn} does not name consumer {name}."
                ));
            }
            if let Some(stream_arn) = stream_arn
                && stream_arn != parsed.stream_arn
            {
                return Err(api_error!(
                    InvalidArgumentException,
                    "ConsumerARN {arn} does not belong to stream {stream_arn}."
                ));
            }
            Ok(broker.consumer_by_arn(&ctx.account_id, &ctx.region, arn)?)
        }
        (None, Some(name), Some(stream_arn)) => {
            let key = stream_key(ctx, None, Some(stream_arn))?;
            let stream = broker.stream(&key)?;
            let consumer = broker.consumer(&stream, name)?;
            Ok((stream, consumer))
        }
        // kinesis-mock's wording; AWS's is NOT PINNED.
        _ => Err(api_error!(
            InvalidArgumentException,
            "ConsumerArn or both ConsumerName and StreamARN are required for this request."
        )),
    }
}

/// The stream name a consumer request is about, for per-stream rate limits.
pub fn consumer_request_stream(
    consumer_arn: Option<&str>,
    stream_arn: Option<&str>,
) -> Option<String> {
    consumer_arn
        .and_then(parse_consumer_arn)
        .map(|c| c.stream.name)
        .or_else(|| stream_arn.and_then(parse_stream_arn).map(|k| k.name))
}

/// Fails with AWS's ResourceInUseException unless the stream is ACTIVE: settings cannot
/// change while a stream is being created, updated or deleted.
pub fn require_active(stream: &crate::broker::stream::Stream) -> Result<(), ApiError> {
    let status = stream.state().status;
    if status != StreamStatus::Active {
        return Err(Error::StreamNotActive {
            name: stream.key.name.clone(),
            account: stream.key.account.clone(),
            status,
        }
        .into());
    }
    Ok(())
}

/// `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME` (any `aws*` partition).
pub fn parse_stream_arn(arn: &str) -> Option<StreamKey> {
    StreamKey::from_arn(arn)
}

/// The output shape of a shard.
pub fn shard_output(shard: &Shard) -> ShardOutput {
    ShardOutput {
        shard_id: shard.id.clone(),
        parent_shard_id: shard.parent.map(crate::broker::stream::shard_id),
        adjacent_parent_shard_id: shard.adjacent_parent.map(crate::broker::stream::shard_id),
        hash_key_range: HashKeyRange {
            starting_hash_key: shard.range.start.to_string(),
            ending_hash_key: shard.range.end.to_string(),
        },
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: shard.starting_sequence_number(),
            ending_sequence_number: shard.ending_sequence_number(),
        },
    }
}

/// A date as Java's `Date.toString()` prints it in UTC (`Thu Jan 22 01:22:02 UTC 2015`),
/// which is how AWS words times in ExpiredIteratorException.
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        y
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

impl From<Error> for ApiError {
    /// AWS's wording for each domain error (sources in compat-tests/AWS_BEHAVIOUR.md).
    fn from(e: Error) -> Self {
        match e {
            Error::StreamNotFound { name, account } => {
                api_error!(
                    ResourceNotFoundException,
                    "Stream {name} under account {account} not found."
                )
            }
            Error::StreamExists { name, account } => {
                api_error!(
                    ResourceInUseException,
                    "Stream {name} under account {account} already exists."
                )
            }
            Error::StreamNotActive {
                name,
                account,
                status,
            } => api_error!(
                ResourceInUseException,
                "Stream {name} under account {account} not ACTIVE, instead in state {}",
                status_name(status)
            ),
            Error::ShardNotFound {
                shard_id,
                name,
                account,
            } => api_error!(
                ResourceNotFoundException,
                "Shard {shard_id} in stream {name} under account {account} does not exist"
            ),
            Error::NoSuchShard {
                shard_id,
                name,
                account,
            } => api_error!(
                ResourceNotFoundException,
                "Could not find shard {shard_id} in stream {name} under account {account}."
            ),
            Error::ShardClosed {
                shard_id,
                name,
                account,
            } => api_error!(
                InvalidArgumentException,
                "Shard {shard_id} in stream {name} under account {account} has already been merged or split, and thus is not eligible for merging or splitting."
            ),
            Error::InvalidReshard(message) => {
                ApiError::new(crate::api::ErrorCode::InvalidArgumentException, message)
            }
            Error::InvalidIterator => {
                api_error!(InvalidArgumentException, "Invalid ShardIterator.")
            }
            Error::IteratorExpired { issued_ms, now_ms } => api_error!(
                ExpiredIteratorException,
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of 300000 milliseconds.",
                java_date(issued_ms),
                java_date(now_ms)
            ),
            Error::IteratorStreamGone {
                shard_id,
                name: Some(name),
                account: Some(account),
            } => api_error!(
                ResourceNotFoundException,
                "Shard {shard_id} in stream {name} under account {account} does not exist"
            ),
            Error::IteratorStreamGone { .. } => {
                api_error!(InvalidArgumentException, "Invalid ShardIterator.")
            }
            Error::Throttled {
                shard_id,
                name,
                account,
            } => api_error!(
                ProvisionedThroughputExceededException,
                "Rate exceeded for shard {shard_id} in stream {name} under account {account}."
            ),
            // AWS's wording for a throttled control-plane call.
            Error::RateExceeded(what) => {
                tracing::debug!(%what, "control-plane rate exceeded");
                api_error!(LimitExceededException, "Rate exceeded for {what}.")
            }
            Error::Injected(RequestFault::InternalFailure) => {
                api_error!(
                    InternalFailure,
                    "We encountered an internal error. Please try again."
                )
            }
            Error::Injected(RequestFault::ServiceUnavailable) => {
                api_error!(
                    ServiceUnavailable,
                    "Service Unavailable. Please try again later."
                )
            }
            Error::Injected(RequestFault::ReadThrottled) => api_error!(
                ProvisionedThroughputExceededException,
                "Rate exceeded for shard (injected fault)."
            ),
            Error::InjectedRecord(RecordFault::Throttled) => api_error!(
                ProvisionedThroughputExceededException,
                "Rate exceeded for shard (injected fault)."
            ),
            Error::InjectedRecord(RecordFault::InternalFailure) => {
                api_error!(
                    InternalFailure,
                    "Internal service failure (injected fault)."
                )
            }
            // The consumer texts below follow AWS's wording for streams; AWS's exact text is
            // NOT PINNED by any source found, except where noted.
            Error::ConsumerNotFound {
                consumer,
                name,
                account,
            } => api_error!(
                ResourceNotFoundException,
                "Consumer {consumer} under stream {name} under account {account} not found."
            ),
            Error::ConsumerArnNotFound { arn, account } => api_error!(
                ResourceNotFoundException,
                "Consumer {arn} under account {account} not found."
            ),
            Error::InvalidConsumerArn(arn) => {
                api_error!(InvalidArgumentException, "Invalid ConsumerARN: {arn}.")
            }
            Error::ConsumerExists {
                consumer,
                name,
                account,
            } => api_error!(
                ResourceInUseException,
                "Consumer {consumer} under stream {name} under account {account} already exists."
            ),
            // AWS's text, as quoted in aws-cloudformation/cloudformation-coverage-roadmap#2442
            // (the creation timestamp was redacted there; the ARN's epoch second is used).
            Error::ConsumerNotActive {
                consumer,
                created_ms,
                name,
                account,
            } => api_error!(
                ResourceInUseException,
                "Consumer {consumer} with creation timestamp {} under stream {name} and account {account} is not in ACTIVE status.",
                created_ms.div_euclid(1000)
            ),
            Error::TooManyConsumers {
                name,
                account,
                limit,
            } => api_error!(
                LimitExceededException,
                "Stream {name} under account {account} already has {limit} registered consumers, the most a stream can have."
            ),
            Error::TooManyCreatingConsumers {
                name,
                account,
                limit,
            } => api_error!(
                LimitExceededException,
                "Stream {name} under account {account} already has {limit} consumers in CREATING status; only {limit} consumers can be created at the same time."
            ),
            // AWS's text, as quoted in hashicorp/terraform-provider-aws#8420 and
            // rebuy-de/aws-nuke#497 (with a typographic apostrophe, which the CloudFormation
            // console shows as `can?t` in aws/aws-cli#3580).
            Error::StreamHasConsumers { name, account } => api_error!(
                ResourceInUseException,
                "DeleteStream can\u{2019}t delete {account}:{name} because there are consumers associated with this data stream. To delete {name} anyway, set the EnforceConsumerDeletion parameter to true to force the deletion of all the consumers that are associated with it."
            ),
            // AWS documents the rule (DeleteStream, UpdateStreamMode) but its text is NOT
            // PINNED by any source found.
            Error::StreamHasQueues {
                name,
                account,
                action,
            } => api_error!(
                ResourceInUseException,
                "Cannot {action} stream {name} under account {account} because it has queues. Delete its queues with DeleteQueue first."
            ),
            Error::StreamHasChannels {
                name,
                account,
                action,
            } => api_error!(
                ResourceInUseException,
                "Cannot {action} stream {name} under account {account} because it has channels. Delete its channels with DeleteChannel first."
            ),
            Error::LimitExceeded(message) => {
                ApiError::new(crate::api::ErrorCode::LimitExceededException, message)
            }
            Error::Storage(e) => {
                tracing::error!(error = %e, "storage failure");
                api_error!(InternalFailure, "Internal service failure: {e}")
            }
            Error::Catalog(e) => {
                tracing::error!(error = %e, "catalog failure");
                api_error!(InternalFailure, "Internal service failure: {e}")
            }
        }
    }
}

/// The wire name of a status.
pub fn status_name(status: StreamStatus) -> &'static str {
    status.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_date_matches_aws_example() {
        // 2015-01-22T01:22:02Z, the date in AWS's pinned ExpiredIteratorException.
        assert_eq!(java_date(1_421_889_722_000), "Thu Jan 22 01:22:02 UTC 2015");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn stream_arn_parses_and_rejects_other_resources() {
        let k = parse_stream_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/orders").unwrap();
        assert_eq!(
            (k.region.as_str(), k.account.as_str(), k.name.as_str()),
            ("eu-west-1", "123456789012", "orders")
        );
        assert!(
            parse_stream_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/c:1")
                .is_none()
        );
        assert!(parse_stream_arn("arn:aws:sqs:eu-west-1:123456789012:stream/orders").is_none());
        assert!(parse_stream_arn("arn:aws:kinesis:eu-west-1:1234:stream/orders").is_none());
    }
}
