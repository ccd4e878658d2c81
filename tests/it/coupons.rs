//! Coupon reservations under concurrency and crashes: many threads and connections
//! racing for a small stock, and a server killed with SIGKILL under load.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use martdb::Engine;
use martdb::coupons::Outcome;

/// Every answer any caller got, by request key: (user, outcome text).
type Answers = Arc<Mutex<BTreeMap<String, Vec<(String, String)>>>>;

async fn connect(addr: SocketAddr) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let config = format!(
        "host={} port={} user=martdb dbname=martdb",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn record(answers: &Answers, key: &str, user: &str, outcome: String) {
    answers
        .lock()
        .unwrap()
        .entry(key.to_string())
        .or_default()
        .push((user.to_string(), outcome));
}

/// The first outcome of each key, checking that every later answer is its duplicate.
fn first_outcomes(answers: &Answers) -> BTreeMap<String, (String, String)> {
    let answers = answers.lock().unwrap();
    let mut first = BTreeMap::new();
    for (key, seen) in answers.iter() {
        let decided: Vec<&(String, String)> = seen
            .iter()
            .filter(|(_, o)| !o.starts_with("duplicate:"))
            .collect();
        assert_eq!(decided.len(), 1, "key {key} was decided once: {seen:?}");
        let (user, outcome) = decided[0].clone();
        for (_, o) in seen {
            assert!(
                o == &outcome || o == &format!("duplicate:{outcome}"),
                "key {key}: {o} after {outcome}"
            );
        }
        first.insert(key.clone(), (user, outcome));
    }
    first
}

/// Threads on the embedded API and connections over the wire race for 150 coupons with
/// fresh and repeated keys: exactly min(stock, eligible demand) are reserved, nobody
/// holds more than the limit, and each key has one outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_never_oversell() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    engine
        .sql("SELECT create_coupon_pool('flash', 150, '{\"per_user_limit\": 2}')")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(martdb::server::serve_listener(
        engine.clone(),
        listener,
        martdb::server::ServerOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let answers: Answers = Arc::default();
    // 120 users; each caller asks for users in its own order, sometimes retrying a key.
    let users = 120;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let coupons = engine.coupons().clone();
            let answers = answers.clone();
            std::thread::spawn(move || {
                for i in 0..60u64 {
                    let n = if i % 5 == 4 { i - 1 } else { i };
                    let user = ((n * 7 + t * 13) % users).to_string();
                    let key = format!("thread{t}-{n}");
                    let outcome = engine_outcome(coupons.reserve("flash", &user, &key));
                    record(&answers, &key, &user, outcome);
                }
            })
        })
        .collect();
    let connections: Vec<_> = (0..8)
        .map(|c| {
            let answers = answers.clone();
            tokio::spawn(async move {
                let client = connect(addr).await.unwrap();
                let reserve = client
                    .prepare("SELECT reserve_coupon('flash', $1::text, $2::text)")
                    .await
                    .unwrap();
                for i in 0..60u64 {
                    let n = if i % 4 == 3 { i - 1 } else { i };
                    let user = ((n * 11 + c * 17) % users).to_string();
                    let key = format!("conn{c}-{n}");
                    let row = client.query_one(&reserve, &[&user, &key]).await.unwrap();
                    record(&answers, &key, &user, row.get(0));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for c in connections {
        c.await.unwrap();
    }
    let first = first_outcomes(&answers);
    // Eligible demand: per user, at most the limit of its distinct keys.
    let mut keys_per_user: HashMap<&str, u64> = HashMap::new();
    for (user, _) in first.values() {
        *keys_per_user.entry(user).or_default() += 1;
    }
    let eligible: u64 = keys_per_user.values().map(|&n| n.min(2)).sum();
    let reserved = first.values().filter(|(_, o)| o == "reserved").count() as u64;
    assert!(eligible > 150, "the test must ask for more than the stock");
    assert_eq!(reserved, 150.min(eligible));
    let mut per_user: HashMap<&str, u64> = HashMap::new();
    for (user, o) in first.values() {
        if o == "reserved" {
            *per_user.entry(user).or_default() += 1;
        }
    }
    assert!(per_user.values().all(|&n| n <= 2), "{per_user:?}");
    // What is recorded is what the callers were told.
    let recorded = crate::rows(
        &engine
            .sql("SELECT request_key, user_id, outcome FROM martdb.coupon_reservations")
            .await
            .unwrap(),
    );
    assert_eq!(recorded.len(), first.len());
    for row in &recorded {
        assert_eq!(first[&row[0]], (row[1].clone(), row[2].clone()), "{row:?}");
    }
    let pool = crate::rows(
        &engine
            .sql(
                "SELECT p.remaining, r.balanced FROM martdb.coupon_pools p \
                 JOIN martdb.coupon_reconciliation r USING (pool)",
            )
            .await
            .unwrap(),
    );
    assert_eq!(pool, [["0", "true"]]);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

fn engine_outcome(outcome: Result<Outcome, martdb::coupons::CouponError>) -> String {
    outcome.unwrap().to_string()
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn serve(data: &std::path::Path, addr: SocketAddr) -> Child {
    Command::new(env!("CARGO_BIN_EXE_martdb"))
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &addr.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn connect_when_up(addr: SocketAddr) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match connect(addr).await {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("server did not come up: {e}"),
        }
    }
}

/// A server under load from several connections is killed with SIGKILL at random
/// moments, three times. After each restart every acknowledged reservation is there with
/// the outcome its caller got, no key is recorded twice, and the pool's counters are
/// exact (they equal a recount of the reservations).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_reservations_survive_sigkill() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = serve(dir.path(), addr);
    let admin = connect_when_up(addr).await;
    admin
        .simple_query("SELECT create_coupon_pool('drop', 400, '{\"per_user_limit\": 3}')")
        .await
        .unwrap();
    let acknowledged: Answers = Arc::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    for round in 0..3 {
        let load: Vec<_> = (0..6)
            .map(|c| {
                let acknowledged = acknowledged.clone();
                tokio::spawn(async move {
                    let Ok(client) = connect(addr).await else {
                        return;
                    };
                    for i in 0.. {
                        let user = ((i * 31 + c * 7) % 150).to_string();
                        // Retry the previous key now and then: it must stay decided.
                        let n = if i % 6 == 5 { i - 1 } else { i };
                        let key = format!("r{round}-c{c}-{n}");
                        match client
                            .query_one(
                                "SELECT reserve_coupon('drop', $1::text, $2::text)",
                                &[&user, &key],
                            )
                            .await
                        {
                            Ok(row) => record(&acknowledged, &key, &user, row.get(0)),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..900))).await;
        server.kill().unwrap();
        server.wait().unwrap();
        for task in load {
            task.await.unwrap();
        }
        server = serve(dir.path(), addr);
        let client = connect_when_up(addr).await;
        let first = first_outcomes(&acknowledged);
        assert!(
            !first.is_empty(),
            "round {round}: some calls were acknowledged"
        );
        let rows = client
            .simple_query("SELECT request_key, user_id, outcome FROM martdb.coupon_reservations")
            .await
            .unwrap();
        let mut recorded: BTreeMap<String, (String, String)> = BTreeMap::new();
        for message in rows {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                let key = row.get(0).unwrap().to_string();
                let value = (row.get(1).unwrap().into(), row.get(2).unwrap().into());
                assert!(recorded.insert(key.clone(), value).is_none(), "{key} twice");
            }
        }
        for (key, answer) in &first {
            assert_eq!(recorded.get(key), Some(answer), "round {round}: {key}");
        }
        let check = client
            .query_one(
                "SELECT p.remaining, p.stock - p.reserved - p.redeemed, r.balanced, \
                   (SELECT count(*) FROM martdb.coupon_reservations WHERE outcome = 'reserved') \
                 FROM martdb.coupon_pools p JOIN martdb.coupon_reconciliation r USING (pool)",
                &[],
            )
            .await
            .unwrap();
        let (remaining, expected, balanced, reserved): (i64, i64, bool, i64) =
            (check.get(0), check.get(1), check.get(2), check.get(3));
        assert!(balanced, "round {round}: counters equal the recount");
        assert_eq!(remaining, expected);
        assert_eq!(remaining, 400 - reserved.min(400), "round {round}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
