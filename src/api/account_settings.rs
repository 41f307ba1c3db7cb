//! DescribeAccountSettings and UpdateAccountSettings: the minimum throughput billing
//! commitment (which unlocks warm throughput for on-demand streams). Nothing is billed
//! here; the commitment's state machine is kept as AWS describes it.

use std::sync::Arc;

use crate::api::generated::{
    DescribeAccountSettingsInput, DescribeAccountSettingsOutput,
    MinimumThroughputBillingCommitmentInputStatus as InputStatus,
    MinimumThroughputBillingCommitmentOutput,
    MinimumThroughputBillingCommitmentOutputStatus as OutputStatus, UpdateAccountSettingsInput,
    UpdateAccountSettingsOutput,
};
use crate::api::{ApiError, RequestContext, Timestamp};
use crate::broker::Broker;
use crate::broker::catalog::AccountSettings;

/// Shortest commitment once enabled. AWS speaks of "minimum commitment windows" without
/// a number in the model; 24 hours keeps the state machine observable.
pub const MIN_COMMITMENT_MS: i64 = 24 * 3_600_000;

fn describe(s: AccountSettings, now: i64) -> MinimumThroughputBillingCommitmentOutput {
    let status = match (s.commitment_started_ms, s.commitment_ended_ms) {
        (None, _) => OutputStatus::Disabled,
        (Some(_), None) => OutputStatus::Enabled,
        (Some(_), Some(end)) if end > now => OutputStatus::EnabledUntilEarliestAllowedEnd,
        (Some(_), Some(_)) => OutputStatus::Disabled,
    };
    MinimumThroughputBillingCommitmentOutput {
        status,
        started_at: s.commitment_started_ms.map(Timestamp::from_millis),
        ended_at: s.commitment_ended_ms.map(Timestamp::from_millis),
        earliest_allowed_end_at: s
            .commitment_started_ms
            .map(|t| Timestamp::from_millis(t + MIN_COMMITMENT_MS)),
    }
}

/// DescribeAccountSettings.
#[tracing::instrument(skip_all)]
pub async fn describe_account_settings(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    _input: DescribeAccountSettingsInput,
) -> Result<DescribeAccountSettingsOutput, ApiError> {
    let settings = broker.account_settings(&ctx.account_id, &ctx.region);
    Ok(DescribeAccountSettingsOutput {
        minimum_throughput_billing_commitment: Some(describe(settings, broker.clock().now_ms())),
    })
}

/// UpdateAccountSettings: ENABLED starts a commitment; DISABLED ends it at the earliest
/// allowed time (or now, if that has passed).
#[tracing::instrument(skip_all)]
pub async fn update_account_settings(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: UpdateAccountSettingsInput,
) -> Result<UpdateAccountSettingsOutput, ApiError> {
    let now = broker.clock().now_ms();
    let enable = matches!(
        input
            .minimum_throughput_billing_commitment
            .and_then(|c| c.status),
        Some(InputStatus::Enabled)
    );
    let settings = broker
        .update_account_settings(&ctx.account_id, &ctx.region, move |s| {
            let active = match (s.commitment_started_ms, s.commitment_ended_ms) {
                (Some(_), None) => true,
                (Some(_), Some(end)) => end > now,
                (None, _) => false,
            };
            match (enable, active) {
                (true, true) => s.commitment_ended_ms = None,
                (true, false) => {
                    s.commitment_started_ms = Some(now);
                    s.commitment_ended_ms = None;
                }
                (false, true) => {
                    let earliest = s.commitment_started_ms.unwrap_or(now) + MIN_COMMITMENT_MS;
                    s.commitment_ended_ms = Some(earliest.max(now));
                }
                (false, false) => {}
            }
        })
        .await?;
    Ok(UpdateAccountSettingsOutput {
        minimum_throughput_billing_commitment: Some(describe(settings, now)),
    })
}
