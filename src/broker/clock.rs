//! The broker's clock: wall time plus an adjustable offset.
//!
//! Everything time-dependent (arrival times, iterator expiry, lifecycle delays measured
//! against timestamps, retention) reads this clock, so tests can move time forward
//! without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest clock offset: 100 years in ms, far past any retention period (365 days).
pub const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3_600_000;

/// Wall-clock milliseconds since the epoch plus a shared offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock that reads the system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, as this broker sees them.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        wall.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// How far this clock is ahead of the system clock, in ms.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward by `ms` (back when negative). For
    /// tests and the admin-configured clock offset. Refused, changing nothing, when the
    /// offset would leave ±[`MAX_OFFSET_MS`] or the time would go before 1970.
    pub fn advance_ms(&self, ms: i64) -> Result<(), String> {
        let result = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| {
                let next = offset.checked_add(ms)?;
                let wall = self.now_ms() - offset;
                (next.abs() <= MAX_OFFSET_MS && wall + next >= 0).then_some(next)
            });
        result.map(|_| ()).map_err(|offset| {
            format!("moving the clock by {ms} ms from an offset of {offset} ms leaves its range (±{MAX_OFFSET_MS} ms, not before 1970)")
        })
    }
}
