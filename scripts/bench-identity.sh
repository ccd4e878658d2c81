#!/usr/bin/env bash
# martdb's identity resolution (with and without rules) vs python-igraph's connected
# components and DuckDB's recursive CTE on the same 10M edges.
# Usage: scripts/bench-identity.sh [--edges N] [--runs R] [--no-duckdb] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MARTDB_VENV:-$HOME/.cache/martdb-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import igraph, duckdb, pyarrow' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
export MARTDB_PYTHON="$VENV/bin/python"
cargo bench --bench identity -- "$@"
