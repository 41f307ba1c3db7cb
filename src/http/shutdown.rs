//! The shutdown signal, as a value every long-running task holds (mini-redis
//! `src/shutdown.rs`, with a `watch` channel instead of `broadcast`: a `watch` receiver
//! cloned after the signal still sees it, so a connection accepted in the same instant as
//! the shutdown cannot miss it).

use tokio::sync::watch;

/// Sends the shutdown signal. Cloning is cheap; any clone may fire it, once is enough.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

/// Listens for the shutdown signal. `recv` may be called any number of times.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A connected trigger and listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (
        ShutdownTrigger {
            tx: std::sync::Arc::new(tx),
        },
        Shutdown { rx },
    )
}

impl ShutdownTrigger {
    /// Asks everything holding a [`Shutdown`] to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// A new listener for this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// True once the signal has been sent.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits for the signal; returns at once if it was already sent. If every trigger has
    /// been dropped without firing, nobody can stop this listener's task any more, so that
    /// also counts as the signal.
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recv_returns_after_trigger_and_again_later() {
        let (trigger, mut shutdown) = channel();
        assert!(!shutdown.is_shutdown());
        trigger.trigger();
        shutdown.recv().await;
        shutdown.recv().await;
        assert!(shutdown.is_shutdown());
        let mut late = trigger.subscribe();
        late.recv().await;
    }

    #[tokio::test]
    async fn dropped_trigger_counts_as_shutdown() {
        let (trigger, mut shutdown) = channel();
        drop(trigger);
        shutdown.recv().await;
    }
}
