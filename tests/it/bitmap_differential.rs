//! Differential check of the bitmap functions against ClickHouse (chDB, embedded): random
//! sets, both 32-bit and 64-bit, empty and large, through every function in both engines,
//! compared value by value. Needs Python with chdb (`MARTDB_PYTHON`, set by
//! scripts/test.sh); without it the test says so and passes only if
//! `MARTDB_REQUIRE_CLIENTS` is unset.

use martdb::Engine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A set of ids as the SQL writes it: a list of random ids (array containers), or a
/// range with a step (large sets: bitset containers for step 2 or 3, runs for step 1),
/// which both engines expand themselves, so big sets cost no planning time.
#[derive(Clone)]
enum Set {
    List(Vec<u64>),
    Range { start: u64, end: u64, step: u64 },
}

impl Set {
    /// Some members (all of a list), to pick arguments from.
    fn sample(&self) -> Vec<u64> {
        match self {
            Set::List(v) => v.clone(),
            Set::Range { start, end, step } => {
                (*start..*end).step_by(*step as usize).take(500).collect()
            }
        }
    }

    fn max(&self) -> u64 {
        match self {
            Set::List(v) => v.iter().copied().max().unwrap_or(0),
            Set::Range { end, .. } => *end,
        }
    }
}

/// One random case: three sets and the scalar arguments the functions take.
struct Case {
    a: Set,
    b: Set,
    c: Set,
    id: u64,
    start: u64,
    end: u64,
    limit: u64,
    from: Vec<u64>,
    to: Vec<u64>,
}

impl Case {
    fn random(rng: &mut ChaCha8Rng) -> Case {
        // Value domains: small and dense, 32-bit, and 64-bit (up to bigint's maximum).
        let domain = match rng.random_range(0..4) {
            0 => 2_000,
            1 => 1 << 20,
            2 => u64::from(u32::MAX) + 1,
            _ => i64::MAX as u64,
        };
        let wide = domain > u64::from(u32::MAX);
        let set = |rng: &mut ChaCha8Rng, allow_empty: bool| -> Set {
            if rng.random_range(0..4) == 0 {
                let len = rng.random_range(1_000..70_000).min(domain / 2);
                let start = rng.random_range(0..domain - len);
                let step = rng.random_range(1..4);
                return Set::Range {
                    start,
                    end: start + len,
                    step,
                };
            }
            let len = match rng.random_range(0..10) {
                0 if allow_empty => 0,
                1..=6 => rng.random_range(1..40),
                _ => rng.random_range(40..300),
            };
            let mut values: Vec<u64> = (0..len).map(|_| rng.random_range(0..domain)).collect();
            if wide && rng.random_bool(0.5) {
                // Both widths in one set.
                values.push(rng.random_range(0..1000));
            }
            Set::List(values)
        };
        // ClickHouse answers bitmapMin of an empty UInt64 bitmap with 2^64-1, martdb
        // (whose empty bitmap has no width) with 2^32-1: the sets of 64-bit cases are
        // never empty, so the comparison stays on ClickHouse's documented ground.
        let a = set(rng, !wide);
        let b = match &a {
            // Overlapping sets, so intersections are not all empty.
            Set::List(a) if rng.random_bool(0.3) && !a.is_empty() => Set::List(
                a.iter()
                    .copied()
                    .filter(|_| rng.random_bool(0.5))
                    .chain([a[0]])
                    .collect(),
            ),
            Set::Range { start, end, .. } if rng.random_bool(0.5) => Set::Range {
                start: start + (end - start) / 2,
                end: end + 1000,
                step: rng.random_range(1..4),
            },
            _ => set(rng, !wide),
        };
        let c = set(rng, !wide);
        let (a_sample, b_sample) = (a.sample(), b.sample());
        let pick = |rng: &mut ChaCha8Rng, from: &[u64]| -> u64 {
            if !from.is_empty() && rng.random_bool(0.7) {
                from[rng.random_range(0..from.len())]
            } else {
                rng.random_range(0..domain)
            }
        };
        let id = pick(rng, &a_sample);
        let (x, y) = (pick(rng, &a_sample), pick(rng, &a_sample));
        let pairs = rng.random_range(0..6);
        let from = (0..pairs).map(|_| pick(rng, &a_sample)).collect();
        let to = (0..pairs).map(|_| pick(rng, &b_sample)).collect();
        Case {
            a,
            b,
            c,
            id,
            start: x.min(y),
            end: x.max(y) + rng.random_range(0..3),
            limit: rng.random_range(0..100),
            from,
            to,
        }
    }

    fn wide(&self) -> bool {
        [
            self.a.max(),
            self.b.max(),
            self.c.max(),
            self.id,
            self.start,
            self.end,
        ]
        .into_iter()
        .chain(self.from.iter().chain(&self.to).copied())
        .any(|v| v > u64::from(u32::MAX))
    }
}

/// Renders a case's values in one engine's dialect.
struct Dialect {
    clickhouse: bool,
    ty: &'static str,
}

impl Dialect {
    fn list(&self, values: &[u64]) -> String {
        let items: Vec<String> = values.iter().map(u64::to_string).collect();
        if self.clickhouse {
            format!("CAST([{}] AS Array({}))", items.join(","), self.ty)
        } else {
            format!("make_array({})", items.join(","))
        }
    }

    fn num(&self, value: u64) -> String {
        if self.clickhouse {
            format!("to{}({value})", self.ty)
        } else {
            value.to_string()
        }
    }

    /// The ids of `set` as an array expression.
    fn array(&self, set: &Set) -> String {
        match set {
            Set::List(values) => self.list(values),
            Set::Range { start, end, step } if self.clickhouse => {
                format!("CAST(range({start}, {end}, {step}) AS Array({}))", self.ty)
            }
            Set::Range { start, end, step } => format!("range({start}, {end}, {step})"),
        }
    }

    fn build(&self, set: &Set) -> String {
        let f = if self.clickhouse {
            "bitmapBuild"
        } else {
            "bitmap_build"
        };
        format!("{f}({})", self.array(set))
    }

    /// `f(args)` under martdb's or ClickHouse's name.
    fn call(&self, names: (&str, &str), args: &[String]) -> String {
        let name = if self.clickhouse { names.1 } else { names.0 };
        format!("{name}({})", args.join(", "))
    }

    fn to_array(&self, bitmap: String) -> String {
        self.call(("bitmap_to_array", "bitmapToArray"), &[bitmap])
    }

    /// One row `x` per id of each set (duplicates across sets kept).
    fn rows(&self, sets: &[&Set]) -> String {
        let unnest = if self.clickhouse {
            "arrayJoin"
        } else {
            "unnest"
        };
        let parts: Vec<String> = sets
            .iter()
            .map(|s| format!("SELECT {unnest}({}) AS x", self.array(s)))
            .collect();
        format!("({})", parts.join(" UNION ALL "))
    }

    /// One row `b` per set, holding its bitmap.
    fn bitmap_rows(&self, sets: &[&Set]) -> String {
        let parts: Vec<String> = sets
            .iter()
            .map(|s| format!("SELECT {} AS b", self.build(s)))
            .collect();
        format!("({})", parts.join(" UNION ALL "))
    }
}

/// (description, SQL) of every check for `case` in `d`'s dialect.
fn queries(case: &Case, d: &Dialect) -> Vec<(String, String)> {
    let (a, b) = (d.build(&case.a), d.build(&case.b));
    let mut out = vec![
        ("bitmap_build".into(), d.to_array(a.clone())),
        (
            "bitmap_cardinality".into(),
            d.call(
                ("bitmap_cardinality", "bitmapCardinality"),
                std::slice::from_ref(&a),
            ),
        ),
        (
            "bitmap_contains".into(),
            d.call(
                ("bitmap_contains", "bitmapContains"),
                &[a.clone(), d.num(case.id)],
            ),
        ),
        (
            "bitmap_has_any".into(),
            d.call(("bitmap_has_any", "bitmapHasAny"), &[a.clone(), b.clone()]),
        ),
        (
            "bitmap_has_all".into(),
            d.call(("bitmap_has_all", "bitmapHasAll"), &[a.clone(), b.clone()]),
        ),
        (
            "bitmap_subset_in_range".into(),
            d.to_array(d.call(
                ("bitmap_subset_in_range", "bitmapSubsetInRange"),
                &[a.clone(), d.num(case.start), d.num(case.end)],
            )),
        ),
        (
            "bitmap_subset_limit".into(),
            d.to_array(d.call(
                ("bitmap_subset_limit", "bitmapSubsetLimit"),
                &[a.clone(), d.num(case.start), d.num(case.limit)],
            )),
        ),
        (
            "sub_bitmap".into(),
            d.to_array(d.call(
                ("sub_bitmap", "subBitmap"),
                &[a.clone(), d.num(case.limit / 2), d.num(case.limit)],
            )),
        ),
        (
            "bitmap_transform".into(),
            d.to_array(d.call(
                ("bitmap_transform", "bitmapTransform"),
                &[a.clone(), d.list(&case.from), d.list(&case.to)],
            )),
        ),
        (
            "group_bitmap".into(),
            format!(
                "SELECT {} FROM {}",
                d.call(("group_bitmap", "groupBitmap"), &["x".into()]),
                d.rows(&[&case.a, &case.b])
            ),
        ),
        (
            "group_bitmap_state".into(),
            format!(
                "SELECT {} FROM {}",
                d.to_array(d.call(("group_bitmap_state", "groupBitmapState"), &["x".into()])),
                d.rows(&[&case.a])
            ),
        ),
    ];
    for (set, name) in [(&a, "a"), (&b, "b")] {
        for f in [("bitmap_min", "bitmapMin"), ("bitmap_max", "bitmapMax")] {
            out.push((
                format!("{}({name})", f.0),
                d.call(f, std::slice::from_ref(set)),
            ));
        }
    }
    for (snake, camel) in [
        ("and", "And"),
        ("or", "Or"),
        ("xor", "Xor"),
        ("andnot", "Andnot"),
    ] {
        let ab = [a.clone(), b.clone()];
        out.push((
            format!("bitmap_{snake}"),
            d.to_array(d.call((&format!("bitmap_{snake}"), &format!("bitmap{camel}")), &ab)),
        ));
        out.push((
            format!("bitmap_{snake}_cardinality"),
            d.call(
                (
                    &format!("bitmap_{snake}_cardinality"),
                    &format!("bitmap{camel}Cardinality"),
                ),
                &ab,
            ),
        ));
    }
    let three = d.bitmap_rows(&[&case.a, &case.b, &case.c]);
    for (snake, camel) in [("and", "And"), ("or", "Or"), ("xor", "Xor")] {
        out.push((
            format!("group_bitmap_{snake}"),
            format!(
                "SELECT {} FROM {three}",
                d.call(
                    (
                        &format!("group_bitmap_{snake}"),
                        &format!("groupBitmap{camel}")
                    ),
                    &["b".into()]
                )
            ),
        ));
        out.push((
            format!("group_bitmap_{snake}_state"),
            format!(
                "SELECT {} FROM {three}",
                d.to_array(d.call(
                    (
                        &format!("group_bitmap_{snake}_state"),
                        &format!("groupBitmap{camel}State")
                    ),
                    &["b".into()]
                ))
            ),
        ));
    }
    out.into_iter()
        .map(|(what, sql)| {
            let sql = if sql.starts_with("SELECT") {
                sql
            } else {
                format!("SELECT {sql}")
            };
            (what, sql)
        })
        .collect()
}

/// The same value written by either engine: no spaces, booleans as 1/0, and arrays in
/// ascending order (ClickHouse keeps sets of up to 32 ids unsorted, in insertion order,
/// and lists them so; martdb always lists ids ascending).
fn normalize(value: &str) -> String {
    match value {
        "true" => "1".into(),
        "false" => "0".into(),
        v if v.starts_with('[') => {
            let inner = v.trim_matches(|c| c == '[' || c == ']').replace(' ', "");
            let mut ids: Vec<u64> = inner
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            ids.sort_unstable();
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            format!("[{}]", ids.join(","))
        }
        v => v.to_string(),
    }
}

fn run_chdb(python: &str, sql: &[String]) -> Vec<Result<String, String>> {
    let answers: Vec<serde_json::Value> = crate::run_python_peer(python, "chdb_peer.py", &sql);
    answers
        .into_iter()
        .map(|a| match a.get("value") {
            Some(v) => Ok(v.as_str().unwrap().to_string()),
            None => Err(a["error"].as_str().unwrap_or("?").to_string()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitmap_functions_agree_with_clickhouse() {
    let Some(python) = crate::python_or_skip("bitmap_functions_agree_with_clickhouse", "chdb")
    else {
        return;
    };
    let mut rng = ChaCha8Rng::seed_from_u64(20261122);
    let cases: Vec<Case> = (0..30).map(|_| Case::random(&mut rng)).collect();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for case in &cases {
        let ty = if case.wide() { "UInt64" } else { "UInt32" };
        let martdb = queries(
            case,
            &Dialect {
                clickhouse: false,
                ty,
            },
        );
        let clickhouse = queries(
            case,
            &Dialect {
                clickhouse: true,
                ty,
            },
        );
        assert_eq!(martdb.len(), clickhouse.len());
        ours.extend(martdb);
        theirs.extend(clickhouse.into_iter().map(|(_, sql)| sql));
    }
    let reference = run_chdb(&python, &theirs);

    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut checked = std::collections::BTreeMap::<&str, usize>::new();
    for (((what, sql), clickhouse_sql), reference) in ours.iter().zip(&theirs).zip(reference) {
        let expected = reference.unwrap_or_else(|e| {
            panic!("ClickHouse failed on {clickhouse_sql}: {e}");
        });
        let batches = engine
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("martdb failed on {sql}: {e}"));
        let got = crate::scalar(&batches);
        assert_eq!(
            normalize(&got),
            normalize(&expected),
            "{what} differs\nmartdb:     {sql}\nClickHouse: {clickhouse_sql}"
        );
        *checked.entry(what.as_str()).or_default() += 1;
    }
    // Every function was compared on every case.
    assert!(checked.len() >= 28, "{checked:?}");
    assert!(checked.values().all(|n| *n == cases.len()), "{checked:?}");
}
