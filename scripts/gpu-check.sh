#!/usr/bin/env bash
# CPU/GPU parity and speed of the ML runtime, on a machine with an NVIDIA GPU (see
# DEVELOPERS.md): trains the same uplift models on the CPU and on the GPU over ROWS
# synthetic rows x 20 features, scores both ways, and prints the largest score
# differences, the training times and the scoring throughput on each device.
# Usage: scripts/gpu-check.sh [MARTDB_BINARY]   (env: ROWS=1000000, DEVICE=cuda)
# With DEVICE=cpu it runs anywhere (both sides on the CPU: the differences are 0).
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/martdb}
ROWS=${ROWS:-1000000}
DEVICE=${DEVICE:-cuda}
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
F="f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19"
Q="SELECT treatment, converted, $F FROM big"
"$BIN" sql --data "$DATA" --format csv -f /dev/stdin <<SQL
-- 20 features, a randomised treatment and an effect that depends on f0 and f1.
CREATE TABLE big AS
SELECT id, treatment, $F,
       CASE WHEN random() < 1 / (1 + exp(-(-1 + 0.5 * f2 - 0.3 * f3
                 + treatment * (0.4 * f0 - 0.4 * f1)))) THEN 1 ELSE 0 END AS converted
FROM (SELECT value AS id, CASE WHEN random() < 0.5 THEN 1 ELSE 0 END AS treatment,
             $(for i in $(seq 0 19); do printf 'random() * 2 - 1 AS f%d%s ' "$i" "$([ "$i" -lt 19 ] && echo ,)"; done)
      FROM generate_series(1, $ROWS));

SELECT 'cpu train' AS step, algorithm, round(seconds, 3) AS seconds, round(qini_auc, 5) AS qini_auc
FROM uplift_train('parity_logistic_cpu', '$Q', 'treatment', 'converted', 'learner = t, base = logistic, validation = 0');
SELECT 'cpu train' AS step, algorithm, round(seconds, 3) AS seconds, round(qini_auc, 5) AS qini_auc
FROM uplift_train('parity_mlp_cpu', '$Q', 'treatment', 'converted', 'learner = t, base = mlp, validation = 0');
CREATE TABLE cpu_logistic AS SELECT id, uplift FROM uplift_predict('parity_logistic_cpu', 'SELECT * FROM big');
CREATE TABLE cpu_mlp AS SELECT id, uplift FROM uplift_predict('parity_mlp_cpu', 'SELECT * FROM big');

SET martdb.ml_device = '$DEVICE';
SELECT '$DEVICE train' AS step, algorithm, round(seconds, 3) AS seconds, round(qini_auc, 5) AS qini_auc
FROM uplift_train('parity_logistic_gpu', '$Q', 'treatment', 'converted', 'learner = t, base = logistic, validation = 0');
SELECT '$DEVICE train' AS step, algorithm, round(seconds, 3) AS seconds, round(qini_auc, 5) AS qini_auc
FROM uplift_train('parity_mlp_gpu', '$Q', 'treatment', 'converted', 'learner = t, base = mlp, validation = 0');
CREATE TABLE gpu_logistic_cpu_model AS SELECT id, uplift FROM uplift_predict('parity_logistic_cpu', 'SELECT * FROM big');
CREATE TABLE gpu_mlp_cpu_model AS SELECT id, uplift FROM uplift_predict('parity_mlp_cpu', 'SELECT * FROM big');
CREATE TABLE gpu_logistic AS SELECT id, uplift FROM uplift_predict('parity_logistic_gpu', 'SELECT * FROM big');
CREATE TABLE gpu_mlp AS SELECT id, uplift FROM uplift_predict('parity_mlp_gpu', 'SELECT * FROM big');

-- The CPU's models scored on the GPU: the same up to float rounding.
-- The models trained on the GPU: logistic regression is the same optimum; the
-- perceptron follows the same seed but reduces in another order, so it is compared by
-- the correlation of the scores and by Qini.
SELECT 'parity' AS step,
       max(abs(a.uplift - cl.uplift)) AS scoring_logistic_max_diff,
       max(abs(b.uplift - cm.uplift)) AS scoring_mlp_max_diff,
       max(abs(c.uplift - cl.uplift)) AS trained_logistic_max_diff,
       round(corr(d.uplift, cm.uplift), 5) AS trained_mlp_correlation
FROM cpu_logistic cl
JOIN cpu_mlp cm ON cm.id = cl.id
JOIN gpu_logistic_cpu_model a ON a.id = cl.id
JOIN gpu_mlp_cpu_model b ON b.id = cl.id
JOIN gpu_logistic c ON c.id = cl.id
JOIN gpu_mlp d ON d.id = cl.id;
SQL

# Scoring throughput: one process per device (start-up and model loading included).
for dev in cpu "$DEVICE"; do
  start=$(date +%s.%N)
  "$BIN" sql --data "$DATA" --format csv -f /dev/stdin >/dev/null <<SQL
SET martdb.ml_device = '$dev';
SELECT count(uplift) FROM uplift_predict('parity_mlp_cpu', 'SELECT * FROM big');
SQL
  end=$(date +%s.%N)
  echo "$dev scoring: $ROWS rows, $(echo "$ROWS / ($end - $start)" | bc) rows/s"
done
