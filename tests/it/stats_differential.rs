//! Differential check of the experiment statistics against statsmodels (and the
//! documented bucket hash in Python): random p-value sets with ties, zeros, ones and
//! NULLs through `p_adjust` for every method, compared to 1e-9 relative; random users and
//! experiments through `ab_bucket`. Needs Python with statsmodels (`MARTDB_PYTHON`, set by
//! scripts/test.sh); without it the test says so and passes only if
//! `MARTDB_REQUIRE_CLIENTS` is unset.

use martdb::Engine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const METHODS: [&str; 3] = ["bonferroni", "holm", "fdr_bh"];

fn random_p(rng: &mut ChaCha8Rng) -> Vec<Option<f64>> {
    let n = rng.random_range(1..40);
    let mut p: Vec<Option<f64>> = (0..n)
        .map(|_| match rng.random_range(0..20) {
            0 => None,
            1 => Some(0.0),
            2 => Some(1.0),
            3 => Some(0.05),
            // Small p-values, where the adjustments differ most.
            4..=9 => Some(rng.random::<f64>() * 0.01),
            _ => Some(rng.random::<f64>()),
        })
        .collect();
    // Exact ties.
    if n > 3 {
        p[1] = p[0];
    }
    p
}

fn sql_value(v: Option<f64>) -> String {
    match v {
        None => "CAST(NULL AS DOUBLE)".into(),
        Some(v) => format!("CAST({v:e} AS DOUBLE)"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_statistics_agree_with_statsmodels() {
    let Some(python) = crate::python_or_skip(
        "experiment_statistics_agree_with_statsmodels",
        "statsmodels",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261122);

    // p_adjust: each set is one window partition of a VALUES table, all in one query.
    let sets: Vec<Vec<Option<f64>>> = (0..60).map(|_| random_p(&mut rng)).collect();
    let rows: Vec<String> = sets
        .iter()
        .enumerate()
        .flat_map(|(g, p)| {
            p.iter()
                .enumerate()
                .map(move |(i, v)| format!("({g}, {i}, {})", sql_value(*v)))
        })
        .collect();
    let mut ours: Vec<Vec<Vec<Option<f64>>>> = Vec::new();
    for method in METHODS {
        let sql = format!(
            "SELECT g, i, p_adjust(p, '{method}') OVER (PARTITION BY g) \
             FROM (VALUES {}) AS t(g, i, p) ORDER BY g, i",
            rows.join(", ")
        );
        let batches = engine.sql(&sql).await.unwrap();
        let mut by_set: Vec<Vec<Option<f64>>> = sets.iter().map(|p| vec![None; p.len()]).collect();
        for batch in &batches {
            let g = batch
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            let i = batch
                .column(1)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            let v = batch
                .column(2)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Float64Array>()
                .unwrap();
            for row in 0..batch.num_rows() {
                by_set[g.value(row) as usize][i.value(row) as usize] =
                    (!datafusion::arrow::array::Array::is_null(v, row)).then(|| v.value(row));
            }
        }
        ours.push(by_set);
    }

    // ab_bucket: random users (text and numbers, non-ASCII too) and bucket counts.
    let assignments: Vec<(String, String, i64)> = (0..500)
        .map(|k| {
            let user = match k % 3 {
                0 => format!("user-{}", rng.random::<u32>()),
                1 => rng.random_range(0..1_000_000_000u64).to_string(),
                _ => format!("ü{}é", rng.random::<u16>()),
            };
            let experiment = format!("exp_{}", rng.random_range(0..5));
            (user, experiment, [2, 10, 100, 1000, 1_000_000][k % 5])
        })
        .collect();
    let values: Vec<String> = assignments
        .iter()
        .map(|(u, e, n)| format!("('{u}', '{e}', {n})"))
        .collect();
    let batches = engine
        .sql(&format!(
            "SELECT ab_bucket(u, e, n) FROM (VALUES {}) AS t(u, e, n)",
            values.join(", ")
        ))
        .await
        .unwrap();
    let our_buckets: Vec<i64> = crate::rows(&batches)
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect();

    let request = json!({
        "adjust": METHODS.iter().flat_map(|m| sets.iter().map(move |p| json!({"p": p, "method": m}))).collect::<Vec<_>>(),
        "buckets": assignments.iter().map(|(u, e, n)| json!([u, e, n])).collect::<Vec<_>>(),
    });
    let theirs: serde_json::Value = crate::run_python_peer(&python, "stats_peer.py", &request);

    let their_adjusted = theirs["adjust"].as_array().unwrap();
    let mut compared = 0;
    for (m, method) in METHODS.iter().enumerate() {
        for (s, p) in sets.iter().enumerate() {
            let reference = their_adjusted[m * sets.len() + s].as_array().unwrap();
            for (i, ours) in ours[m][s].iter().enumerate() {
                let theirs = reference[i].as_f64();
                match (ours, theirs) {
                    (None, None) => {}
                    (Some(a), Some(b)) => {
                        let scale = a.abs().max(b.abs()).max(1e-300);
                        assert!(
                            (a - b).abs() / scale <= 1e-9,
                            "{method} set {s} row {i}: martdb {a}, statsmodels {b}; p = {p:?}"
                        );
                        compared += 1;
                    }
                    other => panic!("{method} set {s} row {i}: {other:?}; p = {p:?}"),
                }
            }
        }
    }
    assert!(compared > 1000, "{compared}");
    let their_buckets: Vec<i64> = theirs["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_i64().unwrap())
        .collect();
    assert_eq!(our_buckets, their_buckets);
}

/// Field `name` of row `row` of a struct column.
fn field(column: &datafusion::arrow::array::ArrayRef, name: &str, row: usize) -> Option<f64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Float64Type};
    let structs = column.as_struct();
    let values = cast(
        structs
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no field {name}")),
        &DataType::Float64,
    )
    .unwrap();
    let values = values.as_primitive::<Float64Type>();
    (structs.is_valid(row) && values.is_valid(row)).then(|| values.value(row))
}

/// Compares `ours` with the reference `theirs` (JSON; null for a missing value) to 1e-9
/// relative to `scale` (the size of the quantity: a bound of an interval is judged
/// against the interval's size, so that a bound near 0 is not held to a relative
/// precision its own size cannot give).
fn agree(what: &str, ours: Option<f64>, theirs: &serde_json::Value, scale: f64) {
    match (ours, theirs.as_f64()) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            let scale = a.abs().max(b.abs()).max(scale).max(1e-300);
            assert!(
                (a - b).abs() <= 1e-9 * scale,
                "{what}: martdb {a}, reference {b} (relative {:e})",
                (a - b).abs() / scale
            );
        }
        other => panic!("{what}: martdb {:?}, reference {:?}", other.0, other.1),
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

const ALTERNATIVES: [&str; 3] = ["two-sided", "greater", "less"];
const ALPHAS: [f64; 4] = [0.01, 0.05, 0.1, 0.2];

/// The A/B tests, the chi-square tests and planning against scipy and statsmodels on
/// random inputs: counts for the proportion test; raw per-user rows (summarised by
/// `ab_moments` in SQL, by numpy in the reference) for Welch, CUPED, ratio and sequential
/// tests; random tables for the chi-square and SRM tests; random designs for planning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_tests_agree_with_scipy_and_statsmodels() {
    use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let Some(python) = crate::python_or_skip(
        "ab_tests_agree_with_scipy_and_statsmodels",
        "scipy and statsmodels",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261123);

    // Proportions: counts from tiny to large, rates from rare to common, zero and full
    // conversion included.
    let proportions: Vec<(i64, i64, i64, i64, &str, f64)> = (0..150)
        .map(|k| {
            let users = |rng: &mut ChaCha8Rng| 10f64.powf(rng.random_range(1.0..6.5)) as i64;
            let (nc, nt) = (users(&mut rng), users(&mut rng));
            let rate: f64 = 10f64.powf(rng.random_range(-3.0..-0.05));
            let conversions = |rng: &mut ChaCha8Rng, n: i64| match k % 25 {
                0 => 0,
                1 => n,
                _ => ((n as f64) * rate * rng.random_range(0.7..1.4))
                    .round()
                    .min(n as f64) as i64,
            };
            let (xc, xt) = (conversions(&mut rng, nc), conversions(&mut rng, nt));
            (nc, xc, nt, xt, ALTERNATIVES[k % 3], ALPHAS[k % 4])
        })
        // A table with no conversions at all (or only) has no test: checked in the .slt.
        .filter(|&(nc, xc, nt, xt, _, _)| xc + xt > 0 && xc + xt < nc + nt)
        .collect();
    let values: Vec<String> = proportions
        .iter()
        .enumerate()
        .map(|(i, (nc, xc, nt, xt, a, alpha))| {
            format!("({i}, {nc}, {xc}, {nt}, {xt}, '{a}', {alpha})")
        })
        .collect();
    let batches = engine
        .sql(&format!(
            "SELECT i, ab_proportion_test(nc, xc, nt, xt, a, alpha) FROM (VALUES {}) AS t(i, nc, xc, nt, xt, a, alpha) ORDER BY i",
            values.join(", ")
        ))
        .await
        .unwrap();
    let our_proportions: Vec<(datafusion::arrow::array::ArrayRef, usize)> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |r| (b.column(1).clone(), r)))
        .collect();

    // Raw samples: per case, control and treatment users with a metric y and a covariate
    // (pre-period value and ratio denominator) x > 0 correlated with y.
    struct Case {
        yc: Vec<f64>,
        xc: Vec<f64>,
        yt: Vec<f64>,
        xt: Vec<f64>,
        alternative: &'static str,
        alpha: f64,
    }
    let cases: Vec<Case> = (0..60)
        .map(|k| {
            let level = 10f64.powf(rng.random_range(-2.0..4.0));
            let spread = level * rng.random_range(0.05..2.0);
            let slope = rng.random_range(-1.0..2.0);
            let effect = spread * rng.random_range(-0.3..0.3);
            let nc = 10f64.powf(rng.random_range(0.5..3.5)) as usize + 3;
            let nt = 10f64.powf(rng.random_range(0.5..3.5)) as usize + 3;
            let mut group = |n: usize, shift: f64| -> (Vec<f64>, Vec<f64>) {
                (0..n)
                    .map(|_| {
                        let x = level * (0.5 * normal(&mut rng)).exp();
                        let y = level + shift + slope * (x - level) + spread * normal(&mut rng);
                        (y, x)
                    })
                    .unzip()
            };
            let (yc, xc) = group(nc, 0.0);
            let (yt, xt) = group(nt, effect);
            Case {
                yc,
                xc,
                yt,
                xt,
                alternative: ALTERNATIVES[k % 3],
                alpha: ALPHAS[k % 4],
            }
        })
        .collect();
    let (mut ids, mut variants, mut ys, mut xs) = (vec![], vec![], vec![], vec![]);
    for (i, case) in cases.iter().enumerate() {
        for (variant, y, x) in [("c", &case.yc, &case.xc), ("t", &case.yt, &case.xt)] {
            for (y, x) in y.iter().zip(x) {
                ids.push(i as i64);
                variants.push(variant);
                ys.push(*y);
                xs.push(*x);
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_id", DataType::Int64, false),
        Field::new("variant", DataType::Utf8, false),
        Field::new("y", DataType::Float64, false),
        Field::new("x", DataType::Float64, false),
    ]));
    let samples = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(variants)),
            Arc::new(Float64Array::from(ys)),
            Arc::new(Float64Array::from(xs)),
        ],
    )
    .unwrap();
    engine.context().register_batch("samples", samples).unwrap();
    let parameters: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({i}, '{}', {})", c.alternative, c.alpha))
        .collect();
    let batches = engine
        .sql(&format!(
            "WITH g AS (SELECT case_id, variant, ab_moments(y) AS m, ab_moments(y, x) AS mx \
                        FROM samples GROUP BY case_id, variant), \
                  p AS (SELECT * FROM (VALUES {}) AS p(case_id, a, alpha)) \
             SELECT c.case_id, t.mx, ab_mean_test(c.m, t.m, p.a, p.alpha), \
                    ab_cuped_test(c.mx, t.mx, p.a, p.alpha), ab_ratio_test(c.mx, t.mx, p.a, p.alpha), \
                    ab_sequential_test(c.m, t.m, p.alpha) \
             FROM g c JOIN g t ON c.case_id = t.case_id AND c.variant = 'c' AND t.variant = 't' \
             JOIN p ON p.case_id = c.case_id ORDER BY c.case_id",
            parameters.join(", ")
        ))
        .await
        .unwrap();
    let our_samples: Vec<(&RecordBatch, usize)> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).map(move |r| (b, r)))
        .collect();
    assert_eq!(our_samples.len(), cases.len());

    // Chi-square across 2-8 variants, and sample ratio mismatch against random weights.
    let tables: Vec<Vec<(i64, i64)>> = (0..40)
        .map(|_| {
            let rate = rng.random_range(0.01..0.6);
            (0..rng.random_range(2..9))
                .map(|_| {
                    let n = rng.random_range(1..100_000);
                    let x = ((n as f64) * rate * rng.random_range(0.8..1.25)).min(n as f64) as i64;
                    (n, x)
                })
                .collect()
        })
        .collect();
    let weighted: Vec<Vec<(i64, f64)>> = (0..40)
        .map(|_| {
            (0..rng.random_range(2..9))
                .map(|_| (rng.random_range(0..200_000), rng.random_range(0.5..50.0)))
                .collect()
        })
        .collect();
    let chi_rows: Vec<String> = tables
        .iter()
        .enumerate()
        .flat_map(|(g, t)| t.iter().map(move |(n, x)| format!("({g}, {n}, {x})")))
        .collect();
    let chi = crate::rows(
        &engine
            .sql(&format!(
                "SELECT g, r.statistic, r.df, r.p_value FROM (SELECT g, ab_chi_square(n, x) AS r \
                 FROM (VALUES {}) AS t(g, n, x) GROUP BY g) ORDER BY g",
                chi_rows.join(", ")
            ))
            .await
            .unwrap(),
    );
    let srm_rows: Vec<String> = weighted
        .iter()
        .enumerate()
        .flat_map(|(g, t)| t.iter().map(move |(n, w)| format!("({g}, {n}, {w:e})")))
        .collect();
    let srm = crate::rows(
        &engine
            .sql(&format!(
                "SELECT g, r.statistic, r.p_value, r.mismatch FROM (SELECT g, ab_srm(n, w) AS r \
                 FROM (VALUES {}) AS t(g, n, w) GROUP BY g) ORDER BY g",
                srm_rows.join(", ")
            ))
            .await
            .unwrap(),
    );

    // Planning: random designs; our sample size and effect, checked by statsmodels' power.
    let designs: Vec<serde_json::Value> = (0..60)
        .map(|k| {
            let proportion = k % 2 == 0;
            let x: f64 = if proportion {
                rng.random_range(0.01..0.7)
            } else {
                rng.random_range(0.5..100.0)
            };
            let mde = if proportion {
                (x * rng.random_range(0.02..0.3)).min((1.0 - x) / 2.0)
            } else {
                x * rng.random_range(0.01..0.5)
            };
            json!({
                "kind": if proportion { "proportion" } else { "mean" },
                "x": x, "mde": mde, "alpha": ALPHAS[k % 4],
                "power": rng.random_range(0.5..0.99), "ratio": rng.random_range(0.25..4.0),
                "users": 10f64.powf(rng.random_range(2.5..6.0)).round(),
            })
        })
        .collect();
    let mut planned = Vec::new();
    for d in &designs {
        let (n_fn, mde_fn) = if d["kind"] == "proportion" {
            ("ab_sample_size", "ab_mde")
        } else {
            ("ab_sample_size_mean", "ab_mde_mean")
        };
        let (x, alpha, power, ratio) = (
            d["x"].as_f64().unwrap(),
            d["alpha"].as_f64().unwrap(),
            d["power"].as_f64().unwrap(),
            d["ratio"].as_f64().unwrap(),
        );
        let row = &crate::rows(
            &engine
                .sql(&format!(
                    "SELECT {n_fn}({x:e}, {:e}, {alpha}, {power:e}, {ratio:e}), {mde_fn}({x:e}, {}, {alpha}, {power:e}, {ratio:e})",
                    d["mde"].as_f64().unwrap(),
                    d["users"].as_f64().unwrap()
                ))
                .await
                .unwrap(),
        )[0];
        let (n, effect): (f64, f64) = (row[0].parse().unwrap(), row[1].parse().unwrap());
        let mut d = d.clone();
        d["n"] = json!(n);
        d["effect"] = json!(effect);
        planned.push(d);
    }

    let request = json!({
        "proportions": proportions.iter().map(|(nc, xc, nt, xt, a, alpha)| json!([nc, xc, nt, xt, a, alpha])).collect::<Vec<_>>(),
        "samples": cases.iter().map(|c| json!({"yc": c.yc, "xc": c.xc, "yt": c.yt, "xt": c.xt, "alternative": c.alternative, "alpha": c.alpha})).collect::<Vec<_>>(),
        "chi_square": tables,
        "srm": weighted,
        "planning": planned,
    });
    let theirs: serde_json::Value = crate::run_python_peer(&python, "stats_peer.py", &request);

    let comparison_fields = [
        "control",
        "treatment",
        "statistic",
        "df",
        "p_value",
        "relative",
        "difference_low",
        "difference_high",
        "relative_low",
        "relative_high",
    ];
    let check = |what: &str,
                 column: &datafusion::arrow::array::ArrayRef,
                 row: usize,
                 reference: &serde_json::Value| {
        let width = |low: &str, high: &str| {
            [
                reference[low].as_f64(),
                reference[high].as_f64(),
                reference["relative"].as_f64(),
            ]
            .iter()
            .flatten()
            .fold(0f64, |m, v| m.max(v.abs()))
        };
        let mut compared = 0;
        for name in comparison_fields {
            if reference.get(name).is_none() {
                continue;
            }
            let scale = match name {
                "difference_low" | "difference_high" => width("difference_low", "difference_high")
                    .max(field(column, "difference", row).unwrap_or(0.0).abs()),
                "relative_low" | "relative_high" => width("relative_low", "relative_high"),
                _ => 0.0,
            };
            agree(
                &format!("{what} {name}"),
                field(column, name, row),
                &reference[name],
                scale,
            );
            compared += 1;
        }
        compared
    };
    let mut compared = 0;
    for (i, (column, row)) in our_proportions.iter().enumerate() {
        compared += check(
            &format!("proportion case {i} {:?}", proportions[i]),
            column,
            *row,
            &theirs["proportions"][i],
        );
    }
    for (i, (batch, row)) in our_samples.iter().enumerate() {
        let reference = &theirs["samples"][i];
        let moments = batch.column(1);
        for (j, name) in [
            "n",
            "mean",
            "variance",
            "covariate_mean",
            "covariate_variance",
            "covariance",
        ]
        .iter()
        .enumerate()
        {
            agree(
                &format!("samples case {i} ab_moments {name}"),
                field(moments, name, *row),
                &reference["moments"][j],
                0.0,
            );
        }
        for (column, test) in [(2, "mean"), (3, "cuped"), (4, "ratio"), (5, "sequential")] {
            compared += check(
                &format!("samples case {i} {test}"),
                batch.column(column),
                *row,
                &reference[test],
            );
        }
    }
    for (g, row) in chi.iter().enumerate() {
        for (j, value) in row[1..].iter().enumerate() {
            agree(
                &format!("chi-square table {g} field {j}"),
                Some(value.parse().unwrap()),
                &theirs["chi_square"][g][j],
                0.0,
            );
            compared += 1;
        }
    }
    for (g, row) in srm.iter().enumerate() {
        agree(
            &format!("srm {g} statistic"),
            Some(row[1].parse().unwrap()),
            &theirs["srm"][g][0],
            0.0,
        );
        agree(
            &format!("srm {g} p"),
            Some(row[2].parse().unwrap()),
            &theirs["srm"][g][1],
            0.0,
        );
        let p = theirs["srm"][g][1].as_f64().unwrap();
        assert_eq!(row[3] == "true", p < 0.001, "srm {g} flag");
        compared += 2;
    }
    for (k, d) in planned.iter().enumerate() {
        let reference = &theirs["planning"][k];
        // statsmodels' power at our sample size and effect is the power asked for.
        agree(
            &format!("design {k} power at n {d}"),
            d["power"].as_f64(),
            &reference["power_at_n"],
            0.0,
        );
        agree(
            &format!("design {k} power at effect {d}"),
            d["power"].as_f64(),
            &reference["power_at_effect"],
            0.0,
        );
        // statsmodels' own solver stops within xtol = 1e-5 of the root.
        let (ours, solved) = (
            d["n"].as_f64().unwrap(),
            reference["solved_n"].as_f64().unwrap(),
        );
        assert!(
            (ours - solved).abs() <= 1e-5 + 1e-9 * ours,
            "design {k}: {ours} vs statsmodels {solved}"
        );
        compared += 3;
    }
    assert!(compared > 2000, "{compared}");
}
