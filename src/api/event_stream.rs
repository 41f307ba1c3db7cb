//! The events of one SubscribeToShard answer, as the HTTP layer takes them: deliveries of
//! the broker's session (or the error that ended the subscription) that `protocol` turns
//! into [`SubscribeToShardEvent`]s ([`to_event`]), encodes and frames.

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::ApiError;
use super::generated::SubscribeToShardEvent;
use super::get_records::{child_shards, records};
use crate::broker::fanout::session::Delivery;

/// One item of a subscription: an event (shared with the other consumers that read the same
/// records at the same time), or the exception that ends the subscription.
pub type EventItem = Result<Arc<Delivery>, ApiError>;

/// The API's view of one delivery.
pub fn to_event(delivery: &Delivery) -> Result<SubscribeToShardEvent, ApiError> {
    let records = match &delivery.batch {
        Some(batch) => records(batch, &delivery.shard, &delivery.stream_extras)?,
        None => Vec::new(),
    };
    Ok(SubscribeToShardEvent {
        records,
        continuation_sequence_number: delivery.continuation.clone(),
        millis_behind_latest: delivery.millis_behind_latest,
        child_shards: delivery.child_shards.as_deref().map(child_shards),
    })
}

/// A subscription's events, produced by its session task. Dropping this (the client went
/// away, or the connection was closed) closes the channel, which ends the task.
pub struct EventStream {
    events: mpsc::Receiver<EventItem>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// The events `events` receives; the stream ends when every sender is gone.
    pub fn new(events: mpsc::Receiver<EventItem>) -> Self {
        Self { events }
    }

    /// The next event, `Ready(None)` once the subscription is over.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<EventItem>> {
        self.events.poll_recv(cx)
    }

    /// The next event (tests).
    pub async fn next(&mut self) -> Option<EventItem> {
        self.events.recv().await
    }
}
