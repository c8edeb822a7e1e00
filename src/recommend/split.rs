//! The evaluation's seeded split: each rating goes to the test set with probability 0.2,
//! by a shuffle of the ratings with a fixed seed (the same on every machine: the generator
//! is ours, not a library's whose stream may change between versions).

use super::Rating;

/// SplitMix64: small, fast and fully specified, so a seed means the same split everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Splits `ratings` into (train, test): a Fisher–Yates shuffle with `seed`, then the first
/// `round(len × test_fraction)` ratings are the test set. Both keep the shuffled order,
/// which is the order a reference implementation is given them in.
pub fn train_test(ratings: &[Rating], test_fraction: f64, seed: u64) -> (Vec<Rating>, Vec<Rating>) {
    let mut shuffled = ratings.to_vec();
    let mut rng = SplitMix64::new(seed);
    for i in (1..shuffled.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        shuffled.swap(i, j);
    }
    let fraction = test_fraction.clamp(0.0, 1.0);
    let n_test = (shuffled.len() as f64 * fraction).round() as usize;
    let train = shuffled.split_off(n_test);
    (train, shuffled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // First outputs for seed 1234567 from the reference C implementation (Vigna).
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
    }

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let ratings: Vec<Rating> = (0..100)
            .map(|i| Rating {
                user: i % 7,
                item: i,
                value: 3.0,
            })
            .collect();
        let (train, test) = train_test(&ratings, 0.2, 42);
        assert_eq!((train.len(), test.len()), (80, 20));
        let mut items: Vec<u32> = train.iter().chain(&test).map(|r| r.item).collect();
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
        assert_eq!(train_test(&ratings, 0.2, 42).1, test);
        assert_ne!(train_test(&ratings, 0.2, 43).1, test);
    }
}
