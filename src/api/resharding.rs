//! SplitShard, MergeShards, UpdateShardCount and UpdateStreamMode. The broker does the
//! change atomically (see `broker::reshard`); this file holds AWS's rules and wording.
//! Messages for split and merge come from kinesalite's actions, which mirror AWS's.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    MergeShardsInput, SplitShardInput, StreamMode as WireMode, UpdateShardCountInput,
    UpdateShardCountOutput, UpdateStreamModeInput,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::catalog::{RecordDistribution, StreamMode};
use crate::broker::reshard::{Reshard, uniform_plan};
use crate::broker::stream::{StreamKey, parse_shard_id, shard_id};
use crate::broker::{Broker, Error, hash};

/// Most shards one stream may have through UpdateShardCount, as AWS documents.
pub const MAX_SHARDS_PER_STREAM: u32 = 10_000;
/// UpdateShardCount calls per stream per rolling 24 hours, as AWS documents.
pub const MAX_SHARD_COUNT_UPDATES_PER_DAY: usize = 10;
/// Capacity mode switches per stream per rolling 24 hours, as AWS documents.
pub const MAX_MODE_SWITCHES_PER_DAY: usize = 2;
const DAY_MS: i64 = 24 * 3_600_000;

/// The index a `ShardToSplit`-style id names, or AWS's not-found error.
fn shard_index(requested: &str, key: &StreamKey) -> Result<u32, ApiError> {
    parse_shard_id(requested).ok_or_else(|| {
        api_error!(
            ResourceNotFoundException,
            "Could not find shard {requested} in stream {} under account {}.",
            key.name,
            key.account
        )
    })
}

/// Split, merge and UpdateShardCount are for PROVISIONED streams: AWS scales ON_DEMAND
/// streams itself.
fn provisioned_only(
    stream: &crate::broker::stream::Stream,
    operation: &str,
) -> Result<(), ApiError> {
    if stream.state().mode == StreamMode::OnDemand {
        return Err(api_error!(
            InvalidArgumentException,
            "{operation} is not supported for stream {} under account {} because it is in ON_DEMAND capacity mode.",
            stream.key.name,
            stream.key.account
        ));
    }
    Ok(())
}

fn shard_missing(index: u32, key: &StreamKey) -> Error {
    Error::NoSuchShard {
        shard_id: shard_id(index),
        name: key.name.clone(),
        account: key.account.clone(),
    }
}

/// SplitShard.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn split_shard(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: SplitShardInput,
) -> Result<(), ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let index = shard_index(input.shard_to_split.as_deref().unwrap_or_default(), &key)?;
    let requested_key = input.new_starting_hash_key.unwrap_or_default();
    // A key past 2^128 - 1 still matches the model's pattern; it is simply outside the
    // shard, and AWS says so in the usual words.
    let at = hash::parse_hash_key(&requested_key);
    let stream = broker.stream(&key)?;
    provisioned_only(&stream, "SplitShard")?;
    broker.check_shard_limit(&key, 1)?;
    let plan_key = key.clone();
    broker
        .reshard(&stream, move |st| {
            let shard = st.shards.get(index as usize).ok_or_else(|| shard_missing(index, &plan_key))?;
            let (start, end) = (shard.range.start, shard.range.end);
            // The bounds and wording kinesalite pins: "not both greater than one plus the
            // shard's StartingHashKey and less than the shard's EndingHashKey".
            let at = at.filter(|&at| at > start.saturating_add(1) && at < end);
            let Some(at) = at else {
                return Err(Error::InvalidReshard(format!(
                    "NewStartingHashKey {requested_key} used in SplitShard() on shard {} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {start} and less than the shard's EndingHashKey {end}.",
                    shard.id, plan_key.name, plan_key.account
                )));
            };
            Ok(vec![Reshard::Split { index, at }])
        })
        .await?;
    Ok(())
}

/// MergeShards.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn merge_shards(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: MergeShardsInput,
) -> Result<(), ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let a = shard_index(input.shard_to_merge.as_deref().unwrap_or_default(), &key)?;
    let b = shard_index(
        input.adjacent_shard_to_merge.as_deref().unwrap_or_default(),
        &key,
    )?;
    let stream = broker.stream(&key)?;
    provisioned_only(&stream, "MergeShards")?;
    let plan_key = key.clone();
    broker
        .reshard(&stream, move |st| {
            let sa = st.shards.get(a as usize).ok_or_else(|| shard_missing(a, &plan_key))?;
            let sb = st.shards.get(b as usize).ok_or_else(|| shard_missing(b, &plan_key))?;
            // ShardToMerge must be the lower range: AWS refuses the pair the other way
            // round (kinesalite's test "adjacency is inverted", run against AWS).
            if sa.range.end.checked_add(1) != Some(sb.range.start) {
                return Err(Error::InvalidReshard(format!(
                    "Shards {} and {} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                    sa.id, sb.id, plan_key.name, plan_key.account
                )));
            }
            Ok(vec![Reshard::Merge { left: a, right: b }])
        })
        .await?;
    Ok(())
}

/// UpdateShardCount: UNIFORM_SCALING to `TargetShardCount`, through splits and merges.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn update_shard_count(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let target = input.target_shard_count.unwrap_or_default().max(0) as u32;
    let stream = broker.stream(&key)?;
    provisioned_only(&stream, "UpdateShardCount")?;
    let current = stream.state().open.len() as u32;
    let (account_open, _) = broker.usage(&key.account, &key.region);
    let shard_limit = broker.shard_limit() as usize;
    let now = broker.clock().now_ms();
    let plan_key = key.clone();
    broker
        .reshard(&stream, move |st| {
            let open = st.open.len() as u32;
            // Checks and wording in kinesalite's order and words (actions/updateShardCount.js,
            // pinned by its tests against AWS); all LimitExceededException.
            let refuse = |why: String| Err(Error::LimitExceeded(why));
            let counts = format!("Current open shard count: {open}, Target shard count: {target}");
            if account_open.saturating_sub(open as usize) + target as usize > shard_limit {
                return refuse(format!(
                    "Target shard count or number of open shards cannot be greater than {shard_limit}. {counts}"
                ));
            }
            if target > open * 2 {
                return refuse(format!(
                    "UpdateShardCount cannot scale up over double your current open shard count. {counts}"
                ));
            }
            if (target as f64) < open as f64 / 2.0 {
                return refuse(format!(
                    "UpdateShardCount cannot scale down below half your current open shard count. {counts}"
                ));
            }
            if target > MAX_SHARDS_PER_STREAM {
                return refuse(format!(
                    "UpdateShardCount cannot scale a stream beyond {MAX_SHARDS_PER_STREAM} shards. {counts}"
                ));
            }
            let history = &mut st.extras.shard_count_updates;
            history.retain(|&t| t > now - DAY_MS);
            if history.len() >= MAX_SHARD_COUNT_UPDATES_PER_DAY {
                return Err(Error::LimitExceeded(format!(
                    "UpdateShardCount can be called at most {MAX_SHARD_COUNT_UPDATES_PER_DAY} times per rolling 24-hour period for stream {} under account {}.",
                    plan_key.name, plan_key.account
                )));
            }
            history.push(now);
            let layout: Vec<(u32, hash::HashRange)> = st.open.iter().map(|s| (s.index, s.range)).collect();
            Ok(uniform_plan(&layout, target, st.shards.len() as u32))
        })
        .await?;
    Ok(UpdateShardCountOutput {
        stream_name: Some(key.name.clone()),
        current_shard_count: Some(current as i32),
        target_shard_count: Some(target as i32),
        stream_arn: Some(key.arn()),
    })
}

/// UpdateStreamMode: PROVISIONED ↔ ON_DEMAND.
#[tracing::instrument(skip_all)]
pub async fn update_stream_mode(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateStreamModeInput,
) -> Result<(), ApiError> {
    let key = stream_key(ctx, None, input.stream_arn.as_deref())?;
    let mode = match input.stream_mode_details.and_then(|d| d.stream_mode) {
        Some(WireMode::OnDemand) => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    let stream = broker.stream(&key)?;
    if mode == StreamMode::OnDemand && stream.state().mode != StreamMode::OnDemand {
        broker.check_on_demand_limit(&key)?;
    }
    let now = broker.clock().now_ms();
    let queues = broker.clone();
    let stream_uid = stream.uid;
    broker
        .update_stream_in_background(&stream, move |st| {
            // Queues live on on-demand streams only (issue 18). Counted under the stream's
            // write lock: a queue created concurrently is either counted here or sees the
            // mode change when its creator checks the stream again.
            if mode == StreamMode::Provisioned && queues.queues().count_on_stream(stream_uid) > 0 {
                return Err(Error::StreamHasQueues {
                    name: key.name.clone(),
                    account: key.account.clone(),
                    action: "switch to PROVISIONED",
                });
            }
            if mode == StreamMode::Provisioned && queues.channels().count_on_stream(stream_uid) > 0
            {
                return Err(Error::StreamHasChannels {
                    name: key.name.clone(),
                    account: key.account.clone(),
                    action: "switch to PROVISIONED",
                });
            }
            if st.mode == mode {
                return Err(Error::InvalidReshard(format!(
                    "Stream {} under account {} is already in {} mode.",
                    key.name,
                    key.account,
                    mode.as_str()
                )));
            }
            // Provisioned streams have no distribution strategy, and silently going back to
            // partition keys would fail every producer that relies on AUTO to omit them; so
            // the switch is refused until the strategy is set back to USER_PARTITION_KEY.
            if mode == StreamMode::Provisioned
                && st.extras.record_distribution == RecordDistribution::Auto
            {
                return Err(Error::InvalidReshard(format!(
                    "Stream {} under account {} uses the AUTO record distribution strategy; set it to USER_PARTITION_KEY before switching to PROVISIONED mode.",
                    key.name, key.account
                )));
            }
            let history = &mut st.extras.mode_switches;
            history.retain(|&t| t > now - DAY_MS);
            if history.len() >= MAX_MODE_SWITCHES_PER_DAY {
                return Err(Error::LimitExceeded(format!(
                    "The capacity mode of stream {} under account {} can be switched at most {MAX_MODE_SWITCHES_PER_DAY} times per rolling 24-hour period.",
                    key.name, key.account
                )));
            }
            history.push(now);
            st.mode = mode;
            Ok(())
        })
        .await?;
    Ok(())
}
