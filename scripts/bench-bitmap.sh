#!/usr/bin/env bash
# martdb's bitmap functions vs chDB and DuckDB on synthetic (user, tag) rows.
# Usage: scripts/bench-bitmap.sh [--users N] [--rows R] [--tags T] [--runs N] [--fast-runs M] [--data DIR] [--table-cache 4G]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MARTDB_VENV:-$HOME/.cache/martdb-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import duckdb, chdb' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
export MARTDB_PYTHON="$VENV/bin/python"
cargo bench --bench bitmap -- "$@"
