//! What the twelve queue operations share: AWS's wording for queue errors, the wire form of
//! a queue's description and attributes, receiving and the per-entry batch results.
//!
//! AWS documents the rules these operations follow (the model's documentation, quoted in
//! each operation's file) but no source found pins the text of their error messages: every
//! message below is NOT PINNED and follows the wording of the stream errors.

use std::sync::Arc;
use std::time::Duration;

use crate::api::generated::{
    DeadLetterConfiguration, QueueAttributes, QueueDescription, QueueRecord, QueueStartingPosition,
    QueueStartingPositionType, QueueStatus as WireStatus, QueueStreamConfiguration, TargetType,
};
use crate::api::{ApiError, Blob, ErrorCode, RequestContext, Timestamp};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::queue::receipt::Path;
use crate::broker::queue::receive::BatchAction;
use crate::broker::queue::{
    DEFAULT_MAX_RECEIVE_COUNT, DEFAULT_WAIT_TIME_S, DeadLetter, EntryFailure, MAX_RECEIVE_LIMIT,
    Queue, QueueAttrs, QueueError, QueueMeta, QueueStatus, StartingPosition,
};

/// Whether an error answers a data-plane call (receive, acknowledge, visibility, restore),
/// whose model lists no ResourceInUseException.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// CreateQueue, UpdateQueue, DeleteQueue, DescribeQueue, ListQueues.
    Control,
    /// The seven record operations.
    Data,
}

/// AWS's error for a queue failure.
pub fn queue_error(e: QueueError, plane: Plane) -> ApiError {
    match e {
        QueueError::Broker(e) => e.into(),
        QueueError::NotFound { arn, account } => api_error!(
            ResourceNotFoundException,
            "Queue {arn} under account {account} not found."
        ),
        QueueError::Exists { name, account } => api_error!(
            ResourceInUseException,
            "Queue {name} under account {account} already exists."
        ),
        QueueError::NotOnDemand { name, account } => api_error!(
            InvalidArgumentException,
            "Queues are supported only on data streams in on-demand capacity mode; stream {name} under account {account} is in PROVISIONED mode."
        ),
        QueueError::TooManyConsumers {
            name,
            account,
            limit,
        } => api_error!(
            LimitExceededException,
            "Stream {name} under account {account} already has {limit} registered consumers, the most a stream can have."
        ),
        QueueError::NotActive { arn, status } => {
            let message = format!(
                "Queue {arn} is not ACTIVE, instead in state {}.",
                status_name(status)
            );
            let code = match (plane, status) {
                // A queue being deleted delivers nothing and its handles stop working.
                (Plane::Data, QueueStatus::Deleting) => ErrorCode::ResourceNotFoundException,
                (Plane::Data, _) => ErrorCode::InvalidArgumentException,
                (Plane::Control, _) => ErrorCode::ResourceInUseException,
            };
            ApiError::new(code, message)
        }
    }
}

fn status_name(status: QueueStatus) -> &'static str {
    match status {
        QueueStatus::Creating => "CREATING",
        QueueStatus::Active => "ACTIVE",
        QueueStatus::Updating => "UPDATING",
        QueueStatus::Deleting => "DELETING",
    }
}

/// The wire status.
pub fn wire_status(status: QueueStatus) -> WireStatus {
    match status {
        QueueStatus::Creating => WireStatus::Creating,
        QueueStatus::Active => WireStatus::Active,
        QueueStatus::Updating => WireStatus::Updating,
        QueueStatus::Deleting => WireStatus::Deleting,
    }
}

/// The wire form of resolved attributes.
pub fn wire_attrs(attrs: QueueAttrs) -> QueueAttributes {
    let dead_letter = match attrs.dead_letter {
        DeadLetter::BuiltIn { max_receive_count } => DeadLetterConfiguration {
            target_type: Some(TargetType::BuiltIn),
            max_receive_count: Some(max_receive_count as i32),
        },
        DeadLetter::Disabled => DeadLetterConfiguration {
            target_type: Some(TargetType::None),
            max_receive_count: None,
        },
    };
    QueueAttributes {
        visibility_timeout_seconds: Some(attrs.visibility_timeout_s as i32),
        dead_letter_configuration: Some(dead_letter),
    }
}

/// Applies the attributes a request gives to `base` (those absent stay as they are).
/// BUILT_IN needs MaxReceiveCount, as the model documents.
pub fn apply_attrs(
    base: QueueAttrs,
    given: Option<&QueueAttributes>,
) -> Result<QueueAttrs, ApiError> {
    let mut attrs = base;
    let Some(given) = given else {
        return Ok(attrs);
    };
    if let Some(v) = given.visibility_timeout_seconds {
        // The model bounds it to 0..=43200; validation already refused anything else.
        attrs.visibility_timeout_s = v.max(0) as u32;
    }
    if let Some(dl) = &given.dead_letter_configuration {
        attrs.dead_letter = match (&dl.target_type, dl.max_receive_count) {
            (Some(TargetType::BuiltIn), Some(n)) => DeadLetter::BuiltIn {
                max_receive_count: n.max(1) as u32,
            },
            (Some(TargetType::BuiltIn), None) => {
                return Err(api_error!(
                    ValidationException,
                    "MaxReceiveCount is required when DeadLetterConfiguration.TargetType is BUILT_IN."
                ));
            }
            (Some(TargetType::None), _) => DeadLetter::Disabled,
            // Required and an enum: validation refused anything else already.
            _ => DeadLetter::BuiltIn {
                max_receive_count: DEFAULT_MAX_RECEIVE_COUNT,
            },
        };
    }
    Ok(attrs)
}

/// The wire description of a queue.
pub fn description(meta: &QueueMeta) -> QueueDescription {
    let (kind, configured) = match meta.start {
        StartingPosition::TrimHorizon => (QueueStartingPositionType::TrimHorizon, None),
        StartingPosition::Latest => (QueueStartingPositionType::Latest, None),
        StartingPosition::AtTimestamp(t) => (QueueStartingPositionType::AtTimestamp, Some(t)),
    };
    // While CREATING the configured value is echoed (absent for LATEST and TRIM_HORIZON);
    // afterwards the effective starting time, as the model documents.
    let timestamp = match meta.status {
        QueueStatus::Creating => configured,
        _ => meta.effective_start_ms.or(configured),
    };
    QueueDescription {
        queue_name: meta.name.clone(),
        queue_arn: meta.arn(),
        queue_status: wire_status(meta.status),
        queue_creation_timestamp: Timestamp::from_millis(meta.created_ms),
        stream_configuration_list: vec![QueueStreamConfiguration {
            stream_arn: Some(meta.stream_arn()),
            starting_position: Some(QueueStartingPosition {
                r#type: Some(kind),
                timestamp: timestamp.map(Timestamp::from_millis),
            }),
        }],
        queue_attributes: Some(wire_attrs(meta.shown_attrs())),
    }
}

/// The queue a request names by `QueueARN` (required by every queue operation's model).
pub fn named_queue(
    broker: &Broker,
    ctx: &RequestContext,
    arn: Option<&str>,
    plane: Plane,
) -> Result<Arc<Queue>, ApiError> {
    broker
        .queue(&ctx.account_id, arn.unwrap_or_default())
        .map_err(|e| queue_error(e, plane))
}

/// ReceiveQueueRecords and ReceiveDeadLetterQueueRecords.
pub async fn receive(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    arn: Option<&str>,
    path: Path,
    limit: Option<i32>,
    wait_time_s: Option<i32>,
    visibility_s: Option<i32>,
) -> Result<Vec<QueueRecord>, ApiError> {
    let queue = named_queue(broker, ctx, arn, Plane::Data)?;
    // The model bounds Limit to 1..=10 and WaitTimeSeconds to 1..=20; validation ran.
    let limit = limit.map_or(MAX_RECEIVE_LIMIT, |l| {
        (l.max(1) as usize).min(MAX_RECEIVE_LIMIT)
    });
    let wait = Duration::from_secs(
        wait_time_s
            .map_or(DEFAULT_WAIT_TIME_S, |w| w.max(0) as u32)
            .into(),
    );
    let records = broker
        .receive_queue_records(
            &queue,
            path,
            limit,
            wait,
            visibility_s.map(|v| v.max(0) as u32),
        )
        .await
        .map_err(|e| queue_error(e, Plane::Data))?;
    Ok(records
        .into_iter()
        .map(|r| QueueRecord {
            receipt_handle: r.receipt_handle,
            record_id: r.record_id,
            partition_key: Some(r.partition_key),
            data: Blob::from(r.data),
            approximate_arrival_timestamp: Timestamp::from_millis(r.arrival_ms),
            first_receive_timestamp: Timestamp::from_millis(r.first_receive_ms),
            receive_count: r.receive_count.min(i32::MAX as u32) as i32,
        })
        .collect())
}

/// One failed entry of a batch operation: (handle, code, message).
pub type FailedEntry = (String, &'static str, String);

/// Runs a batch operation and splits its entries into the successful handles and the
/// failed ones with AWS-style codes.
pub async fn batch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    arn: Option<&str>,
    path: Path,
    entries: Vec<(String, BatchAction)>,
) -> Result<(Vec<String>, Vec<FailedEntry>), ApiError> {
    let queue = named_queue(broker, ctx, arn, Plane::Data)?;
    let queue_arn = queue.meta().arn();
    let results = broker
        .queue_batch(&queue, path, entries.clone())
        .await
        .map_err(|e| queue_error(e, Plane::Data))?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for ((handle, _), result) in entries.into_iter().zip(results) {
        match result {
            Ok(()) => ok.push(handle),
            Err(f) => {
                let (code, message) = entry_failure(f, &queue_arn, path);
                failed.push((handle, code, message));
            }
        }
    }
    Ok((ok, failed))
}

/// The code and message of a failed entry (codes from the model's list: NOT PINNED which
/// one AWS picks for each case).
fn entry_failure(f: EntryFailure, queue_arn: &str, path: Path) -> (&'static str, String) {
    match f {
        EntryFailure::Malformed => ("InvalidArgumentException", "Invalid ReceiptHandle.".into()),
        EntryFailure::Foreign => (
            "InvalidArgumentException",
            format!("The ReceiptHandle was not issued by queue {queue_arn}."),
        ),
        EntryFailure::WrongPath => (
            "InvalidArgumentException",
            match path {
                Path::Normal => "The ReceiptHandle belongs to a dead-letter record; use the dead-letter operations.".into(),
                Path::DeadLetter => "The ReceiptHandle does not belong to a dead-letter record.".into(),
            },
        ),
        EntryFailure::Stale => (
            "ResourceNotFoundException",
            "The ReceiptHandle is no longer valid: its record was acknowledged, received again, or is past the stream's retention period.".into(),
        ),
    }
}

/// Batch entries with one action for all (handles are required by the model: validation ran).
pub fn with_action<T>(
    entries: Option<Vec<T>>,
    action: BatchAction,
    handle: impl Fn(T) -> Option<String>,
) -> Vec<(String, BatchAction)> {
    entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| (handle(e).unwrap_or_default(), action))
        .collect()
}
