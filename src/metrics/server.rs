//! The server's own figures that no stream owns: connections, requests by operation and
//! error, start-up recovery time, and the readiness `GET /ready` reports.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Where the server is in its life, for `GET /ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Storage not recovered yet.
    Starting = 0,
    /// Serving.
    Serving = 1,
    /// Shutdown started: in-flight requests finish, nothing new should come.
    ShuttingDown = 2,
}

/// Counters of the HTTP server and the broker's life.
#[derive(Debug)]
pub struct ServerMetrics {
    phase: AtomicU8,
    /// Connections being served now.
    pub open_connections: AtomicI64,
    /// Connections the listeners serve at once (`--max-connections`, plus the metrics
    /// port's own), while they listen.
    pub connection_limit: AtomicI64,
    /// Idle keep-alive connections closed to make room for a new client at the cap.
    pub idle_connections_evicted: AtomicU64,
    /// TLS handshakes that failed or timed out (the connection was dropped).
    pub tls_handshake_failures: AtomicU64,
    /// Requests answered, by (operation, error type or "").
    requests: RwLock<HashMap<(&'static str, &'static str), AtomicU64>>,
    /// Time from opening the data directory to serving, microseconds (0 until known).
    recovery_us: AtomicU64,
    /// Set when an append failed for lack of disk space; cleared by the next append that
    /// succeeds.
    disk_full: AtomicBool,
    disk_full_reason: Mutex<String>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Starting as u8),
            open_connections: AtomicI64::new(0),
            connection_limit: AtomicI64::new(0),
            idle_connections_evicted: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            requests: RwLock::default(),
            recovery_us: AtomicU64::new(0),
            disk_full: AtomicBool::new(false),
            disk_full_reason: Mutex::default(),
        }
    }
}

impl ServerMetrics {
    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Starting,
            1 => Phase::Serving,
            _ => Phase::ShuttingDown,
        }
    }

    /// Records how long recovery took.
    pub fn set_recovery(&self, elapsed: Duration) {
        self.recovery_us
            .store(elapsed.as_micros().max(1) as u64, Ordering::Relaxed);
    }

    /// The recovery time, seconds, once known.
    pub fn recovery_seconds(&self) -> Option<f64> {
        let us = self.recovery_us.load(Ordering::Relaxed);
        (us > 0).then(|| us as f64 / 1e6)
    }

    /// An append failed for lack of space (`reason` says where).
    pub fn disk_full(&self, reason: String) {
        *self
            .disk_full_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = reason;
        self.disk_full.store(true, Ordering::Relaxed);
    }

    /// An append succeeded: there is space again.
    pub fn disk_has_space(&self) {
        if self.disk_full.load(Ordering::Relaxed) {
            self.disk_full.store(false, Ordering::Relaxed);
        }
    }

    /// `Ok` when ready for traffic, else why not (for `GET /ready`'s 503).
    pub fn readiness(&self) -> Result<(), String> {
        match self.phase() {
            Phase::Starting => return Err("starting: storage is being recovered".into()),
            Phase::ShuttingDown => return Err("shutting down".into()),
            Phase::Serving => {}
        }
        if self.disk_full.load(Ordering::Relaxed) {
            let reason = self
                .disk_full_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Err(format!("disk full: {reason}"));
        }
        Ok(())
    }

    /// Counts one answered request.
    pub fn request(&self, operation: &'static str, error: Option<&'static str>) {
        let key = (operation, error.unwrap_or(""));
        {
            let map = self.requests.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = map.get(&key) {
                c.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // First request of its kind: the set of (operation, error) pairs is small and fixed
        // by the code (static strings), so the map stays bounded.
        self.requests
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Every (operation, error, count), sorted.
    pub fn requests(&self) -> Vec<(&'static str, &'static str, u64)> {
        let map = self.requests.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .map(|((op, err), c)| (*op, *err, c.load(Ordering::Relaxed)))
            .collect();
        out.sort();
        out
    }
}

/// Keeps [`ServerMetrics::open_connections`] right however a connection ends.
pub struct ConnectionGuard(Arc<ServerMetrics>);

impl ConnectionGuard {
    /// Counts a connection until the guard drops.
    pub fn new(metrics: &Arc<ServerMetrics>) -> Self {
        metrics.open_connections.fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_phase_and_disk() {
        let m = ServerMetrics::default();
        assert!(m.readiness().unwrap_err().contains("starting"));
        m.set_phase(Phase::Serving);
        assert_eq!(m.readiness(), Ok(()));
        m.disk_full("segment of stream s".into());
        assert!(
            m.readiness()
                .unwrap_err()
                .contains("disk full: segment of stream s")
        );
        m.disk_has_space();
        assert_eq!(m.readiness(), Ok(()));
        m.set_phase(Phase::ShuttingDown);
        assert!(m.readiness().unwrap_err().contains("shutting down"));
    }

    #[test]
    fn requests_are_counted_by_operation_and_error() {
        let m = Arc::new(ServerMetrics::default());
        m.request("PutRecords", None);
        m.request("PutRecords", None);
        m.request("PutRecords", Some("ResourceNotFoundException"));
        assert_eq!(
            m.requests(),
            [
                ("PutRecords", "", 2),
                ("PutRecords", "ResourceNotFoundException", 1)
            ]
        );
        {
            let _c = ConnectionGuard::new(&m);
            assert_eq!(m.open_connections.load(Ordering::Relaxed), 1);
        }
        assert_eq!(m.open_connections.load(Ordering::Relaxed), 0);
    }
}
