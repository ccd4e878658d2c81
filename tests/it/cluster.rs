//! Scale-out on a real cluster: a `martdb scheduler` and two `martdb executor` processes
//! on loopback. The demo's audience and statistics queries run there (both executors
//! take tasks) and return what the local engine returns; queries over the coordinator's
//! state (model scoring, dense ids, writes) stay on the coordinator and still work; an
//! unreachable scheduler is a clear error.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use martdb::{Engine, EngineOptions};

/// The scheduler and executor processes, killed when dropped.
struct LocalCluster {
    processes: Vec<Child>,
    scheduler: SocketAddr,
    work_dirs: Vec<PathBuf>,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_address() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn martdb(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_martdb"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

impl LocalCluster {
    fn start(dir: &Path) -> LocalCluster {
        let scheduler = free_address();
        let mut cluster = LocalCluster {
            processes: vec![martdb(&["scheduler", "--listen", &scheduler.to_string()])],
            scheduler,
            work_dirs: Vec::new(),
        };
        for i in 0..2 {
            let work_dir = dir.join(format!("executor{i}"));
            cluster.processes.push(martdb(&[
                "executor",
                "--scheduler",
                &scheduler.to_string(),
                "--listen",
                &free_address().to_string(),
                "--cores",
                "1",
                "--work-dir",
                work_dir.to_str().unwrap(),
            ]));
            cluster.work_dirs.push(work_dir);
        }
        cluster
    }

    fn url(&self) -> String {
        format!("df://{}", self.scheduler)
    }

    /// The jobs each executor has run tasks of (Ballista keeps a directory per job).
    fn jobs(&self) -> Vec<HashSet<String>> {
        self.work_dirs
            .iter()
            .map(|dir| {
                std::fs::read_dir(dir).map_or_else(
                    |_| HashSet::new(),
                    |entries| {
                        entries
                            .filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .filter(|name| !name.starts_with("datafusion-"))
                            .collect()
                    },
                )
            })
            .collect()
    }

    /// The jobs the cluster has run (one may have tasks on both executors).
    fn job_count(&self) -> usize {
        self.jobs()
            .into_iter()
            .flatten()
            .collect::<HashSet<_>>()
            .len()
    }

    /// Opens an engine on `data` that ships its queries here, once the scheduler answers.
    async fn engine(&self, data: &str) -> Engine {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let options = EngineOptions {
                ballista: Some(self.url()),
                ..Default::default()
            };
            match Engine::open_with(data, options).await {
                Ok(engine) => return engine,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the scheduler never answered: {e}"),
            }
        }
    }
}

/// The demo's audience and statistics queries (sql/examples/audiences.sql and
/// experiments.sql, over the tables themselves).
const SHIPPED: &[&str] = &[
    "SELECT tag, bitmap_cardinality(group_bitmap_state(user_id)) AS users \
     FROM user_tags GROUP BY tag ORDER BY tag",
    "SELECT bitmapAndnotCardinality(bitmapAnd(s.users, c.users), o.users) AS audience \
     FROM (SELECT group_bitmap_state(user_id) AS users FROM user_tags WHERE tag = 'sports') s, \
          (SELECT group_bitmap_state(user_id) AS users FROM events WHERE event_type = 'cart') c, \
          (SELECT group_bitmap_state(user_id) AS users FROM orders) o",
    "SELECT city, bitmap_to_array(sub_bitmap(group_bitmap_state(user_id), 0, 3)) AS first \
     FROM users WHERE age > 30 GROUP BY city ORDER BY city",
    "SELECT round(s.statistic, 6), round(s.p_value, 6), s.mismatch \
     FROM (SELECT ab_srm(users, 1) AS s \
           FROM (SELECT treatment, count(*) AS users FROM campaign GROUP BY treatment))",
    "WITH g AS (SELECT treatment, ab_moments(revenue, monetary) AS spend FROM campaign \
                GROUP BY treatment), \
          pair AS (SELECT c.spend AS c_spend, t.spend AS t_spend \
                   FROM g c JOIN g t ON c.treatment = 0 AND t.treatment = 1), \
          tests AS (SELECT 'welch' AS test, ab_mean_test(c_spend, t_spend) AS r FROM pair \
                    UNION ALL SELECT 'cuped', ab_cuped_test(c_spend, t_spend) FROM pair) \
     SELECT test, round(r.difference, 6), round(r.p_value, 6) FROM tests ORDER BY test",
];

/// Scoring queries: they ship with the deployed model versions frozen into them.
const SCORING: &[&str] = &[
    "SELECT count(*), round(avg(uplift_score('coupon', recency_days, frequency, monetary, \
     age, level, city)), 9) FROM campaign",
    "SELECT user_id, round(uplift_score('coupon_trees', recency_days, frequency, monetary, \
     age, level, city), 9) AS uplift FROM campaign ORDER BY uplift DESC, user_id LIMIT 20",
    "SELECT city, round(sum(uplift_score('coupon', recency_days, frequency, monetary, age, \
     level, city) * uplift_score('coupon_trees', recency_days, frequency, monetary, age, \
     level, city)), 6) FROM campaign GROUP BY city ORDER BY city",
    "SELECT count(*), round(sum(p_treated), 6), round(sum(p_control), 6), \
     round(sum(uplift), 6), round(sum(uplift) FILTER (WHERE city = 'Beijing'), 6) \
     FROM uplift_predict('coupon_trees', 'SELECT user_id, recency_days, frequency, \
     monetary, age, level, city FROM campaign WHERE age > 25')",
    "SELECT s.user_id, round(s.uplift, 9), u.city FROM uplift_predict('coupon', \
     'SELECT * FROM campaign') s JOIN users u ON u.user_id = s.user_id \
     ORDER BY s.uplift DESC, s.user_id LIMIT 10",
];

/// Queries over the coordinator's own state.
const ON_COORDINATOR: &[&str] = &[
    "SELECT dense_id('phone', '555-0100') = dense_id('phone', '555-0100')",
    "SELECT count(*) FROM martdb.models",
];

/// Queries that fail while they run (on the executors, with a cluster).
const FAILING: &[&str] = &[
    "SELECT bitmap_cardinality(CAST(city AS BYTEA)) FROM users",
    "SELECT sum(10 / (age - age)) FROM users",
];

async fn sqlstates(engine: &Engine, queries: &[&str]) -> Vec<&'static str> {
    let mut all = Vec::new();
    for sql in queries {
        match engine.sql(sql).await {
            Ok(_) => panic!("{sql} did not fail"),
            Err(e) => all.push(e.sqlstate()),
        }
    }
    all
}

async fn answers(engine: &Engine, queries: &[&str]) -> Vec<Vec<Vec<String>>> {
    let mut all = Vec::new();
    for sql in queries {
        let rows = engine
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        all.push(crate::rows(&rows));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_queries_run_on_a_two_executor_cluster_as_they_run_locally() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (local, local_state, local_errors) = {
        let engine = Engine::open(data).await.unwrap();
        let options = martdb::demo::DemoOptions {
            users: 3000,
            seed: 7,
        };
        martdb::demo::write(&engine, options, false).await.unwrap();
        for (name, options) in [
            ("coupon", "base = logistic"),
            ("coupon_trees", "learner = t, trees = 20"),
        ] {
            engine
                .sql(&format!(
                    "SELECT version FROM uplift_train('{name}', 'SELECT treatment, converted, \
                     recency_days, frequency, monetary, age, level, city FROM campaign', \
                     'treatment', 'converted', '{options}')"
                ))
                .await
                .unwrap();
        }
        (
            [
                answers(&engine, SHIPPED).await,
                answers(&engine, SCORING).await,
            ]
            .concat(),
            answers(&engine, ON_COORDINATOR).await,
            sqlstates(&engine, FAILING).await,
        )
    };
    for rows in &local {
        assert!(!rows.is_empty());
    }

    let cluster = LocalCluster::start(dir.path());
    let engine = cluster.engine(data).await;
    // Until both executors have polled the scheduler, one may take every task.
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.jobs().iter().any(HashSet::is_empty) {
        assert!(Instant::now() < deadline, "an executor took no task");
        engine.sql(SHIPPED[0]).await.unwrap();
    }

    let before = cluster.job_count();
    let remote = [
        answers(&engine, SHIPPED).await,
        answers(&engine, SCORING).await,
    ]
    .concat();
    assert_eq!(remote, local);
    let shipped = cluster.job_count();
    assert_eq!(
        shipped,
        before + SHIPPED.len() + SCORING.len(),
        "each query is a job on the cluster"
    );
    // The coordinator's checks of a scoring call still come first.
    let err = engine
        .sql("SELECT uplift_score('coupon', recency_days) FROM campaign")
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "22023", "{err}");
    let err = engine
        .sql("SELECT uplift_score('no_such_model', recency_days) FROM campaign")
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "42704", "{err}");
    assert_eq!(cluster.job_count(), shipped);

    assert_eq!(answers(&engine, ON_COORDINATOR).await, local_state);
    // A write's query runs on the cluster, its commit on the coordinator, and the
    // cluster reads what it committed.
    engine
        .sql("CREATE TABLE big_spenders AS SELECT user_id FROM campaign WHERE monetary > 500")
        .await
        .unwrap();
    let count = engine
        .sql("SELECT count(*) FROM big_spenders")
        .await
        .unwrap();
    let expected = engine
        .sql("SELECT count(*) FROM campaign WHERE monetary > 500")
        .await
        .unwrap();
    assert_eq!(crate::rows(&count), crate::rows(&expected));
    // The demo's scoring step: the model travels in the write's query.
    engine
        .sql(
            "CREATE TABLE campaign_scores AS SELECT * FROM uplift_predict('coupon_trees', \
             'SELECT user_id, recency_days, frequency, monetary, age, level, city \
             FROM campaign WHERE age > 25')",
        )
        .await
        .unwrap();
    let stored = engine
        .sql(
            "SELECT count(*), round(sum(p_treated), 6), round(sum(p_control), 6), \
             round(sum(uplift), 6), round(sum(uplift) FILTER (WHERE city = 'Beijing'), 6) \
             FROM campaign_scores",
        )
        .await
        .unwrap();
    assert_eq!(crate::rows(&stored), local[SHIPPED.len() + 3]);
    let after = cluster.job_count();
    assert_eq!(
        after,
        shipped + 5,
        "the writes' queries and the three reads shipped, nothing else"
    );

    // An error on an executor comes back to the client with the SQLSTATE the local
    // engine gives; the engine stays usable.
    assert!(!local_errors.contains(&"XX000"), "{local_errors:?}");
    assert_eq!(sqlstates(&engine, FAILING).await, local_errors);
    let err = engine.sql(FAILING[0]).await.unwrap_err();
    assert!(err.to_string().contains("bitmap_cardinality"), "{err}");
    assert_eq!(answers(&engine, &SHIPPED[..1]).await, local[..1]);
}

#[tokio::test]
async fn an_unreachable_scheduler_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A port bound for the whole test but never listening: connections to it are refused,
    // and the cluster test running alongside cannot take it for its scheduler.
    let unreachable = tokio::net::TcpSocket::new_v4().unwrap();
    unreachable.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let options = EngineOptions {
        ballista: Some(format!("df://{}", unreachable.local_addr().unwrap())),
        ..Default::default()
    };
    let err = Engine::open_with(dir.path().to_str().unwrap(), options)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "08006", "{err}");
    assert!(err.to_string().contains("Ballista scheduler"), "{err}");

    let options = EngineOptions {
        ballista: Some("not a url".into()),
        ..Default::default()
    };
    let err = Engine::open_with(dir.path().to_str().unwrap(), options)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "22023", "{err}");
}
