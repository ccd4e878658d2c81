#!/usr/bin/env bash
# Rule matching: match_rules vs one SQL filter per rule (same engine, same run), and
# single-event latency. Usage: scripts/bench-rules.sh [--events N] [--rules N] [--single-rules N] [--runs R]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench rules -- "$@"
