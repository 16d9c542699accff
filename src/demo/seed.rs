//! Deterministic sub-seeds: every part of the generator draws from its own ChaCha stream,
//! derived from the spec's seed and a few labels, so changing one part (say, the component
//! count) never shifts the random numbers of another (the grid layout).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Stream labels.
pub(crate) const LATTICE: u64 = 1;
pub(crate) const DISTRICT: u64 = 2;
pub(crate) const STREETS: u64 = 3;
pub(crate) const COMMUNITIES: u64 = 4;
pub(crate) const GRIDS: u64 = 5;
pub(crate) const NAMES: u64 = 6;
pub(crate) const PEOPLE: u64 = 7;
pub(crate) const COMPONENTS: u64 = 8;
pub(crate) const UNITS: u64 = 9;

/// SplitMix64 finaliser: a good 64-bit mixing function.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from `seed` and a path of labels.
pub(crate) fn derive(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(splitmix(seed), |h, &p| splitmix(h ^ splitmix(p)))
}

/// A random stream for one part of the generator.
pub(crate) fn rng(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, parts))
}
