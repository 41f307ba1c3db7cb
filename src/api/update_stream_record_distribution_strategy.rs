//! UpdateStreamRecordDistributionStrategy: how an on-demand stream places new records on
//! its shards, AUTO (evenly, keys ignored) or USER_PARTITION_KEY (by key, the default).
//!
//! AWS documents that the change "takes effect immediately without downtime", so unlike
//! the other stream settings the stream does not go through UPDATING: the next record
//! written is placed by the new strategy. Records already written stay where they are.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    RecordDistributionStrategy as WireStrategy, UpdateStreamRecordDistributionStrategyInput,
};
use crate::api::{ApiError, RequestContext};
use crate::broker::catalog::{RecordDistribution, StreamMode, StreamStatus};
use crate::broker::{Broker, Error};

#[tracing::instrument(skip_all)]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateStreamRecordDistributionStrategyInput,
) -> Result<(), ApiError> {
    // StreamARN is required by the model (checked by the generated validation); the
    // stream name is not a member of this input.
    let key = stream_key(ctx, None, input.stream_arn.as_deref())?;
    let strategy = match input.record_distribution_strategy {
        Some(WireStrategy::Auto) => RecordDistribution::Auto,
        // Anything but the two values was refused by the generated validation.
        _ => RecordDistribution::UserPartitionKey,
    };
    let stream = broker.stream(&key)?;
    broker
        .update_stream(&stream, move |st| {
            if st.status != StreamStatus::Active {
                return Err(Error::StreamNotActive {
                    name: key.name,
                    account: key.account,
                    status: st.status,
                });
            }
            // "Provisioned capacity mode streams do not support the record distribution
            // strategy setting", so either value is refused there, not only AUTO.
            if st.mode != StreamMode::OnDemand {
                return Err(Error::InvalidReshard(format!(
                    "Stream {} under account {} is in PROVISIONED mode; the record distribution strategy can only be set on an ON_DEMAND stream.",
                    key.name, key.account
                )));
            }
            st.extras.record_distribution = strategy;
            Ok(())
        })
        .await?;
    Ok(())
}
