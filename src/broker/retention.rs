//! Retention: expired records are never read (see the read path's trim horizon); the
//! sweeper here gives their disk space back by deleting whole expired segments.

use std::sync::Arc;
use std::time::Duration;

use super::Broker;
use super::stream::Stream;

/// How often expired segments are deleted. Reads never return expired records whatever
/// this is; it only bounds how long their disk space stays taken.
pub const RETENTION_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl Broker {
    /// Deletes the segments whose records have all outlived their stream's retention
    /// period. Reads already skip such records; this gives the disk space back.
    pub fn sweep_retention(&self) -> usize {
        // The earlier reading: a forward wall step must not delete records younger than the
        // retention period; a backward one delays deletion by at most the step.
        let now = self.clock.earliest_now_ms();
        let streams: Vec<Arc<Stream>> = self.registry().streams.values().cloned().collect();
        let mut dropped = 0;
        for stream in streams {
            let (retention_hours, shards) = {
                let st = stream.state();
                (st.retention_hours, st.shards.clone())
            };
            let horizon = now - retention_hours as i64 * 3_600_000;
            for shard in shards {
                match shard.log.drop_older_than(horizon) {
                    Ok(n) => dropped += n,
                    Err(e) => {
                        tracing::warn!(shard = %shard.id, stream = %stream.key.name, error = %e, "retention sweep failed")
                    }
                }
            }
        }
        if dropped > 0 {
            tracing::info!(
                segments = dropped,
                "retention sweep deleted expired segments"
            );
        }
        dropped
    }

    /// Runs [`Broker::sweep_retention`] every [`RETENTION_SWEEP_INTERVAL`] until shutdown.
    pub(super) fn start_retention_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut stop = self.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(RETENTION_SWEEP_INTERVAL) => {}
                    _ = stop.changed() => return,
                }
                let Some(broker) = weak.upgrade() else { return };
                if tokio::task::spawn_blocking(move || broker.sweep_retention())
                    .await
                    .is_err()
                {
                    tracing::error!("retention sweep panicked");
                }
            }
        });
    }
}
