"""The reference for martdb's experiment statistics (tests/it/stats_differential.rs).

Reads JSON from stdin: {"adjust": [{"p": [...], "method": "holm"}, ...],
"buckets": [[user, experiment, n], ...]}; writes {"adjust": [[...], ...],
"buckets": [...]}: statsmodels' multipletests for each p-value set (NaN for a missing
p-value, which is left out, as R's p.adjust does), and the bucket of each assignment by
the definition documented in src/ml/stats/assignment.rs.
"""
import json
import sys

import numpy as np
from statsmodels.stats.multitest import multipletests


def adjust(p, method):
    values = np.array([np.nan if v is None else v for v in p], dtype=float)
    present = ~np.isnan(values)
    out = [None] * len(p)
    if present.any():
        _, corrected, _, _ = multipletests(values[present], method=method)
        for i, v in zip(np.flatnonzero(present), corrected):
            out[int(i)] = float(v)
    return out


def bucket(user, experiment, n):
    h = 0xCBF29CE484222325
    for b in f"{experiment}:{user}".encode():
        h = ((h ^ b) * 0x100000001B3) % 2**64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) % 2**64
    h ^= h >> 31
    return (h * n) >> 64


request = json.load(sys.stdin)
json.dump(
    {
        "adjust": [adjust(case["p"], case["method"]) for case in request["adjust"]],
        "buckets": [bucket(u, e, n) for u, e, n in request["buckets"]],
    },
    sys.stdout,
)
