//! Identity resolution end to end, through SQL and the `martdb` binary:
//!
//! - With no rules, `resolve_identities` is plain connected components: on random
//!   multigraphs (self-loops, duplicate and reversed edges, nodes seen only in
//!   self-loops) its persons are exactly python-igraph's `connected_components`
//!   (benches/peers/identity_peer.py), and `identity_update` of the same edges into an
//!   empty stored graph gives the same persons with the same ids (the module docs promise
//!   that a batch run and a one-update stored graph agree). Identifiers of different
//!   types share values, so a resolution that ignored types would fail. Needs Python
//!   with python-igraph (`MARTDB_PYTHON`, set by scripts/test.sh); without it the test
//!   says so and passes only if `MARTDB_REQUIRE_CLIENTS` is unset.
//! - Under each kind of rule (limits with priorities and tie-breaks, hubs, blocked values
//!   and patterns), one update of an empty stored graph gives the batch run's persons,
//!   ids and rejections.
//! - An update killed with SIGKILL at any moment leaves the stored graph exactly as it
//!   was before the update or as it is after it, never in between, and the database
//!   opens and takes updates again.
//! - Bad arguments fail with SQLSTATE 22023 and a message that says what is wrong, a
//!   read-only session may not update the graph (25006), and `person_id` and
//!   `martdb.identity_merges` follow the updates.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use martdb::Engine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{python_or_skip, rows, scalar};

async fn open(data: &Path) -> Engine {
    Engine::open(data.to_str().unwrap()).await.unwrap()
}

async fn query(engine: &Engine, sql: &str) -> Vec<Vec<String>> {
    rows(
        &engine
            .sql(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}")),
    )
}

// ---------------------------------------------------------------------------------------
// Differential test against python-igraph.

/// What `identity_peer.py differential` prints.
#[derive(serde::Deserialize)]
struct Components {
    edges: Vec<[u64; 2]>,
    /// The nodes that appear in an edge, ascending.
    vertices: Vec<u64>,
    /// igraph's component of each vertex, numbered in order of first appearance.
    membership: Vec<usize>,
    components: usize,
}

fn igraph_components(python: &str, seed: u64, nodes: u64, edges: u64) -> Components {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/peers/identity_peer.py"
    );
    let output = Command::new(python)
        .arg(script)
        .args(["differential", "--seed", &seed.to_string()])
        .args(["--nodes", &nodes.to_string(), "--edges", &edges.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    assert!(
        output.status.success(),
        "identity_peer.py failed (scripts/test.sh installs the peers into a venv and sets \
         MARTDB_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Node `n` is the identifier of type `t{n % 3}` and value `n / 3`, as text `v{n / 3}` or,
/// with `integer_ids`, as the integer: values repeat across types, so only the pair
/// names a node.
fn edges_query(integer_ids: bool, order: &str) -> String {
    let id = |column: &str| match integer_ids {
        true => format!("{column} / 3"),
        false => format!("'v' || ({column} / 3)"),
    };
    format!(
        "SELECT {}, 't' || (a % 3), {}, 't' || (b % 3) FROM e {order}",
        id("a"),
        id("b")
    )
}

fn node(id_type: &str, id: &str) -> u64 {
    let kind: u64 = id_type.strip_prefix('t').unwrap().parse().unwrap();
    let value: u64 = id.strip_prefix('v').unwrap_or(id).parse().unwrap();
    assert!(kind < 3, "type {id_type}");
    value * 3 + kind
}

/// `(person_id, id_type, id)` rows as the component of each of `vertices`, numbered in
/// order of first appearance (igraph's numbering in the peer), and the persons' ids.
fn partition(resolved: &[Vec<String>], vertices: &[u64]) -> Vec<usize> {
    let person_of: HashMap<u64, &str> = resolved
        .iter()
        .map(|row| (node(&row[1], &row[2]), row[0].as_str()))
        .collect();
    assert_eq!(
        person_of.len(),
        resolved.len(),
        "each identifier is listed once"
    );
    assert_eq!(
        person_of.len(),
        vertices.len(),
        "every node of an edge gets a person, and no other"
    );
    let mut labels: HashMap<&str, usize> = HashMap::new();
    vertices
        .iter()
        .map(|v| {
            let person = person_of
                .get(v)
                .unwrap_or_else(|| panic!("node {v} has no person"));
            let next = labels.len();
            *labels.entry(person).or_insert(next)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_equal_igraph_on_random_graphs() {
    let test = "components_equal_igraph_on_random_graphs";
    let Some(python) = python_or_skip(test, "python-igraph and numpy") else {
        return;
    };
    // (seed, nodes, edges): sparse graphs with many small components, denser ones with
    // a giant component, and one of 50k edges.
    let cases: [(u64, u64, u64); 5] = [
        (1, 300, 200),
        (2, 600, 900),
        (3, 5_000, 3_000),
        (4, 8_000, 12_000),
        (5, 60_000, 50_000),
    ];
    for (seed, nodes, edges) in cases {
        let started = Instant::now();
        let peer = igraph_components(&python, seed, nodes, edges);
        assert_eq!(peer.edges.len() as u64, edges);
        assert_eq!(peer.vertices.len(), peer.membership.len());
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("edges.csv");
        let mut text = String::from("a,b\n");
        for [a, b] in &peer.edges {
            text.push_str(&format!("{a},{b}\n"));
        }
        std::fs::write(&csv, text).unwrap();
        let engine = open(&dir.path().join("db")).await;
        engine
            .sql(&format!(
                "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '{}' \
                 OPTIONS ('format.has_header' 'true')",
                csv.display()
            ))
            .await
            .unwrap();
        let integer_ids = seed.is_multiple_of(2);
        let edges_sql = edges_query(integer_ids, "");
        let context = format!("seed {seed}, {nodes} nodes, {edges} edges");

        // Batch resolution: igraph's partition, exactly.
        let mut batch = query(
            &engine,
            &format!("SELECT person_id, id_type, id FROM resolve_identities($${edges_sql}$$)"),
        )
        .await;
        let ours = partition(&batch, &peer.vertices);
        let components = ours.iter().max().map_or(0, |m| m + 1);
        assert_eq!(components, peer.components, "{context}: components");
        if let Some(i) = (0..ours.len()).find(|&i| ours[i] != peer.membership[i]) {
            panic!(
                "{context}: node {} is in martdb's component {} but igraph's {}",
                peer.vertices[i], ours[i], peer.membership[i]
            );
        }
        batch.sort();

        // The same edges in another order give the same person ids.
        let mut reordered = query(
            &engine,
            &format!(
                "SELECT person_id, id_type, id FROM resolve_identities($${}$$)",
                edges_query(integer_ids, "ORDER BY b DESC, a")
            ),
        )
        .await;
        reordered.sort();
        assert!(reordered == batch, "{context}: ids depend on the row order");

        // One update of the empty stored graph: the same persons, the same ids.
        let summary = query(
            &engine,
            &format!(
                "SELECT edges, new_identifiers, new_persons, merged_persons, rejected \
                 FROM identity_update($${edges_sql}$$)"
            ),
        )
        .await;
        let expected = [
            edges,
            peer.vertices.len() as u64,
            peer.components as u64,
            0,
            0,
        ]
        .map(|n| n.to_string())
        .to_vec();
        assert_eq!(
            summary,
            vec![expected],
            "{context}: edges, new_identifiers, new_persons, merged_persons, rejected"
        );
        let mut stored = query(
            &engine,
            "SELECT person_id, id_type, id FROM martdb.identity_map",
        )
        .await;
        stored.sort();
        assert_eq!(partition(&stored, &peer.vertices), peer.membership);
        assert!(
            stored == batch,
            "{context}: the stored graph's person ids differ from the batch run's"
        );
        let persons = query(
            &engine,
            "SELECT count(*), sum(identifiers) FROM martdb.identity_persons",
        )
        .await;
        assert_eq!(
            persons,
            vec![vec![
                peer.components.to_string(),
                peer.vertices.len().to_string()
            ]],
            "{context}: identity_persons"
        );
        eprintln!("{context}: {:.1?}", started.elapsed());
    }
}

/// Rejections in a canonical orientation (the smaller identifier first), sorted: the batch
/// function lists a link as one of its rows wrote it, the stored graph smaller first.
fn canonical_rejections(mut rejections: Vec<Vec<String>>) -> Vec<Vec<String>> {
    for r in &mut rejections {
        if (&r[0], &r[1]) > (&r[2], &r[3]) {
            r.swap(0, 2);
            r.swap(1, 3);
        }
    }
    rejections.sort();
    rejections
}

/// Under every kind of rule, one update of an empty stored graph gives the batch run's
/// persons, ids and rejections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_update_agrees_with_batch_under_rules() {
    // Shared values across types, repeated pairs, times in seconds.
    let edges = "SELECT 'v' || (value * 37 % 997), 't' || (value % 3), \
                 'v' || (value * 91 % 1009), 't' || (value * 7 % 3), value * 1000 \
                 FROM generate_series(1, 3000)";
    let rejected_columns = "type_a, id_a, type_b, id_b, observations, first_seen, \
                            last_seen, reason, detail";
    for rules in [
        "VALUES ('max_per_person', 't0', '2'), ('priority', 't1', '1'), ('priority', 't0', '2')",
        "VALUES ('max_degree', 't1', '2')",
        "VALUES ('max_identifiers', '*', '5'), ('tie_break', '*', 'frequency')",
        "VALUES ('block_pattern', 't2', '^v1'), ('block', '*', 'v5'), \
         ('max_degree', '*', '6'), ('max_per_person', 't1', '1')",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path()).await;
        let args = format!("$${edges}$$, $${rules}$$");
        let mut batch = query(
            &engine,
            &format!("SELECT person_id, id_type, id FROM resolve_identities({args})"),
        )
        .await;
        let batch_rejected = query(
            &engine,
            &format!("SELECT {rejected_columns} FROM resolve_identities_rejected({args})"),
        )
        .await;
        let summary = query(
            &engine,
            &format!("SELECT edges, rejected FROM identity_update({args})"),
        )
        .await;
        let mut stored = query(
            &engine,
            "SELECT person_id, id_type, id FROM martdb.identity_map",
        )
        .await;
        let stored_rejected = query(
            &engine,
            &format!("SELECT {rejected_columns} FROM martdb.identity_rejected"),
        )
        .await;
        batch.sort();
        stored.sort();
        assert!(batch == stored, "{rules}: persons differ");
        assert!(!batch_rejected.is_empty(), "{rules}: no rule applied");
        assert_eq!(
            summary,
            vec![vec!["3000".to_string(), batch_rejected.len().to_string()]],
            "{rules}"
        );
        assert!(
            canonical_rejections(batch_rejected) == canonical_rejections(stored_rejected),
            "{rules}: rejections differ"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Crash during an update.

fn martdb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_martdb"))
}

fn run_sql(data: &Path, statement: &str) -> String {
    let output = martdb()
        .args(["sql", "--data", data.to_str().unwrap(), "--format", "csv"])
        .arg(statement)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "martdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Everything the stored graph shows, but the wall-clock times of updates (each run
/// stamps its own): row counts of the four tables and a hash of their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest {
    identifiers: usize,
    persons: usize,
    merges: usize,
    rejected: usize,
    hash: u64,
}

async fn digest(engine: &Engine) -> Digest {
    let mut hasher = DefaultHasher::new();
    let mut count = |sql: &str, rows: Vec<Vec<String>>| {
        sql.hash(&mut hasher);
        rows.hash(&mut hasher);
        rows.len()
    };
    let tables = [
        "SELECT id_type, id, person_id, degree, hub, first_seen, last_seen \
         FROM martdb.identity_map ORDER BY id_type, id",
        "SELECT person_id, identifiers, id_types, created_at = updated_at \
         FROM martdb.identity_persons ORDER BY person_id",
        "SELECT merged_id, into_id, \"update\" FROM martdb.identity_merges ORDER BY merged_id",
        "SELECT type_a, id_a, type_b, id_b, observations, first_seen, last_seen, reason, detail \
         FROM martdb.identity_rejected ORDER BY type_a, id_a, type_b, id_b",
    ];
    let mut counts = [0; 4];
    for (sql, n) in tables.iter().zip(&mut counts) {
        *n = count(sql, query(engine, sql).await);
    }
    Digest {
        identifiers: counts[0],
        persons: counts[1],
        merges: counts[2],
        rejected: counts[3],
        hash: hasher.finish(),
    }
}

/// The rules of both updates: a blocked email, so that the graph has rejections too.
const RULES: &str = "VALUES ('block', 'email', 'e0')";

/// 10,000 phone–device edges: 2,500 persons of a phone and 4 devices.
const FIRST_UPDATE: &str = "SELECT 'p' || (value % 2500), 'phone', \
     'd' || (value * 7919 % 10000), 'device' FROM generate_series(1, 10000)";

/// Emails each seen with 5 phones (and some again): 1,996 merges, and the links of the
/// blocked email rejected. A few seconds in a debug build.
const SECOND_UPDATE: &str = "SELECT 'e' || (value % 500), 'email', \
     'p' || (value % 2500), 'phone' FROM generate_series(1, 6000)";

fn update_sql(edges: &str) -> String {
    format!("SELECT * FROM identity_update($${edges}$$, $${RULES}$$)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_update_leaves_graph_before_or_after() {
    const ATTEMPTS: u32 = 12;
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    run_sql(&base, &update_sql(FIRST_UPDATE));
    let before = digest(&open(&base).await).await;
    assert_eq!(
        (before.identifiers, before.persons, before.merges),
        (12_500, 2_500, 0)
    );

    // The update run to the end, timed, for the graph after it.
    let finished = root.path().join("finished");
    copy_dir(&base, &finished);
    let started = Instant::now();
    let summary = run_sql(&finished, &update_sql(SECOND_UPDATE));
    let duration = started.elapsed();
    let after = digest(&open(&finished).await).await;
    assert!(
        summary.lines().nth(1).unwrap().starts_with("2,6000,"),
        "{summary}"
    );
    // Each email joins 5 persons, but the blocked one.
    assert_eq!(
        (after.identifiers, after.persons, after.merges),
        (12_999, 504, 1_996),
        "{after:?}"
    );
    assert!(after.rejected > 0, "{after:?}");

    // Kills spread from the start of the process to a bit past the end of the update.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (mut saw_before, mut saw_after, mut killed) = (0, 0, 0);
    for attempt in 0..ATTEMPTS {
        let data = root.path().join(format!("crash-{attempt}"));
        copy_dir(&base, &data);
        let mut child = martdb()
            .args(["sql", "--data", data.to_str().unwrap(), "--format", "csv"])
            .arg(update_sql(SECOND_UPDATE))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let share = 1.2 * (f64::from(attempt) + rng.random::<f64>()) / f64::from(ATTEMPTS);
        std::thread::sleep(duration.mul_f64(share).min(Duration::from_secs(30)));
        // SIGKILL: no destructors, no flush. A process that already exited is reaped.
        let exited = child.try_wait().unwrap();
        if exited.is_none() {
            killed += 1;
            child.kill().unwrap();
        }
        child.wait().unwrap();

        let engine = Engine::open(data.to_str().unwrap())
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: the killed database opens: {e}"));
        assert!(engine.warnings().is_empty(), "{:?}", engine.warnings());
        let found = digest(&engine).await;
        // The update counter went with the graph: the next update is 2 or 3.
        let next = scalar(
            &engine
                .sql("SELECT \"update\" FROM identity_update($$VALUES ('x1', 'cookie', 'x2', 'cookie')$$)")
                .await
                .unwrap(),
        );
        if let Some(status) = exited {
            assert!(status.success(), "attempt {attempt}: the update failed");
            assert_eq!(
                found, after,
                "attempt {attempt}: a finished update is complete"
            );
        }
        if found == before {
            saw_before += 1;
            assert_eq!(next, "2", "attempt {attempt}: the update counter");
        } else if found == after {
            saw_after += 1;
            assert_eq!(next, "3", "attempt {attempt}: the update counter");
        } else {
            panic!(
                "attempt {attempt} (killed after {:.0}% of the update): the graph is \
                 {found:?}, neither before {before:?} nor after {after:?}",
                share * 100.0
            );
        }
        drop(engine);
        std::fs::remove_dir_all(&data).unwrap();
    }
    eprintln!(
        "update took {duration:.1?}; {ATTEMPTS} attempts, {killed} killed: the graph was as \
         before {saw_before} times, as after {saw_after} times"
    );
    // The first kills land early in the update (the last ones may or may not find it
    // done, depending on the machine's load: no assertion on them).
    assert!(saw_before > 0, "no update was interrupted");
}

// ---------------------------------------------------------------------------------------
// SQL surface.

async fn sql_error(engine: &Engine, sql: &str) -> martdb::Error {
    match engine.sql(sql).await {
        Ok(batches) => panic!("{sql} succeeded: {:?}", rows(&batches)),
        Err(e) => e,
    }
}

#[tokio::test]
async fn identity_sql_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let edges = "$$VALUES ('13800000001', 'phone', 'dev-1', 'device')$$";
    let invalid: [(String, &[&str]); 9] = [
        (
            "SELECT * FROM resolve_identities('SELECT 1, 2, 3')".into(),
            &[
                "edges query",
                "(id_a, type_a, id_b, type_b",
                "found 3 column(s)",
            ],
        ),
        (
            "SELECT * FROM resolve_identities_persons('CREATE TABLE x (a INT)')".into(),
            &["one SELECT, WITH or VALUES query"],
        ),
        (
            format!(
                "SELECT * FROM resolve_identities({edges}, \
                 $$VALUES ('block', 'phone', '0'), ('merge_all', '*', '1')$$)"
            ),
            &["rule row 2", "unknown rule 'merge_all'"],
        ),
        (
            format!(
                "SELECT * FROM resolve_identities_rejected({edges}, \
                 $$VALUES ('block_pattern', 'phone', '([0-9]')$$)"
            ),
            &[
                "rule row 1",
                "block_pattern '([0-9]'",
                "not a regular expression",
            ],
        ),
        (
            format!(
                "SELECT * FROM identity_update({edges}, $$VALUES ('max_per_person', '*', '1')$$)"
            ),
            &["rule row 1", "max_per_person applies to one id type"],
        ),
        (
            "SELECT * FROM resolve_identities(CAST(random() AS TEXT))".into(),
            &["edges query must be a constant"],
        ),
        (
            "SELECT * FROM resolve_identities(42)".into(),
            &["edges query must be a text"],
        ),
        (
            format!("SELECT * FROM resolve_identities({edges}, 'SELECT 1', 'x')"),
            &["takes 1 or 2 arguments"],
        ),
        (
            // The queries of the identity functions may not change state.
            format!(
                "SELECT * FROM resolve_identities($q$SELECT 'a', 't' AS ta, 'b', 't' AS tb \
                 FROM identity_update({edges})$q$)"
            ),
            &["may not call identity_update()"],
        ),
    ];
    for (sql, needles) in invalid {
        let err = sql_error(&engine, &sql).await;
        let message = err.to_string();
        assert_eq!(err.sqlstate(), "22023", "{sql}: {message}");
        for needle in needles {
            assert!(
                message.contains(needle),
                "{sql}: {message} lacks {needle:?}"
            );
        }
    }
    // Nothing of the refused statements happened.
    assert!(sql_error(&engine, "SELECT * FROM x").await.sqlstate() == "42P01");
    assert_eq!(
        scalar(
            &engine
                .sql("SELECT count(*) FROM martdb.identity_map")
                .await
                .unwrap()
        ),
        "0"
    );

    // A read-only session reads the graph and resolves in batch, but may not update.
    let read_only = engine.session().read_only(true);
    for sql in [
        format!("SELECT * FROM identity_update({edges})"),
        format!("SELECT count(*) FROM (SELECT * FROM identity_update({edges})) u"),
    ] {
        let err = read_only.sql(&sql).await.unwrap_err();
        assert_eq!(err.sqlstate(), "25006", "{sql}: {err}");
        assert!(
            err.to_string().to_lowercase().contains("identity_update"),
            "{sql}: {err}"
        );
    }
    let resolved = read_only
        .sql(&format!("SELECT count(*) FROM resolve_identities({edges})"))
        .await
        .unwrap();
    assert_eq!(scalar(&resolved), "2");
    assert_eq!(
        scalar(
            &read_only
                .sql("SELECT count(*) FROM martdb.identity_map")
                .await
                .unwrap()
        ),
        "0",
        "the refused update changed nothing"
    );
    // person_id: NULL until the graph holds the identifier, then its person.
    let lookup = "SELECT person_id('phone', '13800000001'), person_id('device', 'dev-1'), \
                  person_id('openid', 'o-2'), person_id('phone', 'nobody'), \
                  person_id(NULL, 'dev-1')";
    assert_eq!(
        query(&engine, lookup).await,
        vec![vec![String::new(); 5]],
        "unknown identifiers have no person"
    );
    let first = "$$VALUES ('13800000001', 'phone', 'dev-1', 'device'), \
                 ('13800000001', 'phone', 'o-1', 'openid'), \
                 ('13900000002', 'phone', 'o-2', 'openid')$$";
    let summary = query(
        &engine,
        &format!(
            "SELECT \"update\", edges, new_identifiers, new_persons, merged_persons \
             FROM identity_update({first})"
        ),
    )
    .await;
    assert_eq!(summary, vec![vec!["1", "3", "5", "2", "0"]]);
    let batch = query(
        &engine,
        &format!(
            "SELECT id_type || ':' || id, person_id FROM resolve_identities({first}) ORDER BY 1"
        ),
    )
    .await;
    let person: HashMap<String, String> = batch
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let (one, two) = (&person["phone:13800000001"], &person["phone:13900000002"]);
    assert_ne!(one, two);
    assert_eq!(
        query(&engine, lookup).await,
        vec![vec![
            one.clone(),
            one.clone(),
            two.clone(),
            String::new(),
            String::new()
        ]],
        "person_id after the update is the batch run's person"
    );
    // Over many rows, and from a read-only session.
    let many = read_only
        .sql(
            "SELECT id, person_id(t, id) FROM (VALUES ('device', 'dev-1'), ('openid', 'o-2'), \
             ('device', 'dev-9')) v(t, id) ORDER BY id",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(&many),
        vec![
            vec!["dev-1".to_string(), one.clone()],
            vec!["dev-9".to_string(), String::new()],
            vec!["o-2".to_string(), two.clone()],
        ]
    );
    assert_eq!(
        query(&engine, "SELECT count(*) FROM martdb.identity_merges").await,
        vec![vec!["0"]]
    );

    // A second update joins the two persons: the larger one's id survives, the other is
    // listed as merged into it.
    let summary = query(
        &engine,
        "SELECT \"update\", new_links, new_identifiers, merged_persons FROM identity_update(\
         $$VALUES ('o-2', 'openid', 'dev-1', 'device')$$)",
    )
    .await;
    assert_eq!(summary, vec![vec!["2", "1", "0", "1"]]);
    assert_eq!(
        query(
            &engine,
            "SELECT merged_id, into_id, \"update\" FROM martdb.identity_merges"
        )
        .await,
        vec![vec![two.clone(), one.clone(), "2".to_string()]]
    );
    assert_eq!(
        query(&engine, lookup).await,
        vec![vec![
            one.clone(),
            one.clone(),
            one.clone(),
            String::new(),
            String::new()
        ]]
    );
    assert_eq!(
        query(
            &engine,
            "SELECT person_id, identifiers, id_types FROM martdb.identity_persons"
        )
        .await,
        vec![vec![
            one.clone(),
            "5".to_string(),
            "device:1, openid:2, phone:2".to_string()
        ]]
    );
}
