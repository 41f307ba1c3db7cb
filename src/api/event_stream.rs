//! The events of one SubscribeToShard answer, as the HTTP layer takes them: typed events
//! (or the error that ended the subscription) that `protocol` encodes and frames.

use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::ApiError;
use super::generated::SubscribeToShardEvent;

/// One item of a subscription: an event, or the exception that ends it.
pub type EventItem = Result<SubscribeToShardEvent, ApiError>;

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
