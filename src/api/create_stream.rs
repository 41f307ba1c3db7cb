//! CreateStream: a new stream in CREATING, ACTIVE after the configured delay.

use std::sync::Arc;

use crate::api::generated::{
    CreateStreamInput, RecordDistributionStrategy as WireStrategy, StreamMode as WireStreamMode,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::catalog::{RecordDistribution, StreamExtras, StreamMode};
use crate::broker::stream::StreamKey;
use crate::broker::{Broker, ON_DEMAND_INITIAL_SHARDS};

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: CreateStreamInput,
) -> Result<(), ApiError> {
    // Validation guarantees the name is present.
    let name = input.stream_name.unwrap_or_default();
    // AWS accepts a CreateStream with neither ShardCount nor StreamModeDetails
    // (etspaceman/kinesis-mock#336 quotes `aws kinesis create-stream --stream-name test`
    // succeeding); with no shard count to provision, such a stream is on-demand.
    let mode = match (
        input.stream_mode_details.and_then(|d| d.stream_mode),
        input.shard_count,
    ) {
        (Some(WireStreamMode::OnDemand), _) | (None, None) => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    let shard_count = match (mode, input.shard_count) {
        (StreamMode::Provisioned, Some(n)) => u32::try_from(n).unwrap_or(0),
        (StreamMode::Provisioned, None) => {
            return Err(api_error!(
                InvalidArgumentException,
                "ShardCount is required when StreamMode=PROVISIONED"
            ));
        }
        (StreamMode::OnDemand, None) => ON_DEMAND_INITIAL_SHARDS,
        (StreamMode::OnDemand, Some(_)) => {
            return Err(api_error!(
                InvalidArgumentException,
                "ShardCount is not expected when StreamMode=ON_DEMAND"
            ));
        }
    };
    let key = StreamKey {
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        name,
    };
    broker.check_shard_limit(&key, shard_count)?;
    if mode == StreamMode::OnDemand {
        broker.check_on_demand_limit(&key)?;
    }
    let tags = input.tags.unwrap_or_default();
    super::tags::check_create_tags(&tags, &key)?;
    // The record distribution strategy is "only supported for streams that use the
    // on-demand capacity mode" (CreateStream's documentation), as in
    // UpdateStreamRecordDistributionStrategy.
    let record_distribution = match input.record_distribution_strategy {
        None => RecordDistribution::UserPartitionKey,
        Some(_) if mode != StreamMode::OnDemand => {
            return Err(api_error!(
                InvalidArgumentException,
                "Stream {} under account {} is in PROVISIONED mode; the record distribution strategy can only be set on an ON_DEMAND stream.",
                key.name,
                key.account
            ));
        }
        Some(WireStrategy::Auto) => RecordDistribution::Auto,
        // Anything but the two values was refused by the generated validation.
        Some(_) => RecordDistribution::UserPartitionKey,
    };
    let extras = StreamExtras {
        record_distribution,
        ..StreamExtras::default()
    };
    broker
        .create_stream_with(key, shard_count, mode, tags, extras)
        .await?;
    Ok(())
}
