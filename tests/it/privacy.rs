//! Column masking by role and keyed pseudonyms over the wire: an admin and a read-only
//! analyst, both with SCRAM passwords, query the same table with tokio-postgres.

use martdb::privacy::{HashKeys, Masking, MaskingRule, PrivacyOptions};
use martdb::server::{Authentication, Role, ServerOptions, User, Users, hash_password};

use crate::server::Server;

fn rule(column: &str, masking: Masking) -> MaskingRule {
    MaskingRule {
        schema: "public".into(),
        table: "customers".into(),
        column: column.into(),
        masking,
        roles: vec!["read_only".into()],
    }
}

async fn start() -> Server {
    let keys = HashKeys::parse([
        ("crm", &*format!("hex:{}", "5a".repeat(32))),
        ("ads", &*format!("hex:{}", "a5".repeat(32))),
    ])
    .unwrap();
    let privacy = PrivacyOptions {
        hash_keys: keys,
        masking: vec![
            rule("phone", Masking::Phone),
            rule("email", Masking::Email),
            rule(
                "name",
                Masking::Mask {
                    keep_first: 1,
                    keep_last: 0,
                },
            ),
            rule("city", Masking::Null),
        ],
    };
    let users: Vec<User> = ["admin", "analyst"]
        .iter()
        .zip([Role::Admin, Role::ReadOnly])
        .map(|(name, role)| User::new(name, &hash_password("pw"), role).unwrap())
        .collect();
    Server::start_engine(
        martdb::EngineOptions {
            privacy,
            ..Default::default()
        },
        ServerOptions {
            authentication: Authentication::Scram(std::sync::Arc::new(Users::new(users).unwrap())),
            ..Default::default()
        },
    )
    .await
}

async fn connect(server: &Server, user: &str) -> tokio_postgres::Client {
    let addr = server.addr();
    let config = format!(
        "host={} port={} user={user} password=pw dbname=martdb",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

type Customer = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn customers(client: &tokio_postgres::Client, sql: &str) -> Vec<Customer> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_users_see_masked_columns_and_admins_the_real_ones() {
    let server = start().await;
    let admin = connect(&server, "admin").await;
    admin
        .batch_execute(
            "CREATE TABLE customers (id BIGINT NOT NULL, name TEXT, phone TEXT, email TEXT, city TEXT);
             INSERT INTO customers VALUES
               (1, 'Ann Lee', '13812345678', 'ann@example.com', 'Paris'),
               (2, 'Bo Chen', '+1 (415) 555-0123', 'bo.chen@example.org', 'Lyon'),
               (3, NULL, NULL, NULL, NULL);
             CREATE VIEW reachable AS SELECT id, name, phone, email, city FROM customers WHERE phone IS NOT NULL",
        )
        .await
        .unwrap();
    let analyst = connect(&server, "analyst").await;
    let all = "SELECT id, name, phone, email, city FROM customers ORDER BY id";

    assert_eq!(
        customers(&admin, all).await[..2],
        [
            (
                1,
                s("Ann Lee"),
                s("13812345678"),
                s("ann@example.com"),
                s("Paris")
            ),
            (
                2,
                s("Bo Chen"),
                s("+1 (415) 555-0123"),
                s("bo.chen@example.org"),
                s("Lyon")
            ),
        ]
    );
    let masked = vec![
        (
            1,
            s("A******"),
            s("138****5678"),
            s("a**@example.com"),
            None,
        ),
        (
            2,
            s("B******"),
            s("+1 (41*) ***-0123"),
            s("b******@example.org"),
            None,
        ),
        (3, None, None, None, None),
    ];
    assert_eq!(customers(&analyst, all).await, masked);
    // Through a view (created by the admin), the same.
    let view = "SELECT id, name, phone, email, city FROM reachable ORDER BY id";
    assert_eq!(customers(&analyst, view).await, masked[..2]);
    assert_eq!(customers(&admin, view).await[0].2, s("13812345678"));

    // Filters see the masked value: the real one cannot be probed.
    for probe in [
        "SELECT count(*) FROM customers WHERE phone = '13812345678'",
        "SELECT count(*) FROM customers WHERE phone LIKE '1381%'",
        "SELECT count(*) FROM reachable WHERE email = 'ann@example.com'",
    ] {
        let admin_count: i64 = admin.query_one(probe, &[]).await.unwrap().get(0);
        let analyst_count: i64 = analyst.query_one(probe, &[]).await.unwrap().get(0);
        assert_eq!((admin_count, analyst_count), (1, 0), "{probe}");
    }
    let min: String = analyst
        .query_one("SELECT min(phone) FROM customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(min, "+1 (41*) ***-0123");
    // Unmasked columns still filter normally.
    let ids: Vec<i64> = analyst
        .query("SELECT id FROM customers WHERE id >= 2 ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [2, 3]);

    // hash_id: keyed, stable, the same for both roles; keys are named, never given.
    let pseudonym = "SELECT hash_id(id, 'crm') FROM customers WHERE id = 1";
    let a: String = admin.query_one(pseudonym, &[]).await.unwrap().get(0);
    let b: String = analyst.query_one(pseudonym, &[]).await.unwrap().get(0);
    assert_eq!(a, b);
    assert_eq!(a.len(), 64);
    let other: String = admin
        .query_one("SELECT hash_id(id, 'ads') FROM customers WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(a, other);
    let err = analyst
        .query_one("SELECT hash_id(1, 'nope')", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42704", "{err}");

    // Backups are for admins: a read-only user gets 25006 and nothing is written.
    let dest = tempfile::tempdir().unwrap().path().join("backup");
    let err = analyst
        .simple_query(&format!("SELECT backup_database('{}')", dest.display()))
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "25006", "{err}");
    assert!(!dest.exists());

    // COPY out as the analyst is masked too.
    use futures::TryStreamExt;
    let copied: Vec<bytes::Bytes> = analyst
        .copy_out("COPY (SELECT phone FROM customers WHERE id = 1) TO STDOUT")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(copied.concat(), b"138****5678\n");
    server.stop().await;
}
