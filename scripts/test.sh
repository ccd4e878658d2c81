#!/usr/bin/env bash
# The test command (README and .ci/run call this): sets up the peers the tests compare
# against, then runs formatting, lints and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: psql drives the wire server in the tests; pgjdbc (the PostgreSQL JDBC
# driver) runs tests/clients/JdbcCheck.java on the JDK; openssl makes the TLS test's
# certificate.
PKGS=""
command -v psql >/dev/null 2>&1 || PKGS="$PKGS postgresql-client"
[ -f /usr/share/java/postgresql.jar ] || PKGS="$PKGS libpostgresql-jdbc-java"
command -v javac >/dev/null 2>&1 || PKGS="$PKGS default-jdk-headless"
command -v openssl >/dev/null 2>&1 || PKGS="$PKGS openssl"
if [ -n "$PKGS" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $PKGS
fi

# Python peers (DuckDB for the differential checks; psycopg, psycopg2 and SQLAlchemy for
# tests/clients/check_psycopg.py) in a cached venv, reinstalled when the pins change.
VENV="${MARTDB_VENV:-$HOME/.cache/martdb-venv}"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s scripts/requirements.txt "$VENV/requirements.txt"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$VENV/requirements.txt"
fi
export MARTDB_PYTHON="$VENV/bin/python"
# Here the client checks must run, not skip.
export MARTDB_REQUIRE_CLIENTS=1

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --lib --bins --tests --locked
cargo test --doc --locked

# Coverage-guided fuzzing (libFuzzer through cargo-fuzz, on stable Rust without a
# sanitizer): each target for MARTDB_FUZZ_SECONDS (default 60) from the corpus under
# fuzz/corpus/. A crash fails the run and leaves the input in fuzz/artifacts/.
bash scripts/fuzz.sh "${MARTDB_FUZZ_SECONDS:-60}"
