#!/usr/bin/env bash
# Uplift modelling, martdb against its peers in one run (the peers: benches/peers/uplift_peer.py):
#
# 1. Quality: held-out Qini AUC on causalml's synthetic data (make_uplift_classification,
#    generated offline, ROWS rows x 20 features, 70/30) and on the demo campaign (USERS
#    users, split 70/30 by user id). Every martdb learner trains on the same train table
#    (uplift_train, validation = 0) and is scored on the same test table with qini_auc
#    (equal to scikit-uplift's qini_auc_score: tests/it/uplift_differential.rs), against
#    scikit-uplift's TwoModels(LogisticRegression) and causalml's S/T/X learners over
#    LightGBM (the best of the three by test Qini, which favours the peer).
# 2. Training time on TRAIN_ROWS rows x 20 features: uplift_train (T-learner over logistic
#    regression, no validation split) against TwoModels(LogisticRegression) fit (scaling
#    included, loading not). martdb's training (features and fits, from its log) is the
#    like-for-like figure; uplift_train's own seconds (plus evaluating every row and
#    saving) and the whole `martdb sql` process (start-up and Parquet scan too) are
#    reported beside it. Best of 5 each.
# 3. Scoring throughput: uplift_predict over SQL on the demo campaign and the big table.
#
# Usage: scripts/bench-uplift.sh [--rows N] [--users N] [--train-rows N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=100000 USERS=200000 TRAIN_ROWS=1000000 THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --train-rows) TRAIN_ROWS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
VENV="${MARTDB_BENCH_VENV:-$HOME/.cache/martdb-bench-venv}"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s scripts/bench-requirements.txt "$VENV/requirements.txt"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/bench-requirements.txt
  cp scripts/bench-requirements.txt "$VENV/requirements.txt"
fi
PY="$VENV/bin/python"
PEER=benches/peers/uplift_peer.py
cargo build --release --quiet --bin martdb
BIN="${CARGO_TARGET_DIR:-target}/release/martdb"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DB="$WORK/db"
sql() { "$BIN" sql --data "$DB" --format csv "$1" | tail -n +2; }
now() { date +%s.%N; }

echo "# martdb uplift bench: $(date -u +%F), $(nproc) cores; rows=$ROWS users=$USERS train_rows=$TRAIN_ROWS"
"$BIN" demo --data "$DB" --users "$USERS" >/dev/null 2>&1
"$PY" $PEER make-data --rows "$ROWS" --features 20 --seed 42 --out "$WORK/synthetic" >/dev/null
mv "$WORK/synthetic/train.parquet" "$DB/synthetic_train.parquet"
mv "$WORK/synthetic/test.parquet" "$DB/synthetic_test.parquet"
DEMO_FEATURES="recency_days, frequency, monetary, age, level, city"
for part in train test; do
  filter="user_id % 10 < 7"; [ $part = test ] && filter="user_id % 10 >= 7"
  "$BIN" sql --data "$DB" --format parquet -o "$WORK/demo_$part.parquet" \
    "SELECT user_id, treatment, converted, $DEMO_FEATURES FROM campaign WHERE $filter"
  mv "$WORK/demo_$part.parquet" "$DB/demo_$part.parquet"
done
SYNTHETIC_FEATURES=$(seq -s ', ' -f 'f%g' 0 19)

LEARNERS=("t logistic" "s logistic" "x logistic" "ct logistic" "t mlp" "s mlp" "x mlp" "ct mlp"
          "s gbdt" "t gbdt" "x gbdt" "ct gbdt")
compare() {
  local dataset=$1 features=$2
  echo
  echo "## $dataset: held-out Qini AUC (train $(sql "SELECT count(*) FROM ${dataset}_train") rows, test $(sql "SELECT count(*) FROM ${dataset}_test") rows)"
  echo
  echo "| model | qini_auc | train s |"
  echo "| --- | --- | --- |"
  local i=0
  for l in "${LEARNERS[@]}"; do
    set -- $l
    local name="${dataset}_$i"; i=$((i + 1))
    local seconds
    seconds=$(sql "SELECT round(seconds, 2) FROM uplift_train('$name', 'SELECT treatment, converted, $features FROM ${dataset}_train', 'treatment', 'converted', 'learner = $1, base = $2, validation = 0, deploy = always')")
    echo "| martdb $1/$2 | $(sql "SELECT round(qini_auc(converted, uplift, treatment), 4) FROM uplift_predict('$name', 'SELECT * FROM ${dataset}_test')") | $seconds |"
  done
  for method in sklift_two_models_lr causalml_lgbm_best; do
    "$PY" $PEER fit --train "$DB/${dataset}_train.parquet" --test "$DB/${dataset}_test.parquet" \
      --method $method --threads "$THREADS" 2>/dev/null | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
print("| {} | {:.4f} | {:.2f} |".format(r["method"], r["qini_auc"], r["fit_seconds"]))
for name, q in r.get("by_learner", {}).items():
    print("| - {} | {:.4f} | |".format(name, q))'
  done
}
compare synthetic "$SYNTHETIC_FEATURES"
compare demo "$DEMO_FEATURES"

echo
echo "## Training time, $TRAIN_ROWS rows x 20 features (best of 5)"
echo
ALL=$("$PY" -c "import math; print(math.ceil($TRAIN_ROWS / 0.99))")
"$PY" $PEER make-data --rows "$ALL" --features 20 --seed 7 --out "$WORK/big" --test-share 0.01 >/dev/null
mv "$WORK/big/train.parquet" "$DB/big.parquet"
# uplift_train logs how long the features and the fits took; their sum is the
# like-for-like figure for the peer's fit (StandardScaler and two LogisticRegression fits).
best="" best_training="" best_inner=""
for run in 1 2 3 4 5; do
  start=$(now)
  inner=$(MARTDB_LOG=martdb::ml=info "$BIN" sql --data "$DB" --format csv "SELECT round(seconds, 3) FROM uplift_train('big', 'SELECT treatment, converted, $SYNTHETIC_FEATURES FROM big', 'treatment', 'converted', 'learner = t, base = logistic, validation = 0')" 2>"$WORK/train.log" | tail -n +2)
  wall=$("$PY" -c "print(round($(now) - $start, 3))")
  training=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/train.log" | "$PY" -c '
import re, sys
text = sys.stdin.read()
features = float(re.search(r"inputs in ([0-9.]+) s", text).group(1))
fits = float(re.search(r"trained in ([0-9.]+) s", text).group(1))
print(round(features + fits, 3))')
  echo "martdb run $run: $wall s (process), $inner s (uplift_train: features, fits, evaluation of every row, save), $training s (training: features and fits)"
  best=$("$PY" -c "print(min(float(x) for x in '$best $wall'.split()))")
  best_inner=$("$PY" -c "print(min(float(x) for x in '$best_inner $inner'.split()))")
  best_training=$("$PY" -c "print(min(float(x) for x in '$best_training $training'.split()))")
done
peer_best=""
for run in 1 2 3 4 5; do
  s=$("$PY" $PEER time-fit --train "$DB/big.parquet" --method sklift_two_models_lr 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["fit_seconds"])')
  echo "scikit-uplift run $run: $s s (fit: scaling and two fits)"
  peer_best=$("$PY" -c "print(min(float(x) for x in '$peer_best $s'.split()))")
done
ratio() { "$PY" -c "print(round($peer_best / $1, 2))"; }
echo "best: scikit-uplift fit $peer_best s; martdb training $best_training s ($(ratio "$best_training")x faster), uplift_train $best_inner s ($(ratio "$best_inner")x), whole process $best s ($(ratio "$best")x)"

echo
echo "## Scoring throughput over SQL"
echo
# On the demo campaign, the S-learner over trees (the default, demo_8) and the T-learner
# over the perceptron (demo_4); on the big table, its logistic T-learner.
for pair in "campaign demo_8" "campaign demo_4" "big big"; do
  set -- $pair
  table=$1 model=$2
  rows=$(sql "SELECT count(*) FROM $table")
  start=$(now)
  sql "SELECT count(uplift) FROM uplift_predict('$model', 'SELECT * FROM $table')" >/dev/null
  wall=$("$PY" -c "print($(now) - $start)")
  echo "uplift_predict('$model') over $table: $rows rows in $("$PY" -c "print(round($wall, 3))") s = $("$PY" -c "print(round($rows / $wall))") rows/s (process included)"
done
