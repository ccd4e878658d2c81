//! Rules over the wire: stored with INSERT and UPDATE, matched with `match_rules` by a
//! real client, bad rules refused with their SQLSTATE, and rules changed while other
//! connections match.

use crate::server::Server;

const EVENTS: &str = "CREATE TABLE events AS SELECT value AS event_id, value % 50 AS user_id, \
     CASE value % 3 WHEN 0 THEN 'view' WHEN 1 THEN 'cart' ELSE 'order' END AS event_type, \
     CAST(value % 1000 AS DOUBLE) AS amount, \
     to_timestamp(1777593600 + value * 60) AS ts \
     FROM generate_series(0, 2999)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_rows_matched_by_a_client_and_changed_while_matching() {
    let server = Server::start().await;
    let client = server.client().await;
    client.batch_execute(EVENTS).await.unwrap();
    let inserted = client
        .execute(
            "INSERT INTO martdb.rules (id, name, event_type, condition, action, action_params) \
             VALUES ($1, 'big order', 'order', 'amount > 500', 'message', '{\"channel\": \"sms\"}')",
            &[&1_i64],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);

    // Extended protocol, typed results.
    let rows = client
        .query(
            "SELECT event_id, rule_id, rule_version, channel FROM match_rules('SELECT * FROM events') \
             ORDER BY event_id LIMIT 2",
            &[],
        )
        .await
        .unwrap();
    let first: Vec<(i64, i64, i64, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        first,
        [
            (503, 1, 1, "sms".to_string()),
            (506, 1, 1, "sms".to_string())
        ]
    );

    // A bad condition is refused with the rule's id; the server and the rules stay.
    let err = client
        .batch_execute(
            "INSERT INTO martdb.rules (id, action, condition) VALUES (9, 'emit', 'amount >>> 1')",
        )
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "22023", "{db}");
    assert!(db.message().starts_with("rule 9: condition"), "{db}");
    let stored: i64 = client
        .query_one("SELECT count(*) FROM martdb.rules", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);

    // One connection changes the threshold back and forth while others match: every
    // result is the whole answer of one version (its count is that version's count).
    let count_of = |threshold: i64| {
        (0..3000)
            .filter(|v| v % 3 == 2 && v % 1000 > threshold)
            .count() as i64
    };
    let expected = [(1_i64, count_of(500))]
        .into_iter()
        .chain((2..=11).map(|v| (v, count_of(if v % 2 == 0 { 100 } else { 500 }))))
        .collect::<std::collections::HashMap<i64, i64>>();
    let changer = {
        let client = server.client().await;
        tokio::spawn(async move {
            for version in 2..=11 {
                let threshold = if version % 2 == 0 { 100 } else { 500 };
                client
                    .execute(
                        &format!(
                            "UPDATE martdb.rules SET condition = 'amount > {threshold}' WHERE id = 1"
                        ),
                        &[],
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let mut matchers = Vec::new();
    for _ in 0..2 {
        let client = server.client().await;
        let expected = expected.clone();
        matchers.push(tokio::spawn(async move {
            let mut versions = std::collections::BTreeSet::new();
            for _ in 0..8 {
                let rows = client
                    .query(
                        "SELECT min(rule_version), max(rule_version), count(*) \
                         FROM match_rules('SELECT * FROM events')",
                        &[],
                    )
                    .await
                    .unwrap();
                let (low, high, n): (i64, i64, i64) =
                    (rows[0].get(0), rows[0].get(1), rows[0].get(2));
                assert_eq!(low, high, "one result mixes rule versions");
                assert_eq!(n, expected[&low], "version {low}");
                versions.insert(low);
            }
            versions
        }));
    }
    changer.await.unwrap();
    for m in matchers {
        assert!(!m.await.unwrap().is_empty());
    }
    let version: i64 = client
        .query_one("SELECT version FROM martdb.rules WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 11);
    server.stop().await;
}

/// An events query with exactly the columns of [`Event::to_batch`] (types and
/// nullability): `match_rules` over it looks up the same compiled-network cache entry.
const EVENT_SHAPED: &str = "SELECT arrow_cast(2, 'Int64') AS event_id, arrow_cast(7, 'Int64') AS user_id, \
     arrow_cast('view', 'Utf8') AS event_type, \
     arrow_cast(60000000, 'Timestamp(Microsecond, Some(\"UTC\"))') AS ts";

/// Guards the rules compile cache: a network compiled for single events (missing columns
/// read as NULL) was reused for a batch of the same schema and panicked on its missing
/// `with same` column; now the batch compiles its own network and gets a clean error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_compiled_for_single_events_is_not_reused_for_batches() {
    use martdb::rules::{ActionKind, Event, Rule};

    let dir = tempfile::tempdir().unwrap();
    let engine = martdb::Engine::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let rules = engine.rules();
    // No events table: the rule is stored without a column check.
    let mut rule = Rule::new(1, ActionKind::Emit);
    rule.pattern = Some("times(2) of view with same category within 30m".into());
    rules.create(rule).await.unwrap();

    // A single event lacks `category`: it reads as NULL, and the network is cached.
    let event = Event::new(1, 7, "view", 0);
    assert!(rules.match_event(&event).unwrap().is_empty());
    let batch = event.to_batch().unwrap();

    // The same schema as a batch: the pattern's column is missing, an error (22023).
    let err = rules.compile(batch.schema()).unwrap_err();
    assert_eq!(err.sqlstate(), "22023", "{err}");
    assert_eq!(
        err.to_string(),
        "rule 1: pattern: the events have no column 'category'"
    );

    // The same through SQL: match_rules over a query of exactly that schema.
    let shaped = engine.sql(EVENT_SHAPED).await.unwrap();
    assert_eq!(shaped[0].schema(), batch.schema());
    let err = engine
        .sql(&format!(
            "SELECT * FROM match_rules('{}')",
            EVENT_SHAPED.replace('\'', "''")
        ))
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "22023", "{err}");
    assert!(
        err.to_string()
            .contains("rule 1: pattern: the events have no column 'category'"),
        "{err}"
    );

    // Both paths go on working: single events, and batches that have the column.
    assert_eq!(
        rules
            .match_event(&Event::new(2, 7, "view", 60_000_000))
            .unwrap()
            .len(),
        1
    );
    let with_category = engine
        .sql(
            "SELECT count(*) FROM match_rules('SELECT value AS event_id, 7 AS user_id, \
             ''view'' AS event_type, ''toys'' AS category, to_timestamp(value * 60) AS ts \
             FROM generate_series(1, 2)')",
        )
        .await
        .unwrap();
    assert_eq!(crate::scalar(&with_category), "1");
}
