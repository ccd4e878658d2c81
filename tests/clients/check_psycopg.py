#!/usr/bin/env python3
"""Python clients against a server loaded with tests/clients/fixture.sql.

psycopg 3 (simple protocol, extended protocol with text and binary results, server-side
prepared statements, errors) and SQLAlchemy's inspector and Core on both the psycopg
and psycopg2 dialects. Prints `ok <check>` per passed check and `FAIL <check>: ...` per
failed one; every check runs, and the exit status is 1 if any failed. The checks are
about what a user sees (names, order, types, values), so they pass against PostgreSQL 15
too: that is how the checks themselves are validated.
"""

import argparse
import datetime
import sys

import psycopg
import sqlalchemy as sa

COLUMNS = ["order_id", "customer", "amount", "placed_at", "paid", "qty"]
ROWS = [
    (1, "alice", 12.5, datetime.datetime(2024, 3, 1, 10, 15), True, 2),
    (2, None, 20.25, datetime.datetime(2024, 3, 2, 11, 30), False, 1),
    (3, "carol", 99.75, datetime.datetime(2024, 3, 3, 9, 0), True, 5),
]
SELECT_ALL = f"SELECT {', '.join(COLUMNS)} FROM shop_orders ORDER BY order_id"
SELECT_ONE = f"SELECT {', '.join(COLUMNS)} FROM shop_orders WHERE order_id = %s"

failures = []


class Mismatch(Exception):
    pass


def expect(what, expected, actual):
    if expected != actual:
        raise Mismatch(f"{what}: expected {expected!r}, got {actual!r}")


def show(row):
    return "(" + ", ".join(f"{v!r}:{type(v).__name__}" for v in row) + ")"


def expect_rows(what, expected, actual):
    """Values and their Python types: 1 == 1.0 == True in Python, so `==` alone is not enough."""
    actual = [tuple(r) for r in actual]
    if len(actual) != len(expected):
        got = ", ".join(show(r) for r in actual[:5])
        raise Mismatch(f"{what}: expected {len(expected)} row(s), got {len(actual)}: {got}")
    for i, (e, a) in enumerate(zip(expected, actual), 1):
        if [(type(v), v) for v in e] != [(type(v), v) for v in a]:
            raise Mismatch(f"{what}, row {i}: expected {show(e)}, got {show(a)}")


def check(name):
    """Runs the decorated function as the check `name`; a failure does not stop the rest."""

    def run(fn):
        try:
            fn()
            print(f"ok {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - any error is this check's failure
            detail = str(e) if isinstance(e, Mismatch) else f"{type(e).__name__}: {e}"
            print(f"FAIL {name}: {detail}", flush=True)
            failures.append(name)

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password")
    ap.add_argument("--dbname", default="martdb")
    args = ap.parse_args()
    conninfo = dict(host=args.host, port=args.port, user=args.user, dbname=args.dbname)
    if args.password is not None:
        conninfo["password"] = args.password

    def connect():
        # A fresh connection per check, so one failure cannot leave state for the next.
        return psycopg.connect(**conninfo)

    # Without a connection every check would fail the same way: say it once and stop.
    try:
        connect().close()
        print("ok connect", flush=True)
    except psycopg.Error as e:
        print(f"FAIL connect: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)

    # psycopg 3 sends a query without parameters as a simple Query message.
    @check("psycopg simple query: rows and Python types")
    def _():
        with connect() as conn:
            expect_rows("rows", ROWS, conn.execute(SELECT_ALL).fetchall())

    # With parameters: Parse/Bind/Describe/Execute on the unnamed statement, bound by the
    # server. psycopg sends a Python int as a binary parameter of the smallest type that
    # holds it (int2 here), and asks for text results unless binary=True.
    @check("psycopg extended protocol: WHERE order_id = %s, text results")
    def _():
        with connect() as conn:
            for row in ROWS:
                got = conn.execute(SELECT_ONE, (row[0],)).fetchall()
                expect_rows(f"order_id {row[0]}", [row], got)

    @check("psycopg extended protocol: binary results")
    def _():
        with connect() as conn, conn.cursor(binary=True) as cur:
            for row in ROWS:
                got = cur.execute(SELECT_ONE, (row[0],)).fetchall()
                expect_rows(f"order_id {row[0]}", [row], got)

    # prepare=True: a named server-side statement, parsed once and bound three times (what
    # psycopg does on its own after prepare_threshold=5 runs of the same query).
    @check("psycopg prepared statement reused")
    def _():
        with connect() as conn:
            for row in ROWS:
                got = conn.execute(SELECT_ONE, (row[0],), prepare=True).fetchall()
                expect_rows(f"order_id {row[0]}", [row], got)

    @check("psycopg error: missing table gives SQLSTATE 42P01, connection still usable")
    def _():
        with connect() as conn:
            try:
                conn.execute("SELECT * FROM no_such_table")
                raise Mismatch("expected an error for a missing table, the query succeeded")
            except psycopg.Error as e:
                expect("sqlstate", "42P01", e.sqlstate)
            conn.rollback()
            expect("SELECT 1 after the error", [(1,)], conn.execute("SELECT 1").fetchall())

    for dialect in ("postgresql+psycopg", "postgresql+psycopg2"):
        url = sa.URL.create(
            dialect,
            username=args.user,
            password=args.password,
            host=args.host,
            port=args.port,
            database=args.dbname,
        )
        sqlalchemy_checks(f"sqlalchemy[{dialect.split('+')[1]}]", sa.create_engine(url))

    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}", file=sys.stderr)
        sys.exit(1)


def kind(t):
    """The SQL type a user sees in a reflected column type, whatever its exact class."""
    for cls, name in [
        (sa.BigInteger, "BIGINT"),
        (sa.SmallInteger, "SMALLINT"),
        (sa.Integer, "INTEGER"),
        (sa.REAL, "REAL"),  # a Float too, but single precision would be wrong here
        (sa.Float, "DOUBLE PRECISION"),  # DOUBLE_PRECISION, DOUBLE, FLOAT
        (sa.String, "TEXT"),  # TEXT or VARCHAR
        (sa.Boolean, "BOOLEAN"),
    ]:
        if isinstance(t, cls):
            return name
    if isinstance(t, sa.DateTime):
        return "TIMESTAMP WITH TIME ZONE" if t.timezone else "TIMESTAMP"
    return repr(t)


def sqlalchemy_checks(prefix, engine):
    # Each inspector call runs the dialect's own pg_catalog queries.
    @check(f"{prefix} get_schema_names has public")
    def _():
        names = sa.inspect(engine).get_schema_names()
        expect(f"'public' in {names!r}", True, "public" in names)

    @check(f"{prefix} get_table_names has shop_orders")
    def _():
        names = sa.inspect(engine).get_table_names()
        expect(f"'shop_orders' in {names!r}", True, "shop_orders" in names)

    @check(f"{prefix} get_view_names has big_orders")
    def _():
        names = sa.inspect(engine).get_view_names()
        expect(f"'big_orders' in {names!r}", True, "big_orders" in names)

    @check(f"{prefix} get_columns(shop_orders): names, order, types")
    def _():
        cols = sa.inspect(engine).get_columns("shop_orders")
        expect("column names", COLUMNS, [c["name"] for c in cols])
        expect(
            "column types",
            ["BIGINT", "TEXT", "DOUBLE PRECISION", "TIMESTAMP", "BOOLEAN", "INTEGER"],
            [kind(c["type"]) for c in cols],
        )

    @check(f"{prefix} get_pk_constraint(shop_orders) is empty")
    def _():
        pk = sa.inspect(engine).get_pk_constraint("shop_orders")
        expect("constrained_columns", [], pk.get("constrained_columns"))

    # Reflection runs the columns, primary key, foreign key, index, unique and check
    # constraint and comment queries in one go, as ORMs and BI tools do.
    @check(f"{prefix} select() on reflected Table")
    def _():
        table = sa.Table("shop_orders", sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.order_id)).all()
        expect_rows("rows", ROWS, rows)

    engine.dispose()


if __name__ == "__main__":
    main()
