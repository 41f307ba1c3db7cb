//! Enhanced fan-out: registered stream consumers ([`registry`]) and their SubscribeToShard
//! sessions ([`session`]), woken by each shard's [`Tail`] notifier rather than by polling.
//!
//! The tail notifier is the consumer side's one shared mechanism (see ARCHITECTURE.md, "The
//! consumer side"): every append that becomes readable, and every close of a shard by a
//! reshard, moves it; whatever reads a shard's tail waits on it.

pub mod registry;
pub mod session;

use tokio::sync::watch;

/// A shard's tail notifier: the log's published end as of its last append (or a bump when
/// the shard closes). Receivers wake on every change and read the log themselves, so a
/// missed intermediate value loses nothing.
#[derive(Debug)]
pub struct Tail {
    end: watch::Sender<u64>,
    /// The latest records event read at this shard, shared by subscriptions at the same
    /// position (see [`session::Delivery`]).
    pub(super) shared: session::SharedDelivery,
}

impl Default for Tail {
    fn default() -> Self {
        Self {
            end: watch::Sender::new(0),
            shared: Default::default(),
        }
    }
}

impl Tail {
    /// Records that the log's readable end moved to `next_offset`. Cheap with no receivers.
    pub fn published(&self, next_offset: u64) {
        self.end.send_replace(next_offset);
    }

    /// Wakes every waiter without a new end: the shard was closed (its children exist now).
    pub fn changed(&self) {
        self.end.send_modify(|_| {});
    }

    /// A receiver that wakes on the next [`Tail::published`] or [`Tail::changed`].
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.end.subscribe()
    }
}

/// The fan-out state the broker holds besides the catalog: live subscriptions and the
/// notifier that tells them a consumer or stream went away.
#[derive(Debug)]
pub struct FanOut {
    /// Bumped whenever a consumer is deregistered or a stream deleted, so live sessions
    /// re-check that what they serve still exists.
    consumer_changes: watch::Sender<u64>,
    /// Subscriptions by (consumer ARN, shard index): the 5-second rule and takeovers.
    pub(super) sessions: session::Sessions,
    /// Set when the server starts shutting down: subscriptions end at once (cleanly) rather
    /// than holding their connections through the shutdown grace period.
    closing: watch::Sender<bool>,
}

impl Default for FanOut {
    fn default() -> Self {
        Self {
            consumer_changes: watch::Sender::new(0),
            sessions: Default::default(),
            closing: watch::Sender::new(false),
        }
    }
}

impl FanOut {
    /// Tells live sessions to re-check their consumer and stream (call after a consumer is
    /// deregistered, turns DELETING, or its stream is deleted).
    pub fn consumers_changed(&self) {
        self.consumer_changes
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Ends every subscription (cleanly) and refuses none: new ones end at once too.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A receiver of [`FanOut::close`].
    pub fn watch_closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Subscriptions whose session is still alive (for tests and metrics).
    pub fn live_subscriptions(&self) -> usize {
        self.sessions.live()
    }

    /// A receiver of [`FanOut::consumers_changed`].
    pub fn watch_consumers(&self) -> watch::Receiver<u64> {
        self.consumer_changes.subscribe()
    }
}
