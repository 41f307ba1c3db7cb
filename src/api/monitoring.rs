//! EnableEnhancedMonitoring and DisableEnhancedMonitoring: which shard-level metrics a
//! stream publishes. The setting is stored and reported exactly as AWS reports it, and
//! decides which per-shard series `GET /metrics` shows (`metrics::export`): none until a
//! stream enables one, as CloudWatch has none. Nothing is sent to CloudWatch.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    DisableEnhancedMonitoringInput, EnableEnhancedMonitoringInput, EnhancedMonitoringOutput,
    MetricsName,
};
use crate::api::{ApiError, RequestContext};
use crate::broker::Broker;
use crate::broker::stream::StreamKey;

/// Every shard-level metric, in the order AWS lists them; what `ALL` stands for.
const ALL_METRICS: [MetricsName; 7] = [
    MetricsName::IncomingBytes,
    MetricsName::IncomingRecords,
    MetricsName::OutgoingBytes,
    MetricsName::OutgoingRecords,
    MetricsName::WriteProvisionedThroughputExceeded,
    MetricsName::ReadProvisionedThroughputExceeded,
    MetricsName::IteratorAgeMilliseconds,
];

/// The metrics a request names, with `ALL` expanded, in AWS's order.
fn expand(requested: &[MetricsName]) -> Vec<String> {
    let all = requested.contains(&MetricsName::All);
    ALL_METRICS
        .iter()
        .filter(|m| all || requested.contains(m))
        .map(|m| m.as_str().to_string())
        .collect()
}

/// The stored names back as the wire enum.
fn wire(names: &[String]) -> Vec<MetricsName> {
    ALL_METRICS
        .iter()
        .filter(|m| names.iter().any(|n| n == m.as_str()))
        .cloned()
        .collect()
}

async fn change(
    broker: &Arc<Broker>,
    key: StreamKey,
    requested: Vec<MetricsName>,
    enable: bool,
) -> Result<EnhancedMonitoringOutput, ApiError> {
    let stream = broker.stream(&key)?;
    super::common::require_active(&stream)?;
    let names = expand(&requested);
    let (current, desired) = broker
        .update_stream(&stream, move |st| {
            let current = st.extras.shard_level_metrics.clone();
            let desired: Vec<String> = ALL_METRICS
                .iter()
                .map(|m| m.as_str().to_string())
                .filter(|m| {
                    let on = current.contains(m);
                    let named = names.contains(m);
                    if enable { on || named } else { on && !named }
                })
                .collect();
            st.extras.shard_level_metrics = desired.clone();
            Ok((current, desired))
        })
        .await?;
    Ok(EnhancedMonitoringOutput {
        stream_name: Some(key.name.clone()),
        current_shard_level_metrics: Some(wire(&current)),
        desired_shard_level_metrics: Some(wire(&desired)),
        stream_arn: Some(key.arn()),
    })
}

/// EnableEnhancedMonitoring.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn enable(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: EnableEnhancedMonitoringInput,
) -> Result<EnhancedMonitoringOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    change(
        broker,
        key,
        input.shard_level_metrics.unwrap_or_default(),
        true,
    )
    .await
}

/// DisableEnhancedMonitoring.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn disable(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DisableEnhancedMonitoringInput,
) -> Result<EnhancedMonitoringOutput, ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    change(
        broker,
        key,
        input.shard_level_metrics.unwrap_or_default(),
        false,
    )
    .await
}

/// What DescribeStream(Summary) reports for a stream's stored metrics.
pub fn reported(names: &[String]) -> Vec<MetricsName> {
    wire(names)
}
