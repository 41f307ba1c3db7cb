//! Fault injection for testing producers and consumers: failures and latency on demand,
//! reproducible from a seed. Nothing AWS offers; configured at start (flags) or at run
//! time (the admin API, `GET/PUT /_broker/faults`).
//!
//! Rules apply to the data plane (PutRecord, PutRecords, GetRecords, GetShardIterator),
//! globally or for one stream (a stream's rules replace the global ones). A record failed
//! by injection is never written: the caller decides before appending.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The error an injected record failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RecordFault {
    /// `ProvisionedThroughputExceededException`, as a throttled shard answers.
    #[default]
    #[serde(rename = "ProvisionedThroughputExceededException")]
    Throttled,
    /// `InternalFailure`.
    #[serde(rename = "InternalFailure")]
    InternalFailure,
}

impl RecordFault {
    /// The error code clients see (and the configuration names).
    pub fn code(self) -> &'static str {
        match self {
            RecordFault::Throttled => "ProvisionedThroughputExceededException",
            RecordFault::InternalFailure => "InternalFailure",
        }
    }
}

/// What to inject, as fractions in 0..=1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRules {
    /// Fraction of PutRecords/PutRecord records that fail individually.
    pub record_failure_rate: f64,
    /// Which error those records report.
    pub record_failure: RecordFault,
    /// Fraction of requests answered `500 InternalFailure`.
    pub internal_failure_rate: f64,
    /// Fraction of requests answered `503 ServiceUnavailable`.
    pub service_unavailable_rate: f64,
    /// Fraction of GetRecords calls answered `ProvisionedThroughputExceededException`.
    pub get_records_failure_rate: f64,
    /// Added latency in ms: a fixed value, or a range `[min, max]` drawn uniformly.
    pub latency_ms: Option<Latency>,
}

/// Added latency: `250` or `[100, 400]` (ms) in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Latency {
    /// Always this many ms.
    Fixed(u64),
    /// Uniformly drawn from `[min, max]` ms.
    Range([u64; 2]),
}

impl Latency {
    fn bounds(self) -> (u64, u64) {
        match self {
            Latency::Fixed(ms) => (ms, ms),
            Latency::Range([lo, hi]) => (lo, hi),
        }
    }
}

/// Longest latency that may be injected: 5 minutes, longer than any SDK's timeout.
pub const MAX_INJECTED_LATENCY_MS: u64 = 300_000;

impl FaultRules {
    /// Checks that every rate is a fraction and the latency range is ordered.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("record_failure_rate", self.record_failure_rate),
            ("internal_failure_rate", self.internal_failure_rate),
            ("service_unavailable_rate", self.service_unavailable_rate),
            ("get_records_failure_rate", self.get_records_failure_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if self.internal_failure_rate + self.service_unavailable_rate > 1.0 {
            return Err(
                "internal_failure_rate + service_unavailable_rate must not exceed 1".into(),
            );
        }
        if let Some(latency) = self.latency_ms {
            let (lo, hi) = latency.bounds();
            if lo > hi {
                return Err(format!("latency_ms range [{lo}, {hi}] is reversed"));
            }
            if hi > MAX_INJECTED_LATENCY_MS {
                return Err(format!(
                    "latency_ms must be at most {MAX_INJECTED_LATENCY_MS} ms, got {hi}"
                ));
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        *self == FaultRules::default()
    }
}

/// The whole fault configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Seed of the random sequence: the same seed and the same requests give the same faults.
    pub seed: u64,
    /// Rules for every stream without its own.
    pub global: FaultRules,
    /// Rules by stream name.
    pub streams: BTreeMap<String, FaultRules>,
}

impl FaultConfig {
    /// Checks every rule.
    pub fn validate(&self) -> Result<(), String> {
        self.global.validate()?;
        for (name, rules) in &self.streams {
            rules
                .validate()
                .map_err(|e| format!("stream {name}: {e}"))?;
        }
        Ok(())
    }
}

/// A request-level fault to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// 500 InternalFailure.
    InternalFailure,
    /// 503 ServiceUnavailable.
    ServiceUnavailable,
    /// ProvisionedThroughputExceededException on GetRecords.
    ReadThrottled,
}

impl RequestFault {
    /// The error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            RequestFault::InternalFailure => "InternalFailure",
            RequestFault::ServiceUnavailable => "ServiceUnavailable",
            RequestFault::ReadThrottled => "ProvisionedThroughputExceededException",
        }
    }
}

/// Counts of what was injected, by the error code clients see, for the admin API and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Records failed, by error.
    pub records: HashMap<String, u64>,
    /// Requests failed, by error.
    pub requests: HashMap<String, u64>,
    /// Requests delayed.
    pub delayed: u64,
}

/// SplitMix64: tiny, fast, and a fixed sequence for a seed; no dependency needed.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
struct State {
    config: FaultConfig,
    rng: SplitMix64,
    counts: FaultCounts,
}

/// The live fault injector. Every decision draws from one seeded sequence under one
/// lock, so a run with a seed and a fixed order of requests is reproducible. The lock is
/// only taken when some rule is set (checked without it... see `active`).
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
    active: std::sync::atomic::AtomicBool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultConfig::default())
    }
}

impl Faults {
    /// An injector with `config`.
    pub fn new(config: FaultConfig) -> Self {
        let active = !config.global.is_empty() || config.streams.values().any(|r| !r.is_empty());
        Faults {
            state: Mutex::new(State {
                rng: SplitMix64(config.seed),
                config,
                counts: FaultCounts::default(),
            }),
            active: std::sync::atomic::AtomicBool::new(active),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the configuration and restarts the random sequence from its seed.
    pub fn configure(&self, config: FaultConfig) {
        let active = !config.global.is_empty() || config.streams.values().any(|r| !r.is_empty());
        let mut st = self.lock();
        st.rng = SplitMix64(config.seed);
        st.config = config;
        self.active
            .store(active, std::sync::atomic::Ordering::Release);
        tracing::info!(config = ?st.config, "fault injection configured");
    }

    /// The configuration in force.
    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// What has been injected so far.
    pub fn counts(&self) -> FaultCounts {
        self.lock().counts.clone()
    }

    fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Acquire)
    }

    fn rules<'a>(config: &'a FaultConfig, stream: &str) -> &'a FaultRules {
        config.streams.get(stream).unwrap_or(&config.global)
    }

    /// Decides the request-level fault and added latency for one data-plane request.
    pub fn on_request(
        &self,
        stream: &str,
        is_get_records: bool,
    ) -> (Option<RequestFault>, Duration) {
        if !self.is_active() {
            return (None, Duration::ZERO);
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        let rules = Self::rules(&st.config, stream).clone();
        let delay = match rules.latency_ms.map(Latency::bounds) {
            Some((lo, hi)) if hi > 0 => {
                st.counts.delayed += 1;
                // Validation keeps hi ≤ MAX_INJECTED_LATENCY_MS, so the span cannot overflow.
                let span = hi.saturating_sub(lo).saturating_add(1);
                Duration::from_millis(lo.saturating_add(st.rng.next_u64() % span))
            }
            _ => Duration::ZERO,
        };
        let draw = st.rng.next_f64();
        let fault = if draw < rules.internal_failure_rate {
            Some(RequestFault::InternalFailure)
        } else if draw < rules.internal_failure_rate + rules.service_unavailable_rate {
            Some(RequestFault::ServiceUnavailable)
        } else if is_get_records && st.rng.next_f64() < rules.get_records_failure_rate {
            Some(RequestFault::ReadThrottled)
        } else {
            None
        };
        if let Some(f) = fault {
            *st.counts.requests.entry(f.code().to_string()).or_default() += 1;
            tracing::info!(stream, fault = ?f, "injected request fault");
        }
        (fault, delay)
    }

    /// Decides, for each of `n` records of a put, whether injection fails it.
    pub fn on_records(&self, stream: &str, n: usize) -> Vec<Option<RecordFault>> {
        if !self.is_active() {
            return vec![None; n];
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        let rules = Self::rules(&st.config, stream).clone();
        let out: Vec<Option<RecordFault>> = (0..n)
            .map(|_| {
                (st.rng.next_f64() < rules.record_failure_rate).then_some(rules.record_failure)
            })
            .collect();
        let failed = out.iter().flatten().count() as u64;
        if failed > 0 {
            *st.counts
                .records
                .entry(rules.record_failure.code().to_string())
                .or_default() += failed;
            tracing::info!(stream, failed, "injected record failures");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64, rate: f64) -> FaultConfig {
        FaultConfig {
            seed,
            global: FaultRules {
                record_failure_rate: rate,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn same_seed_gives_the_same_faults() {
        let a = Faults::new(config(42, 0.3));
        let b = Faults::new(config(42, 0.3));
        assert_eq!(a.on_records("s", 500), b.on_records("s", 500));
        let c = Faults::new(config(43, 0.3));
        assert_ne!(
            Faults::new(config(42, 0.3)).on_records("s", 500),
            c.on_records("s", 500)
        );
    }

    #[test]
    fn rate_is_roughly_respected_and_counted() {
        let f = Faults::new(config(7, 0.25));
        let failed = f.on_records("s", 10_000).iter().flatten().count();
        assert!((2200..2800).contains(&failed), "{failed}");
        assert_eq!(
            f.counts().records["ProvisionedThroughputExceededException"],
            failed as u64
        );
    }

    #[test]
    fn stream_rules_replace_global_ones() {
        let mut c = config(1, 1.0);
        c.streams.insert("calm".into(), FaultRules::default());
        let f = Faults::new(c);
        assert!(f.on_records("calm", 100).iter().all(Option::is_none));
        assert!(f.on_records("other", 100).iter().all(Option::is_some));
    }

    #[test]
    fn no_rules_means_no_faults_and_no_delay() {
        let f = Faults::default();
        assert_eq!(f.on_request("s", true), (None, Duration::ZERO));
    }

    #[test]
    fn invalid_rates_are_rejected() {
        assert!(config(0, 1.5).validate().is_err());
        let mut c = FaultConfig::default();
        c.global.latency_ms = Some(Latency::Range([10, 5]));
        assert!(c.validate().is_err());
        c.global.latency_ms = Some(Latency::Range([0, u64::MAX]));
        assert!(c.validate().is_err());
    }

    #[test]
    fn latency_range_is_drawn_within_bounds() {
        let mut c = FaultConfig::default();
        c.global.latency_ms = Some(Latency::Range([5, 9]));
        let f = Faults::new(c);
        for _ in 0..100 {
            let (_, d) = f.on_request("s", false);
            assert!((5..=9).contains(&(d.as_millis() as u64)));
        }
    }
}
