//! Counting: latencies, records, failures by kind, and the server's CPU and memory from /proc.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What one task saw; merged at the end of a run.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Request latencies in microseconds (one per call).
    pub latency_us: Vec<u32>,
    /// Requests sent (successful or not).
    pub requests: u64,
    /// Records acknowledged (writes) or received (reads).
    pub records: u64,
    /// Bytes of record data acknowledged or received (decoded, not base64).
    pub bytes: u64,
    /// Failures by kind: a whole request's error type, or a PutRecords entry's ErrorCode.
    pub failures: BTreeMap<String, u64>,
    /// End-to-end latencies in microseconds (produce-consume).
    pub e2e_us: Vec<u32>,
    /// End-to-end minus the consumer's wait from the write's acknowledgement to its next
    /// poll: the time the server took (produce-consume).
    pub server_share_us: Vec<u32>,
}

impl Recorder {
    pub fn fail(&mut self, kind: impl Into<String>, n: u64) {
        *self.failures.entry(kind.into()).or_default() += n;
    }

    pub fn latency(&mut self, d: Duration) {
        self.latency_us
            .push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latency_us.extend(other.latency_us);
        self.e2e_us.extend(other.e2e_us);
        self.server_share_us.extend(other.server_share_us);
        self.requests += other.requests;
        self.records += other.records;
        self.bytes += other.bytes;
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
    }

    pub fn failures_json(&self) -> Value {
        json!(self.failures)
    }
}

/// p50/p90/p99/max/mean in milliseconds of a set of microsecond samples.
pub fn percentiles(samples: &mut [u32]) -> Value {
    if samples.is_empty() {
        return json!({"n": 0});
    }
    samples.sort_unstable();
    let pick = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i] as f64 / 1000.0
    };
    let mean = samples.iter().map(|&v| v as f64).sum::<f64>() / samples.len() as f64 / 1000.0;
    json!({
        "n": samples.len(),
        "p50": round3(pick(0.50)),
        "p90": round3(pick(0.90)),
        "p99": round3(pick(0.99)),
        "max": round3(*samples.last().unwrap() as f64 / 1000.0),
        "mean": round3(mean),
    })
}

/// Like [`percentiles`] for signed microsecond values with a weight each (how many
/// records shared the value), plus `min`: propagation can be negative when a record reaches
/// a consumer before its acknowledgement reaches the writer.
pub fn weighted_percentiles(samples: &mut [(i64, u64)]) -> Value {
    let n: u64 = samples.iter().map(|s| s.1).sum();
    if n == 0 {
        return json!({"n": 0});
    }
    samples.sort_unstable_by_key(|s| s.0);
    let ms = |us: i64| round3(us as f64 / 1000.0);
    let pick = |q: f64| {
        let rank = ((n as f64 * q).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for &(v, w) in samples.iter() {
            seen += w;
            if seen >= rank {
                return ms(v);
            }
        }
        ms(samples[samples.len() - 1].0)
    };
    let sum: f64 = samples.iter().map(|&(v, w)| v as f64 * w as f64).sum();
    json!({
        "n": n,
        "min": ms(samples[0].0),
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": ms(samples[samples.len() - 1].0),
        "mean": round3(sum / n as f64 / 1000.0),
    })
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// utime + stime of a process, in seconds. /proc reports clock ticks of USER_HZ, which is
/// 100 on every Linux this runs on.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, utime field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// A `Vm…:` line of /proc/PID/status, in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Watches a process during a phase: CPU seconds used and the peaks of sampled VmRSS, RssAnon
/// and RssFile.
pub struct ProcWatch {
    pid: u32,
    cpu_start: Option<f64>,
    peak_rss_kib: Arc<AtomicU64>,
    peak_anon_kib: Arc<AtomicU64>,
    peak_file_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ProcWatch {
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(status_kib(pid, "VmRSS:").unwrap_or(0)));
        let anon = Arc::new(AtomicU64::new(status_kib(pid, "RssAnon:").unwrap_or(0)));
        let file = Arc::new(AtomicU64::new(status_kib(pid, "RssFile:").unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, a, f, s) = (peak.clone(), anon.clone(), file.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS:") {
                    p.fetch_max(rss, Ordering::Relaxed);
                }
                if let Some(rss) = status_kib(pid, "RssAnon:") {
                    a.fetch_max(rss, Ordering::Relaxed);
                }
                if let Some(rss) = status_kib(pid, "RssFile:") {
                    f.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self {
            pid,
            cpu_start: cpu_seconds(pid),
            peak_rss_kib: peak,
            peak_anon_kib: anon,
            peak_file_kib: file,
            stop,
            task,
        }
    }

    /// [`ProcWatch::finish`] when there is a watch (`--server-pid` given), else null.
    pub async fn finish_if_any(watch: Option<ProcWatch>) -> Value {
        match watch {
            Some(w) => w.finish().await,
            None => Value::Null,
        }
    }

    /// Stops sampling; JSON with cpu_s, peak_rss_mb and peak_anon_mb (sampled every 100 ms),
    /// rss_mb (now), vm_hwm_mb.
    pub async fn finish(self) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let cpu_end = cpu_seconds(self.pid);
        let mb = |kib: u64| round3(kib as f64 / 1024.0);
        if let Some(rss) = status_kib(self.pid, "VmRSS:") {
            self.peak_rss_kib.fetch_max(rss, Ordering::Relaxed);
        }
        json!({
            "pid": self.pid,
            "cpu_s": match (self.cpu_start, cpu_end) {
                (Some(a), Some(b)) => Some(round3(b - a)),
                _ => None,
            },
            "peak_rss_mb": mb(self.peak_rss_kib.load(Ordering::Relaxed)),
            // Anonymous memory only (heap, stacks): VmRSS also counts mapped file pages,
            // which are page cache.
            "peak_anon_mb": mb(self.peak_anon_kib.load(Ordering::Relaxed)),
            // Mapped file pages (segments being read or written): page cache the process maps.
            "peak_file_mb": mb(self.peak_file_kib.load(Ordering::Relaxed)),
            "rss_mb": status_kib(self.pid, "VmRSS:").map(mb),
            "rss_anon_mb": status_kib(self.pid, "RssAnon:").map(mb),
            "rss_file_mb": status_kib(self.pid, "RssFile:").map(mb),
            "vm_hwm_mb": status_kib(self.pid, "VmHWM:").map(mb),
            "threads": status_kib(self.pid, "Threads:"),
        })
    }
}
