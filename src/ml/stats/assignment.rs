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
//!
//! `variant(user, experiment, weights)` splits by weight: the user's bucket `b` among
//! 1,000,000 is a position `b / 1e6` in `[0, 1)`, and the variant is the first whose
//! cumulative share of the weights exceeds it:
//!
//! ```python
//! def variant(user: str, experiment: str, weights: list[float]) -> int:
//!     b, total, cumulative = bucket(user, experiment, 1_000_000), sum(weights), 0.0
//!     for i, w in enumerate(weights):
//!         cumulative += w
//!         if b * total < cumulative * 1_000_000:
//!             return i
//!     return len(weights) - 1
//! ```

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

/// The index of the variant of `user` in `experiment` when the variants have `weights`
/// (any positive numbers; they need not sum to 1 or 100).
///
/// ```
/// use martdb::ml::stats::variant;
/// let v = variant("user-42", "checkout_button", &[50.0, 25.0, 25.0]).unwrap();
/// assert!(v < 3);
/// assert!(variant("user-42", "checkout_button", &[]).is_err());
/// ```
pub fn variant(user: &str, experiment: &str, weights: &[f64]) -> Result<usize, StatsError> {
    if weights.is_empty() {
        return Err(StatsError::NoVariants);
    }
    if let Some((row, &weight)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(**w > 0.0 && w.is_finite()))
    {
        return Err(StatsError::Weight { row, weight });
    }
    let position = f64::from(bucket(user, experiment, MAX_BUCKETS)?);
    let total: f64 = weights.iter().sum();
    let mut cumulative = 0.0;
    for (i, w) in weights.iter().enumerate() {
        cumulative += w;
        if position * total < cumulative * MAX_BUCKETS as f64 {
            return Ok(i);
        }
    }
    Ok(weights.len() - 1)
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
    fn variants_follow_their_weights() {
        let mut counts = [0u32; 3];
        for u in 0..60_000 {
            counts[variant(&format!("u{u}"), "split", &[2.0, 1.0, 1.0]).unwrap()] += 1;
        }
        for (count, share) in counts.iter().zip([0.5, 0.25, 0.25]) {
            let expected = 60_000.0 * share;
            assert!(
                (*count as f64 - expected).abs() < 5.0 * expected.sqrt(),
                "{counts:?}"
            );
        }
        assert_eq!(variant("u", "e", &[1.0]).unwrap(), 0);
        assert_eq!(
            variant("u", "e", &[1.0, -1.0]),
            Err(StatsError::Weight {
                row: 1,
                weight: -1.0
            })
        );
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
