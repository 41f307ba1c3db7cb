//! DescribeLimits: the account's shard and on-demand stream quotas in the caller's
//! region, with what is in use now.

use std::sync::Arc;

use crate::api::generated::{DescribeLimitsInput, DescribeLimitsOutput};
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    _input: DescribeLimitsInput,
) -> Result<DescribeLimitsOutput, ApiError> {
    let (open, on_demand) = broker.usage(&ctx.account_id, &ctx.region);
    Ok(DescribeLimitsOutput {
        shard_limit: broker.shard_limit() as i32,
        open_shard_count: open as i32,
        on_demand_stream_count: on_demand as i32,
        on_demand_stream_count_limit: broker.on_demand_stream_limit() as i32,
        channel_count: Some(
            broker
                .channels()
                .count_in_account(&ctx.account_id, &ctx.region) as i32,
        ),
        channel_count_limit: Some(broker.channels().limit() as i32),
    })
}
