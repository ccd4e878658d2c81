//! Random-number plumbing for the demo generator: seeding of independent streams, and the few
//! distributions the generator samples from.
//!
//! The distributions are written here instead of taken from `rand`'s `Rng` helpers so that the
//! generated data depends only on the ChaCha8 key stream (which is specified and portable), not
//! on the sampling algorithms of a particular `rand` release.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The independent random streams of the generator.
///
/// Each table draws from its own streams so that tables can be generated independently of each
/// other; tables that must agree on something (every table derived from user profiles, orders and
/// the campaign's purchase history, events and orders) replay the shared stream.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stream {
    /// User profiles (the `users` table and the hidden traits other tables use), per user chunk.
    Profiles = 1,
    /// The identifiers each user owns, per user chunk.
    Identifiers,
    /// Observations of identity edges, per user chunk.
    Edges,
    /// User tags, per user chunk.
    Tags,
    /// Funnel counts (views, clicks, carts, orders) per user, per user chunk.
    Funnel,
    /// Details of orders (time, category, amount, coupon), per user chunk.
    Orders,
    /// Details of the non-order events, per user chunk.
    Browsing,
    /// Campaign sample, assignment and outcomes, per user chunk.
    Campaign,
    /// Coupon pool parameters (one stream).
    CouponPools,
    /// Per-store size factors of the sales series, per store.
    Stores,
    /// One daily sales series, per series.
    SalesSeries,
    /// Marketing touches before orders and of users who do not order, per user chunk.
    /// (New streams go last: a stream's number is part of its key.)
    Touchpoints,
}

/// SplitMix64's finaliser: a bijection on `u64` that scrambles its input thoroughly.
///
/// Being a bijection matters: identifier values are `mix64` of distinct inputs, so they are
/// distinct by construction instead of merely unlikely to collide.
pub(super) const fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The generator for part `index` (a user chunk, a series, a store) of `stream`.
///
/// The ChaCha key comes from (seed, stream) and `index` selects one of ChaCha's 2^64 independent
/// streams under that key, so any part can be generated without replaying the parts before it.
pub(super) fn stream_rng(seed: u64, stream: Stream, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    let mut state = seed ^ mix64(stream as u64);
    for word in key.chunks_exact_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        word.copy_from_slice(&mix64(state).to_le_bytes());
    }
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

/// Samples drawn from any `RngCore`.
pub(super) trait Draw: RngCore {
    /// Uniform in [0, 1), with 53 random bits.
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0), by multiply-shift; the bias (below 2^-32 for any n used here) is
    /// irrelevant for synthetic data and keeps the draw count fixed at one.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    #[inline]
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal, by Box–Muller (one of the pair is discarded to keep the code stateless).
    fn normal(&mut self) -> f64 {
        let radius = (-2.0 * (1.0 - self.unit()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.unit()).cos()
    }

    /// Exponential with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Log-normal with the given median and log-scale standard deviation.
    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Poisson with mean `lambda`: exact inversion for small means, the normal approximation for
    /// large ones (where the difference does not matter for demo data and inversion gets slow).
    fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).round().max(0.0) as u64;
        }
        let u = self.unit();
        let mut k = 0u64;
        let mut pmf = (-lambda).exp();
        let mut cdf = pmf;
        // The cap guards against the cdf stopping just short of 1 through rounding.
        while u >= cdf && k < 1000 {
            k += 1;
            pmf *= lambda / k as f64;
            cdf += pmf;
        }
        k
    }

    /// Binomial(n, p) with 0 <= p < 1: inversion (one uniform) while the mean is small, the
    /// normal approximation beyond.
    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if n == 0 || p <= 0.0 {
            return 0;
        }
        let mean = n as f64 * p;
        if mean > 30.0 {
            let sd = (mean * (1.0 - p)).sqrt();
            return ((mean + sd * self.normal()).round().max(0.0) as u64).min(n);
        }
        let u = self.unit();
        let odds = p / (1.0 - p);
        let mut k = 0u64;
        let mut pmf = (1.0 - p).powi(n.min(i32::MAX as u64) as i32);
        let mut cdf = pmf;
        while u >= cdf && k < n {
            pmf *= (n - k) as f64 / (k + 1) as f64 * odds;
            k += 1;
            cdf += pmf;
        }
        k
    }
}

impl<R: RngCore + ?Sized> Draw for R {}

/// A discrete distribution over `0..n` sampled in O(1) with one 64-bit draw (Vose's alias
/// method): the high half of the draw picks a column, the low half decides between the column
/// and its alias.
#[derive(Debug, Clone)]
pub(super) struct AliasTable {
    /// Keep column `i` when the low 32 bits of the draw are below `keep_below[i]` (out of 2^32).
    keep_below: Vec<u64>,
    alias: Vec<u32>,
}

impl AliasTable {
    /// A table for the given non-negative weights (at least one positive).
    pub(super) fn new(weights: &[f64]) -> Self {
        let n = weights.len();
        assert!(
            n > 0 && n <= u32::MAX as usize,
            "alias table needs 1..2^32 weights"
        );
        let total: f64 = weights.iter().sum();
        assert!(total > 0.0, "alias table needs a positive weight");
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut keep_below = vec![1u64 << 32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            keep_below[s] = (scaled[s] * (1u64 << 32) as f64) as u64;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left has (up to rounding) weight exactly 1: always keep it.
        Self { keep_below, alias }
    }

    /// One outcome.
    #[inline]
    pub(super) fn sample(&self, rng: &mut impl RngCore) -> usize {
        let x = rng.next_u64();
        let column = (((x >> 32) * self.alias.len() as u64) >> 32) as usize;
        if (x & 0xffff_ffff) < self.keep_below[column] {
            column
        } else {
            self.alias[column] as usize
        }
    }
}

/// Zipf weights 1/(k+1)^exponent for ranks k = 0..n: a few outcomes are very popular, the rest
/// form a long tail.
pub(super) fn zipf_weights(n: usize, exponent: f64) -> Vec<f64> {
    (0..n).map(|k| ((k + 1) as f64).powf(-exponent)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_table_follows_weights() {
        let table = AliasTable::new(&[1.0, 0.0, 3.0, 6.0]);
        let mut rng = stream_rng(7, Stream::Profiles, 0);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[table.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (count, expected) in counts.iter().zip([0.1, 0.0, 0.3, 0.6]) {
            assert!(
                (f64::from(*count) / 100_000.0 - expected).abs() < 0.01,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn streams_are_distinct_and_reproducible() {
        let draw = |stream, index| stream_rng(1, stream, index).next_u64();
        assert_eq!(draw(Stream::Tags, 3), draw(Stream::Tags, 3));
        assert_ne!(draw(Stream::Tags, 3), draw(Stream::Tags, 4));
        assert_ne!(draw(Stream::Tags, 3), draw(Stream::Edges, 3));
    }

    #[test]
    fn counting_distributions_have_the_right_mean() {
        let mut rng = stream_rng(3, Stream::Funnel, 0);
        let trials = 20_000;
        for lambda in [0.3, 4.0, 50.0] {
            let mean = (0..trials).map(|_| rng.poisson(lambda)).sum::<u64>() as f64 / trials as f64;
            assert!(
                (mean - lambda).abs() < 0.05 * lambda + 0.02,
                "poisson({lambda}) mean {mean}"
            );
        }
        for (n, p) in [(5, 0.35), (200, 0.5)] {
            let mean = (0..trials).map(|_| rng.binomial(n, p)).sum::<u64>() as f64 / trials as f64;
            let expected = n as f64 * p;
            assert!(
                (mean - expected).abs() < 0.03 * expected,
                "binomial({n}, {p}) mean {mean}"
            );
        }
    }
}
