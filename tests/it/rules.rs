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
