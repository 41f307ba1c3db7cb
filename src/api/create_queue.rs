//! CreateQueue: a queue on an ON_DEMAND stream, CREATING until the stream creation delay
//! has passed. The model documents: exactly one stream configuration; `Timestamp` only and
//! always with AT_TIMESTAMP ("specifying it for any other type returns a
//! ValidationException"); LATEST by default; 30 s visibility and MaxReceiveCount 6 by
//! default; up to 50 tags; the queue counts against the stream's consumer limit.

use std::sync::Arc;

use crate::api::common::stream_key;
use crate::api::generated::{CreateQueueInput, CreateQueueOutput, QueueStartingPositionType};
use crate::api::queues::{Plane, apply_attrs, description, queue_error};
use crate::api::{ApiError, RequestContext};
use crate::api_error;
use crate::broker::Broker;
use crate::broker::queue::registry::NewQueue;
use crate::broker::queue::{QueueAttrs, StartingPosition};

#[tracing::instrument(skip_all, fields(queue = input.queue_name.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: CreateQueueInput,
) -> Result<CreateQueueOutput, ApiError> {
    // Both required by the model: validation has refused their absence.
    let name = input.queue_name.unwrap_or_default();
    let configs = input.stream_configuration_list.unwrap_or_default();
    let [config] = configs.as_slice() else {
        return Err(api_error!(
            ValidationException,
            "StreamConfigurationList must contain exactly one entry: a queue delivers records from a single data stream."
        ));
    };
    let key = stream_key(ctx, None, config.stream_arn.as_deref())?;
    let position = config.starting_position.as_ref();
    let start = match (
        position.and_then(|p| p.r#type.as_ref()),
        position.and_then(|p| p.timestamp),
    ) {
        (None, None) => StartingPosition::Latest,
        (Some(QueueStartingPositionType::AtTimestamp), Some(ts)) => {
            StartingPosition::AtTimestamp(ts.millis)
        }
        (Some(QueueStartingPositionType::AtTimestamp), None) => {
            return Err(api_error!(
                ValidationException,
                "Timestamp is required when StartingPosition.Type is AT_TIMESTAMP."
            ));
        }
        (_, Some(_)) => {
            return Err(api_error!(
                ValidationException,
                "Timestamp can be specified only when StartingPosition.Type is AT_TIMESTAMP."
            ));
        }
        (Some(QueueStartingPositionType::TrimHorizon), None) => StartingPosition::TrimHorizon,
        (Some(_), None) => StartingPosition::Latest,
    };
    let attrs = apply_attrs(QueueAttrs::default(), input.queue_attributes.as_ref())?;
    let tags = input.tags.unwrap_or_default();
    super::tags::check_queue_tags(&tags, &name, &key.account)?;
    let meta = broker
        .create_queue(NewQueue {
            name,
            stream: key,
            start,
            attrs,
            tags,
        })
        .await
        .map_err(|e| queue_error(e, Plane::Control))?;
    Ok(CreateQueueOutput {
        queue_description: description(&meta),
    })
}
