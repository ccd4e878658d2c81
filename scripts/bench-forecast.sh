#!/usr/bin/env bash
# Forecasting speed, martdb against statsforecast in one run (the peer:
# benches/peers/forecast_peer.py). SERIES generated daily retail-like series of LENGTH
# points (a level, a weekly pattern, a trend and noise per series), HORIZON steps ahead
# with 80% and 95% intervals, on THREADS cores each:
#
# - statsforecast AutoETS(season_length=7), n_jobs=THREADS (after a warm-up call);
# - martdb forecast(..., model => 'ets') with the model's own intervals and no outlier
#   cleaning: the same model search as AutoETS, like for like;
# - martdb forecast(..., model => 'auto') with its defaults: ETS unless Theta or the
#   seasonal naive model wins each of five holdout windows per series, outliers cleaned,
#   calibrated intervals.
#
# martdb's time is the whole `martdb sql` process (start-up and Parquet scan included).
# Accuracy is tested separately (tests/it/forecast_accuracy.rs).
#
# Usage: scripts/bench-forecast.sh [--series N] [--length N] [--horizon N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
SERIES=10000 LENGTH=365 HORIZON=28 THREADS=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --series) SERIES=$2; shift 2 ;;
    --length) LENGTH=$2; shift 2 ;;
    --horizon) HORIZON=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
# The test venv has the peer (scripts/requirements.txt pins statsforecast).
VENV="${MARTDB_VENV:-$HOME/.cache/martdb-venv}"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s scripts/requirements.txt "$VENV/requirements.txt"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$VENV/requirements.txt"
fi
cargo build --release --quiet --bin martdb
BIN="${CARGO_TARGET_DIR:-target}/release/martdb"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }

echo "# martdb forecast bench: $(date -u +%F), $(nproc) cores, $THREADS used; $SERIES series x $LENGTH days, horizon $HORIZON"
PEER_JSON=$("$VENV/bin/python" benches/peers/forecast_peer.py bench "$SERIES" "$LENGTH" "$HORIZON" "$WORK" --threads "$THREADS")
echo "$PEER_JSON"
PEER_RATE=$(echo "$PEER_JSON" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["series_per_s"])')

run() {
  local model=$1 options=$2
  local query="SELECT count(*) AS rows, count(DISTINCT series_id) AS series FROM forecast('SELECT series_id, day, value FROM bench_series', horizon => $HORIZON, season_length => 7, level => [80, 95], model => '$model'$options)"
  local start end
  start=$(now)
  out=$(taskset -c "0-$((THREADS - 1))" "$BIN" sql --data "$WORK" --format csv "$query" | tail -n 1)
  end=$(now)
  awk -v s="$start" -v e="$end" -v n="$SERIES" -v m="$model" -v out="$out" -v peer="$PEER_RATE" 'BEGIN {
    t = e - s; rate = n / t;
    printf "martdb %-4s  %8.1f s  %8.1f series/s  %.2fx statsforecast AutoETS  (rows,series: %s)\n", m, t, rate, rate / peer, out }'
}
run ets ", clean => false, intervals => 'model'"
run auto ""
