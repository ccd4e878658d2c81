// pgjdbc against a server loaded with tests/clients/fixture.sql: DatabaseMetaData (what
// schema browsers such as DBeaver or DataGrip call) and statements with server-side
// prepared statements. Run as a single-file source program:
//   java -cp /usr/share/java/postgresql.jar tests/clients/JdbcCheck.java 'jdbc:postgresql://...'
// Prints `ok <check>` per passed check and `FAIL <check>: ...` per failed one; every check
// runs, and the exit status is 1 if any failed. The checks are about what a user sees
// (names, order, types, values), so they pass against PostgreSQL 15 too.

import java.sql.*;
import java.time.LocalDateTime;
import java.util.*;

public class JdbcCheck {
    interface Check {
        void run(Connection conn) throws Exception;
    }

    static class Mismatch extends Exception {
        Mismatch(String message) {
            super(message);
        }
    }

    static final List<String> COLUMNS =
            List.of("order_id", "customer", "amount", "placed_at", "paid", "qty");
    // What pgjdbc 42.x reports for these columns against PostgreSQL 15 (bool is BIT).
    static final List<String> TYPE_NAMES =
            List.of("int8", "text", "float8", "timestamp", "bool", "int4");
    static final List<String> DATA_TYPES =
            List.of("BIGINT", "VARCHAR", "DOUBLE", "TIMESTAMP", "BIT", "INTEGER");
    // The fixture rows as (order_id, customer, amount, placed_at, paid, qty).
    static final List<List<Object>> ROWS = List.of(
            Arrays.asList(1L, "alice", 12.5, LocalDateTime.of(2024, 3, 1, 10, 15), true, 2),
            Arrays.asList(2L, null, 20.25, LocalDateTime.of(2024, 3, 2, 11, 30), false, 1),
            Arrays.asList(3L, "carol", 99.75, LocalDateTime.of(2024, 3, 3, 9, 0), true, 5));

    static final List<String> failures = new ArrayList<>();

    static void expect(String what, Object expected, Object actual) throws Mismatch {
        if (!Objects.equals(expected, actual)) {
            throw new Mismatch(what + ": expected " + expected + ", got " + actual);
        }
    }

    /** Runs one check on a fresh connection, so one failure cannot leave state for the next. */
    static void check(String url, String name, Check check) {
        try (Connection conn = DriverManager.getConnection(url)) {
            check.run(conn);
            System.out.println("ok " + name);
        } catch (Mismatch e) {
            fail(name, e.getMessage());
        } catch (SQLException e) {
            fail(name, "SQLException (SQLSTATE " + e.getSQLState() + "): " + e.getMessage());
        } catch (Exception e) {
            fail(name, e.toString());
        }
    }

    static void fail(String name, String detail) {
        System.out.println("FAIL " + name + ": " + detail);
        failures.add(name);
    }

    /** One column of a metadata result set, in the order the driver returns the rows. */
    static List<Object> column(ResultSet rs, String label) throws SQLException {
        List<Object> values = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                values.add(rs.getObject(label));
            }
        }
        return values;
    }

    /** The java.sql.Types name of a DATA_TYPE code, for readable messages. */
    static String jdbcType(int code) {
        try {
            return JDBCType.valueOf(code).getName();
        } catch (IllegalArgumentException e) {
            return String.valueOf(code);
        }
    }

    /** A row read with the typed getters an application would use. */
    static List<Object> row(ResultSet rs) throws SQLException {
        long orderId = rs.getLong("order_id");
        String customer = rs.getString("customer");
        double amount = rs.getDouble("amount");
        Timestamp placedAt = rs.getTimestamp("placed_at");
        boolean paid = rs.getBoolean("paid");
        int qty = rs.getInt("qty");
        return Arrays.asList(orderId, customer, amount,
                placedAt == null ? null : placedAt.toLocalDateTime(), paid, qty);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: JdbcCheck 'jdbc:postgresql://HOST:PORT/DB?user=U&...'");
            System.exit(2);
        }
        String url = args[0];
        String select = "SELECT " + String.join(", ", COLUMNS) + " FROM shop_orders";

        // Without a connection every check would fail the same way: say it once and stop.
        check(url, "connect", conn -> {});
        if (!failures.isEmpty()) {
            System.exit(1);
        }

        check(url, "getSchemas has public", conn -> {
            List<Object> schemas = column(conn.getMetaData().getSchemas(), "TABLE_SCHEM");
            expect("public in " + schemas, true, schemas.contains("public"));
        });

        check(url, "getTables(TABLE) has shop_orders", conn -> {
            List<Object> tables = column(conn.getMetaData()
                    .getTables(null, "public", "%", new String[] {"TABLE"}), "TABLE_NAME");
            expect("shop_orders in " + tables, true, tables.contains("shop_orders"));
        });

        check(url, "getTables(VIEW) has big_orders", conn -> {
            List<Object> views = column(conn.getMetaData()
                    .getTables(null, "public", "%", new String[] {"VIEW"}), "TABLE_NAME");
            expect("big_orders in " + views, true, views.contains("big_orders"));
        });

        // One "position name TYPE_NAME java.sql.Types" entry per column, in the driver's order.
        check(url, "getColumns(shop_orders): names, order, types", conn -> {
            List<String> expected = new ArrayList<>();
            for (int i = 0; i < COLUMNS.size(); i++) {
                expected.add((i + 1) + " " + COLUMNS.get(i) + " " + TYPE_NAMES.get(i) + " "
                        + DATA_TYPES.get(i));
            }
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getColumns(null, "public", "shop_orders", "%")) {
                while (rs.next()) {
                    columns.add(rs.getInt("ORDINAL_POSITION") + " " + rs.getString("COLUMN_NAME")
                            + " " + rs.getString("TYPE_NAME") + " " + jdbcType(rs.getInt("DATA_TYPE")));
                }
            }
            expect("columns", expected, columns);
        });

        check(url, "getPrimaryKeys(shop_orders) is empty", conn -> {
            List<Object> keys = column(
                    conn.getMetaData().getPrimaryKeys(null, "public", "shop_orders"), "COLUMN_NAME");
            expect("primary key columns", List.of(), keys);
        });

        check(url, "Statement: result column types, rows and typed getters", conn -> {
            List<List<Object>> rows = new ArrayList<>();
            List<String> typeNames = new ArrayList<>();
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery(select + " ORDER BY order_id")) {
                // The type names a result grid shows, from the RowDescription's type OIDs.
                ResultSetMetaData md = rs.getMetaData();
                for (int i = 1; i <= md.getColumnCount(); i++) {
                    typeNames.add(md.getColumnTypeName(i));
                }
                while (rs.next()) {
                    rows.add(row(rs));
                }
            }
            expect("result column types", TYPE_NAMES, typeNames);
            expect("rows", ROWS, rows);
        });

        // pgjdbc runs the first 4 executions as unnamed statements and from the 5th on
        // (prepareThreshold=5) as a named server-prepared statement, with binary results
        // for the numeric and timestamp columns; 6 runs cover both.
        check(url, "PreparedStatement WHERE order_id = ? (6 runs, server-prepared from the 5th)",
                conn -> {
                    try (PreparedStatement ps = conn.prepareStatement(select + " WHERE order_id = ?")) {
                        for (int run = 1; run <= 6; run++) {
                            List<Object> want = ROWS.get(run % 3);
                            ps.setLong(1, (Long) want.get(0));
                            List<List<Object>> rows = new ArrayList<>();
                            try (ResultSet rs = ps.executeQuery()) {
                                while (rs.next()) {
                                    rows.add(row(rs));
                                }
                            }
                            expect("run " + run + " (order_id " + want.get(0) + ")", List.of(want), rows);
                        }
                    }
                });

        check(url, "error: missing table gives SQLSTATE 42P01, connection still usable", conn -> {
            try (Statement st = conn.createStatement()) {
                try {
                    st.executeQuery("SELECT * FROM no_such_table").close();
                    throw new Mismatch("expected an error for a missing table, the query succeeded");
                } catch (SQLException e) {
                    expect("SQLSTATE", "42P01", e.getSQLState());
                }
                try (ResultSet rs = st.executeQuery("SELECT 1")) {
                    expect("SELECT 1 after the error", true, rs.next() && rs.getInt(1) == 1);
                }
            }
        });

        if (!failures.isEmpty()) {
            System.err.println(failures.size() + " check(s) failed: " + String.join(", ", failures));
            System.exit(1);
        }
    }
}
