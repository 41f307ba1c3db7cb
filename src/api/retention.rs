//! IncreaseStreamRetentionPeriod and DecreaseStreamRetentionPeriod: how long records stay
//! readable, from 24 hours to 365 days. Expired records are never returned (reads start at
//! the trim horizon) and their segments are deleted by the broker's sweeper.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{
    DecreaseStreamRetentionPeriodInput, IncreaseStreamRetentionPeriodInput,
};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::stream::StreamKey;

/// Shortest retention: 24 hours.
pub const MIN_RETENTION_HOURS: i32 = 24;
/// Longest retention: 8760 hours (365 days), AWS's current maximum.
pub const MAX_RETENTION_HOURS: i32 = 8760;

/// Which way a retention change may go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Increase,
    Decrease,
}

/// The checks both operations share; wording from kinesalite's actions, which mirror
/// AWS's (with AWS's current maximum of 8760 hours).
async fn change(
    broker: &Arc<Broker>,
    key: StreamKey,
    hours: i32,
    direction: Direction,
) -> Result<(), ApiError> {
    if hours < MIN_RETENTION_HOURS {
        return Err(api_error!(
            InvalidArgumentException,
            "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too short."
        ));
    }
    if hours > MAX_RETENTION_HOURS {
        return Err(api_error!(
            InvalidArgumentException,
            "Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too long."
        ));
    }
    let stream = broker.stream(&key)?;
    super::common::require_active(&stream)?;
    let name = key.name.clone();
    let outcome = broker
        .update_stream(&stream, move |st| {
            let current = st.retention_hours as i32;
            let wrong_way = match direction {
                Direction::Increase => hours < current,
                Direction::Decrease => hours > current,
            };
            if wrong_way {
                return Ok(Err(current));
            }
            st.retention_hours = hours as u32;
            Ok(Ok(()))
        })
        .await?;
    match (outcome, direction) {
        (Ok(()), _) => Ok(()),
        (Err(current), Direction::Increase) => Err(api_error!(
            InvalidArgumentException,
            "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
        )),
        (Err(current), Direction::Decrease) => Err(api_error!(
            InvalidArgumentException,
            "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
        )),
    }
}

/// IncreaseStreamRetentionPeriod.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn increase(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: IncreaseStreamRetentionPeriodInput,
) -> Result<(), ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let hours = input.retention_period_hours.unwrap_or_default();
    change(broker, key, hours, Direction::Increase).await
}

/// DecreaseStreamRetentionPeriod.
#[tracing::instrument(skip_all, fields(stream = input.stream_name.as_deref()))]
pub async fn decrease(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: DecreaseStreamRetentionPeriodInput,
) -> Result<(), ApiError> {
    let key = stream_key(
        ctx,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let hours = input.retention_period_hours.unwrap_or_default();
    change(broker, key, hours, Direction::Decrease).await
}
