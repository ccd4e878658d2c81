//! Rule matching: `--events` events (default 1M) against `--rules` rules (default
//! 1,000) built from about 50 distinct atomic predicates, with `match_rules` (one
//! network, shared atoms) against one SQL filter per rule in the same engine, in one
//! run; and single events through `Engine::rules().match_event` at `--single-rules`
//! rules (default 10,000): latency percentiles.
//!
//! `cargo bench --bench rules -- [--events N] [--rules N] [--single-rules N] [--runs R]`
//! (or `scripts/bench-rules.sh` with the same arguments). The events are a managed table
//! written once into `--data` (default `target/bench-data/rules-{events}`) and reused.

#[path = "args.rs"]
mod args;

/// The allocator the `martdb` binary uses, so that the bench measures what it serves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use args::num_arg;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use martdb::Engine;
use martdb::rules::{ActionKind, Change, Event, Rule};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TYPES: [&str; 5] = ["view", "click", "cart", "order", "login"];
const CATEGORIES: [&str; 12] = [
    "apparel",
    "food",
    "beauty",
    "home",
    "electronics",
    "mom_baby",
    "sports",
    "health",
    "books",
    "toys",
    "pets",
    "travel",
];
const CHANNELS: [&str; 4] = ["app", "web", "mini", "store"];

/// Events: type, category and channel uniform; amount 0..1000 (NULL for views); level
/// 1..10; one user in 100,000; a second apart. Pseudo-random by multiplicative hashing.
fn create_sql(events: u64) -> String {
    let pick = |list: &[&str], hash: &str| {
        let arms: Vec<String> = list
            .iter()
            .enumerate()
            .map(|(i, v)| format!("WHEN {i} THEN '{v}'"))
            .collect();
        format!("CASE {hash} % {} {} END", list.len(), arms.join(" "))
    };
    format!(
        "CREATE TABLE bench_events AS \
         SELECT event_id, user_id, event_type, category, channel, \
                CASE WHEN event_type = 'view' THEN NULL ELSE CAST(h1 % 2000 AS DOUBLE) / 2 END AS amount, \
                CAST(1 + h2 % 10 AS INT) AS level, \
                to_timestamp(1788220800 + event_id) AS ts \
         FROM (SELECT value AS event_id, (value * 7919) % 100000 AS user_id, \
                      {} AS event_type, {} AS category, {} AS channel, \
                      (value * 40503) % 10007 AS h1, (value * 69069) % 65521 AS h2 \
               FROM generate_series(0, {}))",
        pick(&TYPES, "((value * 2654435761) % 1000003)"),
        pick(&CATEGORIES, "((value * 97) % 1009)"),
        pick(&CHANNELS, "((value * 31) % 1013)"),
        events - 1
    )
}

/// About 50 distinct atoms: 5 event types plus these 44.
fn atoms() -> Vec<String> {
    let mut atoms = Vec::new();
    atoms.extend([50, 100, 200, 300, 500, 800, 950].map(|v| format!("amount > {v}")));
    atoms.extend([20, 40, 60].map(|v| format!("amount < {v}")));
    atoms.extend((2..=10).map(|v| format!("level >= {v}")));
    atoms.extend((1..=3).map(|v| format!("level <= {v}")));
    atoms.extend(CATEGORIES.map(|c| format!("category = '{c}'")));
    atoms.extend(CHANNELS.map(|c| format!("channel = '{c}'")));
    atoms.extend((1..=5).map(|v| format!("user_id % 10 < {v}")));
    atoms.push("amount IS NULL".into());
    atoms
}

/// `n` rules: an event type and an AND of three atoms (a category, a level and one
/// other), one in five with an OR of two.
fn rules(n: i64, seed: u64) -> Vec<Rule> {
    let atoms = atoms();
    let (categories, levels): (Vec<&String>, Vec<&String>) = (
        atoms.iter().filter(|a| a.starts_with("category")).collect(),
        atoms.iter().filter(|a| a.starts_with("level")).collect(),
    );
    let others: Vec<&String> = atoms
        .iter()
        .filter(|a| !a.starts_with("category") && !a.starts_with("level"))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    (1..=n)
        .map(|id| {
            let mut rule = Rule::new(id, ActionKind::Emit);
            rule.event_type = Some(TYPES[rng.random_range(0..TYPES.len())].into());
            let mut pick = |list: &[&String]| list[rng.random_range(0..list.len())].clone();
            let (category, level, other) = (pick(&categories), pick(&levels), pick(&others));
            let other = if id % 5 == 0 {
                format!("({other} OR {})", pick(&others))
            } else {
                other
            };
            rule.condition = Some(format!("{category} AND {level} AND {other}"));
            rule
        })
        .collect()
}

async fn count(engine: &Engine, sql: &str) -> i64 {
    let batches = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let events = num_arg("--events", 1_000_000);
    let n_rules = num_arg("--rules", 1_000) as i64;
    let single_rules = num_arg("--single-rules", 10_000) as i64;
    let runs = num_arg("--runs", 3) as usize;
    let data = args::arg("--data").unwrap_or_else(|| format!("target/bench-data/rules-{events}"));
    let fresh = !std::path::Path::new(&data).join("bench_events").exists();
    let engine = Engine::open(&data).await.expect("open the bench data");
    if fresh {
        let start = Instant::now();
        engine
            .sql(&create_sql(events))
            .await
            .expect("write the events");
        eprintln!("wrote {events} events in {:.1?}", start.elapsed());
    }
    // Batch: the rules in the store, matched by match_rules, against one filter per rule.
    let rules = rules(n_rules, 7);
    let existing: Vec<Change> = engine
        .rules()
        .store()
        .rules()
        .unwrap()
        .iter()
        .map(|r| Change::Delete(r.id))
        .collect();
    engine.rules().change(existing).await.unwrap();
    engine
        .rules()
        .change(rules.iter().cloned().map(Change::Insert).collect())
        .await
        .expect("store the rules");
    let network_sql = "SELECT count(*) FROM match_rules('SELECT * FROM bench_events')";
    let mut network = Duration::MAX;
    let mut matches = 0;
    for _ in 0..runs {
        let start = Instant::now();
        matches = count(&engine, network_sql).await;
        network = network.min(start.elapsed());
    }
    let start = Instant::now();
    let mut filtered = 0;
    for rule in &rules {
        filtered += count(
            &engine,
            &format!(
                "SELECT count(*) FROM bench_events WHERE event_type = '{}' AND ({})",
                rule.event_type.as_deref().unwrap(),
                rule.condition.as_deref().unwrap()
            ),
        )
        .await;
    }
    let per_rule = start.elapsed();
    assert_eq!(matches, filtered, "the network and the filters disagree");
    let set = engine
        .rules()
        .compile(
            engine
                .context()
                .table_provider("bench_events")
                .await
                .unwrap()
                .schema(),
        )
        .unwrap();
    println!(
        "batch: {events} events x {n_rules} rules ({} distinct atoms), {matches} matches",
        set.distinct_atoms()
    );
    println!(
        "  match_rules (best of {runs}): {:.3} s = {:.2} M events/s",
        network.as_secs_f64(),
        events as f64 / network.as_secs_f64() / 1e6
    );
    println!(
        "  one SQL filter per rule ({n_rules} queries): {:.3} s",
        per_rule.as_secs_f64()
    );
    println!(
        "  ratio: match_rules is {:.1}x faster",
        per_rule.as_secs_f64() / network.as_secs_f64()
    );

    // Single events at `single_rules` rules.
    let many = self::rules(single_rules, 11);
    let existing: Vec<Change> = rules.iter().map(|r| Change::Delete(r.id)).collect();
    engine.rules().change(existing).await.unwrap();
    engine
        .rules()
        .change(many.into_iter().map(Change::Insert).collect())
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let event = |i: i64, rng: &mut StdRng| {
        let t = TYPES[rng.random_range(0..TYPES.len())];
        let e = Event::new(i, rng.random_range(0..100_000), t, i * 1_000_000)
            .with(
                "category",
                CATEGORIES[rng.random_range(0..CATEGORIES.len())],
            )
            .with("channel", CHANNELS[rng.random_range(0..CHANNELS.len())])
            .with("level", rng.random_range(1..=10_i32));
        if t == "view" {
            e.with("amount", datafusion::common::ScalarValue::Float64(None))
        } else {
            e.with("amount", rng.random_range(0..1000) as f64)
        }
    };
    // Warm up: the first event compiles the network.
    let start = Instant::now();
    engine.rules().match_event(&event(0, &mut rng)).unwrap();
    let compile = start.elapsed();
    let mut latencies = Vec::new();
    let mut fired = 0;
    for i in 1..=20_000 {
        let e = event(i, &mut rng);
        let start = Instant::now();
        fired += engine.rules().match_event(&e).unwrap().len();
        latencies.push(start.elapsed());
    }
    latencies.sort();
    println!(
        "single events: {single_rules} rules (compiled in {:.0} ms), 20000 events, {fired} matches",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "  match_event latency: p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().unwrap().as_secs_f64() * 1e6
    );
}
