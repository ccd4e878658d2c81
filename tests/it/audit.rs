//! The audit log over the wire: statements that change state are always audited, every
//! statement with `audit = true`; one JSON line each with user, client, statement,
//! rows and outcome.

use std::path::Path;

use martdb::server::{AuditOptions, ServerOptions};

use crate::server::Server;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn find<'a>(lines: &'a [serde_json::Value], statement: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["statement"].as_str().unwrap().contains(statement))
        .unwrap_or_else(|| panic!("no audit line for {statement}: {lines:#?}"))
}

/// Lines are written when the statement's reply is done; give the server a moment.
async fn settled(path: &Path, count: usize) -> Vec<serde_json::Value> {
    for _ in 0..50 {
        let found = lines(path);
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    lines(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_are_always_audited_and_everything_with_audit_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let server = Server::start_with(ServerOptions {
        audit_log: Some(AuditOptions::new(&path)),
        ..Default::default()
    })
    .await;
    let client = server.client().await;
    client.simple_query("SELECT 1").await.unwrap();
    client
        .simple_query("CREATE TABLE t AS VALUES (1), (2)")
        .await
        .unwrap();
    client
        .simple_query("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    let err = client
        .simple_query("INSERT INTO missing VALUES (1)")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    client
        .simple_query("SELECT create_coupon_pool('spring', 5)")
        .await
        .unwrap();
    let reserve = client
        .prepare("SELECT reserve_coupon('spring', $1::BIGINT, $2::TEXT)")
        .await
        .unwrap();
    client.query(&reserve, &[&7i64, &"order-7"]).await.unwrap();
    client.simple_query("SELECT count(*) FROM t").await.unwrap();

    let logged = settled(&path, 5).await;
    assert_eq!(logged.len(), 5, "{logged:#?}");
    assert!(
        logged.iter().all(|l| l["changes_state"] == true),
        "{logged:#?}"
    );
    let create = find(&logged, "CREATE TABLE t");
    assert_eq!(create["outcome"], "ok");
    assert_eq!(create["rows"], 2);
    assert_eq!(create["user"], "analyst");
    assert_eq!(create["database"], "martdb");
    assert!(create["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(create["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(find(&logged, "INSERT INTO t")["rows"], 1);
    assert_eq!(find(&logged, "INSERT INTO missing")["outcome"], "42P01");
    assert_eq!(find(&logged, "create_coupon_pool")["outcome"], "ok");
    assert_eq!(find(&logged, "reserve_coupon")["outcome"], "ok");
    server.stop().await;

    // audit = true: every statement, after the lines already there.
    let server = Server::start_with(ServerOptions {
        audit: true,
        audit_log: Some(AuditOptions::new(&path)),
        ..Default::default()
    })
    .await;
    let client = server.client().await;
    client
        .simple_query("SELECT value FROM generate_series(1, 3)")
        .await
        .unwrap();
    let logged = settled(&path, 6).await;
    assert_eq!(logged.len(), 6, "{logged:#?}");
    let select = &logged[5];
    assert_eq!(
        select["statement"],
        "SELECT value FROM generate_series(1, 3)"
    );
    assert_eq!(select["rows"], 3);
    assert_eq!(select["changes_state"], false);
    server.stop().await;
}
