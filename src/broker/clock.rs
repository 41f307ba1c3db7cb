//! The broker's clock: one type, two readings.
//!
//! - [`Clock::now_ms`], the wall reading: system time plus an adjustable offset. Timestamps
//!   shown to clients and stored with records (arrival times, creation times) come from it.
//!   It can step (NTP, a resumed VM, an operator), forward or back.
//! - [`Clock::steady_ms`], the steady reading: the wall time when the clock was created
//!   plus the monotonic time elapsed since (`Instant`), plus the same offset. It equals the
//!   wall reading until the wall clock steps, and never steps itself. Deadlines (iterator
//!   and subscription lifetimes, visibility timeouts) are measured on it.
//!
//! Ages of stored timestamps (retention, MaximumRecordAgeInSeconds, MillisBehindLatest) are
//! measured against [`Clock::earliest_now_ms`], the earlier of the two readings, so a step
//! either way can make a thing look younger than it is (at most by the step) but never
//! older: nothing is deleted or discarded early because the wall clock jumped.
//!
//! Test controls: [`Clock::advance_ms`] moves both readings (time passing without
//! sleeping); [`Clock::step_wall_ms`] moves the wall reading only (a clock step).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Largest clock offset: 100 years in ms, far past any retention period (365 days).
pub const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3_600_000;

/// Wall and steady readings sharing an offset; clones share everything.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Moves both readings.
    offset_ms: AtomicI64,
    /// Moves the wall reading only: the sum of the simulated steps.
    wall_step_ms: AtomicI64,
    /// The monotonic origin of the steady reading.
    origin: Instant,
    /// The system's wall time at `origin`.
    origin_wall_ms: i64,
    /// Random, never 0: names this clock's steady timeline, so a steady reading written
    /// into a token can be told apart from one of another process (or of a clock of an
    /// older broker, which wrote 0).
    timeline: u64,
}

impl Default for Clock {
    fn default() -> Self {
        let mut bytes = [0u8; 8];
        // Without randomness the timeline still differs from 0 and, with the start time
        // mixed in, from the previous process's.
        let _ = getrandom::fill(&mut bytes);
        let origin_wall_ms = system_wall_ms();
        let timeline = (u64::from_le_bytes(bytes) ^ origin_wall_ms as u64) | 1;
        Self {
            inner: Arc::new(Inner {
                offset_ms: AtomicI64::new(0),
                wall_step_ms: AtomicI64::new(0),
                origin: Instant::now(),
                origin_wall_ms,
                timeline,
            }),
        }
    }
}

fn system_wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Clock {
    /// A clock that reads the system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, as this broker sees them (the wall reading).
    pub fn now_ms(&self) -> i64 {
        system_wall_ms()
            .saturating_add(self.inner.wall_step_ms.load(Ordering::Relaxed))
            .saturating_add(self.offset_ms())
    }

    /// The steady reading: milliseconds on a timeline that starts at the wall time when
    /// this clock was created and then follows the monotonic clock, so it never steps.
    pub fn steady_ms(&self) -> i64 {
        let elapsed = self.inner.origin.elapsed().as_millis() as i64;
        self.inner
            .origin_wall_ms
            .saturating_add(elapsed)
            .saturating_add(self.offset_ms())
    }

    /// The earlier of the wall and steady readings: "now" for measuring the age of a
    /// stored wall timestamp, which a step then can only make look younger.
    pub fn earliest_now_ms(&self) -> i64 {
        self.now_ms().min(self.steady_ms())
    }

    /// The later of the wall and steady readings: "now" for refusing a client's timestamp
    /// as being from the future, so that a time this broker handed out before the wall
    /// clock stepped back is not refused.
    pub fn latest_now_ms(&self) -> i64 {
        self.now_ms().max(self.steady_ms())
    }

    /// How long ago (ms, never negative) a stored wall timestamp was, by
    /// [`Clock::earliest_now_ms`].
    pub fn age_ms(&self, wall_ms: i64) -> i64 {
        self.earliest_now_ms().saturating_sub(wall_ms).max(0)
    }

    /// Steady milliseconds since this clock was created (the process's start, for
    /// [`Broker::open`](super::Broker::open)). The offset counts as time that passed, as
    /// everywhere else it moves the steady reading.
    pub fn uptime_ms(&self) -> i64 {
        self.steady_ms().saturating_sub(self.inner.origin_wall_ms)
    }

    /// The identity of this clock's steady timeline (never 0).
    pub fn timeline(&self) -> u64 {
        self.inner.timeline
    }

    /// How far this clock is ahead of the system clock, in ms.
    pub fn offset_ms(&self) -> i64 {
        self.inner.offset_ms.load(Ordering::Relaxed)
    }

    /// How far the wall reading has been stepped away from the steady one, in ms.
    pub fn wall_step_ms(&self) -> i64 {
        self.inner.wall_step_ms.load(Ordering::Relaxed)
    }

    /// Moves both readings of this clock (and every clone of it) forward by `ms` (back
    /// when negative): time passing, for tests and the admin-configured clock offset.
    /// Refused, changing nothing, when the offset would leave ±[`MAX_OFFSET_MS`] or the
    /// time would go before 1970.
    pub fn advance_ms(&self, ms: i64) -> Result<(), String> {
        let step = self.wall_step_ms();
        let result =
            self.inner
                .offset_ms
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| {
                    let next = offset.checked_add(ms)?;
                    let wall = system_wall_ms().saturating_add(step);
                    (next.unsigned_abs() <= MAX_OFFSET_MS as u64 && wall + next >= 0)
                        .then_some(next)
                });
        result.map(|_| ()).map_err(|offset| {
            format!("moving the clock by {ms} ms from an offset of {offset} ms leaves its range (±{MAX_OFFSET_MS} ms, not before 1970)")
        })
    }

    /// Steps the wall reading by `ms` (back when negative) and leaves the steady reading
    /// alone, as NTP stepping the system clock or a resumed VM would. Refused, changing
    /// nothing, when the step total would leave ±[`MAX_OFFSET_MS`] or the wall time would
    /// go before 1970.
    pub fn step_wall_ms(&self, ms: i64) -> Result<(), String> {
        let offset = self.offset_ms();
        let result =
            self.inner
                .wall_step_ms
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |step| {
                    let next = step.checked_add(ms)?;
                    let wall = system_wall_ms().saturating_add(offset);
                    (next.unsigned_abs() <= MAX_OFFSET_MS as u64 && wall + next >= 0)
                        .then_some(next)
                });
        result.map(|_| ()).map_err(|step| {
            format!("stepping the wall clock by {ms} ms from a step of {step} ms leaves its range (±{MAX_OFFSET_MS} ms, not before 1970)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// Readings taken a moment apart differ by the time between them; this bounds it.
    const SLACK: i64 = 1_000;

    #[test]
    fn readings_agree_until_the_wall_steps() {
        let c = Clock::system();
        assert!((c.now_ms() - c.steady_ms()).abs() < SLACK);
        assert_eq!(
            c.age_ms(c.now_ms() + 10 * SLACK),
            0,
            "the future has no age"
        );
        assert!(c.timeline() != 0);
        assert_ne!(c.timeline(), Clock::system().timeline());
    }

    #[test]
    fn advancing_moves_both_readings() {
        let c = Clock::system();
        let (wall, steady) = (c.now_ms(), c.steady_ms());
        c.advance_ms(HOUR).unwrap();
        assert!((c.now_ms() - wall - HOUR).abs() < SLACK);
        assert!((c.steady_ms() - steady - HOUR).abs() < SLACK);
        c.advance_ms(-2 * HOUR).unwrap();
        assert!((c.steady_ms() - steady + HOUR).abs() < SLACK);
    }

    #[test]
    fn a_wall_step_leaves_the_steady_reading_alone() {
        let c = Clock::system();
        let shared = c.clone();
        let (wall, steady) = (c.now_ms(), c.steady_ms());
        shared.step_wall_ms(HOUR).unwrap();
        assert!((c.now_ms() - wall - HOUR).abs() < SLACK);
        assert!((c.steady_ms() - steady).abs() < SLACK);
        // Forward: ages follow the steady reading, so nothing ages by the step.
        assert!(c.age_ms(wall) < SLACK);
        shared.step_wall_ms(-2 * HOUR).unwrap();
        assert!((c.now_ms() - wall + HOUR).abs() < SLACK);
        assert!((c.steady_ms() - steady).abs() < SLACK);
        // Back: ages follow the wall reading, so a timestamp from before the step is young.
        assert_eq!(c.age_ms(wall), 0);
        assert_eq!(c.wall_step_ms(), -HOUR);
    }

    #[test]
    fn out_of_range_moves_are_refused_and_change_nothing() {
        let c = Clock::system();
        assert!(c.advance_ms(i64::MAX).is_err());
        // i64::MIN has no absolute value in i64: refused, not a panic.
        assert!(c.advance_ms(i64::MIN).is_err());
        assert!(c.step_wall_ms(i64::MIN).is_err());
        assert!(c.step_wall_ms(-c.now_ms() - 1).is_err());
        assert_eq!((c.offset_ms(), c.wall_step_ms()), (0, 0));
    }
}
