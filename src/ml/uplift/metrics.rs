//! Evaluation of uplift scores on a randomised campaign: the uplift and Qini curves, the
//! areas under them normalised by the perfect model's, uplift at the top k, and uplift by
//! decile.
//!
//! The definitions are scikit-uplift's (`sklift.metrics`, 0.5), so that a number computed
//! in martdb can be put next to one from a notebook:
//!
//! - rows are ranked by score, highest first; rows of equal score form one step of a
//!   curve (the curve is drawn at each distinct score only);
//! - the uplift curve at `n` rows is `(responders_t / treated - responders_c / control) · n`
//!   over the top `n` rows (a group that is empty there counts 0); the Qini curve is
//!   `responders_t - responders_c · treated / control`;
//! - `uplift_auc` and `qini_auc` are the area between the model's curve and the straight
//!   line from the origin to the curve's end, divided by the same area of the perfect
//!   model's curve (trapezoids; 1 is perfect, 0 is random, negative is worse than random).
//!   The perfect Qini model ranks treated responders first and control responders last
//!   (scikit-uplift's `negative_effect=True`).

use crate::ml::runtime::MlError;

/// One evaluated row: the model's score, whether the user was treated and whether they
/// converted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f64,
    pub treated: bool,
    pub converted: bool,
}

/// How `uplift_at_k` takes the top `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtKStrategy {
    /// The top `k` of all rows, then the response rates of each group among them.
    Overall,
    /// The top `k` of the treated and the top `k` of the control group separately.
    ByGroup,
}

impl AtKStrategy {
    pub fn parse(text: &str) -> Result<Self, MlError> {
        match text.to_ascii_lowercase().as_str() {
            "overall" => Ok(AtKStrategy::Overall),
            "by_group" => Ok(AtKStrategy::ByGroup),
            other => Err(MlError::Input(format!(
                "unknown strategy '{other}': expected 'overall' or 'by_group'"
            ))),
        }
    }
}

/// The size of the top: a share of the rows (`0 < k < 1`) or a count (`0 < k < n`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TopK {
    Share(f64),
    Count(u64),
}

/// Rows in ranking order: score descending, and among equal scores the later row first
/// (scikit-uplift reverses a stable ascending sort).
fn ranked(rows: &[Scored]) -> Vec<Scored> {
    // Integer keys in `total_cmp`'s order (the sign bit flips the rest), inverted for
    // highest first, then the index, highest first: every key is distinct, so an
    // unstable sort gives one order, and comparing integers is what makes it fast.
    let descending = |score: f64| {
        let bits = score.to_bits();
        let ordered = bits ^ (((bits as i64 >> 63) as u64) | (1 << 63));
        !ordered
    };
    let mut order: Vec<(u64, u64)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (descending(r.score), !(i as u64)))
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, i)| rows[!i as usize]).collect()
}

/// Rows ranked by a score of a few whole values (the perfect models'), highest first:
/// bucketed, not sorted. Order within a bucket does not matter to a curve (a tie is
/// one step).
fn ranked_by_class(rows: &[Scored], class: impl Fn(&Scored) -> i8) -> Vec<Scored> {
    let mut buckets: std::collections::BTreeMap<i8, Vec<Scored>> = Default::default();
    for r in rows {
        let c = class(r);
        buckets.entry(c).or_default().push(Scored {
            score: f64::from(c),
            ..*r
        });
    }
    buckets.into_values().rev().flatten().collect()
}

fn check(rows: &[Scored]) -> Result<(), MlError> {
    if rows.iter().any(|r| r.score.is_nan()) {
        return Err(MlError::Input("a score is NaN".into()));
    }
    if !rows.iter().any(|r| r.treated) || rows.iter().all(|r| r.treated) {
        return Err(MlError::Input(
            "the rows must include both treated and control users".into(),
        ));
    }
    Ok(())
}

/// The cumulative counts at the last row of each distinct score, in ranking order.
struct Steps {
    /// Rows so far.
    all: Vec<f64>,
    treated: Vec<f64>,
    responders_treated: Vec<f64>,
    responders_control: Vec<f64>,
}

fn steps(ranked: &[Scored]) -> Steps {
    let mut s = Steps {
        all: Vec::new(),
        treated: Vec::new(),
        responders_treated: Vec::new(),
        responders_control: Vec::new(),
    };
    let (mut t, mut yt, mut yc) = (0.0, 0.0, 0.0);
    for (i, row) in ranked.iter().enumerate() {
        if row.treated {
            t += 1.0;
            if row.converted {
                yt += 1.0;
            }
        } else if row.converted {
            yc += 1.0;
        }
        let last_of_score = ranked.get(i + 1).is_none_or(|next| next.score != row.score);
        if last_of_score {
            s.all.push((i + 1) as f64);
            s.treated.push(t);
            s.responders_treated.push(yt);
            s.responders_control.push(yc);
        }
    }
    s
}

fn ratio(a: f64, b: f64) -> f64 {
    if b != 0.0 { a / b } else { 0.0 }
}

/// A curve's points `(rows, value)`, starting at the origin.
pub type Curve = (Vec<f64>, Vec<f64>);

fn curve(ranked: &[Scored], value: impl Fn(f64, f64, f64, f64, f64) -> f64) -> Curve {
    let s = steps(ranked);
    let mut x = vec![0.0];
    let mut y = vec![0.0];
    for i in 0..s.all.len() {
        let control = s.all[i] - s.treated[i];
        x.push(s.all[i]);
        y.push(value(
            s.all[i],
            s.treated[i],
            control,
            s.responders_treated[i],
            s.responders_control[i],
        ));
    }
    (x, y)
}

/// The uplift curve of `rows` (any order).
pub fn uplift_curve(rows: &[Scored]) -> Curve {
    curve(&ranked(rows), |n, t, c, yt, yc| {
        (ratio(yt, t) - ratio(yc, c)) * n
    })
}

/// The Qini curve of `rows` (any order).
pub fn qini_curve(rows: &[Scored]) -> Curve {
    curve(&ranked(rows), |_, t, c, yt, yc| yt - yc * ratio(t, c))
}

/// The area under a curve by trapezoids.
fn area((x, y): &Curve) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// `(area(actual) - baseline) / (area(perfect) - baseline)`, the baseline being the
/// line from the origin to the perfect curve's end.
fn normalised(actual: &Curve, perfect: &Curve) -> f64 {
    let end_x = *perfect.0.last().unwrap_or(&0.0);
    let end_y = *perfect.1.last().unwrap_or(&0.0);
    let baseline = end_x * end_y / 2.0;
    (area(actual) - baseline) / (area(perfect) - baseline)
}

/// The area under the uplift curve, normalised (scikit-uplift's `uplift_auc_score`).
pub fn uplift_auc(rows: &[Scored]) -> Result<f64, MlError> {
    check(rows)?;
    Ok(uplift_auc_of_ranked(&ranked(rows)))
}

fn uplift_auc_of_ranked(ranked: &[Scored]) -> f64 {
    let control_responders = ranked.iter().filter(|r| !r.treated && r.converted).count();
    let treated_non_responders = ranked.iter().filter(|r| r.treated && !r.converted).count();
    let by_outcome = control_responders > treated_non_responders;
    let perfect = ranked_by_class(ranked, |r| {
        let agree = if r.converted == r.treated { 2 } else { 0 };
        let summand = if by_outcome { r.converted } else { r.treated };
        agree + i8::from(summand)
    });
    let uplift = |n, t, c, yt, yc| (ratio(yt, t) - ratio(yc, c)) * n;
    normalised(&curve(ranked, uplift), &curve(&perfect, uplift))
}

/// The area under the Qini curve, normalised (scikit-uplift's `qini_auc_score` with
/// `negative_effect=True`).
pub fn qini_auc(rows: &[Scored]) -> Result<f64, MlError> {
    check(rows)?;
    Ok(qini_auc_of_ranked(&ranked(rows)))
}

fn qini_auc_of_ranked(ranked: &[Scored]) -> f64 {
    let perfect = ranked_by_class(ranked, |r| match (r.converted, r.treated) {
        (true, true) => 1,
        (true, false) => -1,
        (false, _) => 0,
    });
    let qini = |_, t, c, yt, yc: f64| yt - yc * ratio(t, c);
    normalised(&curve(ranked, qini), &curve(&perfect, qini))
}

/// `qini_auc`, `uplift_auc` and `uplift_at_k` of the same rows, ranked once.
pub fn evaluate(
    rows: &[Scored],
    k: TopK,
    strategy: AtKStrategy,
) -> Result<(f64, f64, f64), MlError> {
    check(rows)?;
    let ranked = ranked(rows);
    Ok((
        qini_auc_of_ranked(&ranked),
        uplift_auc_of_ranked(&ranked),
        uplift_at_k_of_ranked(&ranked, k, strategy)?,
    ))
}

fn mean_outcome<'a>(rows: impl Iterator<Item = &'a Scored>) -> f64 {
    let (mut n, mut y) = (0.0, 0.0);
    for r in rows {
        n += 1.0;
        y += f64::from(u8::from(r.converted));
    }
    // An empty group has no rate: NaN, as numpy's mean of nothing.
    y / n
}

/// The response rate of the treated minus that of the control users among the top `k`
/// (scikit-uplift's `uplift_at_k`). NaN when a group has no user in the top.
pub fn uplift_at_k(rows: &[Scored], k: TopK, strategy: AtKStrategy) -> Result<f64, MlError> {
    check(rows)?;
    uplift_at_k_of_ranked(&ranked(rows), k, strategy)
}

fn uplift_at_k_of_ranked(
    ranked: &[Scored],
    k: TopK,
    strategy: AtKStrategy,
) -> Result<f64, MlError> {
    let n = ranked.len() as u64;
    match k {
        TopK::Share(s) if !(s > 0.0 && s < 1.0) => {
            return Err(MlError::Input(format!(
                "k must be a share between 0 and 1 (exclusive) or a count, found {s}"
            )));
        }
        TopK::Count(c) if c == 0 || c >= n => {
            return Err(MlError::Input(format!(
                "k must be a count between 1 and {} (the rows minus one), found {c}",
                n.saturating_sub(1)
            )));
        }
        _ => {}
    }
    let group = |treated: bool| ranked.iter().filter(move |r| r.treated == treated);
    let (top_treated, top_control) = match strategy {
        AtKStrategy::Overall => {
            let size = match k {
                TopK::Share(s) => (n as f64 * s) as usize,
                TopK::Count(c) => c as usize,
            };
            let top = &ranked[..size];
            (
                mean_outcome(top.iter().filter(|r| r.treated)),
                mean_outcome(top.iter().filter(|r| !r.treated)),
            )
        }
        AtKStrategy::ByGroup => {
            let treated = group(true).count() as u64;
            let control = n - treated;
            let (size_t, size_c) = match k {
                TopK::Share(s) => ((treated as f64 * s) as u64, (control as f64 * s) as u64),
                TopK::Count(c) => (c, c),
            };
            if size_t > treated || size_c > control {
                return Err(MlError::Input(format!(
                    "k = {} is larger than a group ({treated} treated, {control} control)",
                    size_t.max(size_c)
                )));
            }
            (
                mean_outcome(group(true).take(size_t as usize)),
                mean_outcome(group(false).take(size_c as usize)),
            )
        }
    };
    Ok(top_treated - top_control)
}

/// One bin of [`uplift_by_bin`].
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    /// 1 = the highest scores.
    pub bin: u32,
    pub treated: u64,
    pub control: u64,
    pub response_rate_treated: Option<f64>,
    pub response_rate_control: Option<f64>,
    /// The difference of the two rates; `None` when a group is empty in the bin.
    pub uplift: Option<f64>,
    pub min_score: f64,
    pub max_score: f64,
}

/// The rows ranked by score and cut into `bins` bins of (nearly) equal size (the first
/// `n mod bins` bins have one row more, as numpy's `array_split`): the observed uplift
/// in each (scikit-uplift's `uplift_by_percentile` with `strategy='overall'`).
pub fn uplift_by_bin(rows: &[Scored], bins: u32) -> Result<Vec<Bin>, MlError> {
    if bins == 0 {
        return Err(MlError::Input("the number of bins must be positive".into()));
    }
    if rows.iter().any(|r| r.score.is_nan()) {
        return Err(MlError::Input("a score is NaN".into()));
    }
    let ranked = ranked(rows);
    let n = ranked.len();
    let bins = bins as usize;
    let mut out = Vec::new();
    let mut start = 0;
    for b in 0..bins.min(n) {
        let size = n / bins + usize::from(b < n % bins);
        let part = &ranked[start..start + size];
        start += size;
        let treated = part.iter().filter(|r| r.treated).count() as u64;
        let control = part.len() as u64 - treated;
        let rate = |t: bool, count: u64| {
            (count > 0).then(|| mean_outcome(part.iter().filter(|r| r.treated == t)))
        };
        let rt = rate(true, treated);
        let rc = rate(false, control);
        out.push(Bin {
            bin: b as u32 + 1,
            treated,
            control,
            response_rate_treated: rt,
            response_rate_control: rc,
            uplift: rt.zip(rc).map(|(t, c)| t - c),
            min_score: part.iter().map(|r| r.score).fold(f64::INFINITY, f64::min),
            max_score: part
                .iter()
                .map(|r| r.score)
                .fold(f64::NEG_INFINITY, f64::max),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(score: f64, treated: bool, converted: bool) -> Scored {
        Scored {
            score,
            treated,
            converted,
        }
    }

    #[test]
    fn a_perfect_ranking_scores_one_and_its_reverse_less_than_zero() {
        // Treated responders, then the indifferent, then control responders; the last
        // two groups tied, as the perfect model ties them (a step inside a group would
        // bend the curve away from the perfect one's straight segment).
        let rows = vec![
            row(0.9, true, true),
            row(0.8, true, true),
            row(0.5, true, false),
            row(0.5, false, false),
            row(0.0, false, true),
            row(0.0, false, true),
        ];
        assert!((qini_auc(&rows).unwrap() - 1.0).abs() < 1e-12);
        let reversed: Vec<Scored> = rows
            .iter()
            .map(|r| Scored {
                score: -r.score,
                ..*r
            })
            .collect();
        assert!(qini_auc(&reversed).unwrap() < 0.0);
        assert!(uplift_auc(&reversed).unwrap() < 0.0);
    }

    #[test]
    fn ties_form_one_step_of_the_curve() {
        let rows = vec![
            row(1.0, true, true),
            row(1.0, false, false),
            row(0.0, true, false),
            row(0.0, false, true),
        ];
        let (x, y) = qini_curve(&rows);
        assert_eq!(x, vec![0.0, 2.0, 4.0]);
        assert_eq!(y, vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn uplift_at_k_takes_the_top_share_of_all_rows() {
        let rows = vec![
            row(0.9, true, true),
            row(0.8, false, false),
            row(0.7, true, false),
            row(0.1, false, true),
        ];
        // Top half: one treated responder, one control non-responder.
        let v = uplift_at_k(&rows, TopK::Share(0.5), AtKStrategy::Overall).unwrap();
        assert_eq!(v, 1.0);
        let v = uplift_at_k(&rows, TopK::Count(1), AtKStrategy::ByGroup).unwrap();
        assert_eq!(v, 1.0);
        assert!(uplift_at_k(&rows, TopK::Share(1.0), AtKStrategy::Overall).is_err());
        assert!(uplift_at_k(&rows, TopK::Count(4), AtKStrategy::Overall).is_err());
    }

    #[test]
    fn one_group_only_is_an_error() {
        let rows = vec![row(0.9, true, true), row(0.1, true, false)];
        assert!(matches!(qini_auc(&rows), Err(MlError::Input(_))));
    }

    #[test]
    fn bins_split_like_array_split() {
        let rows: Vec<Scored> = (0..23)
            .map(|i| row(f64::from(i), i % 2 == 0, i % 3 == 0))
            .collect();
        let bins = uplift_by_bin(&rows, 10).unwrap();
        let sizes: Vec<u64> = bins.iter().map(|b| b.treated + b.control).collect();
        assert_eq!(sizes, vec![3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(bins[0].max_score, 22.0);
    }
}
