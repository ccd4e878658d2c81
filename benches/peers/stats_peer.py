"""The reference for martdb's experiment statistics (tests/it/stats_differential.rs).

Two requests. The first (p-value adjustment and buckets) is described below; the second,
{"proportions", "samples", "chi_square", "srm", "planning"}, runs each case through
scipy and statsmodels: proportions_ztest and confint_proportions_2indep, scipy's Welch
ttest_ind (on the raw values; CUPED on the values adjusted with θ from np.cov), the
delta method for ratios and relative lifts and GrowthBook's sequential interval written
out with numpy, chi2_contingency, chisquare, and NormalIndPower.

Reads JSON from stdin: {"adjust": [{"p": [...], "method": "holm"}, ...],
"buckets": [[user, experiment, n], ...]}; writes {"adjust": [[...], ...],
"buckets": [...]}: statsmodels' multipletests for each p-value set (NaN for a missing
p-value, which is left out, as R's p.adjust does), and the bucket of each assignment by
the definition documented in src/ml/stats/assignment.rs.
"""
import json
import sys

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests


def adjust(p, method):
    values = np.array([np.nan if v is None else v for v in p], dtype=float)
    present = ~np.isnan(values)
    out = [None] * len(p)
    if present.any():
        _, corrected, _, _ = multipletests(values[present], method=method)
        for i, v in zip(np.flatnonzero(present), corrected):
            out[int(i)] = float(v)
    return out


def bucket(user, experiment, n):
    h = 0xCBF29CE484222325
    for b in f"{experiment}:{user}".encode():
        h = ((h ^ b) * 0x100000001B3) % 2**64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) % 2**64
    h ^= h >> 31
    return (h * n) >> 64


def finite(v):
    v = float(v)
    return v if np.isfinite(v) else None


def relative(c, t, var_c, var_t, critical, alternative):
    """Relative lift t / c - 1 and its delta-method interval."""
    r = t / c - 1
    se = np.sqrt(var_t / c**2 + t**2 * var_c / c**4)
    low, high = r - critical * se, r + critical * se
    if alternative == "greater":
        high = None
    elif alternative == "less":
        low = None
    return [r, low, high]


def tail(alpha, alternative):
    return alpha / 2 if alternative == "two-sided" else alpha


def proportion(case):
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    nc, xc, nt, xt, alternative, alpha = case
    sm_alternative = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[alternative]
    z, p = proportions_ztest([xt, xc], [nt, nc], alternative=sm_alternative)
    # A one-sided bound is the two-sided bound at twice the alpha.
    two_sided_alpha = alpha if alternative == "two-sided" else 2 * alpha
    low, high = confint_proportions_2indep(xt, nt, xc, nc, method="wald", compare="diff", alpha=two_sided_alpha)
    if alternative == "greater":
        high = None
    elif alternative == "less":
        low = None
    pc, pt = xc / nc, xt / nt
    critical = stats.norm.isf(tail(alpha, alternative))
    rel = relative(pc, pt, pc * (1 - pc) / nc, pt * (1 - pt) / nt, critical, alternative) if pc > 0 else [None] * 3
    return {"statistic": finite(z), "p_value": finite(p), "difference_low": low, "difference_high": high,
            "relative": rel[0], "relative_low": rel[1], "relative_high": rel[2]}


def welch(yc, yt, alternative, alpha):
    r = stats.ttest_ind(yt, yc, equal_var=False, alternative=alternative)
    ci = r.confidence_interval(1 - alpha)
    vc, vt = np.var(yc, ddof=1) / len(yc), np.var(yt, ddof=1) / len(yt)
    critical = stats.t.isf(tail(alpha, alternative), r.df)
    rel = relative(np.mean(yc), np.mean(yt), vc, vt, critical, alternative)
    return {"control": float(np.mean(yc)), "treatment": float(np.mean(yt)),
            "statistic": float(r.statistic), "df": float(r.df), "p_value": float(r.pvalue),
            "difference_low": finite(ci.low), "difference_high": finite(ci.high),
            "relative": rel[0], "relative_low": rel[1], "relative_high": rel[2]}


def ratio(yc, xc, yt, xt, alternative, alpha):
    def estimate(y, x):
        r = np.mean(y) / np.mean(x)
        cov = np.cov(y, x, ddof=1)
        var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (len(y) * np.mean(x) ** 2)
        return r, var

    (c, vc), (t, vt) = estimate(yc, xc), estimate(yt, xt)
    d, se = t - c, np.sqrt(vc + vt)
    z = d / se
    critical = stats.norm.isf(tail(alpha, alternative))
    p = {"two-sided": 2 * stats.norm.sf(abs(z)), "greater": stats.norm.sf(z), "less": stats.norm.cdf(z)}[alternative]
    low, high = d - critical * se, d + critical * se
    if alternative == "greater":
        high = None
    elif alternative == "less":
        low = None
    rel = relative(c, t, vc, vt, critical, alternative)
    return {"control": c, "treatment": t, "statistic": z, "p_value": p, "difference_low": low,
            "difference_high": high, "relative": rel[0], "relative_low": rel[1], "relative_high": rel[2]}


def sequential(yc, yt, alpha, tuning=5000.0):
    """GrowthBook's two-sided normal-mixture confidence sequence (Howard et al. 2021)."""
    n = len(yc) + len(yt)
    d = np.mean(yt) - np.mean(yc)
    se2 = np.var(yc, ddof=1) / len(yc) + np.var(yt, ddof=1) / len(yt)
    s2 = se2 * n
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    half = np.sqrt(s2) * np.sqrt(2 * (n * rho2 + 1) / (n**2 * rho2) * np.log(np.sqrt(n * rho2 + 1) / alpha))
    p = min(1.0, np.sqrt(n * rho2 + 1) * np.exp(-(d**2) * n**2 * rho2 / (2 * s2 * (n * rho2 + 1))))
    return {"difference_low": d - half, "difference_high": d + half, "p_value": p}


def samples(case):
    yc, xc, yt, xt = (np.array(case[k], dtype=float) for k in ("yc", "xc", "yt", "xt"))
    alternative, alpha = case["alternative"], case["alpha"]
    # CUPED: θ over both groups, then Welch on the adjusted values.
    y, x = np.concatenate([yc, yt]), np.concatenate([xc, xt])
    theta = np.cov(y, x, ddof=1)[0, 1] / np.var(x, ddof=1)
    adjusted_c, adjusted_t = yc - theta * (xc - x.mean()), yt - theta * (xt - x.mean())
    return {
        "moments": [len(yt), float(np.mean(yt)), float(np.var(yt, ddof=1)), float(np.mean(xt)),
                    float(np.var(xt, ddof=1)), float(np.cov(yt, xt, ddof=1)[0, 1])],
        "mean": welch(yc, yt, alternative, alpha),
        "cuped": welch(adjusted_c, adjusted_t, alternative, alpha),
        "ratio": ratio(yc, xc, yt, xt, alternative, alpha),
        "sequential": sequential(yc, yt, alpha),
    }


def chi_square(variants):
    table = np.array([[x, n - x] for n, x in variants], dtype=float)
    r = stats.chi2_contingency(table, correction=False)
    return [float(r.statistic), float(r.dof), float(r.pvalue)]


def srm(variants):
    users = np.array([u for u, _ in variants], dtype=float)
    weights = np.array([w for _, w in variants], dtype=float)
    r = stats.chisquare(users, users.sum() * weights / weights.sum())
    return [float(r.statistic), float(r.pvalue)]


def planning(case):
    """statsmodels' power at our answers, and its own (bracketing, xtol 1e-5) solutions."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    power = NormalIndPower()
    kind, x, mde, alpha, target, ratio_, n, effect = (
        case[k] for k in ("kind", "x", "mde", "alpha", "power", "ratio", "n", "effect"))
    if kind == "proportion":
        d = abs(proportion_effectsize(x + mde, x))
        d_at_effect = abs(proportion_effectsize(x + effect, x))
    else:
        d, d_at_effect = abs(mde / x), abs(effect / x)
    return {
        "power_at_n": power.power(d, nobs1=n, alpha=alpha, ratio=ratio_),
        "power_at_effect": power.power(d_at_effect, nobs1=case["users"], alpha=alpha, ratio=ratio_),
        "solved_n": power.solve_power(d, nobs1=None, alpha=alpha, power=target, ratio=ratio_),
    }


request = json.load(sys.stdin)
if "adjust" in request:
    json.dump(
        {
            "adjust": [adjust(case["p"], case["method"]) for case in request["adjust"]],
            "buckets": [bucket(u, e, n) for u, e, n in request["buckets"]],
        },
        sys.stdout,
    )
else:
    json.dump(
        {
            "proportions": [proportion(c) for c in request["proportions"]],
            "samples": [samples(c) for c in request["samples"]],
            "chi_square": [chi_square(v) for v in request["chi_square"]],
            "srm": [srm(v) for v in request["srm"]],
            "planning": [planning(c) for c in request["planning"]],
        },
        sys.stdout,
    )
