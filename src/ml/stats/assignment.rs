//! Stable assignment of users to experiment buckets.
//!
//! `bucket(user, experiment, n)` hashes the UTF-8 bytes of `experiment`, one `:` and
//! `user` with 64-bit FNV-1a, mixes the hash with SplitMix64's finalizer (FNV-1a alone
//! keeps similar keys close), and maps it to `0..n` by multiply-shift: `(h * n) >> 64`.
//! This is the whole definition: other systems can compute the same buckets, e.g. in
//! Python:
//!
//! ```python
//! def bucket(user: str, experiment: str, n: int = 100) -> int:
//!     h = 0xCBF29CE484222325
//!     for b in f"{experiment}:{user}".encode():
//!         h = ((h ^ b) * 0x100000001B3) % 2**64
//!     h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
//!     h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) % 2**64
//!     h ^= h >> 31
//!     return (h * n) >> 64
//! ```
//!
//! The same user and experiment always give the same bucket; the experiment is part of
//! the key, so a user's buckets in two experiments are independent.

use super::StatsError;

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// The most buckets an experiment may have.
pub const MAX_BUCKETS: i64 = 1_000_000;

/// The bucket in `0..buckets` of `user` in `experiment`.
///
/// ```
/// use martdb::ml::stats::bucket;
/// let b = bucket("user-42", "checkout_button", 100).unwrap();
/// assert!(b < 100);
/// assert_eq!(b, bucket("user-42", "checkout_button", 100).unwrap());
/// assert!(bucket("user-42", "checkout_button", 0).is_err());
/// ```
pub fn bucket(user: &str, experiment: &str, buckets: i64) -> Result<u32, StatsError> {
    if !(1..=MAX_BUCKETS).contains(&buckets) {
        return Err(StatsError::Buckets { buckets });
    }
    let mut hash = FNV_OFFSET;
    for byte in experiment
        .bytes()
        .chain(std::iter::once(b':'))
        .chain(user.bytes())
    {
        hash = (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
    }
    let mixed = splitmix64(hash);
    Ok(((u128::from(mixed) * buckets as u128) >> 64) as u32)
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_uniform_and_independent_across_experiments() {
        let users = 100_000;
        let mut counts = [0u32; 10];
        let mut same = 0;
        for u in 0..users {
            let user = format!("u{u}");
            let a = bucket(&user, "exp_a", 10).unwrap();
            let b = bucket(&user, "exp_b", 10).unwrap();
            counts[a as usize] += 1;
            same += u32::from(a == b);
        }
        // Chi-square with 9 degrees of freedom: 27.9 is its 0.999 quantile.
        let expected = users as f64 / 10.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 27.9, "{counts:?} chi2 {chi2}");
        // Independent experiments agree for about one user in ten.
        let agree = same as f64 / users as f64;
        assert!((agree - 0.1).abs() < 0.005, "{agree}");
    }

    #[test]
    fn the_definition_is_pinned() {
        // Values from the Python definition in the module docs.
        assert_eq!(bucket("", "", 100).unwrap(), pinned("", "", 100));
        assert_eq!(
            bucket("user-42", "checkout_button", 100).unwrap(),
            pinned("user-42", "checkout_button", 100)
        );
    }

    /// The module docs' definition, written out again.
    fn pinned(user: &str, experiment: &str, n: u64) -> u32 {
        let mut h: u64 = 0xCBF29CE484222325;
        for b in format!("{experiment}:{user}").bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001B3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D049BB133111EB);
        h ^= h >> 31;
        ((h as u128 * n as u128) >> 64) as u32
    }
}
