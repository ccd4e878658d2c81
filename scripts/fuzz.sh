#!/usr/bin/env bash
# Runs every coverage-guided fuzz target (fuzz/fuzz_targets/) for SECONDS each (default
# 60), starting from the committed corpus. New inputs go to a scratch corpus, so the
# checkout is not changed; a crash is saved under fuzz/artifacts/<target>/ and fails the
# run. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(wire sql bitmap)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
# The instrumented build has its own target directory: its flags differ from the main
# build's, and sharing one would rebuild both every time.
export CARGO_TARGET_DIR="${MARTDB_FUZZ_TARGET_DIR:-$HOME/.cache/martdb-fuzz-target}"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
# fuzz/Cargo.lock is committed: refuse to build if it is stale.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
# Release with debug assertions and overflow checks (cargo-fuzz's default); no sanitizer,
# so a stable toolchain is enough.
(cd fuzz && cargo fuzz build --sanitizer none)
BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
for target in "${TARGETS[@]}"; do
  mkdir -p "$SCRATCH/$target" "fuzz/artifacts/$target"
  echo "fuzz $target: ${SECONDS_EACH}s"
  # Run from the scratch directory: a fuzzed COPY ... TO 'relative/path' lands there.
  (cd "$SCRATCH" && "$BIN/$target" "$SCRATCH/$target" "$OLDPWD/fuzz/corpus/$target" \
    -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=6144 -print_final_stats=1 \
    -artifact_prefix="$OLDPWD/fuzz/artifacts/$target/" 2>&1 | grep -v '^#[0-9]*\s*\(NEW\|REDUCE\|pulse\)' )
done
