//! The simulator's only source of randomness: a seeded xoshiro256** generator.
//!
//! Why not the `rand` crate: reproducing a failing seed must keep working across
//! dependency upgrades, and `rand` does not promise value stability of its
//! distributions (`gen_range` changed between 0.8 and 0.9). The generator is
//! twenty lines, so we own it: a seed printed today replays the same run
//! tomorrow. Sub-seeds come from `fork`, so adding a random draw in one
//! subsystem (say, the network) does not shift the draws of another.

/// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        let mut mix = seed;
        let state = [
            splitmix64(&mut mix),
            splitmix64(&mut mix),
            splitmix64(&mut mix),
            splitmix64(&mut mix),
        ];
        // splitmix64 never yields four zero words from one seed, but the
        // all-zero state would be a fixed point: assert the invariant.
        assert!(state.iter().any(|word| *word != 0));
        SimRng { state }
    }

    /// An independent generator for a subsystem, derived from this one's seed
    /// material and a stable tag (not from how many draws were made so far).
    pub fn fork(seed: u64, tag: u64) -> SimRng {
        let mut mix = seed ^ tag.wrapping_mul(0xA076_1D64_78BD_642F);
        SimRng::new(splitmix64(&mut mix))
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = self.state[1] << 17;
        self.state[2] ^= self.state[0];
        self.state[3] ^= self.state[1];
        self.state[1] ^= self.state[2];
        self.state[0] ^= self.state[3];
        self.state[2] ^= shifted;
        self.state[3] = self.state[3].rotate_left(45);
        result
    }

    /// Uniform in `lo..=hi` (Lemire's multiply-shift; the tiny bias is
    /// irrelevant for fault injection and keeps the mapping simple and stable).
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        let scaled = (u128::from(self.next_u64()) * u128::from(span + 1)) >> 64;
        let value = lo + scaled as u64;
        debug_assert!(value >= lo && value <= hi);
        value
    }

    /// Uniform index in `0..len`.
    pub fn index(&mut self, len: usize) -> usize {
        assert!(len > 0, "index into an empty collection");
        self.range_inclusive(0, len as u64 - 1) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `probability` (clamped to `[0, 1]`).
    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_forks_differ() {
        let mut first = SimRng::new(42);
        let mut second = SimRng::new(42);
        let draws: Vec<u64> = (0..100).map(|_| first.next_u64()).collect();
        assert!(draws.iter().all(|draw| *draw == second.next_u64()));
        let mut forked = SimRng::fork(42, 1);
        let mut other = SimRng::fork(42, 2);
        assert_ne!(forked.next_u64(), other.next_u64());
    }

    #[test]
    fn ranges_stay_in_bounds_and_cover() {
        let mut rng = SimRng::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let value = rng.range_inclusive(3, 7);
            assert!((3..=7).contains(&value));
            seen[(value - 3) as usize] = true;
        }
        assert!(seen.iter().all(|hit| *hit));
        let hits = (0..10_000).filter(|_| rng.chance(0.2)).count();
        assert!(
            (1_700..2_300).contains(&hits),
            "chance(0.2) hit {hits} of 10000"
        );
    }
}
