"""The reference for martdb's attribution models (tests/it/attribution_differential.rs).

An independent implementation of the definitions in src/ml/attribution/mod.rs, written
from the definitions rather than from martdb's method:
- heuristics by plain loops over each journey's touches;
- Markov by numpy transition matrices: the absorbing chain is solved with
  np.linalg.solve on (I - Q), and every channel's removal by building the chain without
  it (its incoming transitions sent to null) and solving again;
- Shapley by its definition: the average marginal contribution of each channel over all
  orders of arrival (itertools.permutations), for up to 7 channels.

Reads JSON from stdin: {"cases": [{"model": "time_decay", "parameter": 7.0 or null,
"journeys": [{"touches": [[channel, seconds], ...], "converted": true, "value": 1.5},
...]}, ...]}; writes {"results": [{channel: {"conversions": x, "value": x, "share": x or
null, "removal_effect": x or null}, ...}, ...]}.
"""
import itertools
import json
import sys

import numpy as np

SECONDS_PER_DAY = 86400.0


def ordered(journey):
    """Touches by time, then channel name."""
    return sorted(journey["touches"], key=lambda touch: (touch[1], touch[0]))


def heuristic_weights(model, parameter, touches):
    n = len(touches)
    if model == "first":
        return [1.0] + [0.0] * (n - 1)
    if model == "last":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "time_decay":
        half_life = (7.0 if parameter is None else parameter) * SECONDS_PER_DAY
        last = touches[-1][1]
        raw = [2.0 ** (-(last - at) / half_life) for _, at in touches]
        total = sum(raw)
        return [w / total for w in raw]
    if model == "position":
        share = 0.4 if parameter is None else parameter
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        middle = (1.0 - 2.0 * share) / (n - 2)
        return [share] + [middle] * (n - 2) + [share]
    raise ValueError(model)


def heuristic(model, parameter, journeys, channels):
    conversions = dict.fromkeys(channels, 0.0)
    value = dict.fromkeys(channels, 0.0)
    for journey in journeys:
        if not journey["converted"]:
            continue
        touches = ordered(journey)
        for (channel, _), w in zip(touches, heuristic_weights(model, parameter, touches)):
            conversions[channel] += w
            value[channel] += w * journey["value"]
    return conversions, value, None


def conversion_probability(counts, states, removed=None):
    """P(conversion) from start of the chain of `counts` (a square matrix over `states`),
    with the state `removed` (if any) taken out and its incoming transitions sent to null."""
    p = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    conv, null = states.index("(conversion)"), states.index("(null)")
    if removed is not None:
        c = states.index(removed)
        p = p.copy()
        p[:, null] += p[:, c]
        p[:, c] = 0.0
    transient = [
        i
        for i, s in enumerate(states)
        if s not in ("(conversion)", "(null)") and s != removed
    ]
    q = p[np.ix_(transient, transient)]
    r = p[np.ix_(transient, [conv, null])]
    absorbed = np.linalg.solve(np.eye(len(transient)) - q, r)
    return absorbed[transient.index(states.index("(start)")), 0]


def markov(journeys, channels):
    states = ["(start)"] + channels + ["(conversion)", "(null)"]
    at = {s: i for i, s in enumerate(states)}
    counts = np.zeros((len(states), len(states)))
    for journey in journeys:
        path = ["(start)"] + [c for c, _ in ordered(journey)]
        path.append("(conversion)" if journey["converted"] else "(null)")
        for a, b in zip(path, path[1:]):
            counts[at[a], at[b]] += 1.0
    total_conversions = float(sum(1 for j in journeys if j["converted"]))
    total_value = sum(j["value"] for j in journeys if j["converted"])
    if total_conversions == 0:
        zero = dict.fromkeys(channels, 0.0)
        return zero, dict(zero), dict(zero)
    p = conversion_probability(counts, states)
    effects = {
        c: 1.0 - conversion_probability(counts, states, removed=c) / p for c in channels
    }
    total = sum(effects.values())
    conversions = {c: effects[c] / total * total_conversions for c in channels}
    value = {c: effects[c] / total * total_value for c in channels}
    return conversions, value, effects


def shapley(journeys, channels):
    if len(channels) > 7:
        raise ValueError("the permutation Shapley value is for up to 7 channels")
    sets = [
        (frozenset(c for c, _ in j["touches"]), j["value"])
        for j in journeys
        if j["converted"]
    ]
    worth = {}

    def v(coalition):
        if coalition not in worth:
            members = [value for t, value in sets if t <= coalition]
            worth[coalition] = (float(len(members)), float(sum(members)))
        return worth[coalition]

    conversions = dict.fromkeys(channels, 0.0)
    value = dict.fromkeys(channels, 0.0)
    orders = list(itertools.permutations(channels))
    for order in orders:
        coalition = frozenset()
        for channel in order:
            bigger = coalition | {channel}
            conversions[channel] += v(bigger)[0] - v(coalition)[0]
            value[channel] += v(bigger)[1] - v(coalition)[1]
            coalition = bigger
    n = float(len(orders))
    return (
        {c: x / n for c, x in conversions.items()},
        {c: x / n for c, x in value.items()},
        None,
    )


def attribute(case):
    journeys = case["journeys"]
    channels = sorted({c for j in journeys for c, _ in j["touches"]})
    model = case["model"]
    if model == "markov":
        conversions, value, effects = markov(journeys, channels)
    elif model == "shapley":
        conversions, value, effects = shapley(journeys, channels)
    else:
        conversions, value, effects = heuristic(model, case["parameter"], journeys, channels)
    total = float(sum(1 for j in journeys if j["converted"]))
    return {
        c: {
            "conversions": float(conversions[c]),
            "value": float(value[c]),
            "share": float(conversions[c] / total) if total > 0 else None,
            "removal_effect": None if effects is None else float(effects[c]),
        }
        for c in channels
    }


request = json.load(sys.stdin)
json.dump({"results": [attribute(case) for case in request["cases"]]}, sys.stdout)
