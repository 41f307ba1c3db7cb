//! What the bounded fuzz tests of the decoders share (JSON and CBOR bodies, event-stream
//! frames, sequence numbers, iterators, resource policy documents in `policy`, SigV4
//! `Authorization` headers and presigned queries in `http::sigv4_verify`): a seeded generator
//! and the run's size.
//!
//! Each decoder's tests mutate valid inputs for a bounded number of iterations, so CI runs
//! them in about a second; a longer run sets `KINESIS_FUZZ_ITERATIONS` (and
//! `KINESIS_FUZZ_SEED` to explore elsewhere). A failure names the seed and the iteration.

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

/// The seed of this run: `KINESIS_FUZZ_SEED`, else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("KINESIS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
