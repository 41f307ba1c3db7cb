//! DescribeStreamSummary: the stream without its shards.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    DescribeStreamSummaryInput, DescribeStreamSummaryOutput, EnhancedMetrics,
    RecordDistributionStrategy, StreamDescriptionSummary,
};
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::broker::Broker;
use crate::broker::catalog::{RecordDistribution, StreamMode};

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DescribeStreamSummaryInput,
) -> Result<DescribeStreamSummaryOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    let st = stream.state();
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_name: key.name.clone(),
            stream_arn: stream.arn(),
            stream_id: Some(stream.stream_id.clone()),
            stream_status: super::wire_status(st.status),
            stream_mode_details: Some(super::wire_mode_details(st.mode)),
            retention_period_hours: st.retention_hours as i32,
            stream_creation_timestamp: Timestamp::from_millis(stream.created_ms),
            enhanced_monitoring: vec![EnhancedMetrics {
                shard_level_metrics: Some(super::monitoring::reported(
                    &st.extras.shard_level_metrics,
                )),
            }],
            encryption_type: Some(super::encryption::current(&st.extras.encryption_key_id)),
            key_id: st.extras.encryption_key_id.clone(),
            open_shard_count: st.open.len() as i32,
            consumer_count: Some(st.consumers.len() as i32),
            warm_throughput: super::warm_throughput::reported(&st),
            max_record_size_in_kib: Some(st.max_record_size_kib as i32),
            channel_count: Some(broker.channels().count_on_stream(stream.uid) as i32),
            // "This field is only present for streams that use the on-demand capacity mode."
            record_distribution_strategy: (st.mode == StreamMode::OnDemand).then(|| {
                match st.extras.record_distribution {
                    RecordDistribution::Auto => RecordDistributionStrategy::Auto,
                    RecordDistribution::UserPartitionKey => {
                        RecordDistributionStrategy::UserPartitionKey
                    }
                }
            }),
            queue_count: None,
        },
    })
}
