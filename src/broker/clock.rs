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
//! Across a restart the steady timeline is new. A [`ClockMark`] written beside steady
//! times (a queue's journal) lets the next process carry them onto its own timeline with
//! [`Clock::carry_ms`]: on the same boot of the machine the time between the runs is read
//! from the kernel's boot clock, which no wall step moves, so a step during the previous
//! run or while the broker was down shifts nothing; after a reboot only the wall clock
//! links the runs, and a step then is taken as time that passed (forward) or as none
//! (back, never negative): a deadline is never carried later than the time it had left.
//!
//! Test controls: [`Clock::advance_ms`] moves both readings (time passing without
//! sleeping); [`Clock::step_wall_ms`] moves the wall reading only (a clock step);
//! [`Clock::system_stepped`] is a new process's clock on a machine whose wall clock stepped.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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
    /// The kernel's boot id and the ms since that boot at `origin`, where the system
    /// tells them (Linux): a reading that neither steps nor restarts with the process.
    boot: Option<(String, i64)>,
}

/// Where a clock's readings stood at one moment, as a journal keeps it beside steady
/// times so that a later process can carry them onto its own timeline
/// ([`Clock::carry_ms`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockMark {
    /// The steady timeline's id.
    pub timeline: u64,
    /// The steady reading.
    pub steady_ms: i64,
    /// The wall reading.
    pub wall_ms: i64,
    /// The clock's offset (moves every reading, the boot one included).
    pub offset_ms: i64,
    /// The kernel's boot id and ms since that boot (plus the offset), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<(String, i64)>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::started_at(system_wall_ms())
    }
}

fn system_wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The boot id and ms since boot (including time suspended), on Linux.
fn boot_reading() -> Option<(String, i64)> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let seconds: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let id = id.trim();
    (!id.is_empty() && seconds.is_finite() && seconds >= 0.0)
        .then(|| (id.to_string(), (seconds * 1000.0) as i64))
}

impl Clock {
    fn started_at(origin_wall_ms: i64) -> Self {
        let mut bytes = [0u8; 8];
        // Without randomness the timeline still differs from 0 and, with the start time
        // mixed in, from the previous process's.
        let _ = getrandom::fill(&mut bytes);
        let timeline = (u64::from_le_bytes(bytes) ^ origin_wall_ms as u64) | 1;
        Self {
            inner: Arc::new(Inner {
                offset_ms: AtomicI64::new(0),
                wall_step_ms: AtomicI64::new(0),
                origin: Instant::now(),
                origin_wall_ms,
                timeline,
                boot: boot_reading(),
            }),
        }
    }

    /// The clock of a process started after the machine's wall clock stepped by `step_ms`
    /// (back when negative): both readings start from the stepped wall time, as they
    /// would in a real process, while the boot reading is untouched. Refused as
    /// [`Clock::step_wall_ms`] refuses a step.
    pub fn system_stepped(step_ms: i64) -> Result<Self, String> {
        let wall = system_wall_ms();
        let origin = wall
            .checked_add(step_ms)
            .filter(|w| *w >= 0 && step_ms.unsigned_abs() <= MAX_OFFSET_MS as u64)
            .ok_or_else(|| {
                format!("a wall step of {step_ms} ms leaves its range (±{MAX_OFFSET_MS} ms, not before 1970)")
            })?;
        let clock = Self::started_at(origin);
        clock.inner.wall_step_ms.store(step_ms, Ordering::Relaxed);
        Ok(clock)
    }

    /// The readings now, to be kept beside steady times.
    pub fn mark(&self) -> ClockMark {
        let offset_ms = self.offset_ms();
        // One look at the monotonic clock for both readings derived from it, so that on
        // one clock a mark's steady and boot readings move in lockstep.
        let elapsed = self.inner.origin.elapsed().as_millis() as i64;
        ClockMark {
            timeline: self.timeline(),
            steady_ms: self
                .inner
                .origin_wall_ms
                .saturating_add(elapsed)
                .saturating_add(offset_ms),
            wall_ms: self.now_ms(),
            offset_ms,
            boot: self.inner.boot.as_ref().map(|(id, at_origin)| {
                (
                    id.clone(),
                    at_origin.saturating_add(elapsed).saturating_add(offset_ms),
                )
            }),
        }
    }

    /// Carries `at_ms`, a time on the steady timeline that `then` was taken on (another
    /// process's), onto this clock's steady timeline: as far from now as it was from
    /// `then`, less the time that passed since. That time is read on the boot clock when
    /// both marks are of the same boot (exact, whatever the wall clock did), otherwise on
    /// the wall clock; never negative, so a time is never carried further into the future
    /// than it was at `then`.
    pub fn carry_ms(&self, then: &ClockMark, at_ms: i64) -> i64 {
        let now = self.mark();
        let passed = match (&then.boot, &now.boot) {
            (Some((then_boot, then_ms)), Some((now_boot, now_ms))) if then_boot == now_boot => {
                now_ms.saturating_sub(*then_ms)
            }
            _ => now.wall_ms.saturating_sub(then.wall_ms),
        }
        .max(0);
        now.steady_ms
            .saturating_add(at_ms.saturating_sub(then.steady_ms))
            .saturating_sub(passed)
    }

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

    /// How old (ms) a token is that was issued at wall time `issued_ms` and at
    /// `issued_steady_ms` on the steady timeline `timeline`: steady time elapsed when this
    /// clock issued it, so wall steps neither age nor rejuvenate it; otherwise (a previous
    /// run's, or a token from before timelines were recorded: 0) the longer of the wall
    /// time since and this run's uptime, as it was issued before this run started.
    pub fn issued_age_ms(&self, issued_ms: i64, issued_steady_ms: i64, timeline: u64) -> i64 {
        if timeline == self.timeline() {
            self.steady_ms().saturating_sub(issued_steady_ms)
        } else {
            self.now_ms()
                .saturating_sub(issued_ms)
                .max(self.uptime_ms())
        }
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

    #[test]
    fn carrying_a_time_to_a_new_process_ignores_wall_steps_on_the_same_boot() {
        let before = Clock::system();
        let then = before.mark();
        let deadline = then.steady_ms + 30_000;
        for step in [HOUR, -HOUR] {
            let after = Clock::system_stepped(step).unwrap();
            assert!((after.now_ms() - after.steady_ms()).abs() < SLACK);
            let left = after.carry_ms(&then, deadline) - after.steady_ms();
            if then.boot.is_some() {
                assert!((30_000 - SLACK..=30_000).contains(&left), "{step}: {left}");
            }
        }
    }

    #[test]
    fn after_a_reboot_a_carried_deadline_is_never_later_than_it_was() {
        let c = Clock::system();
        let mut then = c.mark();
        then.boot = Some(("another boot".into(), 5));
        // The wall clock went back an hour across the reboot: no time seems to have
        // passed, and the deadline keeps the 30 s it had, not an hour more.
        then.wall_ms += HOUR;
        let left = c.carry_ms(&then, then.steady_ms + 30_000) - c.steady_ms();
        assert!((30_000 - SLACK..=30_000).contains(&left), "{left}");
        // Forward an hour: an hour passed, as far as anything can tell.
        then.wall_ms -= 2 * HOUR;
        let left = c.carry_ms(&then, then.steady_ms + 30_000) - c.steady_ms();
        assert!(
            (30_000 - HOUR - SLACK..=30_000 - HOUR).contains(&left),
            "{left}"
        );
    }
}
