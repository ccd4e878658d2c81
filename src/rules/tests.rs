//! The network against SQL, and the ordered decisions (caps, groups, arrival order).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use datafusion::prelude::SessionContext;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::network::Missing;
use super::*;

struct NoAudiences;

impl AudienceSource for NoAudiences {
    fn members(&self, _name: &str) -> Result<Arc<Bitmap>, RuleError> {
        Ok(Arc::new(Bitmap::from_values([2, 4, 6])))
    }

    fn version(&self, _name: &str) -> Result<Option<i64>, RuleError> {
        Ok(Some(1))
    }
}

const TYPES: [&str; 3] = ["view", "cart", "order"];
const CATEGORIES: [&str; 3] = ["food", "books", "toys"];
const MINUTE: i64 = 60_000_000;

fn events(rng: &mut StdRng, rows: usize) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("level", DataType::Int32, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let maybe = |rng: &mut StdRng| rng.random_bool(0.85);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(Int64Array::from_iter_values(
            (0..rows).map(|_| rng.random_range(1..8)),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|_| TYPES[rng.random_range(0..3)]),
        )),
        Arc::new(StringArray::from_iter(
            (0..rows).map(|_| maybe(rng).then(|| CATEGORIES[rng.random_range(0..3)])),
        )),
        Arc::new(Float64Array::from_iter((0..rows).map(|_| {
            maybe(rng).then(|| rng.random_range(0..30) as f64 * 10.0)
        }))),
        Arc::new(Int32Array::from_iter(
            (0..rows).map(|_| maybe(rng).then(|| rng.random_range(1..11))),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                (0..rows).map(|_| rng.random_range(0..600) * MINUTE),
            )
            .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

const ATOMS: [&str; 12] = [
    "amount > 100",
    "100 < amount",
    "amount >= 250",
    "level > 5",
    "level <= 3",
    "category = 'food'",
    "'books' = category",
    "category IN ('toys', 'food')",
    "amount IS NULL",
    "level + 1 > 8",
    "category LIKE 'b%'",
    "amount * 2 < level * 40",
];

fn condition(rng: &mut StdRng, depth: u32) -> String {
    if depth == 0 || rng.random_bool(0.35) {
        return ATOMS[rng.random_range(0..ATOMS.len())].to_string();
    }
    match rng.random_range(0..3) {
        0 => format!(
            "({} AND {})",
            condition(rng, depth - 1),
            condition(rng, depth - 1)
        ),
        1 => format!(
            "({} OR {})",
            condition(rng, depth - 1),
            condition(rng, depth - 1)
        ),
        _ => format!("NOT ({})", condition(rng, depth - 1)),
    }
}

fn random_rules(rng: &mut StdRng, n: i64) -> Vec<Arc<Rule>> {
    (1..=n)
        .map(|id| {
            let mut rule = Rule::new(id, ActionKind::Emit);
            rule.event_type = rng
                .random_bool(0.8)
                .then(|| TYPES[rng.random_range(0..3)].to_string());
            rule.condition = rng.random_bool(0.9).then(|| condition(rng, 3));
            rule.enabled = rng.random_bool(0.9);
            rule.version = 1;
            Arc::new(rule)
        })
        .collect()
}

fn pairs(batches: &[RecordBatch]) -> BTreeSet<(i64, i64)> {
    let mut out = BTreeSet::new();
    for b in batches {
        let events = b.column(0).as_primitive::<Int64Type>();
        let rules = b.column(2).as_primitive::<Int64Type>();
        for row in 0..b.num_rows() {
            out.insert((events.value(row), rules.value(row)));
        }
    }
    out
}

#[tokio::test]
async fn network_matches_equal_one_sql_filter_per_rule() {
    for seed in 0..6 {
        let mut rng = StdRng::seed_from_u64(seed);
        let batch = events(&mut rng, 700);
        let rules = random_rules(&mut rng, 60);
        let ctx = SessionContext::new();
        ctx.register_batch("events", batch.clone()).unwrap();
        let set = RuleSet::compile(
            &rules,
            batch.schema(),
            &ctx.state(),
            &NoAudiences,
            Missing::Error,
        )
        .unwrap();
        // Shared atoms: 60 rules over a dozen predicates, one of them written two ways.
        assert!(
            set.distinct_atoms() < ATOMS.len(),
            "{}",
            set.distinct_atoms()
        );
        let mut matcher = BatchMatcher::new(&set);
        // Two batches, to cross a batch boundary.
        matcher.add(&batch.slice(0, 300)).unwrap();
        matcher.add(&batch.slice(300, 400)).unwrap();
        let network = pairs(&matcher.finish().unwrap());

        let mut expected = BTreeSet::new();
        for rule in rules.iter().filter(|r| r.enabled) {
            let mut filter = vec![];
            if let Some(t) = &rule.event_type {
                filter.push(format!("event_type = '{t}'"));
            }
            if let Some(c) = &rule.condition {
                filter.push(format!("({c})"));
            }
            let sql = match filter.is_empty() {
                true => "SELECT event_id FROM events".to_string(),
                false => format!("SELECT event_id FROM events WHERE {}", filter.join(" AND ")),
            };
            for b in ctx.sql(&sql).await.unwrap().collect().await.unwrap() {
                for id in b.column(0).as_primitive::<Int64Type>().values() {
                    expected.insert((*id, rule.id));
                }
            }
        }
        assert!(!expected.is_empty());
        assert_eq!(network, expected, "seed {seed}");

        // One event at a time gives the same matches.
        let mut one = BTreeSet::new();
        let mut events = EventMatcher::new(Arc::new(
            RuleSet::compile(
                &rules,
                batch.schema(),
                &ctx.state(),
                &NoAudiences,
                Missing::Error,
            )
            .unwrap(),
        ));
        for row in 0..batch.num_rows() {
            one.extend(pairs(&events.match_event(&batch.slice(row, 1)).unwrap()));
        }
        assert_eq!(one, expected, "seed {seed}, one at a time");
    }
}

fn rule(id: i64, f: impl FnOnce(&mut Rule)) -> Arc<Rule> {
    let mut r = Rule::new(id, ActionKind::Message);
    r.params = r#"{"channel": "sms"}"#.into();
    r.version = 1;
    f(&mut r);
    Arc::new(r)
}

/// (event_id, rule_id) of matching `rows` (event_id, user_id, type, minute) one batch.
fn run_batch(rules: &[Arc<Rule>], rows: &[(i64, i64, &str, i64)]) -> Vec<(i64, i64)> {
    let (set, batch) = compile(rules, rows);
    let mut m = BatchMatcher::new(&set);
    m.add(&batch).unwrap();
    pairs(&m.finish().unwrap()).into_iter().collect()
}

fn run_events(rules: &[Arc<Rule>], rows: &[(i64, i64, &str, i64)]) -> Vec<(i64, i64)> {
    let (set, batch) = compile(rules, rows);
    let mut m = EventMatcher::new(Arc::new(set));
    let mut out = BTreeSet::new();
    for row in 0..batch.num_rows() {
        out.extend(pairs(&m.match_event(&batch.slice(row, 1)).unwrap()));
    }
    out.into_iter().collect()
}

fn compile(rules: &[Arc<Rule>], rows: &[(i64, i64, &str, i64)]) -> (RuleSet, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| r.3 * MINUTE),
            )),
        ],
    )
    .unwrap();
    let ctx = SessionContext::new();
    let set = RuleSet::compile(rules, schema, &ctx.state(), &NoAudiences, Missing::Error).unwrap();
    (set, batch)
}

#[test]
fn frequency_caps_count_every_action_on_the_channel() {
    // Rule 1: every view, sms, no cap of its own. Rule 2: every cart, sms, 1 per hour.
    let rules = [
        rule(1, |r| r.event_type = Some("view".into())),
        rule(2, |r| {
            r.event_type = Some("cart".into());
            r.cap = Some(FrequencyCap::parse("1/1h").unwrap());
        }),
    ];
    let rows = [
        (1, 7, "cart", 0),
        (2, 7, "cart", 30),  // capped: the sms at 0
        (3, 7, "cart", 61),  // free again
        (4, 7, "view", 100), // uncapped rule: fires
        (5, 7, "cart", 160), // the view's sms at 100 counts: capped
        (6, 8, "cart", 30),  // another user has their own budget
    ];
    let expected = vec![(1, 2), (3, 2), (4, 1), (6, 2)];
    assert_eq!(run_batch(&rules, &rows), expected);
    assert_eq!(run_events(&rules, &rows), expected);
    // A cap window is inclusive: 60 minutes after the first is still within 1h.
    let edge = [(1, 7, "cart", 0), (2, 7, "cart", 60), (3, 7, "cart", 61)];
    assert_eq!(run_batch(&rules, &edge), [(1, 2), (3, 2)]);
}

#[test]
fn first_policy_fires_the_highest_priority_rule_that_is_not_capped() {
    let in_group = |id: i64, priority: i32, channel: &'static str, cap: Option<&str>| {
        rule(id, move |r| {
            r.event_type = Some("order".into());
            r.group = "welcome".into();
            r.policy = Policy::First;
            r.priority = priority;
            r.params = format!(r#"{{"channel": "{channel}"}}"#);
            r.cap = cap.map(|c| FrequencyCap::parse(c).unwrap());
        })
    };
    let rules = [
        in_group(1, 5, "push", None),
        in_group(2, 9, "sms", Some("1/1d")),
        in_group(3, 9, "email", None), // same priority as 2: the lower id wins
        rule(4, |r| r.event_type = Some("order".into())), // another group: always fires
    ];
    let rows = [(10, 1, "order", 0), (11, 1, "order", 5)];
    // Event 10: rule 2 (priority 9, lowest id). Event 11: rule 2 is capped, so rule 3.
    let expected = vec![(10, 2), (10, 4), (11, 3), (11, 4)];
    assert_eq!(run_batch(&rules, &rows), expected);
    assert_eq!(run_events(&rules, &rows), expected);
}

#[test]
fn patterns_agree_between_batch_and_out_of_order_arrival() {
    let rules = [
        rule(1, |r| {
            r.pattern = Some("times(3) of view within 30m".into())
        }),
        rule(2, |r| {
            r.pattern = Some("sequence(view, cart) within 10m".into())
        }),
        rule(3, |r| {
            r.pattern =
                Some("sequence(view, cart) within 10m and not followed by order within 15m".into())
        }),
    ];
    let mut rng = StdRng::seed_from_u64(9);
    let mut rows: Vec<(i64, i64, &str, i64)> = (0..400)
        .map(|i| {
            (
                i,
                rng.random_range(1..5),
                TYPES[rng.random_range(0..3)],
                i / 2,
            )
        })
        .collect();
    // A last event moves the watermark past every deadline.
    rows.push((10_000, 99, "view", 10_000));
    let batch = run_batch(&rules, &rows);
    for id in 1..=3 {
        assert!(
            batch.iter().any(|(_, r)| *r == id),
            "rule {id} never matched"
        );
    }
    let cancelled = batch.iter().filter(|(_, r)| *r == 2).count()
        > batch.iter().filter(|(_, r)| *r == 3).count();
    assert!(cancelled, "some orders cancel rule 3's matches");
    // In time order, one event at a time: the same matches, absence included.
    assert_eq!(run_events(&rules, &rows), batch);
    // Out of order (each event up to 10 positions late): counts and sequences are a
    // function of the events, not of their arrival, so rules 1 and 2 agree exactly.
    for i in 0..rows.len() - 1 {
        let j = (i + rng.random_range(0..10)).min(rows.len() - 2);
        rows.swap(i, j);
    }
    let positive = &rules[..2];
    assert_eq!(run_events(positive, &rows), run_batch(positive, &rows));
    assert_ne!(rows.windows(2).filter(|w| w[0].3 > w[1].3).count(), 0);
}

#[tokio::test]
async fn rule_changes_take_effect_on_the_next_event_and_are_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::Engine::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let rules = engine.rules();
    let mut big = Rule::new(1, ActionKind::Emit);
    big.event_type = Some("order".into());
    big.condition = Some("amount > 100".into());
    rules.create(big.clone()).await.unwrap();
    let event =
        |id: i64, amount: f64| Event::new(id, 5, "order", id * MINUTE).with("amount", amount);
    assert_eq!(rules.match_event(&event(1, 150.0)).unwrap().len(), 1);
    assert_eq!(rules.match_event(&event(2, 50.0)).unwrap().len(), 0);
    // A change is a new version, used from the next event on.
    big.condition = Some("amount > 10".into());
    rules.update(big.clone()).await.unwrap();
    let m = rules.match_event(&event(3, 50.0)).unwrap();
    assert_eq!((m[0].rule_id, m[0].rule_version), (1, 2));
    assert_eq!(
        rules
            .store()
            .version(1, 1)
            .unwrap()
            .unwrap()
            .condition
            .as_deref(),
        Some("amount > 100")
    );
    // A bad change changes nothing.
    let err = rules.create(big.clone()).await.unwrap_err();
    assert!(matches!(err, RuleError::Exists { id: 1 }), "{err}");
    let mut broken = big.clone();
    broken.condition = Some("amount >".into());
    let err = rules.update(broken).await.unwrap_err();
    assert!(err.to_string().starts_with("rule 1: condition"), "{err}");
    assert_eq!(rules.store().rules().unwrap()[0].version, 2);
    // An event without the column reads it as NULL.
    let bare = Event::new(4, 5, "order", 4 * MINUTE);
    assert!(rules.match_event(&bare).unwrap().is_empty());
    rules.delete(1).await.unwrap();
    assert!(rules.match_event(&event(5, 500.0)).unwrap().is_empty());
}

#[test]
fn event_state_is_bounded_by_the_horizon_and_absences_wait_for_the_watermark() {
    let rules = [rule(1, |r| {
        r.pattern = Some("times(2) of view within 30m and not followed by order within 30m".into())
    })];
    // One view a minute for a day: the matcher keeps only the pattern's hour plus the
    // allowed lateness, not the day.
    let rows: Vec<(i64, i64, &str, i64)> = (0..1440).map(|i| (i, 7, "view", i)).collect();
    let (set, batch) = compile(&rules, &rows);
    let mut events = EventMatcher::new(Arc::new(set));
    for row in 0..batch.num_rows() {
        events.match_event(&batch.slice(row, 1)).unwrap();
    }
    let kept_minutes = (matcher::ALLOWED_LATENESS_MICROS / MINUTE + 60 + 1) as usize;
    assert!(
        events.retained_events() <= kept_minutes,
        "{}",
        events.retained_events()
    );
    // In a batch, the matches whose absence window the input did not pass are pending.
    let (set, batch) = compile(&rules, &rows);
    let mut m = BatchMatcher::new(&set);
    m.add(&batch).unwrap();
    let fired = pairs(&m.finish().unwrap()).len();
    assert_eq!(
        fired, 1408,
        "views 1..=1408 fire; the last 31 wait for their deadline"
    );
}

/// One `match_schema` row (integer ids) with `action` as its action, and its columns.
fn match_columns(action: &str) -> Vec<ArrayRef> {
    vec![
        Arc::new(Int64Array::from(vec![10])),
        Arc::new(Int64Array::from(vec![42])),
        Arc::new(Int64Array::from(vec![1])),
        Arc::new(Int64Array::from(vec![3])),
        Arc::new(StringArray::from(vec!["r"])),
        Arc::new(StringArray::from(vec!["g"])),
        Arc::new(StringArray::from(vec![action])),
        Arc::new(StringArray::from(vec!["{}"])),
        Arc::new(StringArray::from(vec!["sms"])),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(5)]).with_timezone("UTC")),
    ]
}

/// The error `Match::from_batches` gives for `batch`, which is not of `match_schema`.
fn not_matches(batch: RecordBatch) -> String {
    match Match::from_batches(&[batch]) {
        Err(e @ RuleError::Engine(_)) => e.to_string(),
        other => panic!("expected an error for rows not of match_schema, got {other:?}"),
    }
}

/// Guards `Match::from_batches` (public) against batches not shaped like `match_schema`:
/// they panicked (column index, cast, `as_string`, unknown action); now they are errors.
#[test]
fn matches_from_wrongly_shaped_batches_are_errors() {
    let schema = match_schema(&DataType::Int64, &DataType::Int64);
    let good = RecordBatch::try_new(schema.clone(), match_columns("message")).unwrap();
    let matches = Match::from_batches(std::slice::from_ref(&good)).unwrap();
    assert_eq!(
        matches,
        [Match {
            event_id: 10,
            user_id: 42,
            rule_id: 1,
            rule_version: 3,
            action: ActionKind::Message,
            params: "{}".into(),
            channel: "sms".into(),
            fired_at: 5,
        }]
    );

    // Too few columns.
    let short = good.project(&[0, 1, 2, 3]).unwrap();
    let err = not_matches(short);
    assert!(
        err.contains("rows that are not of match_schema: 4 columns"),
        "{err}"
    );

    // An action that is not text.
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| (**f).clone()).collect();
    fields[6] = Field::new("action", DataType::Int64, false);
    let mut columns = match_columns("message");
    columns[6] = Arc::new(Int64Array::from(vec![1]));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let err = not_matches(batch);
    assert!(err.contains("column 6 is not text"), "{err}");

    // An event id that does not cast to an integer.
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| (**f).clone()).collect();
    let list =
        datafusion::arrow::array::ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(
            vec![Some(10)],
        )]);
    fields[0] = Field::new("event_id", list.data_type().clone(), true);
    let mut columns = match_columns("message");
    columns[0] = Arc::new(list);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let err = not_matches(batch);
    assert!(err.contains("column 0:"), "{err}");

    // An action martdb does not know.
    let batch = RecordBatch::try_new(schema.clone(), match_columns("teleport")).unwrap();
    let err = not_matches(batch);
    assert!(err.contains("unknown action 'teleport'"), "{err}");
}
