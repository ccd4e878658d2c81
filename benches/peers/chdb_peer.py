"""ClickHouse (embedded, chDB) as the reference for martdb's bitmap functions.

stdin: a JSON list of ClickHouse SQL statements, each returning one value.
stdout: a JSON list with, per statement, {"value": <TSV text>} or {"error": <message>}.
"""
import json
import sys

import chdb


def main():
    queries = json.load(sys.stdin)
    session = chdb.session.Session()
    out = []
    for sql in queries:
        try:
            out.append({"value": session.query(sql, "TSV").bytes().decode().strip()})
        except Exception as e:  # a ClickHouse error is an answer too
            out.append({"error": str(e)})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
