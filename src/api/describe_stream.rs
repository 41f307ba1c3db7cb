//! DescribeStream: the stream and a page of its shards.

use std::sync::Arc;

use crate::api::common::{shard_output, stream_key};
use crate::api::generated::{
    DescribeStreamInput, DescribeStreamOutput, EnhancedMetrics, StreamDescription,
};
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::broker::Broker;
use crate::broker::catalog::StreamStatus;

/// Shards per page when `Limit` is absent, as on AWS.
const DEFAULT_SHARD_PAGE: usize = 100;

#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let stream = broker.stream(&key)?;
    let limit = input
        .limit
        .map(|l| l.max(1) as usize)
        .unwrap_or(DEFAULT_SHARD_PAGE);
    let st = stream.state();
    // AWS lists no shards while a stream is being created or deleted.
    let listed: Vec<_> = if matches!(st.status, StreamStatus::Creating | StreamStatus::Deleting) {
        Vec::new()
    } else {
        st.listed_shards(broker.clock().now_ms())
            .filter(|s| {
                input
                    .exclusive_start_shard_id
                    .as_deref()
                    .is_none_or(|after| s.id.as_str() > after)
            })
            .collect()
    };
    let has_more = listed.len() > limit;
    let shards = listed
        .into_iter()
        .take(limit)
        .map(|s| shard_output(s))
        .collect();
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_name: key.name.clone(),
            stream_arn: stream.arn(),
            stream_status: super::wire_status(st.status),
            stream_mode_details: Some(super::wire_mode_details(st.mode)),
            shards,
            has_more_shards: has_more,
            retention_period_hours: st.retention_hours as i32,
            stream_creation_timestamp: Timestamp::from_millis(stream.created_ms),
            enhanced_monitoring: vec![EnhancedMetrics {
                shard_level_metrics: Some(super::monitoring::reported(
                    &st.extras.shard_level_metrics,
                )),
            }],
            encryption_type: Some(super::encryption::current(&st.extras.encryption_key_id)),
            key_id: st.extras.encryption_key_id.clone(),
        },
    })
}
