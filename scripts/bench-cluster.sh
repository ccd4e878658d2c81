#!/usr/bin/env bash
# Scale-out overhead: the audience build (one roaring bitmap of users per tag) over ROWS
# tag rows, on one martdb process against a local Ballista cluster (`martdb scheduler`
# and two `martdb executor`s, one core each) on the same machine and the same files. On
# one machine the cluster cannot be faster; the point is what it costs. Also a one-row
# query, whose time on the cluster is the fixed cost of a job (submit, plan, schedule,
# fetch the result). And scoring SCORE_ROWS rows with a 200-tree uplift model, which the
# coordinator freezes into the plan. Best of RUNS for each.
#
# Usage: scripts/bench-cluster.sh [--rows N] [--users N] [--score-rows N] [--runs R]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=100000000 USERS=10000000 SCORE_ROWS=2000000 RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --score-rows) SCORE_ROWS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet --bin martdb
BIN="${CARGO_TARGET_DIR:-target}/release/martdb"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
DB="$WORK/db"
mkdir -p "$DB"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
calc() { python3 -c "print($1)"; }

echo "# martdb scale-out bench: $(date -u +%F), $(nproc) cores; rows=$ROWS users=$USERS"
start=$(now)
"$BIN" sql --data "$DB" "CREATE TABLE tag_rows AS
  SELECT (value * 2654435761) % $USERS AS user_id, 'tag_' || (value % 50) AS tag
  FROM generate_series(1, $ROWS)" >/dev/null
"$BIN" sql --data "$DB" "CREATE TABLE one_row AS SELECT 1 AS x" >/dev/null
# Users with three features; the treatment helps those with a high recency score.
"$BIN" sql --data "$DB" "CREATE TABLE scoring_rows AS
  SELECT value AS user_id, (value * 7919) % 1000 / 10.0 AS recency,
         (value * 104729) % 50 AS frequency, (value * 2654435761) % 997 AS monetary,
         (value / 3) % 2 AS treatment,
         CASE WHEN (value * 31) % 100 < 5 + ((value / 3) % 2) * ((value * 7919) % 1000) / 50
              THEN 1 ELSE 0 END AS converted
  FROM generate_series(1, $SCORE_ROWS)" >/dev/null
"$BIN" sql --data "$DB" "SELECT version FROM uplift_train('bench_model',
  'SELECT treatment, converted, recency, frequency, monetary FROM scoring_rows
   WHERE user_id % 20 = 0', 'treatment', 'converted', 'learner = t, trees = 200')" >/dev/null
echo "wrote $ROWS rows in $(calc "round($(now) - $start, 1)") s: $(du -sh "$DB/tag_rows" | cut -f1) of Parquet"

SCHEDULER=127.0.0.1:$(free_port)
"$BIN" scheduler --listen "$SCHEDULER" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
for i in 1 2; do
  "$BIN" executor --scheduler "$SCHEDULER" --listen "127.0.0.1:$(free_port)" --cores 1 \
    --work-dir "$WORK/executor$i" >"$WORK/executor$i.log" 2>&1 &
  PIDS+=($!)
done
sleep 2

AUDIENCES="SELECT tag, bitmap_cardinality(group_bitmap_state(user_id)) AS users FROM tag_rows GROUP BY tag ORDER BY tag"
ONE_ROW="SELECT x FROM one_row"
SCORING="SELECT round(sum(uplift_score('bench_model', recency, frequency, monetary)), 6) AS uplift FROM scoring_rows"
best() {
  local query=$1; shift
  local best_s=
  for _ in $(seq "$RUNS"); do
    local start end s
    start=$(now)
    "$BIN" sql --data "$DB" --format csv "$@" "$query" >"$WORK/out.csv"
    end=$(now)
    s=$(calc "$end - $start")
    if [ -z "$best_s" ] || [ "$(calc "$s < $best_s")" = True ]; then best_s=$s; fi
  done
  echo "$best_s"
}
cluster="--ballista df://$SCHEDULER"
# Warm both executors up (they register on their first poll).
"$BIN" sql --data "$DB" $cluster "$ONE_ROW" >/dev/null
"$BIN" sql --data "$DB" $cluster "$ONE_ROW" >/dev/null

local_audiences=$(best "$AUDIENCES")
cp "$WORK/out.csv" "$WORK/local.csv"
cluster_audiences=$(best "$AUDIENCES" $cluster)
cmp -s "$WORK/out.csv" "$WORK/local.csv" || { echo "the cluster's audiences differ from the local ones" >&2; exit 1; }
local_scoring=$(best "$SCORING")
cp "$WORK/out.csv" "$WORK/local.csv"
cluster_scoring=$(best "$SCORING" $cluster)
cmp -s "$WORK/out.csv" "$WORK/local.csv" || { echo "the cluster's scores differ from the local ones" >&2; exit 1; }
local_one=$(best "$ONE_ROW")
cluster_one=$(best "$ONE_ROW" $cluster)
shuffle=$(du -sh "$WORK"/executor1 "$WORK"/executor2 | cut -f1 | paste -sd+)

echo
echo "| query (whole \`martdb sql\` process, best of $RUNS) | one process | cluster of 2 executors | ratio |"
echo "| --- | --- | --- | --- |"
printf '| audience build over %s rows (50 tags) | %.2f s | %.2f s | %.2fx |\n' "$ROWS" "$local_audiences" "$cluster_audiences" "$(calc "$cluster_audiences / $local_audiences")"
printf '| uplift_score over %s rows (T-learner, 2 x 200 trees) | %.2f s | %.2f s | %.2fx |\n' "$SCORE_ROWS" "$local_scoring" "$cluster_scoring" "$(calc "$cluster_scoring / $local_scoring")"
printf '| one row (the fixed cost of a job) | %.3f s | %.3f s | %.2fx |\n' "$local_one" "$cluster_one" "$(calc "$cluster_one / $local_one")"
echo
echo "executors' shuffle and result files after the runs: $shuffle"
echo "the model frozen into each scoring plan: $(stat -c %s "$DB"/_martdb/models/bench_model/1.safetensors) bytes of weights"
