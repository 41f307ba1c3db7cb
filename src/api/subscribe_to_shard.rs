//! SubscribeToShard: a registered consumer's push subscription to one shard.
//!
//! Everything that can be refused is checked before the answer starts (HTTP status and
//! error body, as for any operation); once the `initial-response` event is out, errors
//! arrive as exception events inside the stream and end it.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::api::generated::{
    ShardIteratorType, StartingPosition, SubscribeToShardInput, SubscribeToShardOutput,
};
use crate::api::get_shard_iterator::{checked_sequence, checked_timestamp, sequence_position};
use crate::api::{ApiError, EventStream, RequestContext};
use crate::api_error;
use crate::broker::catalog::StreamStatus;
use crate::broker::fanout::registry::ConsumerStatus;
use crate::broker::fanout::session::{SessionError, Subscription, Target};
use crate::broker::stream::{Stream, parse_shard_id, shard_id};
use crate::broker::{Broker, Position};

/// Events a session may have ready before the client takes them. Each holds at most
/// 1 MiB of records (views into the mapped segments until encoded), so a consumer that
/// stops reading costs at most this many events; HTTP/2 flow control or the socket's
/// buffer holds back the rest.
const EVENT_BUFFER: usize = 2;

#[tracing::instrument(skip_all, fields(consumer = input.consumer_arn.as_deref(), shard = input.shard_id.as_deref()))]
pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    input: SubscribeToShardInput,
) -> Result<SubscribeToShardOutput, ApiError> {
    let arn = input.consumer_arn.as_deref().unwrap_or_default();
    let (stream, consumer) = broker.consumer_by_arn(&ctx.account_id, &ctx.region, arn)?;
    if consumer.status != ConsumerStatus::Active {
        return Err(api_error!(
            ResourceInUseException,
            "Consumer {arn} is not in ACTIVE state."
        ));
    }
    if !matches!(
        stream.state().status,
        StreamStatus::Active | StreamStatus::Updating
    ) {
        return Err(api_error!(
            ResourceInUseException,
            "Stream {} under account {} is not ACTIVE.",
            stream.key.name,
            stream.key.account
        ));
    }
    let requested = input.shard_id.as_deref().unwrap_or_default();
    let shard = parse_shard_id(requested)
        .and_then(|index| stream.state().shards.get(index as usize).cloned())
        .ok_or_else(|| {
            api_error!(
                ResourceNotFoundException,
                "Shard {} in stream {} under account {} does not exist",
                parse_shard_id(requested)
                    .map(shard_id)
                    .unwrap_or_else(|| requested.to_string()),
                stream.key.name,
                stream.key.account
            )
        })?;
    let starting = input.starting_position.clone().unwrap_or(StartingPosition {
        r#type: Some(ShardIteratorType::Latest),
        sequence_number: None,
        timestamp: None,
    });
    let position = starting_position(broker, &stream, &shard, &starting)?;
    let target = Target {
        stream: stream.clone(),
        shard: shard.clone(),
        consumer_arn: arn.to_string(),
        consumer_created_ms: consumer.created_ms,
        position,
        // Service::authorize let another account in through the consumer's policy: the
        // session keeps checking it.
        subscriber_access: (ctx.account_id != stream.key.account).then(|| {
            crate::policy::StandingAccess::new(&ctx.account_id, arn, &["SubscribeToShard"])
        }),
    };
    let subscription = broker
        .subscribe(target)
        .map_err(|e| session_error(e, &stream, &shard.id, &consumer.name))?;
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let names = (stream.clone(), consumer.name.clone());
    tokio::spawn(run(subscription, tx, names));
    Ok(SubscribeToShardOutput {
        event_stream: EventStream::new(rx),
    })
}

/// Drives a session until it ends or its client goes away (the receiver is dropped:
/// `closed()` fires even while the session waits at the shard's tail).
async fn run(
    mut session: Subscription,
    events: mpsc::Sender<crate::api::event_stream::EventItem>,
    (stream, consumer): (Arc<Stream>, String),
) {
    loop {
        let next = tokio::select! {
            next = session.next() => next,
            _ = events.closed() => return,
        };
        let item = match next {
            None => return,
            Some(Ok(delivery)) => Ok(delivery),
            Some(Err(e)) => Err(session_error(e, &stream, &session.shard().id, &consumer)),
        };
        let last = item.is_err();
        if events.send(item).await.is_err() || last {
            return;
        }
    }
}

/// AWS's error for a session that cannot start or had to stop.
fn session_error(e: SessionError, stream: &Stream, shard: &str, consumer: &str) -> ApiError {
    match e {
        // The wording KCL logs show AWS using when a subscription is refused or replaced.
        SessionError::InUse => api_error!(
            ResourceInUseException,
            "Another active subscription exists for this consumer: {}:{}:{shard}:{consumer}",
            stream.key.account,
            stream.key.name
        ),
        SessionError::ConsumerGone => api_error!(
            ResourceNotFoundException,
            "Consumer {consumer} under stream {} under account {} not found.",
            stream.key.name,
            stream.key.account
        ),
        SessionError::StreamGone => api_error!(
            ResourceNotFoundException,
            "Stream {} under account {} not found.",
            stream.key.name,
            stream.key.account
        ),
        SessionError::Broker(e) => e.into(),
    }
}

/// The position a `StartingPosition` names, checked as GetShardIterator checks its
/// arguments.
fn starting_position(
    broker: &Broker,
    stream: &Stream,
    shard: &crate::broker::stream::Shard,
    starting: &StartingPosition,
) -> Result<Position, ApiError> {
    let kind = starting.r#type.clone().unwrap_or(ShardIteratorType::Latest);
    let type_name = kind.as_str();
    let sequence = starting.sequence_number.as_deref();
    match kind {
        ShardIteratorType::AtSequenceNumber | ShardIteratorType::AfterSequenceNumber => {
            let Some(sequence) = sequence else {
                return Err(api_error!(
                    InvalidArgumentException,
                    "StartingPosition of type {type_name} requires a SequenceNumber."
                ));
            };
            let seq = checked_sequence(broker, &stream.key, shard, sequence, "SubscribeToShard")?;
            Ok(sequence_position(
                &seq,
                kind == ShardIteratorType::AtSequenceNumber,
            ))
        }
        ShardIteratorType::TrimHorizon | ShardIteratorType::Latest if sequence.is_some() => {
            Err(api_error!(
                InvalidArgumentException,
                "StartingPosition of type {type_name} must not have a SequenceNumber."
            ))
        }
        ShardIteratorType::TrimHorizon => Ok(Position::TrimHorizon),
        ShardIteratorType::Latest => Ok(Position::Latest),
        ShardIteratorType::AtTimestamp => Ok(Position::AtTimestamp(checked_timestamp(
            broker,
            starting.timestamp,
        )?)),
        ShardIteratorType::Unknown(other) => Err(api_error!(
            InvalidArgumentException,
            "Unknown ShardIteratorType {other}."
        )),
    }
}
