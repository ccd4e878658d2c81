#!/usr/bin/env bash
# The test command (README and .ci/run call this): sets up the peers the tests compare
# against, then runs formatting, lints and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: psql drives the wire server in the tests.
if ! command -v psql >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql-client
fi

# Python peers (DuckDB for the differential checks) in a cached venv.
VENV="${MARTDB_VENV:-$HOME/.cache/martdb-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
export MARTDB_PYTHON="$VENV/bin/python"

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --lib --bins --tests --locked
cargo test --doc --locked
