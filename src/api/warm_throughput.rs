//! UpdateStreamWarmThroughput: an on-demand stream made ready, ahead of a spike, to take
//! a given write throughput — here by scaling it to one shard per MiB/s (each shard takes
//! 1 MiB/s of writes), through the same splits as UpdateShardCount.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    UpdateStreamWarmThroughputInput, UpdateStreamWarmThroughputOutput, WarmThroughputObject,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::catalog::StreamMode;
use crate::broker::reshard::uniform_plan;
use crate::broker::stream::StreamState;

/// The most warm throughput a stream may ask for: 10 GiB/s, as AWS documents.
pub const MAX_WARM_THROUGHPUT_MIBPS: i32 = 10 * 1024;

/// What DescribeStreamSummary reports for an on-demand stream.
pub fn reported(st: &StreamState) -> Option<WarmThroughputObject> {
    (st.mode == StreamMode::OnDemand).then(|| WarmThroughputObject {
        target_mibps: st.extras.warm_throughput_mibps.map(|t| t as i32),
        current_mibps: Some(st.open.len() as i32),
    })
}

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateStreamWarmThroughputInput,
) -> Result<UpdateStreamWarmThroughputOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let target = input.warm_throughput_mibps.unwrap_or_default();
    if target > MAX_WARM_THROUGHPUT_MIBPS {
        return Err(api_error!(
            InvalidArgumentException,
            "Warm throughput of {target} MiBps exceeds the maximum of {MAX_WARM_THROUGHPUT_MIBPS} MiBps."
        ));
    }
    let stream = broker.stream(&key)?;
    if stream.state().mode != StreamMode::OnDemand {
        return Err(api_error!(
            InvalidArgumentException,
            "Warm throughput can only be configured for streams in ON_DEMAND mode. Stream {} under account {} is in PROVISIONED mode.",
            key.name,
            key.account
        ));
    }
    let committed = broker.account_settings(&ctx.account_id, &ctx.region);
    let now = broker.clock().now_ms();
    let active = committed.commitment_started_ms.is_some()
        && committed.commitment_ended_ms.is_none_or(|end| end > now);
    if !active {
        return Err(api_error!(
            InvalidArgumentException,
            "Warm throughput requires MinimumThroughputBillingCommitment to be enabled for account {} (UpdateAccountSettings).",
            ctx.account_id
        ));
    }
    let target = target.max(0) as u32;
    let open = stream.state().open.len() as u32;
    if target > open {
        broker.check_shard_limit(&key, target - open)?;
    }
    broker
        .reshard(&stream, move |st| {
            st.extras.warm_throughput_mibps = Some(target);
            let open = st.open.len() as u32;
            if target <= open {
                // Releasing capacity: on-demand streams keep their shards; the target is
                // recorded and reported.
                return Ok(Vec::new());
            }
            let layout: Vec<_> = st.open.iter().map(|s| (s.index, s.range)).collect();
            Ok(uniform_plan(&layout, target, st.shards.len() as u32))
        })
        .await?;
    let st = stream.state();
    Ok(UpdateStreamWarmThroughputOutput {
        stream_arn: Some(key.arn()),
        stream_name: Some(key.name.clone()),
        warm_throughput: reported(&st),
    })
}
