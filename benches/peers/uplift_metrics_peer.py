"""The reference for martdb's uplift metrics (tests/it/uplift_differential.rs):
scikit-uplift's qini_auc_score, uplift_auc_score, uplift_at_k and uplift_by_percentile.

Reads {"sets": [{"y": [...], "t": [...], "u": [...], "u_tied": [...], "k_share": f,
"k_count": n, "bins": b}]} as JSON on stdin; writes one result per set as JSON on stdout.
NaN (an empty group) is written as null.
"""

import json
import math
import sys
import warnings

import numpy as np
from sklift.metrics import qini_auc_score, uplift_at_k, uplift_auc_score, uplift_by_percentile

warnings.filterwarnings("ignore")


def clean(v):
    v = float(v)
    return None if math.isnan(v) else v


def main():
    request = json.load(sys.stdin)
    out = []
    for s in request["sets"]:
        y, t = np.array(s["y"]), np.array(s["t"])
        u, tied = np.array(s["u"]), np.array(s["u_tied"])
        table = uplift_by_percentile(y, u, t, strategy="overall", bins=s["bins"])
        out.append({
            "qini_auc": clean(qini_auc_score(y, tied, t)),
            "uplift_auc": clean(uplift_auc_score(y, tied, t)),
            "at_k_overall": clean(uplift_at_k(y, u, t, strategy="overall", k=s["k_share"])),
            "at_k_by_group": clean(uplift_at_k(y, u, t, strategy="by_group", k=s["k_share"])),
            "at_k_count": clean(uplift_at_k(y, u, t, strategy="overall", k=s["k_count"])),
            "deciles": {
                "treated": [int(v) for v in table["n_treatment"]],
                "control": [int(v) for v in table["n_control"]],
                "uplift": [clean(v) for v in table["uplift"]],
            },
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
