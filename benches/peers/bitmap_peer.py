"""The peers of benches/bitmap.rs: chDB (embedded ClickHouse) and DuckDB over the Parquet
files of martdb's `user_tags(user_id BIGINT, tag VARCHAR)` table.

Input (stdin, or the first argument, JSON): {"files": [parquet file paths], "threads": T,
"runs": N (slow queries over the raw rows), "fast_runs": M (queries on prebuilt bitmaps),
"tags": [t1, t2, t3]}; the expression is (t1 AND t2) ANDNOT t3.
Output (stdout, JSON): {"chdb": {...}, "duckdb": {...}}, each {name: {"seconds": median
wall time, "rows": [[str...]...]}}, plus chDB's "bitmap_bytes" (its serialized states).

chDB builds its `tag_bitmaps` (ENGINE = Memory) once, in one session with a temporary
path, and answers the expression from those bitmaps; DuckDB answers it from the raw rows.
Each query runs once untimed first, so both have the file metadata cached.
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import chdb
import duckdb
from chdb import session as chdb_session


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def chdb_source(files: list) -> str:
    """ClickHouse's file() over exactly these files: one directory and a {a,b,...} glob."""
    dirs = {os.path.dirname(f) for f in files}
    if len(files) == 1:
        path = files[0]
    elif len(dirs) == 1:
        path = dirs.pop() + "/{" + ",".join(os.path.basename(f) for f in files) + "}"
    else:  # partitioned tables are not what this bench writes
        raise SystemExit(f"files in several directories: {sorted(dirs)}")
    if any(c in path for c in "*?") or any(c in os.path.basename(f) for f in files for c in ",{}"):
        raise SystemExit(f"file names with glob characters: {files}")
    return f"file({quote(path)}, Parquet, 'user_id Int64, tag String')"


def measure(run, runs: int) -> dict:
    run()  # warm-up
    times = []
    rows = None
    for _ in range(runs):
        started = time.perf_counter()
        rows = run()
        times.append(time.perf_counter() - started)
    return {"seconds": statistics.median(times), "rows": rows}


def run_chdb(spec: dict) -> dict:
    src = chdb_source(spec["files"])
    t1, t2, t3 = (quote(t) for t in spec["tags"])
    path = tempfile.mkdtemp(prefix="martdb-bitmap-chdb-")
    sess = chdb_session.Session(path)
    try:

        def query(sql: str):
            text = sess.query(sql, "TSV").bytes().decode()
            return [line.split("\t") for line in text.splitlines()]

        query(f"SET max_threads = {int(spec['threads'])}")
        out = {
            "build": measure(
                lambda: query(
                    "SELECT count(), sum(bitmapCardinality(b)) FROM (SELECT tag, "
                    f"groupBitmapState(toUInt32(user_id)) AS b FROM {src} GROUP BY tag)"
                ),
                spec["runs"],
            ),
            "scan": measure(
                lambda: query(f"SELECT tag, count() FROM {src} GROUP BY tag ORDER BY tag"),
                spec["runs"],
            ),
        }
        started = time.perf_counter()
        query(
            "CREATE TABLE tag_bitmaps ENGINE = Memory AS SELECT tag, "
            f"groupBitmapState(toUInt32(user_id)) AS b FROM {src} GROUP BY tag"
        )
        out["create_table"] = {"seconds": time.perf_counter() - started, "rows": []}
        out["expr"] = measure(
            lambda: query(
                f"WITH (SELECT b FROM tag_bitmaps WHERE tag = {t1}) AS x, "
                f"(SELECT b FROM tag_bitmaps WHERE tag = {t2}) AS y, "
                f"(SELECT b FROM tag_bitmaps WHERE tag = {t3}) AS z "
                "SELECT bitmapAndnotCardinality(bitmapAnd(x, y), z)"
            ),
            spec["fast_runs"],
        )
        out["decode"] = measure(
            lambda: query(
                "SELECT sum(bitmapCardinality(b)) FROM tag_bitmaps "
                f"WHERE tag IN ({t1}, {t2}, {t3})"
            ),
            spec["fast_runs"],
        )
        # The states as ClickHouse serializes them (roaring's portable format behind a
        # small header; sets of up to 32 ids as a plain list).
        out["bitmap_bytes"] = int(
            query("SELECT sum(length(CAST(b AS String))) FROM tag_bitmaps")[0][0]
        )
        return out
    finally:
        sess.close()
        shutil.rmtree(path, ignore_errors=True)


def run_duckdb(spec: dict) -> dict:
    con = duckdb.connect()
    con.execute(f"SET threads TO {int(spec['threads'])}")
    file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in spec["files"])
    con.execute(f"CREATE VIEW user_tags AS SELECT * FROM read_parquet([{file_list}])")
    t1, t2, t3 = ("'" + t.replace("'", "''") + "'" for t in spec["tags"])

    def query(sql: str):
        return [[str(v) for v in row] for row in con.execute(sql).fetchall()]

    return {
        # Exact distinct users per tag, the relational way (no bitmaps).
        "build": measure(
            lambda: query(
                "SELECT count(*), sum(n) FROM (SELECT tag, count(DISTINCT user_id) AS n "
                "FROM user_tags GROUP BY tag)"
            ),
            spec["runs"],
        ),
        "scan": measure(
            lambda: query("SELECT tag, count(*) FROM user_tags GROUP BY tag ORDER BY tag"),
            spec["runs"],
        ),
        "expr": measure(
            lambda: query(
                "SELECT count(*) FROM (SELECT user_id FROM user_tags "
                f"WHERE tag IN ({t1}, {t2}, {t3}) GROUP BY user_id "
                f"HAVING bool_or(tag = {t1}) AND bool_or(tag = {t2}) "
                f"AND NOT bool_or(tag = {t3}))"
            ),
            spec["runs"],
        ),
    }


def main() -> None:
    spec = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    out = {"chdb": run_chdb(spec), "duckdb": run_duckdb(spec)}
    out["versions"] = {"chdb": chdb.__version__, "duckdb": duckdb.__version__}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
