//! Seeded random streams. Every image draws from its own ChaCha8 stream, keyed by (seed, split,
//! index), and only raw `next_u64` words are used (no distribution code of `rand`), so the same seed
//! gives the same world across dependency upgrades and however the work is split across threads.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded stream with the few draws the generator needs.
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream of item `index` of split `split` under `seed`.
    pub fn for_item(seed: u64, split: u64, index: u64) -> Rng {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream((split << 40) ^ index);
        Rng(r)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn u01(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[a, b)`.
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.u01()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        ((self.u01() * n as f64) as usize).min(n - 1)
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.u01() < p
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}
