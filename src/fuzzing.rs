//! What the bounded fuzz tests of the decoders share: a seeded generator, the run's size,
//! and [`Run`], which checks every input (no panic, no input over [`MAX_INPUT_TIME`]) and
//! reports the run. The targets: `fuzz` tests beside each decoder (JSON bodies of every
//! operation and CBOR bodies in `protocol`, event-stream frames, sequence numbers, shard
//! iterators, receipt handles, NextTokens, resource policies, SigV4 headers and presigned
//! queries, the admin and Lambda mapping APIs, the credentials file) and
//! `storage/src/fuzz_tests.rs` (on-disk frames, segment headers, index, journal and
//! metadata files, recovery), which includes this file.
//!
//! Each target mutates valid inputs for a bounded number of iterations, so CI runs them
//! all in well under a minute; `scripts/fuzz-long` sets `KINESIS_FUZZ_ITERATIONS` (and
//! `KINESIS_FUZZ_SEED` explores elsewhere). A failure names the target, seed and iteration.

/// SplitMix64: deterministic, seeded, no dependency.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True once in `one_in` draws on average.
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Iterations of this run: `KINESIS_FUZZ_ITERATIONS`, else `default`.
pub fn iterations(default: usize) -> usize {
    std::env::var("KINESIS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How many worker threads a [`Run::parallel`] target uses: `KINESIS_FUZZ_THREADS`, else 1
/// (CI's bounded run stays on one thread; `scripts/fuzz-long` uses every core).
pub fn threads() -> usize {
    std::env::var("KINESIS_FUZZ_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1)
}

/// The first iteration a [`Run::parallel`] target tries: `KINESIS_FUZZ_FROM`, else 0. With
/// the seed, it replays a failing iteration alone.
pub fn first_iteration() -> usize {
    std::env::var("KINESIS_FUZZ_FROM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The wall-clock budget of a [`Run::parallel`] target: `KINESIS_FUZZ_SECONDS`, else none.
/// A run out of time stops early and reports the inputs it did try.
pub fn time_budget() -> Option<std::time::Duration> {
    std::env::var("KINESIS_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_secs_f64)
}

/// The seed of this run: `KINESIS_FUZZ_SEED`, else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("KINESIS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The longest one input may take before the run counts it as a hang.
pub const MAX_INPUT_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// One fuzz target's run: its seeded generator, its size, and the checks every input gets
/// (no panic, no hang). [`Run::finish`] prints one `fuzz-target` line that
/// `scripts/fuzz-long` collects into its table.
pub struct Run {
    name: &'static str,
    seed: u64,
    iterations: usize,
    started: std::time::Instant,
    /// Inputs a [`Run::parallel`] target tried (it may stop early); `None` for the others.
    tried: std::sync::Mutex<Option<usize>>,
    /// The run's generator, seeded from `KINESIS_FUZZ_SEED` or the target's default.
    pub rng: Rng,
}

impl Run {
    /// A run of `name` with its CI defaults, overridden by the environment.
    pub fn new(name: &'static str, default_iterations: usize, default_seed: u64) -> Run {
        let seed = seed(default_seed);
        Run {
            name,
            seed,
            iterations: iterations(default_iterations),
            started: std::time::Instant::now(),
            tried: std::sync::Mutex::new(None),
            rng: Rng(seed),
        }
    }

    /// How many inputs this run tries.
    pub fn iterations(&self) -> usize {
        self.iterations
    }

    /// Runs `decode` on input `i`: a panic or more than [`MAX_INPUT_TIME`] fails the run,
    /// naming the target, seed, iteration and `shown()` (a printable form of the input).
    pub fn input<T>(&self, i: usize, shown: impl Fn() -> String, decode: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
        let took = started.elapsed();
        let Ok(value) = outcome else {
            panic!(
                "{}: panic on input {} (seed {}, iteration {i})",
                self.name,
                shown(),
                self.seed
            );
        };
        assert!(
            took <= MAX_INPUT_TIME,
            "{}: {took:?} on input {} (seed {}, iteration {i})",
            self.name,
            shown(),
            self.seed
        );
        value
    }

    /// The generator of input `i` alone: a hash of the run's seed and `i`, so inputs do not
    /// depend on each other and any one is replayed with `KINESIS_FUZZ_FROM`.
    pub fn rng_of(&self, i: usize) -> Rng {
        let mut mix = Rng(self.seed ^ (i as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
        Rng(mix.next())
    }

    /// Runs the inputs from [`first_iteration`] to the run's end on [`threads`] workers.
    /// Each worker builds its own state with `setup` (a scratch directory, say) and calls
    /// `each(state, rng, i)` for its share of the inputs, `rng` being [`Run::rng_of`]`(i)`;
    /// `each` checks its input with [`Run::input`]. The first failure stops every worker
    /// and fails the run. Progress goes to stderr every million inputs, and the run stops
    /// early when its [`time_budget`] is spent.
    pub fn parallel<S>(
        &self,
        setup: impl Fn() -> S + Sync,
        each: impl Fn(&mut S, &mut Rng, usize) + Sync,
    ) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        // Inputs are handed out in blocks so the shared counter is not a hot spot.
        const BLOCK: usize = 64;
        const PROGRESS_EVERY: usize = 1_000_000;
        let deadline = time_budget().map(|budget| self.started + budget);
        let next = AtomicUsize::new(first_iteration());
        let tried = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        /// Marks the run failed when its worker unwinds, so the others stop early.
        struct StopOthersOnPanic<'a>(&'a AtomicBool);
        impl Drop for StopOthersOnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
        }
        let worker = || {
            let _guard = StopOthersOnPanic(&failed);
            let mut state = setup();
            while !failed.load(Ordering::Relaxed)
                && deadline.is_none_or(|d| std::time::Instant::now() < d)
            {
                let from = next.fetch_add(BLOCK, Ordering::Relaxed);
                if from >= self.iterations {
                    break;
                }
                let to = (from + BLOCK).min(self.iterations);
                for i in from..to {
                    each(&mut state, &mut self.rng_of(i), i);
                }
                let before = tried.fetch_add(to - from, Ordering::Relaxed);
                if before / PROGRESS_EVERY != (before + to - from) / PROGRESS_EVERY {
                    eprintln!(
                        "fuzz-progress {} inputs {} secs {:.0}",
                        self.name,
                        before + to - from,
                        self.started.elapsed().as_secs_f64()
                    );
                }
            }
        };
        std::thread::scope(|scope| {
            let workers: Vec<_> = (1..threads()).map(|_| scope.spawn(worker)).collect();
            worker();
            for w in workers {
                if let Err(panic) = w.join() {
                    std::panic::resume_unwind(panic);
                }
            }
        });
        *self.tried.lock().unwrap_or_else(|p| p.into_inner()) = Some(tried.into_inner());
    }

    /// Prints the run's totals.
    pub fn finish(self) {
        let secs = self.started.elapsed().as_secs_f64();
        let tried = self
            .tried
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(self.iterations);
        eprintln!(
            "fuzz-target {} inputs {} secs {:.1} per-sec {:.0} seed {}",
            self.name,
            tried,
            secs,
            tried as f64 / secs.max(1e-9),
            self.seed
        );
    }
}

/// A printable prefix of a byte input, for failure messages.
pub fn show(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(300)];
    format!("{:?} ({} bytes)", String::from_utf8_lossy(cut), bytes.len())
}

/// Generic byte-level damage shared by the targets: a bit flip, a cut, an inserted or
/// overwritten run of bytes from `alphabet`, a duplicated or a spliced slice of `other`.
pub fn damage(rng: &mut Rng, bytes: &mut Vec<u8>, alphabet: &[u8], other: &[u8]) {
    match rng.below(7) {
        0 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        1 => bytes.truncate(rng.below(bytes.len() + 1)),
        2 => {
            let at = rng.below(bytes.len() + 1);
            let n = 1 + rng.below(8);
            let run: Vec<u8> = (0..n).map(|_| pick(rng, alphabet)).collect();
            bytes.splice(at..at, run);
        }
        3 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] = pick(rng, alphabet);
        }
        4 if !bytes.is_empty() => {
            let from = rng.below(bytes.len());
            let to = from + rng.below(bytes.len() - from + 1);
            let copy = bytes[from..to].to_vec();
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, copy);
        }
        5 if !other.is_empty() => {
            let cut = rng.below(bytes.len() + 1);
            let from = rng.below(other.len());
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from..]);
        }
        _ if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes.remove(at);
        }
        _ => bytes.push(pick(rng, alphabet)),
    }
}

/// A byte of `alphabet`, or any byte when it is empty.
pub fn pick(rng: &mut Rng, alphabet: &[u8]) -> u8 {
    if alphabet.is_empty() {
        rng.next() as u8
    } else {
        alphabet[rng.below(alphabet.len())]
    }
}
