"""Runs martdb's benchmark queries in DuckDB over the same Parquet files.

Input (stdin, JSON): {"tables": {name: [parquet file paths]}, "queries": {name: sql},
"runs": N, "threads": T}.
Output (stdout, JSON): {name: {"seconds": median wall time, "rows": [[str...]...]}}.

The file lists come from martdb.table_files, i.e. exactly the files of each Delta table's
current version, so DuckDB sees the same rows martdb sees.
"""

import json
import statistics
import sys
import time

import duckdb


def main() -> None:
    spec = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute(f"SET threads TO {int(spec.get('threads', 2))}")
    for name, files in spec["tables"].items():
        file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{file_list}])')
    out = {}
    for name, sql in spec["queries"].items():
        times = []
        rows = None
        for _ in range(int(spec.get("runs", 5))):
            started = time.perf_counter()
            result = con.execute(sql).fetchall()
            times.append(time.perf_counter() - started)
            rows = result
        out[name] = {
            "seconds": statistics.median(times),
            "rows": [[format_value(v) for v in row] for row in rows],
        }
    json.dump(out, sys.stdout)


def format_value(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return repr(round(v, 6))
    return str(v)


if __name__ == "__main__":
    main()
