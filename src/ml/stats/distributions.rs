//! The distribution functions the tests need: the standard normal, Student's t and the
//! chi-square distribution, to close to double precision (the differential test holds
//! them to 1e-9 relative against scipy).
//!
//! - Normal: `erfc` (libm, the FreeBSD/musl implementation, about 1 ulp); quantiles by
//!   Halley's iteration on the CDF from the Abramowitz-Stegun 26.2.23 start.
//! - Student's t: the regularized incomplete beta `I_x(df/2, 1/2)` by the modified Lentz
//!   continued fraction, with `ln x`, `ln(1 - x)` and `ln B` computed without
//!   cancellation, so that the large degrees of freedom of A/B tests with millions of
//!   users keep their precision; quantiles by safeguarded Newton iteration.
//! - Chi-square: the regularized upper incomplete gamma `Q(k/2, x/2)` (series or
//!   continued fraction).
//!
//! Upper tails (`sf`, `isf`) are computed directly, never as `1 - cdf`, so small p-values
//! keep their relative precision.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `P(Z > z)` for a standard normal `Z`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z * FRAC_1_SQRT_2)
}

/// `P(Z <= z)` for a standard normal `Z`.
pub fn normal_cdf(z: f64) -> f64 {
    normal_sf(-z)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * PI).sqrt()
}

/// The `z` with `P(Z > z) = q`, for `0 < q < 1`.
pub fn normal_isf(q: f64) -> f64 {
    debug_assert!(q > 0.0 && q < 1.0, "{q}");
    if q > 0.5 {
        return -normal_isf(1.0 - q);
    }
    // Abramowitz & Stegun 26.2.23: |error| < 4.5e-4; Halley's iteration then triples
    // the correct digits at each step.
    let t = (-2.0 * q.ln()).sqrt();
    let mut z = t
        - (2.515517 + 0.802853 * t + 0.010328 * t * t)
            / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
    for _ in 0..6 {
        let r = (normal_sf(z) - q) / normal_pdf(z);
        let step = r / (1.0 + z * r / 2.0);
        z += step;
        if step.abs() <= 1e-16 * z.abs() {
            break;
        }
    }
    z
}

/// `ln Γ(a) - ln Γ(a + b)` for `a > 0`, `b >= 0`, without the cancellation of the
/// difference of two large logarithms when `a` is large.
fn ln_gamma_ratio(a: f64, b: f64) -> f64 {
    if a < 10.0 {
        return libm::lgamma(a) - libm::lgamma(a + b);
    }
    // Stirling: ln Γ(z) = (z - 1/2) ln z - z + ln(2π)/2 + S(z); the difference of the
    // leading terms is rearranged around ln1p(b / a).
    fn series(z: f64) -> f64 {
        const C: [f64; 6] = [
            1.0 / 12.0,
            -1.0 / 360.0,
            1.0 / 1260.0,
            -1.0 / 1680.0,
            1.0 / 1188.0,
            -691.0 / 360360.0,
        ];
        let z2 = z * z;
        let mut power = z;
        let mut sum = 0.0;
        for c in C {
            sum += c / power;
            power *= z2;
        }
        sum
    }
    -b * a.ln() - (a + b - 0.5) * (b / a).ln_1p() + b + series(a) - series(a + b)
}

/// `ln B(a, b)`.
fn ln_beta(a: f64, b: f64) -> f64 {
    let (small, large) = if a < b { (a, b) } else { (b, a) };
    libm::lgamma(small) + ln_gamma_ratio(large, small)
}

/// The regularized incomplete beta `I_x(a, b)`, given `ln x` and `ln y` where
/// `y = 1 - x` (both passed so that neither is computed by a cancelling subtraction).
fn beta_inc(a: f64, b: f64, x: f64, y: f64, ln_x: f64, ln_y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let front = |a: f64, b: f64, ln_x: f64, ln_y: f64| (a * ln_x + b * ln_y - ln_beta(a, b)).exp();
    // The continued fraction converges quickly below the mean; above it, use
    // I_x(a, b) = 1 - I_y(b, a).
    if x < (a + 1.0) / (a + b + 2.0) {
        front(a, b, ln_x, ln_y) * beta_fraction(a, b, x) / a
    } else {
        1.0 - front(b, a, ln_y, ln_x) * beta_fraction(b, a, y) / b
    }
}

/// The continued fraction of the incomplete beta (modified Lentz). It needs
/// O(sqrt(max(a, b))) terms, so even a million degrees of freedom take a few thousand.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let max_terms = 1000 + 20 * (a.max(b).sqrt() as usize);
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=max_terms {
        let m = m as f64;
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + even * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + even / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + odd * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + odd / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Beyond this many degrees of freedom Student's t is the normal distribution to better
/// than 1e-10 relative.
const T_AS_NORMAL_DF: f64 = 1e11;

/// From this many degrees of freedom on, Hill's normalizing transformation replaces the
/// continued fraction, whose terms cancel more as `df` grows (about `df · 1e-16`
/// relative), while the transformation's error falls as `1 / df²`.
const T_BY_TRANSFORMATION_DF: f64 = 1e5;

/// `P(|T| > |t|)` by Hill's (1970, CACM algorithm 395) transformation to a normal
/// deviate: `z = √y (1 + ((...)/(0.8 y² + 100 + b) + y + 3) / b)` with
/// `y = (df - 1/2) ln(1 + t²/df)` and `b = 48 (df - 1/2)²`.
fn student_t_two_tails_by_transformation(t: f64, df: f64) -> f64 {
    let a = df - 0.5;
    let b = 48.0 * a * a;
    let y = a * (t * t / df).ln_1p();
    let z = (((((-0.4 * y - 3.3) * y - 24.0) * y - 85.5) / (0.8 * y * y + 100.0 + b) + y + 3.0)
        / b
        + 1.0)
        * y.sqrt();
    2.0 * normal_sf(z)
}

/// `P(T > t)` for Student's t with `df > 0` degrees of freedom.
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    if df > T_AS_NORMAL_DF {
        return normal_sf(t);
    }
    if t == 0.0 {
        return 0.5;
    }
    if df >= T_BY_TRANSFORMATION_DF {
        let two_tails = student_t_two_tails_by_transformation(t, df);
        return if t > 0.0 {
            two_tails / 2.0
        } else {
            1.0 - two_tails / 2.0
        };
    }
    // P(|T| > |t|) = I_x(df/2, 1/2) with x = df / (df + t²).
    let t2 = t * t;
    let x = df / (df + t2);
    let y = t2 / (df + t2);
    let ln_x = -(t2 / df).ln_1p();
    let ln_y = (t2 / df).ln() + ln_x;
    let two_tails = beta_inc(df / 2.0, 0.5, x, y, ln_x, ln_y);
    if t > 0.0 {
        two_tails / 2.0
    } else {
        1.0 - two_tails / 2.0
    }
}

fn student_t_pdf(t: f64, df: f64) -> f64 {
    let a = df / 2.0;
    (-ln_gamma_ratio(a, 0.5) - 0.5 * (df * PI).ln() - (a + 0.5) * (t * t / df).ln_1p()).exp()
}

/// The `t` with `P(T > t) = q` for Student's t with `df` degrees of freedom, `0 < q < 1`.
pub fn student_t_isf(q: f64, df: f64) -> f64 {
    debug_assert!(q > 0.0 && q < 1.0, "{q}");
    if df > T_AS_NORMAL_DF {
        return normal_isf(q);
    }
    if q > 0.5 {
        return -student_t_isf(1.0 - q, df);
    }
    if q == 0.5 {
        return 0.0;
    }
    // The root lies in [lo, hi]: sf(lo) > q > sf(hi). t's tails are heavier than the
    // normal's, so the normal quantile is a lower bound.
    let mut lo = 0.0;
    let mut hi = normal_isf(q).max(1.0);
    while student_t_sf(hi, df) > q {
        lo = hi;
        hi *= 2.0;
    }
    let mut t = normal_isf(q).clamp(lo, hi);
    for _ in 0..200 {
        let f = student_t_sf(t, df) - q;
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let newton = t + f / student_t_pdf(t, df);
        let next = if newton > lo && newton < hi {
            newton
        } else {
            (lo + hi) / 2.0
        };
        if (next - t).abs() <= 1e-15 * next.abs() {
            return next;
        }
        t = next;
    }
    t
}

/// `P(X > x)` for a chi-square `X` with `k` degrees of freedom.
pub fn chi_square_sf(x: f64, k: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(k / 2.0, x / 2.0)
}

/// The regularized upper incomplete gamma `Q(a, x) = Γ(a, x) / Γ(a)`.
fn gamma_q(a: f64, x: f64) -> f64 {
    let front = (a * x.ln() - x - libm::lgamma(a)).exp();
    if x < a + 1.0 {
        // P(a, x) = front · Σ x^n / (a (a+1) ... (a+n)).
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut n = a;
        for _ in 0..100_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        1.0 - front * sum
    } else {
        // Q(a, x) = front · 1 / (x + 1 - a - 1(1-a) / (x + 3 - a - ...)), modified Lentz.
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..100_000 {
            let i = i as f64;
            let an = -i * (i - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        front * h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * a.abs().max(b.abs())
    }

    #[test]
    fn normal_quantiles_invert_the_tail() {
        assert!(close(normal_isf(0.025), 1.959963984540054, 1e-15));
        // The tail's relative slope is about z, so z's last bit moves sf(z) by z · 1e-16
        // relative times z: 37 at 1e-300.
        for q in [1e-300, 1e-20, 1e-8, 0.001, 0.05, 0.3, 0.5, 0.7, 0.999] {
            let z = normal_isf(q);
            assert!(close(normal_sf(z), q, 1e-12), "{q}: {z}");
        }
    }

    #[test]
    fn t_matches_its_closed_forms() {
        // df = 1 is Cauchy: sf(t) = atan(1/t) / π for t > 0; df = 2 has
        // sf(t) = (1 - t / s) / 2 = 1 / (s (s + t)) with s = sqrt(t² + 2).
        for t in [0.3, 1.0, 4.0, 1e3] {
            let cauchy = f64::atan(1.0 / t) / PI;
            assert!(close(student_t_sf(t, 1.0), cauchy, 1e-13), "{t}");
            assert!(close(student_t_sf(-t, 1.0), 1.0 - cauchy, 1e-13), "{t}");
            let s = (t * t + 2.0).sqrt();
            assert!(
                close(student_t_sf(t, 2.0), 1.0 / (s * (s + t)), 1e-13),
                "{t}"
            );
        }
        // Many degrees of freedom approach the normal by about (t³ + t) φ(t) / (4 df).
        let (t, df) = (3.0, 1e7);
        let gap = student_t_sf(t, df) - normal_sf(t);
        let expected = (t * t * t + t) * normal_pdf(t) / (4.0 * df);
        assert!(close(gap, expected, 1e-3), "{gap} vs {expected}");
    }

    #[test]
    fn t_quantiles_invert_the_tail() {
        for df in [1.0, 2.5, 10.0, 123.4, 1e4, 1e5, 1e8] {
            for q in [1e-12, 0.001, 0.025, 0.2, 0.5, 0.975] {
                let t = student_t_isf(q, df);
                assert!(close(student_t_sf(t, df), q, 1e-12), "{df} {q}: {t}");
            }
        }
        // Cauchy: isf(q) = tan(π (1/2 - q)).
        assert!(close(student_t_isf(0.025, 1.0), (PI * 0.475).tan(), 1e-13));
    }

    #[test]
    fn chi_square_matches_its_closed_forms() {
        for x in [1e-6, 0.5, 3.84, 20.0, 300.0] {
            assert!(close(chi_square_sf(x, 2.0), (-x / 2.0).exp(), 1e-13), "{x}");
            let one = libm::erfc((x / 2.0).sqrt());
            assert!(close(chi_square_sf(x, 1.0), one, 1e-12), "{x}");
        }
        assert_eq!(chi_square_sf(0.0, 3.0), 1.0);
    }
}
