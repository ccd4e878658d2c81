#!/usr/bin/env bash
# martdb's A/B summary (10 variants x 5 metrics over per-user rows) vs DuckDB computing the same sums.
# Usage: scripts/bench-experiments.sh [--rows N] [--runs R] [--data DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MARTDB_VENV:-$HOME/.cache/martdb-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
export MARTDB_PYTHON="$VENV/bin/python"
cargo bench --bench experiments -- "$@"
