//! How many connections are served at once, and which one gives way when that many are open.
//!
//! At the cap, a new client does not wait in the kernel's backlog behind connections that
//! only sit in a client's pool: the connection idle the longest (no request in flight:
//! HTTP/1.1 between requests, HTTP/2 with no open stream) is closed gracefully and the new
//! client takes its place. Only when every connection has a request in flight does the new
//! client wait.
//!
//! Per request, the bookkeeping is two atomics on the connection's own [`ConnectionState`];
//! the registry's lock is taken when a connection opens or closes and when the cap is hit
//! (a scan of every open connection: at 16,384 connections, well under a millisecond, and
//! only paid by a client that would otherwise have waited).
//!
//! Also here: raising the open-files limit at start, since every connection is a file
//! descriptor.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Connections served at once unless told otherwise: 16,384.
///
/// The target is 10,000 (a hundred application instances each keeping an SDK pool
/// of a hundred connections); a power of two with 60 % headroom above it. An idle
/// connection costs a few kilobytes (see `benches/RESULTS.md`, "Connections"), so the cap
/// bounds memory at well under a gigabyte; the open-files limit usually bounds it first
/// (see [`fit_to_open_files_limit`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// File descriptors kept for everything but client connections (segment and index files,
/// the data directory, the runtime's epoll and pipes, runtime processes of functions).
pub const RESERVED_FDS: u64 = 1024;

/// Connections the `--metrics-port` listener serves at once: Prometheus and probes need a
/// few, and they fit in [`RESERVED_FDS`] beside the main port's cap.
pub const PROBE_PORT_MAX_CONNECTIONS: usize = 64;

/// How long a connection closed to make room may take to go (HTTP/2: GOAWAY and its
/// acknowledgement) before it is dropped. An idle HTTP/1.1 connection goes at once; one
/// with a request head half-way in (a slowloris client) only when this runs out.
pub const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// While a newcomer waits, how often it looks again: for a connection that has become idle
/// when every one was busy, or for another victim when the last one is slow to close (a
/// half-sent head waits for [`EVICTION_GRACE`]; the newcomer need not).
const RESCAN_INTERVAL: Duration = Duration::from_millis(100);

/// What the connection layer is configured with (`Config`, command-line flags).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once; at the cap the longest-idle one is closed for a new client.
    pub max_connections: usize,
    /// Longest gap allowed between two pieces of a request body; a stalled body is then
    /// answered with 408 `RequestTimeoutException`.
    pub body_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            body_read_timeout: super::BODY_READ_TIMEOUT,
        }
    }
}

/// One open connection, as the registry and the connection's requests see it.
pub(crate) struct ConnectionState {
    epoch: Instant,
    /// Requests whose answer is not fully handed to hyper yet (HTTP/2: open streams).
    in_flight: AtomicU32,
    /// Milliseconds since the registry's epoch at which the connection last became idle
    /// (opened, or its last request finished). A client trickling a request head byte by
    /// byte stays "idle" from its last finished request, so it is among the first to go.
    idle_since_ms: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
}

impl ConnectionState {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(epoch.elapsed().as_millis() as u64),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    /// Counts a request until the guard drops (with its answer's body).
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Whether a request is in flight.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Resolves once the registry chose this connection to make room.
    pub(crate) async fn evicted(&self) {
        if self.evicted.load(Ordering::Acquire) {
            return;
        }
        self.evict.notified().await;
    }
}

/// A request in flight on its connection.
pub(crate) struct InFlight(Arc<ConnectionState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state
                .idle_since_ms
                .store(state.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// Every open connection of one listener, and the permits that cap them.
pub(crate) struct Registry {
    epoch: Instant,
    max_connections: usize,
    permits: Arc<Semaphore>,
    slots: Mutex<Slots>,
    /// Connections chosen to make room that have not closed yet: while there is one, a
    /// newcomer waits a [`RESCAN_INTERVAL`] for it before evicting another.
    pending_evictions: AtomicUsize,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Arc<ConnectionState>>>,
    free: Vec<usize>,
}

/// A connection's place in the registry and its permit; both are given back on drop.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    slot: usize,
    pub(crate) state: Arc<ConnectionState>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.state.evicted.load(Ordering::Acquire) {
            self.registry
                .pending_evictions
                .fetch_sub(1, Ordering::AcqRel);
        }
        let mut slots = self.registry.lock();
        slots.entries[self.slot] = None;
        slots.free.push(self.slot);
    }
}

/// What [`Registry::admit`] did to find room.
pub(crate) enum Admission {
    /// There was room, or an idle connection was closed to make it.
    Admitted {
        registration: Registration,
        evicted: bool,
    },
    /// Shutdown began while waiting.
    ShuttingDown,
}

impl Registry {
    pub(crate) fn new(max_connections: usize) -> Arc<Self> {
        // A cap of zero would never admit anyone; one is the least that serves.
        let max_connections = max_connections.max(1);
        Arc::new(Self {
            epoch: Instant::now(),
            max_connections,
            permits: Arc::new(Semaphore::new(max_connections)),
            slots: Mutex::default(),
            pending_evictions: AtomicUsize::new(0),
        })
    }

    /// The cap.
    pub(crate) fn max_connections(&self) -> usize {
        self.max_connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // The slot table holds no invariant a panic half-way could break.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one more connection: at once if under the cap, else by closing the
    /// longest-idle connection, else (every connection busy) once one closes or goes idle.
    pub(crate) async fn admit(self: &Arc<Self>, shutdown: &mut super::Shutdown) -> Admission {
        let mut evicted = false;
        let mut waited = false;
        let permit = loop {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                break permit;
            }
            // Accepting is serial, so one newcomer at a time gets here: at most one extra
            // eviction per interval while a victim is slow to go.
            if waited || self.pending_evictions.load(Ordering::Acquire) == 0 {
                evicted |= self.evict_longest_idle();
            }
            waited = true;
            tokio::select! {
                // The semaphore is never closed.
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return Admission::ShuttingDown,
                },
                _ = tokio::time::sleep(RESCAN_INTERVAL) => {}
                _ = shutdown.recv() => return Admission::ShuttingDown,
            }
        };
        Admission::Admitted {
            registration: self.register(permit),
            evicted,
        }
    }

    fn register(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Registration {
        let state = Arc::new(ConnectionState::new(self.epoch));
        let mut slots = self.lock();
        let slot = match slots.free.pop() {
            Some(slot) => {
                slots.entries[slot] = Some(state.clone());
                slot
            }
            None => {
                slots.entries.push(Some(state.clone()));
                slots.entries.len() - 1
            }
        };
        drop(slots);
        Registration {
            registry: self.clone(),
            slot,
            state,
            _permit: permit,
        }
    }

    /// Tells the connection idle the longest to close; false when every one is busy.
    fn evict_longest_idle(&self) -> bool {
        let slots = self.lock();
        let victim = slots
            .entries
            .iter()
            .flatten()
            .filter(|c| !c.busy() && !c.evicted.load(Ordering::Acquire))
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed));
        let Some(victim) = victim else {
            return false;
        };
        // Under the lock, so its registration cannot drop between the flag and the count.
        victim.evicted.store(true, Ordering::Release);
        self.pending_evictions.fetch_add(1, Ordering::AcqRel);
        // `notify_one` keeps the wake-up if the connection is not waiting at this instant.
        victim.evict.notify_one();
        true
    }
}

/// Raises the open-files soft limit to the hard limit and returns the connection cap that
/// fits in it: `requested`, or less (with a warning) when the limit cannot hold that many
/// connections plus [`RESERVED_FDS`] for everything else.
pub fn fit_to_open_files_limit(requested: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let mut limit = before.current;
    if before.current != before.maximum {
        let raised = rustix::process::Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = before.maximum,
            Err(e) => tracing::warn!(
                error = %e,
                soft = ?before.current,
                hard = ?before.maximum,
                "cannot raise the open-files limit"
            ),
        }
    }
    tracing::info!(
        soft_before = ?before.current,
        soft = ?limit,
        hard = ?before.maximum,
        "open-files limit (RLIMIT_NOFILE)"
    );
    // `None` is "unlimited".
    let Some(limit) = limit else {
        return requested;
    };
    let fits = connections_within(limit);
    if (requested as u64) > fits {
        tracing::warn!(
            requested,
            allowed = fits,
            open_files_limit = limit,
            "--max-connections lowered to fit the open-files limit (raise it with `ulimit -n` \
             or LimitNOFILE= in a systemd unit)"
        );
        return fits as usize;
    }
    requested
}

/// Connections that fit in an open-files limit of `limit`: all but [`RESERVED_FDS`], or
/// half of a limit too small for that reserve (the old 1,024 default: 512, as before).
fn connections_within(limit: u64) -> u64 {
    let reserve = RESERVED_FDS.min(limit / 2);
    limit.saturating_sub(reserve).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_limits_keep_half_for_files_and_large_ones_a_fixed_reserve() {
        assert_eq!(connections_within(1024), 512);
        assert_eq!(connections_within(20_000), 20_000 - RESERVED_FDS);
        assert_eq!(connections_within(1), 1);
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_is_evicted_and_a_busy_one_never() {
        let (_trigger, mut shutdown) = super::super::shutdown::channel();
        let registry = Registry::new(3);
        let mut open = Vec::new();
        for _ in 0..3 {
            match registry.admit(&mut shutdown).await {
                Admission::Admitted {
                    registration,
                    evicted,
                } => {
                    assert!(!evicted);
                    open.push(registration);
                }
                Admission::ShuttingDown => panic!("shutting down"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The oldest is busy: the next oldest is the one to go.
        let _busy = open[0].state.request();
        let admit = {
            let registry = registry.clone();
            let (trigger, mut s) = super::super::shutdown::channel();
            tokio::spawn(async move {
                let _trigger = trigger;
                matches!(
                    registry.admit(&mut s).await,
                    Admission::Admitted { evicted: true, .. }
                )
            })
        };
        tokio::time::timeout(Duration::from_secs(5), open[1].state.evicted())
            .await
            .expect("the longest-idle connection is told to close");
        drop(open.remove(1));
        let evicted = tokio::time::timeout(Duration::from_secs(5), admit)
            .await
            .expect("admitted once the evicted connection closed")
            .unwrap();
        assert!(evicted);
        assert!(
            !open[0].state.evicted.load(Ordering::Acquire),
            "busy, never evicted"
        );
    }
}
