//! Group commit: the flusher thread and the futures that wait on it.
//!
//! # Thread model
//!
//! Each [`Log`](crate::Log) owns one flusher thread (named `storage-flush`). Appends never flush:
//! they copy into the page cache (`pwrite`), publish, and record in [`FlushState`] how far the log is written.
//! The flusher sleeps on a `Condvar` until a waiter asks for durability (`Flush` mode) or the
//! interval passes (`PageCache` mode, see below); then it takes a snapshot of *everything
//! written so far*, flushes it with one `fsync` per newly sealed segment, one `fsync` of the
//! directory if a segment was created, and one `fdatasync` of the active segment if it grew, and
//! finally marks the snapshot durable and wakes every waiter whose target it covers.
//!
//! # What a woken waiter is promised
//!
//! A [`WaitDurable`] for target `n` resolves `Ok(())` only after a flush *that started after
//! offsets `< n` were appended* completed successfully: those records are on stable storage (as
//! far as `fdatasync`/`fsync` promise). Every waiter queued before a flush started is served by that
//! flush: one flush for the whole group. If a flush fails, that waiter and every later one gets
//! [`Error::FlushFailed`], and appends are refused from then on (after a failed fsync the kernel
//! may have dropped the dirty pages, so retrying would be a lie).
//!
//! Futures do not block: they register their `Waker` in the state and return `Pending`; only the
//! flusher thread and [`FlushShared::wait_blocking`] (for synchronous callers) sleep.
//!
//! # Idle logs cost nothing (`PageCache` mode)
//!
//! The broker keeps one log per shard, most of them idle, so a flusher that woke every interval
//! to find nothing to do would cost thousands of wake-ups a second. Instead, a log with nothing
//! written since the last flush round took its snapshot ("clean") sleeps on the `Condvar`
//! without a timeout. The writer's report ([`FlushShared::written`], [`FlushShared::rolled`])
//! notes the moment the log goes from clean to dirty and wakes the flusher then, and only then:
//! a busy writer pays no notify per append. The flusher then sleeps until `interval` after that
//! moment and flushes. So the interval is measured from the first write that no flush round
//! has covered yet (not from the last flush): no acknowledged record waits longer than
//! `interval` for the flush round that makes it durable to start.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::segment::Segment;
use crate::{Durability, Error, Result};

/// Shared between the writer, the flusher thread and the waiters. One std `Mutex`: every
/// critical section is a few field updates (never an fsync), and the futures must not depend on
/// an async runtime.
pub(crate) struct FlushShared {
    state: Mutex<FlushState>,
    /// Wakes the flusher thread.
    work: Condvar,
    /// Wakes blocking waiters (`sync`, `wait_durable_blocking`).
    done: Condvar,
    durability: Durability,
    dir: PathBuf,
    /// (segment base, entries) of the index file of the active segment when the log was
    /// opened: recovery wrote those; the flusher writes the rest.
    index_at_open: (u64, usize),
    /// Test hook: make the next flush fail as if fsync returned EIO.
    #[cfg(test)]
    pub(crate) fail_next_flush: std::sync::atomic::AtomicBool,
}

/// What has been written and what is durable. Guarded by [`FlushShared::state`].
pub(crate) struct FlushState {
    /// Offset after the last appended (published) record.
    written: u64,
    /// Published end position in `active` matching `written`.
    written_end: u64,
    /// The active segment (None once the log is sealed).
    active: Option<Arc<Segment>>,
    /// Segments sealed since the last flush: fsync the file (its length changed) and its index.
    sealed_pending: Vec<Arc<Segment>>,
    /// A segment file was created since the last flush: fsync the directory.
    dir_dirty: bool,
    /// `written` when the last flush round took its snapshot: the log is dirty (a background
    /// flush is due in `PageCache` mode) when `written` is past it, a sealed segment is pending,
    /// or the directory is dirty. See [`FlushState::dirty`].
    snapshot: u64,
    /// When the log last went from clean to dirty; the background flush is due `interval` later.
    dirty_since: Instant,
    /// Highest target any waiter asked for.
    requested: u64,
    /// Every offset below this is durable.
    durable: u64,
    waiters: Vec<Waiter>,
    next_waiter_id: u64,
    failed: Option<(PathBuf, String)>,
    /// A blocking caller wants a flush round now, whatever the mode.
    force: bool,
    /// Flush rounds that have taken their snapshot / completed.
    rounds_started: u64,
    rounds_done: u64,
    /// Times the flusher thread returned from a `Condvar` wait (for the idle-cost test).
    wakeups: u64,
    shutdown: bool,
    /// The flusher thread has exited.
    exited: bool,
}

impl FlushState {
    /// Something was written, sealed or created that no flush round has taken yet.
    fn dirty(&self) -> bool {
        self.written > self.snapshot || !self.sealed_pending.is_empty() || self.dir_dirty
    }
}

struct Waiter {
    id: u64,
    target: u64,
    waker: Waker,
}

impl FlushShared {
    pub(crate) fn new(
        durability: Durability,
        dir: PathBuf,
        written: u64,
        written_end: u64,
        active: Option<Arc<Segment>>,
    ) -> FlushShared {
        let index_at_open = active
            .as_ref()
            .map_or((u64::MAX, 0), |a| (a.base, a.index_snapshot().len()));
        FlushShared {
            index_at_open,
            state: Mutex::new(FlushState {
                written,
                written_end,
                active,
                sealed_pending: Vec::new(),
                dir_dirty: false,
                snapshot: written,
                dirty_since: Instant::now(),
                requested: written,
                durable: written, // recovery leaves the log as it is on disk
                waiters: Vec::new(),
                next_waiter_id: 0,
                failed: None,
                force: false,
                rounds_started: 0,
                rounds_done: 0,
                wakeups: 0,
                shutdown: false,
                exited: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durability,
            dir,
            #[cfg(test)]
            fail_next_flush: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FlushState> {
        // A panic while holding this lock leaves consistent counters (only plain stores), so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer reports progress after each append (one lock per append, not per record).
    pub(crate) fn written(&self, written: u64, written_end: u64) {
        let mut s = self.lock();
        let was_dirty = s.dirty();
        s.written = written;
        s.written_end = written_end;
        self.became_dirty(&mut s, was_dirty);
    }

    /// Called by the writer after changing the state: on the clean → dirty transition, starts the
    /// interval and wakes a `PageCache` flusher, which sleeps without a timeout while clean.
    /// Later reports while dirty notify nobody (the flusher already waits for the deadline).
    /// `Flush` mode flushes only when asked, so its flusher is not woken for writes.
    fn became_dirty(&self, s: &mut FlushState, was_dirty: bool) {
        if !was_dirty && s.dirty() {
            s.dirty_since = Instant::now();
            if let Durability::PageCache { .. } = self.durability {
                self.work.notify_one();
            }
        }
    }

    /// The writer reports a roll: `sealed` must be fsynced, `new_active` is the new target of fdatasync.
    pub(crate) fn rolled(
        &self,
        sealed: Arc<Segment>,
        new_active: Option<Arc<Segment>>,
        written_end: u64,
        created_file: bool,
    ) {
        let mut s = self.lock();
        let was_dirty = s.dirty();
        s.sealed_pending.push(sealed);
        s.active = new_active;
        s.written_end = written_end;
        s.dir_dirty |= created_file;
        self.became_dirty(&mut s, was_dirty);
    }

    /// Retention deleted the segment based at `base`: drop the pending fsync of it, so its
    /// disk space is released as soon as readers let go of it.
    pub(crate) fn forget(&self, base: u64) {
        self.lock().sealed_pending.retain(|s| s.base != base);
    }

    /// Err if an earlier flush failed.
    pub(crate) fn check_failed(&self) -> Result<()> {
        Self::failed_err(&self.lock())
    }

    /// A future resolving when offsets `< target` are durable (targets beyond what is written are
    /// clamped to it: offsets that do not exist yet are not waited for).
    pub(crate) fn wait(self: &Arc<Self>, target: u64) -> WaitDurable {
        if let Durability::PageCache { .. } = self.durability {
            return WaitDurable {
                shared: None,
                target,
                id: None,
            };
        }
        let target = target.min(self.lock().written);
        WaitDurable {
            shared: Some(self.clone()),
            target,
            id: None,
        }
    }

    /// Blocks the calling thread until everything written before the call (including sealed
    /// segments and created files) is flushed, forcing a flush round now in either mode.
    /// Used by `sync`, `seal` and `wait_durable_blocking`.
    pub(crate) fn wait_blocking(&self) -> Result<()> {
        let mut s = self.lock();
        if s.durable >= s.written && s.sealed_pending.is_empty() && !s.dir_dirty {
            return Self::failed_err(&s);
        }
        s.force = true;
        let my_round = s.rounds_started + 1;
        self.work.notify_one();
        loop {
            Self::failed_err(&s)?;
            if s.rounds_done >= my_round {
                return Ok(());
            }
            if s.exited {
                return Err(Error::Closed);
            }
            s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn failed_err(s: &FlushState) -> Result<()> {
        match &s.failed {
            Some((path, message)) => Err(Error::FlushFailed {
                path: path.clone(),
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Every offset below this is durable.
    #[cfg(test)]
    pub(crate) fn durable_for_tests(&self) -> u64 {
        self.lock().durable
    }

    /// (flush rounds started, times the flusher thread woke up).
    #[cfg(test)]
    pub(crate) fn activity_for_tests(&self) -> (u64, u64) {
        let s = self.lock();
        (s.rounds_started, s.wakeups)
    }

    /// Asks the flusher thread to do a last flush and exit.
    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.work.notify_one();
    }

    /// The flusher thread's body.
    pub(crate) fn run(&self) {
        let mut active_flushed: (u64, u64) = (u64::MAX, 0); // (segment base, position flushed to)
        let mut index_written = self.index_at_open; // (segment base, entries in its index file)
        let mut s = self.lock();
        loop {
            // Sleep until there is a reason to flush.
            loop {
                if s.shutdown || s.force || s.requested > s.durable {
                    break;
                }
                let timeout = match self.durability {
                    Durability::PageCache { interval } if s.dirty() => {
                        // An interval too long to add to an Instant never comes due.
                        let due = s
                            .dirty_since
                            .checked_add(interval.max(Duration::from_millis(1)));
                        match due.map(|d| d.checked_duration_since(Instant::now())) {
                            None => None,
                            Some(Some(left)) if !left.is_zero() => Some(left),
                            Some(_) => break,
                        }
                    }
                    // Flush mode, or a clean PageCache log: only a waiter, `sync`, shutdown
                    // or (PageCache) the writer's clean → dirty report wakes us.
                    _ => None,
                };
                s = match timeout {
                    None => self.work.wait(s).unwrap_or_else(|p| p.into_inner()),
                    Some(t) => {
                        self.work
                            .wait_timeout(s, t)
                            .unwrap_or_else(|p| p.into_inner())
                            .0
                    }
                };
                s.wakeups += 1;
            }
            let shutdown = s.shutdown;
            s.force = false;
            s.rounds_started += 1;
            // The log is clean from here (this round covers everything written so far); a write
            // during the flush makes it dirty again and restarts the interval. After a failure
            // nothing is flushed any more, and the log stays clean: no rounds for nothing.
            let target = s.written;
            s.snapshot = target;
            let sealed = std::mem::take(&mut s.sealed_pending);
            let dir_dirty = std::mem::take(&mut s.dir_dirty);
            if s.failed.is_none() {
                let end = s.written_end;
                let active = s.active.clone();
                drop(s);
                let started = std::time::Instant::now();
                let result = self.flush_once(
                    &sealed,
                    dir_dirty,
                    active.as_deref(),
                    end,
                    &mut active_flushed,
                    &mut index_written,
                );
                FLUSH_LATENCY.observe(started.elapsed());
                s = self.lock();
                match result {
                    Ok(()) => {
                        s.durable = s.durable.max(target);
                        crate::crashsim::flushed(&self.dir, s.durable);
                    }
                    Err((path, e)) => {
                        tracing::error!(path = %path.display(), error = %e, "flush failed; the log refuses further appends");
                        s.failed = Some((path, e.to_string()));
                    }
                }
            }
            if s.failed.is_some() {
                // Nothing more can be promised: fail every waiter, and stop asking for rounds.
                s.requested = s.durable;
            }
            s.rounds_done = s.rounds_started;
            Self::wake_ready(&mut s);
            self.done.notify_all();
            if shutdown {
                s.exited = true;
                Self::wake_all(&mut s);
                self.done.notify_all();
                return;
            }
        }
    }

    fn flush_once(
        &self,
        sealed: &[Arc<Segment>],
        dir_dirty: bool,
        active: Option<&Segment>,
        end: u64,
        active_flushed: &mut (u64, u64),
        index_written: &mut (u64, usize),
    ) -> std::result::Result<(), (PathBuf, std::io::Error)> {
        #[cfg(test)]
        if self
            .fail_next_flush
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err((
                self.dir.clone(),
                std::io::Error::other("injected fsync failure"),
            ));
        }
        for seg in sealed {
            seg.sync_all().map_err(|e| (seg.path.clone(), e))?;
        }
        if dir_dirty {
            let _sync = crate::crashsim::fsync_dir(&self.dir);
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| (self.dir.clone(), e))?;
        }
        // The seal marks last: a mark says its segment and every older one are complete on
        // disk, names included (the crash test found a marked segment behind a lost name).
        for seg in sealed {
            write_index(seg, None, index_written);
            match std::fs::File::open(&seg.idx_path).and_then(|f| {
                let _sync = crate::crashsim::fsync(&f);
                f.sync_all()
            }) {
                Ok(()) => {}
                // The index is a hint (rebuilt if lost) and retention may have deleted it already.
                Err(e) => {
                    tracing::debug!(path = %seg.idx_path.display(), error = %e, "index fsync skipped")
                }
            }
        }
        if let Some(seg) = active {
            let from = if active_flushed.0 == seg.base {
                active_flushed.1
            } else {
                0
            };
            if end > from {
                seg.sync_data().map_err(|e| (seg.path.clone(), e))?;
                write_index(seg, Some(end), index_written);
            }
            *active_flushed = (seg.base, end.max(from));
        }
        Ok(())
    }

    fn wake_ready(s: &mut FlushState) {
        if s.failed.is_some() {
            return Self::wake_all(s);
        }
        let durable = s.durable;
        s.waiters.retain(|w| {
            if w.target <= durable {
                w.waker.wake_by_ref();
                false
            } else {
                true
            }
        });
    }

    fn wake_all(s: &mut FlushState) {
        for w in s.waiters.drain(..) {
            w.waker.wake();
        }
    }
}

/// Future returned by [`Log::wait_durable`](crate::Log::wait_durable): resolves when every offset
/// below its target is durable under the log's [`Durability`] mode. It needs no async runtime:
/// it registers its waker with the log's flusher thread, which wakes it after the covering flush.
/// Dropping it unregisters it.
#[must_use = "futures do nothing unless awaited"]
pub struct WaitDurable {
    /// None in `PageCache` mode: ready at once.
    shared: Option<Arc<FlushShared>>,
    target: u64,
    id: Option<u64>,
}

impl std::fmt::Debug for WaitDurable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitDurable")
            .field("target", &self.target)
            .finish()
    }
}

impl Future for WaitDurable {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let Some(shared) = &this.shared else {
            return Poll::Ready(Ok(()));
        };
        let mut s = shared.lock();
        if s.durable >= this.target {
            return Poll::Ready(Ok(()));
        }
        if let Some((path, message)) = &s.failed {
            return Poll::Ready(Err(Error::FlushFailed {
                path: path.clone(),
                message: message.clone(),
            }));
        }
        if s.exited {
            return Poll::Ready(Err(Error::Closed));
        }
        match this
            .id
            .and_then(|id| s.waiters.iter_mut().find(|w| w.id == id))
        {
            Some(w) => {
                if !w.waker.will_wake(cx.waker()) {
                    w.waker = cx.waker().clone();
                }
            }
            None => {
                let id = s.next_waiter_id;
                s.next_waiter_id += 1;
                this.id = Some(id);
                s.waiters.push(Waiter {
                    id,
                    target: this.target,
                    waker: cx.waker().clone(),
                });
            }
        }
        if s.requested < this.target {
            s.requested = this.target;
            shared.work.notify_one();
        }
        Poll::Pending
    }
}

impl Drop for WaitDurable {
    fn drop(&mut self) {
        if let (Some(shared), Some(id)) = (&self.shared, self.id) {
            shared.lock().waiters.retain(|w| w.id != id);
        }
    }
}

/// Runs a future to completion on the current thread (tests and doc examples; the broker awaits
/// on its own runtime). Parks the thread between polls.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl std::task::Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Upper bounds, in seconds, of the flush-round latency buckets: from a page-cache-only
/// fdatasync (tens of microseconds) to a disk that stalls for seconds.
pub const FLUSH_LATENCY_BUCKETS_S: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Every log's flush rounds (the fsyncs and fdatasync of one round), process-wide: the
/// broker exports it as its flush latency. Relaxed atomics, one add per round.
struct FlushHistogram {
    buckets: [std::sync::atomic::AtomicU64; FLUSH_LATENCY_BUCKETS_S.len() + 1],
    sum_us: std::sync::atomic::AtomicU64,
}

static FLUSH_LATENCY: FlushHistogram = FlushHistogram {
    buckets: [const { std::sync::atomic::AtomicU64::new(0) }; FLUSH_LATENCY_BUCKETS_S.len() + 1],
    sum_us: std::sync::atomic::AtomicU64::new(0),
};

impl FlushHistogram {
    fn observe(&self, elapsed: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let secs = elapsed.as_secs_f64();
        let i = FLUSH_LATENCY_BUCKETS_S.partition_point(|&upper| upper < secs);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }
}

/// The flush rounds' latency so far, for a metrics exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct FlushLatency {
    /// Sum of the rounds' durations, seconds.
    pub sum_s: f64,
    /// Rounds.
    pub count: u64,
    /// (upper bound in seconds, rounds at or below it), cumulative, `+Inf` last.
    pub cumulative: Vec<(f64, u64)>,
}

/// Reads the process-wide flush latency histogram.
pub fn flush_latency() -> FlushLatency {
    use std::sync::atomic::Ordering::Relaxed;
    let mut running = 0;
    let cumulative = FLUSH_LATENCY
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| {
            running += b.load(Relaxed);
            (
                FLUSH_LATENCY_BUCKETS_S
                    .get(i)
                    .copied()
                    .unwrap_or(f64::INFINITY),
                running,
            )
        })
        .collect();
    FlushLatency {
        sum_s: FLUSH_LATENCY.sum_us.load(Relaxed) as f64 / 1e6,
        count: running,
        cumulative,
    }
}

/// Appends to `seg`'s index file the entries for frames below `durable_end` that it lacks;
/// for a sealed segment (`durable_end` None, the whole segment was just fsynced), all of
/// them and the seal mark ([`crate::index::seal_mark`]).
/// Called only after an fsync covering those frames: an entry on disk then always points at
/// durable frames, so recovery can trust the last one and scan only after it. (Written by the
/// appender instead, an entry could reach the disk before the frames it skips over, and a
/// power cut would leave a hole before the last entry that recovery never scans.) The index
/// is a hint: a failure is logged and the recovery scan makes up for it.
fn write_index(seg: &Segment, durable_end: Option<u64>, written: &mut (u64, usize)) {
    let already = if written.0 == seg.base { written.1 } else { 0 };
    let end = durable_end.unwrap_or(u64::MAX).min(seg.end());
    // Only the entries not written yet are copied: this runs at every flush.
    let mut new: Vec<_> = {
        let idx = seg.index.read().unwrap_or_else(|p| p.into_inner());
        idx.get(already..)
            .unwrap_or(&[])
            .iter()
            .take_while(|e| u64::from(e.position) < end)
            .copied()
            .collect()
    };
    let total = already + new.len();
    if durable_end.is_none() {
        new.push(crate::index::seal_mark(seg.next_offset(), seg.end()));
    }
    if !new.is_empty() {
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(&seg.idx_path)
            .and_then(|mut f| crate::index::append(&mut f, &mut Vec::new(), &new));
        match appended {
            Ok(()) => {}
            // Retention deleted the segment meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %seg.idx_path.display(), error = %e, "index append failed")
            }
        }
    }
    *written = (seg.base, total);
}
