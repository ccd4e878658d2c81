//! The wire server with real clients over real sockets: tokio-postgres (simple and
//! extended protocol, text and binary) and psql.

use std::net::SocketAddr;

use martdb::Engine;
use tokio::io::AsyncWriteExt;
use tokio_postgres::SimpleQueryMessage;

pub(crate) struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Asserts that `client`'s session still answers a query: the check after every
/// failure a test provokes.
pub(crate) async fn assert_answers(client: &tokio_postgres::Client) {
    let one: i64 = client
        .query_one("SELECT 1::BIGINT", &[])
        .await
        .expect("the session answers")
        .get(0);
    assert_eq!(one, 1);
}

impl Server {
    pub(crate) async fn start() -> Server {
        Self::start_with(martdb::server::ServerOptions::default()).await
    }

    pub(crate) async fn start_with(options: martdb::server::ServerOptions) -> Server {
        Self::start_engine(martdb::EngineOptions::default(), options).await
    }

    pub(crate) async fn start_engine(
        engine_options: martdb::EngineOptions,
        options: martdb::server::ServerOptions,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_with(dir.path().to_str().unwrap(), engine_options)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            martdb::server::serve_listener(engine, listener, options, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        let config = format!(
            "host={} port={} user=analyst dbname=martdb",
            self.addr.ip(),
            self.addr.port()
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    pub(crate) async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap();
    }
}

/// The rows of a simple-query reply as text (`None` for NULL).
fn text_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn tags(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_with_tokio_postgres() {
    let server = Server::start().await;
    let client = server.client().await;

    let messages = client
        .simple_query("CREATE TABLE t (id BIGINT, name TEXT, score DOUBLE, day DATE); INSERT INTO t VALUES (1, 'a', 1.5, '2026-11-01'), (2, 'b', NULL, '2026-11-02'); SELECT id, name FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        tags(&messages),
        vec![0, 2, 2],
        "CREATE TABLE, INSERT 0 2, SELECT 2"
    );
    assert_eq!(
        text_rows(&messages).first(),
        Some(&vec![Some("1".to_string()), Some("a".to_string())])
    );

    // Extended protocol: parameters, binary results, types.
    let rows = client
        .query(
            "SELECT id, name, score, day FROM t WHERE id >= $1 ORDER BY id",
            &[&1i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let id: i64 = rows[0].get(0);
    let name: &str = rows[0].get(1);
    let score: Option<f64> = rows[1].get(2);
    assert_eq!((id, name, score), (1, "a", None));
    let day: String = client
        .query_one("SELECT CAST(day AS TEXT) FROM t WHERE id = $1", &[&2i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(day, "2026-11-02");
    let inserted = client
        .execute(
            "INSERT INTO t VALUES ($1, $2, $3, '2026-11-03')",
            &[&3i64, &"c", &2.5f64],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 3);
    let statement = client
        .prepare("SELECT name FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(statement.params(), &[tokio_postgres::types::Type::INT8]);
    assert_eq!(
        statement.columns()[0].type_(),
        &tokio_postgres::types::Type::TEXT
    );
    for (id, expected) in [(1i64, "a"), (3, "c")] {
        let name: String = client.query_one(&statement, &[&id]).await.unwrap().get(0);
        assert_eq!(name, expected);
    }
    // As in PostgreSQL, `$n::type` gives the parameter that type.
    let cast = client
        .prepare("SELECT upper($1::text), $2::int4")
        .await
        .unwrap();
    assert_eq!(
        cast.params(),
        &[
            tokio_postgres::types::Type::TEXT,
            tokio_postgres::types::Type::INT4
        ]
    );
    let row = client.query_one(&cast, &[&"ab", &41i32]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("AB".into(), 41)
    );
    // Driver connection chatter is accepted.
    client
        .batch_execute("SET application_name = 'it'; BEGIN; COMMIT")
        .await
        .unwrap();
    server.stop().await;
}

/// A prepared lookup keeps its plan between executions (the table is small enough to be
/// served from memory), yet sees another connection's commit at the next execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_lookups_see_commits_from_other_connections() {
    let server = Server::start().await;
    let writer = server.client().await;
    writer
        .batch_execute(
            "CREATE TABLE accounts (id BIGINT, name TEXT); \
             INSERT INTO accounts VALUES (1, 'one'), (2, 'two')",
        )
        .await
        .unwrap();
    let reader = server.client().await;
    let lookup = reader
        .prepare("SELECT name FROM accounts WHERE id = $1")
        .await
        .unwrap();
    let name = |rows: Vec<tokio_postgres::Row>| rows.first().map(|r| r.get::<_, String>(0));
    for (id, want) in [
        (1_i64, Some("one")),
        (2, Some("two")),
        (3, None),
        (1, Some("one")),
    ] {
        let rows = reader.query(&lookup, &[&id]).await.unwrap();
        assert_eq!(name(rows).as_deref(), want, "id {id}");
    }
    writer
        .execute("INSERT INTO accounts VALUES (3, 'three')", &[])
        .await
        .unwrap();
    let rows = reader.query(&lookup, &[&3_i64]).await.unwrap();
    assert_eq!(name(rows).as_deref(), Some("three"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_sqlstates_and_the_connection_survives() {
    let server = Server::start().await;
    let client = server.client().await;
    let err = client
        .simple_query("SELECT * FROM missing_table")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01", "{err}");
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("missing_table")
    );
    let err = client.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601", "{err}");
    // The first statement of a batch ran, the failing one stopped the rest.
    let err = client
        .simple_query(
            "CREATE TABLE ok AS SELECT 1 AS x; SELECT 1/0; CREATE TABLE never AS SELECT 1 AS x",
        )
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");
    let n: i64 = client
        .query_one("SELECT count(*) FROM ok", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert!(client.query("SELECT * FROM never", &[]).await.is_err());

    // Garbage on a second connection does not disturb the server.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .await
        .unwrap();
    drop(raw);
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(raw);
    let other = server.client().await;
    let n: i64 = other
        .query_one("SELECT count(*) FROM ok", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    server.stop().await;
}

/// Runs psql as an analyst would, returning (success, stdout, stderr).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_queries() {
    let server = Server::start().await;
    let info = conninfo(server.addr);
    let run = |sql: &'static str| {
        let info = info.clone();
        tokio::task::spawn_blocking(move || psql_with(&info, &["-A", "-t", "-c", sql]))
    };
    let (ok, _, err) =
        run("CREATE TABLE seg AS SELECT value AS user_id FROM generate_series(1, 10)")
            .await
            .unwrap();
    assert!(ok, "{err}");
    let (ok, out, err) = run("SELECT count(*), sum(user_id) FROM seg").await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "10|55");
    // Floats in text as PostgreSQL prints them, also through COPY.
    let (ok, out, err) = run(
        "SELECT CAST(37 AS DOUBLE), CAST(0.1 AS DOUBLE) + CAST(0.2 AS DOUBLE), CAST(1e20 AS DOUBLE), CAST(1e6 AS REAL), CAST('NaN' AS DOUBLE)",
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "37|0.30000000000000004|1e+20|1e+06|NaN");
    let (ok, out, err) = run("COPY (SELECT CAST(user_id AS DOUBLE) / 4 FROM seg WHERE user_id IN (4, 5) ORDER BY 1) TO STDOUT")
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1\n1.25");
    let (ok, _, err) = run("SELECT * FROM nope").await.unwrap();
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
    server.stop().await;
}

/// Runs psql with a connection string and extra arguments, returning (success, stdout,
/// stderr).
fn psql_with(conninfo: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .output()
        .expect("psql is installed (scripts/test.sh installs postgresql-client)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn conninfo(addr: SocketAddr) -> String {
    format!(
        "host={} port={} user=analyst dbname=martdb sslmode=disable",
        addr.ip(),
        addr.port()
    )
}

fn fixture() -> String {
    format!("{}/tests/clients/fixture.sql", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_commands_and_copy() {
    let server = Server::start().await;
    let info = conninfo(server.addr);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("more.csv");
    std::fs::write(
        &csv,
        "order_id,customer,amount,placed_at,paid,qty\n10,\"Lee, Ann\",5.5,2026-03-01 09:00:00,t,2\n11,,7,2026-03-02 10:30:00,f,\n",
    )
    .unwrap();
    let csv = csv.to_str().unwrap().to_string();
    let out_csv = dir.path().join("out.csv").to_str().unwrap().to_string();
    let result = tokio::task::spawn_blocking(move || {
        let psql = |args: &[&str]| psql_with(&info, args);
        let (ok, _, err) = psql(&["-f", &fixture()]);
        assert!(ok, "fixture: {err}");
        let (ok, out, err) = psql(&["-c", "\\dt"]);
        assert!(ok, "\\dt: {err}");
        assert!(out.contains("shop_orders") && out.contains("table"), "{out}");
        let (ok, out, err) = psql(&["-c", "\\d shop_orders"]);
        assert!(ok, "\\d shop_orders: {err}");
        for expected in [
            "order_id",
            "bigint",
            "customer",
            "text",
            "double precision",
            "timestamp without time zone",
            "boolean",
            "integer",
        ] {
            assert!(out.contains(expected), "\\d shop_orders lacks {expected}:\n{out}");
        }
        let (ok, out, err) = psql(&["-c", "\\dv"]);
        assert!(ok && out.contains("big_orders"), "\\dv: {out}{err}");
        let (ok, out, err) = psql(&["-c", "\\dn"]);
        assert!(ok && out.contains("public"), "\\dn: {out}{err}");
        let (ok, out, err) = psql(&["-c", "\\l"]);
        assert!(ok && out.contains("martdb"), "\\l: {out}{err}");
        let (ok, out, err) = psql(&["-c", "\\x on", "-c", "SELECT order_id FROM shop_orders WHERE order_id = 1"]);
        assert!(ok && out.contains("order_id | 1"), "\\x: {out}{err}");
        // \copy in: CSV with a header, quoted delimiter, NULLs; then \copy out.
        let (ok, out, err) = psql(&["-c", &format!("\\copy shop_orders FROM '{csv}' WITH (FORMAT csv, HEADER)")]);
        assert!(ok, "\\copy from: {err}");
        assert!(out.contains("COPY 2"), "{out}");
        let (ok, out, err) = psql(&["-A", "-t", "-c", "SELECT customer, qty IS NULL FROM shop_orders WHERE order_id >= 10 ORDER BY order_id"]);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "Lee, Ann|f\n|t");
        let (ok, _, err) = psql(&["-c", &format!("\\copy (SELECT order_id, customer, paid FROM shop_orders ORDER BY order_id) TO '{out_csv}' CSV HEADER")]);
        assert!(ok, "\\copy to: {err}");
        let written = std::fs::read_to_string(&out_csv).unwrap();
        assert!(written.starts_with("order_id,customer,paid\n1,"), "{written}");
        assert!(written.contains("10,\"Lee, Ann\",t\n"), "{written}");
        assert_eq!(written.lines().count(), 6, "{written}");
        // A bad row rejects the whole COPY and keeps the table as it was.
        std::fs::write(&csv, "12,x,1,2026-03-01 09:00:00,t,1\nnot-a-number,y,1,2026-03-01,t,1\n").unwrap();
        let (ok, _, err) = psql(&["-c", &format!("\\copy shop_orders FROM '{csv}' CSV")]);
        assert!(!ok && err.contains("order_id"), "{err}");
        let (ok, out, _) = psql(&["-A", "-t", "-c", "SELECT count(*) FROM shop_orders"]);
        assert!(ok);
        assert_eq!(out.trim(), "5");
    })
    .await;
    server.stop().await;
    result.unwrap();
}

async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    let messages = client.simple_query(&format!("SHOW {name}")).await.unwrap();
    text_rows(&messages)[0][0].clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_their_own_settings_and_cursors() {
    let server = Server::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.batch_execute("SET TimeZone = 'Asia/Shanghai'; SET statement_timeout = '5s'")
        .await
        .unwrap();
    assert_eq!(show(&a, "timezone").await, "Asia/Shanghai");
    assert_eq!(show(&b, "TimeZone").await, "UTC");
    assert_eq!(show(&a, "statement_timeout").await, "5s");
    let err = a.simple_query("SET no_such_setting = 1").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42704");
    let setting: String = a
        .query_one("SELECT current_setting('TimeZone')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(setting, "Asia/Shanghai");
    let version: String = a.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(version.starts_with("PostgreSQL 15"), "{version}");

    // Cursors, as Tableau reads big results.
    a.batch_execute(
        "BEGIN; DECLARE big CURSOR FOR SELECT value FROM generate_series(1, 1000) AS t(value) ORDER BY value",
    )
    .await
    .unwrap();
    let first = a.simple_query("FETCH 300 FROM big").await.unwrap();
    let rows = text_rows(&first);
    assert_eq!(rows.len(), 300);
    assert_eq!(rows[0][0].as_deref(), Some("1"));
    let rest = a.simple_query("FETCH ALL FROM big").await.unwrap();
    assert_eq!(tags(&rest), vec![700]);
    a.batch_execute("CLOSE big; COMMIT").await.unwrap();
    let err = a.simple_query("FETCH 1 FROM big").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "34000");
    server.stop().await;
}

pub(crate) const LONG_QUERY: &str =
    "SELECT count(*) FROM generate_series(1, 20000000000) AS t(v) WHERE v % 7 = 3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_and_statement_timeout_stop_queries() {
    let server = Server::start().await;
    let client = server.client().await;
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    });
    let started = std::time::Instant::now();
    let err = client.simple_query(LONG_QUERY).await.unwrap_err();
    canceller.await.unwrap();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // The connection is usable afterwards, and a timeout gives the same SQLSTATE.
    client
        .batch_execute("SET statement_timeout = 300")
        .await
        .unwrap();
    let err = client.query(LONG_QUERY, &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    let message = err.as_db_error().unwrap().message();
    assert!(message.contains("statement timeout"), "{message}");
    client
        .batch_execute("RESET statement_timeout")
        .await
        .unwrap();
    crate::server::assert_answers(&client).await;

    // A client that vanishes mid-query does not disturb the others.
    let quitter = server.client().await;
    let running = tokio::spawn(async move { quitter.simple_query(LONG_QUERY).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    running.abort();
    crate::server::assert_answers(&client).await;
    server.stop().await;
}

fn scram_options(users: &[(&str, &str, martdb::server::Role)]) -> martdb::server::ServerOptions {
    let users = users
        .iter()
        .map(|(name, password, role)| {
            martdb::server::User::new(name, &martdb::server::hash_password(password), *role)
                .unwrap()
        })
        .collect::<Vec<_>>();
    martdb::server::ServerOptions {
        authentication: martdb::server::Authentication::Scram(std::sync::Arc::new(
            martdb::server::Users::new(users).unwrap(),
        )),
        ..Default::default()
    }
}

async fn connect(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let config = format!(
        "host={} port={} user={user} password='{password}' dbname=martdb",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_authentication_and_read_only_role() {
    use martdb::server::Role;
    let server = Server::start_with(scram_options(&[
        ("admin", "adm1n pw", Role::Admin),
        ("viewer", "v1ewer", Role::ReadOnly),
    ]))
    .await;
    for (user, password) in [("admin", "wrong"), ("nobody", "x"), ("viewer", "")] {
        let err = connect(server.addr, user, password).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{user}: {err}");
    }
    let admin = connect(server.addr, "admin", "adm1n pw").await.unwrap();
    admin
        .batch_execute("CREATE TABLE kpi (v BIGINT); INSERT INTO kpi VALUES (1), (2)")
        .await
        .unwrap();
    let viewer = connect(server.addr, "viewer", "v1ewer").await.unwrap();
    let n: i64 = viewer
        .query_one("SELECT count(*) FROM kpi", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    for statement in [
        "INSERT INTO kpi VALUES (3)",
        "CREATE TABLE mine (v INT)",
        "DROP TABLE kpi",
        "SET transaction_read_only = off",
        "SELECT dense_id('user', 'x')",
        "SELECT create_coupon_pool('p2', 5)",
        "SELECT reserve_coupon('p', 1, 'k1')",
        "SELECT v, release_coupon('p', v, 'k' || v) FROM kpi",
    ] {
        let err = viewer.simple_query(statement).await.unwrap_err();
        assert_eq!(err.code().unwrap().code(), "25006", "{statement}: {err}");
    }
    // The extended protocol too.
    admin
        .simple_query("SELECT create_coupon_pool('p', 5)")
        .await
        .unwrap();
    let err = viewer
        .query("SELECT reserve_coupon($1::text, 1, 'k1')", &[&"p"])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25006", "{err}");
    let reserved: i64 = admin
        .query_one("SELECT reserved FROM martdb.coupon_pools", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reserved, 0, "the read-only user reserved nothing");
    let n: i64 = admin
        .query_one("SELECT count(*) FROM kpi", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "the read-only user changed nothing");
    // pg_roles (psql's \du) lists the configured users; only admins are superusers.
    let roles = viewer
        .simple_query(
            "SELECT rolname, rolsuper, rolcanlogin FROM pg_catalog.pg_roles ORDER BY rolname",
        )
        .await
        .unwrap();
    let t = |v: &str| Some(v.to_string());
    assert_eq!(
        text_rows(&roles),
        [
            vec![t("admin"), t("t"), t("t")],
            vec![t("viewer"), t("f"), t("t")]
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_sslmode_require() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut options = scram_options(&[("analyst", "pw", martdb::server::Role::Admin)]);
    options.tls = Some(martdb::server::TlsFiles { cert, key });
    let server = Server::start_with(options).await;
    let addr = server.addr;
    let plain = Server::start().await;
    let plain_addr = plain.addr;
    let result = tokio::task::spawn_blocking(move || {
        let info = |addr: SocketAddr, mode: &str| {
            format!(
                "host={} port={} user=analyst password=pw dbname=martdb sslmode={mode}",
                addr.ip(),
                addr.port()
            )
        };
        let (ok, out, err) =
            psql_with(&info(addr, "require"), &["-A", "-t", "-c", "SELECT 41 + 1"]);
        assert!(ok, "TLS connection failed: {err}");
        assert_eq!(out.trim(), "42");
        // Without certificates the server refuses TLS, and sslmode=require fails.
        let (ok, _, err) = psql_with(&info(plain_addr, "require"), &["-c", "SELECT 1"]);
        assert!(!ok, "sslmode=require must fail without TLS");
        assert!(err.to_lowercase().contains("ssl"), "{err}");
    })
    .await;
    server.stop().await;
    plain.stop().await;
    result.unwrap();
}

/// Runs a client check program (tests/clients/) and asserts that every check passed.
fn run_check(what: &str, command: &mut std::process::Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{what}:\n{stdout}");
    assert!(
        stdout.contains("ok connect"),
        "{what} did not connect:\n{stdout}\n{stderr}"
    );
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("FAIL "))
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: failed {failed:?}:\n{stdout}\n{stderr}"
    );
}

/// psycopg 3, SQLAlchemy's inspector (psycopg and psycopg2) and pgjdbc's
/// DatabaseMetaData against the fixture. scripts/test.sh installs the peers (venv in
/// MARTDB_PYTHON, Debian's pgjdbc jar); run alone without them, the test says so and
/// passes only if MARTDB_REQUIRE_CLIENTS is unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_jdbc_clients() {
    const JAR: &str = "/usr/share/java/postgresql.jar";
    let python = std::env::var("MARTDB_PYTHON").ok();
    let has_jdbc = std::path::Path::new(JAR).exists()
        && std::process::Command::new("java")
            .arg("-version")
            .output()
            .is_ok();
    if python.is_none() || !has_jdbc {
        let message =
            "python_and_jdbc_clients needs MARTDB_PYTHON and the pgjdbc jar: run scripts/test.sh";
        assert!(
            std::env::var("MARTDB_REQUIRE_CLIENTS").is_err(),
            "{message}"
        );
        eprintln!("SKIPPED: {message}");
        return;
    }
    let server = Server::start().await;
    let addr = server.addr;
    let result = tokio::task::spawn_blocking(move || {
        let (ok, _, err) = psql_with(&conninfo(addr), &["-f", &fixture()]);
        assert!(ok, "fixture: {err}");
        let root = env!("CARGO_MANIFEST_DIR");
        run_check(
            "psycopg + SQLAlchemy",
            std::process::Command::new(python.unwrap())
                .arg(format!("{root}/tests/clients/check_psycopg.py"))
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &addr.port().to_string(),
                    "--user",
                    "analyst",
                ]),
        );
        run_check(
            "pgjdbc",
            std::process::Command::new("java")
                .args(["-cp", JAR])
                .arg(format!("{root}/tests/clients/JdbcCheck.java"))
                .arg(format!(
                    "jdbc:postgresql://127.0.0.1:{}/martdb?user=analyst&sslmode=disable",
                    addr.port()
                )),
        );
    })
    .await;
    server.stop().await;
    result.unwrap();
}

/// Audiences through psql: string user keys to dense ids, per-tag bitmaps, a saved
/// audience, its members back as rows, and a bad bitmap's SQLSTATE; the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_over_psql() {
    let server = Server::start().await;
    let info = conninfo(server.addr);
    let result = tokio::task::spawn_blocking(move || {
        let psql = |args: &[&str]| psql_with(&info, args);
        let setup = "CREATE TABLE visits AS SELECT * FROM (VALUES ('u-a', 'active'), ('u-b', 'active'), \
                     ('u-c', 'active'), ('u-b', 'shoes'), ('u-c', 'shoes'), ('u-c', 'couponed')) AS t(user_key, tag);\n\
                     CREATE TABLE tag_bitmaps AS SELECT tag, group_bitmap_state(dense_id('user', user_key)) AS b \
                     FROM visits GROUP BY tag;";
        let (ok, _, err) = psql(&["-c", setup]);
        assert!(ok, "{err}");
        let (ok, out, err) = psql(&[
            "-At",
            "-c",
            "SELECT bitmap_expr_cardinality(b, tag, '(active & shoes) - couponed'), \
             bool_and(bitmap_contains(b, dense_id('user', 'u-b'))) FILTER (WHERE tag = 'shoes') \
             FROM tag_bitmaps",
        ]);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "1|t");
        let save = "SELECT audience_save('shoes_not_couponed', \
                    'SELECT bitmap_expr(b, tag, ''shoes - couponed'') FROM tag_bitmaps')";
        let (ok, out, err) = psql(&["-At", "-c", save]);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "1");
        let (ok, out, err) = psql(&[
            "-At",
            "-c",
            "SELECT external_id('user', m) FROM unnest(bitmap_to_array(audience('shoes_not_couponed'))) AS t(m)",
        ]);
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "u-b");
        // bytea in psql's hex output: the portable format's cookie first.
        let (ok, out, _) = psql(&["-At", "-c", "SELECT bitmap_build([1, 2])"]);
        assert!(ok);
        assert_eq!(out.trim(), "\\x3a30000001000000000001001000000001000200");
        let (ok, _, err) = psql(&["-c", "SELECT bitmap_cardinality('\\x0102'::bytea)"]);
        assert!(!ok);
        assert!(err.contains("bitmap_cardinality: argument 1 (bitmap)"), "{err}");
        let (ok, out, err) = psql(&["-At", "-c", "SELECT cardinality FROM martdb.audiences"]);
        assert!(ok, "the server is still up: {err}");
        assert_eq!(out.trim(), "1");
    })
    .await;
    server.stop().await;
    result.unwrap();
}
