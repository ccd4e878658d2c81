//! Forecasting over the wire: a real client (tokio-postgres) forecasts many series with
//! named arguments, gets typed rows (dates, floats, texts), writes a forecast to a table
//! with CREATE TABLE AS, and gets bad input refused with its SQLSTATE while the server
//! and the data stay as they were. A statement that times out stops the fitting.

use crate::server::Server;

/// 40 stores × 70 days of a weekly pattern with a level per store.
const SALES: &str = "CREATE TABLE sales AS \
    SELECT store, DATE '2024-01-01' + CAST(i AS INT) AS day, \
           store * (10.0 + CAST(i % 7 AS DOUBLE)) + CAST((i * i * 7919 + store) % 1009 AS DOUBLE) / 500.0 \
             AS units \
    FROM generate_series(0, 69) AS t(i) CROSS JOIN generate_series(1, 40) AS s(store)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecasts_are_typed_stored_and_refused_over_the_wire() {
    let server = Server::start().await;
    let client = server.client().await;
    client.batch_execute(SALES).await.unwrap();

    let rows = client
        .query(
            "SELECT store, CAST(day AS VARCHAR) AS d, forecast, lo_80, hi_80, model \
             FROM forecast('SELECT store, day, units FROM sales', horizon => 7, \
                           season_length => 7, level => [80]) \
             WHERE store = $1 ORDER BY d",
            &[&3_i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 7);
    let first_day: String = rows[0].get(1);
    assert_eq!(first_day, "2024-03-11");
    for (k, row) in rows.iter().enumerate() {
        let (forecast, lo, hi): (f64, f64, f64) = (row.get(2), row.get(3), row.get(4));
        // Day 70 + k is weekday k: 3 × (10 + k) units plus noise of 0 to 2 (mean 1).
        let expected = 3.0 * (10.0 + k as f64) + 1.0;
        assert!(
            (forecast - expected).abs() < 1.5,
            "{k}: {forecast} vs {expected}"
        );
        assert!(lo <= forecast && forecast <= hi);
        let _: String = row.get(5);
    }

    client
        .batch_execute(
            "CREATE TABLE next_week AS SELECT * FROM forecast(\
               'SELECT store, day, units FROM sales', horizon => 7)",
        )
        .await
        .unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM next_week", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 40 * 7);

    for (sql, code) in [
        (
            "SELECT * FROM forecast('SELECT store, day, units FROM sales', model => 'nope')",
            "22023",
        ),
        (
            "SELECT * FROM forecast('SELECT store, DATE ''2024-01-01'', units FROM sales')",
            "22023",
        ),
        (
            "SELECT * FROM forecast('SELECT day, units FROM missing_table')",
            "42P01",
        ),
        (
            "SELECT * FROM forecast_anomalies('SELECT day, units FROM sales', level => 100)",
            "22023",
        ),
    ] {
        let err = client.query(sql, &[]).await.unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), code, "{sql}: {db}");
    }
    // The server is up and the data as it was.
    let rows: i64 = client
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 40 * 70);

    // A statement timeout cancels a long fit (57014), and the session goes on.
    client
        .batch_execute("SET statement_timeout = 50")
        .await
        .unwrap();
    let err = client
        .query(
            "SELECT count(*) FROM forecast('SELECT s.store * 1000 + t.store, day, units \
             FROM sales AS s CROSS JOIN (SELECT DISTINCT store FROM sales) AS t', \
             model => 'auto')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "57014");
    client
        .batch_execute("SET statement_timeout = 0")
        .await
        .unwrap();
    crate::server::assert_answers(&client).await;
}
