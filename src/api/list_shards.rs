//! ListShards: a page of a stream's shards, optionally filtered, continued by NextToken.

use std::sync::Arc;

use crate::api::common::parse_stream_arn;
use crate::api::common::{shard_output, stream_key};
use crate::api::generated::{ListShardsInput, ListShardsOutput, ShardFilterType};
use crate::api::pagination::PageToken;
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::catalog::StreamStatus;
use crate::broker::stream::{Shard, StreamKey};

/// Shards per page when `MaxResults` is absent, as on AWS.
const DEFAULT_SHARD_PAGE: usize = 1000;

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: ListShardsInput,
) -> Result<ListShardsOutput, ApiError> {
    let now = broker.clock().now_ms();
    let limit = input
        .max_results
        .map(|l| l.max(1) as usize)
        .unwrap_or(DEFAULT_SHARD_PAGE);
    let (key, after) = match input.next_token.as_deref() {
        Some(token) => {
            // AWS names the first parameter that may not come with a NextToken
            // (messages quoted from real responses in public issue threads, e.g.
            // aws/aws-cli#9635 and awslabs/amazon-kinesis-scaling-utils#82).
            let conflicting = [
                ("StreamName", input.stream_name.is_some()),
                ("StreamARN", input.stream_arn.is_some()),
                (
                    "ExclusiveStartShardId",
                    input.exclusive_start_shard_id.is_some(),
                ),
                (
                    "StreamCreationTimestamp",
                    input.stream_creation_timestamp.is_some(),
                ),
            ];
            if let Some((name, _)) = conflicting.iter().find(|(_, given)| *given) {
                return Err(api_error!(
                    InvalidArgumentException,
                    "NextToken and {name} cannot be provided together."
                ));
            }
            let page = PageToken::decode(token, "ListShards", ctx, broker.clock())?;
            let key = parse_stream_arn(&page.scope)
                .ok_or_else(|| api_error!(InvalidArgumentException, "Invalid NextToken."))?;
            (key, Some(page.after))
        }
        None => {
            if input.stream_name.is_none() && input.stream_arn.is_none() {
                return Err(api_error!(
                    InvalidArgumentException,
                    "Either NextToken or StreamName should be provided."
                ));
            }
            let key = stream_key(
                ctx,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            (key, input.exclusive_start_shard_id.clone())
        }
    };
    let stream = broker.stream(&key)?;
    if let Some(ts) = input.stream_creation_timestamp
        && ts.millis / 1000 != stream.created_ms / 1000
    {
        return Err(not_found(&key));
    }
    let st = stream.state();
    if matches!(st.status, StreamStatus::Creating | StreamStatus::Deleting) {
        return Err(api_error!(
            ResourceInUseException,
            "Stream {} under account {} not ACTIVE, instead in state {}",
            key.name,
            key.account,
            st.status.as_str()
        ));
    }
    let filter = input.shard_filter.as_ref();
    let filter_type = filter.and_then(|f| f.r#type.clone());
    let after = match (&filter_type, filter.and_then(|f| f.shard_id.clone())) {
        (Some(ShardFilterType::AfterShardId), Some(id)) => Some(id),
        (Some(ShardFilterType::AfterShardId), None) => {
            return Err(api_error!(
                InvalidArgumentException,
                "ShardId must be supplied in a ShardFilter with a Type of AFTER_SHARD_ID."
            ));
        }
        _ => after,
    };
    let at = match &filter_type {
        Some(ShardFilterType::AtTimestamp | ShardFilterType::FromTimestamp) => {
            Some(filter.and_then(|f| f.timestamp).map(|t| t.millis).ok_or_else(|| {
                api_error!(
                    InvalidArgumentException,
                    "Timestamp must be supplied in a ShardFilter with a Type of AT_TIMESTAMP or FROM_TIMESTAMP."
                )
            })?)
        }
        _ => None,
    };
    // AT_TRIM_HORIZON: the shards open at the trim horizon, i.e. the oldest shards that
    // still hold unexpired data: listed shards none of whose parents are still listed
    // (the roots a consumer such as the KCL starts from).
    let listed_ids: std::collections::HashSet<u32> =
        st.listed_shards(now).map(|s| s.index).collect();
    let is_root = |s: &Shard| {
        [s.parent, s.adjacent_parent]
            .iter()
            .flatten()
            .all(|p| !listed_ids.contains(p))
    };
    let keep = |s: &Shard| -> bool {
        match &filter_type {
            None | Some(ShardFilterType::AfterShardId) => true,
            Some(ShardFilterType::AtTrimHorizon) => is_root(s),
            // Expired closed shards are already left out by `listed_shards`.
            Some(ShardFilterType::FromTrimHorizon) => true,
            Some(ShardFilterType::AtLatest) => s.is_open(),
            Some(ShardFilterType::AtTimestamp) => {
                let t = at.unwrap_or(now);
                s.created_ms <= t && s.closed().is_none_or(|c| c.closed_ms > t)
            }
            Some(ShardFilterType::FromTimestamp) => {
                let t = at.unwrap_or(now);
                s.closed().is_none_or(|c| c.closed_ms > t)
            }
            Some(ShardFilterType::Unknown(_)) => true,
        }
    };
    let listed: Vec<&Arc<Shard>> = st
        .listed_shards(now)
        .filter(|s| after.as_deref().is_none_or(|a| s.id.as_str() > a))
        .filter(|s| keep(s))
        .collect();
    let has_more = listed.len() > limit;
    let page = &listed[..listed.len().min(limit)];
    let next_token = match (has_more, page.last()) {
        (true, Some(last)) => Some(
            PageToken {
                operation: "ListShards".into(),
                scope: key.arn(),
                after: last.id.clone(),
                issued_ms: now,
            }
            .encode(ctx, broker.clock()),
        ),
        _ => None,
    };
    Ok(ListShardsOutput {
        shards: Some(page.iter().map(|s| shard_output(s)).collect()),
        next_token,
    })
}

fn not_found(key: &StreamKey) -> ApiError {
    api_error!(
        ResourceNotFoundException,
        "Stream {} under account {} not found.",
        key.name,
        key.account
    )
}
