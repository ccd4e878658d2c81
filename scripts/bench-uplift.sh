#!/usr/bin/env bash
# Uplift modelling: martdb's learners vs scikit-uplift's TwoModels(LogisticRegression) and
# causalml's meta-learners over LightGBM (held-out Qini AUC on causalml's synthetic data and
# the demo campaign), training time on 1M rows x 20 features, scoring throughput.
# Usage: scripts/bench-uplift.sh [--rows N] [--users N] [--train-rows N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MARTDB_BENCH_VENV:-$HOME/.cache/martdb-bench-venv}"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s scripts/bench-requirements.txt "$VENV/requirements.txt"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/bench-requirements.txt
  cp scripts/bench-requirements.txt "$VENV/requirements.txt"
fi
export MARTDB_BENCH_PYTHON="$VENV/bin/python"
cargo bench --bench uplift -- "$@"
