"""The peer of martdb's forecasting (the SQL function forecast(...)): statsforecast's
AutoETS, AutoTheta and SeasonalNaive on public datasets for accuracy, and AutoETS (or
AutoTheta) on generated daily series for speed. Run with the forecasting venv's python:

forecast_peer.py accuracy OUT_DIR
    Splits each dataset's series into train and the last h values (test) and writes
    OUT_DIR/train.parquet and OUT_DIR/test.parquet (dataset string, series_id string,
    t int64 = position in the series, test continuing train's numbering, value float64)
    and OUT_DIR/peer.json:
    {"statsforecast": version, "datasets": {name: {"season_length", "horizon", "series",
     "mase": {"AutoETS", "AutoTheta", "SeasonalNaive"}, "coverage_80": {"AutoETS"}}}}
    MASE is the test MAE over the in-sample MAE of the seasonal naive with lag m (lag 1
    when m = 1), averaged over the dataset's series; coverage_80 is the share of the
    dataset's test points inside AutoETS's 80% interval. One summary line per dataset on
    stderr.
forecast_peer.py bench SERIES LENGTH HORIZON OUT_DIR [--threads N] [--model ets|theta]
    Writes SERIES generated retail-like daily series of LENGTH points to
    OUT_DIR/bench_series.parquet (series_id string, day date32 from 2024-01-01, value
    float64) and times StatsForecast(models=[AutoETS(season_length=7)], freq='D',
    n_jobs=N).forecast(h=HORIZON, level=[80, 95]) on them (N: all cores by default), after
    a warm-up on a few series. One JSON line on stdout:
    {"peer", "version", "series", "length", "horizon", "threads", "seconds", "series_per_s"}
"""

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import statsforecast
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, AutoTheta, SeasonalNaive

MODELS = ["AutoETS", "AutoTheta", "SeasonalNaive"]


def datasets():
    """(name, season length, horizon, {series_id: values}) of each accuracy dataset."""
    import statsmodels.api as sm
    from statsforecast.utils import AirPassengers
    from utilsforecast.data import generate_series

    def load(module):
        return getattr(sm.datasets, module).load_pandas().data

    co2 = load("co2")["co2"].resample("MS").mean().interpolate()
    elnino = load("elnino").drop(columns="YEAR").to_numpy(float).ravel()  # row by row: Jan..Dec
    single = [
        ("airpassengers", 12, 12, np.asarray(AirPassengers, float)),
        ("co2", 12, 12, co2.to_numpy(float)),
        ("elnino", 12, 12, elnino),
        ("nile", 1, 10, load("nile")["volume"].to_numpy(float)),
        ("sunspots", 1, 10, load("sunspots")["SUNACTIVITY"].to_numpy(float)),
        ("realgdp", 4, 8, load("macrodata")["realgdp"].to_numpy(float)),
    ]
    for name, m, h, y in single:
        yield name, m, h, {name: y}
    daily = generate_series(50, freq="D", min_length=120, max_length=500, seed=7)
    yield "daily", 7, 14, {str(uid): g["y"].to_numpy(float)
                           for uid, g in daily.groupby("unique_id", observed=True)}


def long_frame(name, series, first_t=None):
    """One dataset's rows in the train/test layout; first_t[series_id] is where t starts (0 by default)."""
    first_t = first_t or {}
    frames = [pd.DataFrame({"dataset": name, "series_id": sid,
                            "t": np.arange(len(y), dtype=np.int64) + first_t.get(sid, 0), "value": y})
              for sid, y in series.items()]
    return pd.concat(frames, ignore_index=True)


def scale(train, m):
    """In-sample MAE of the seasonal naive with lag m: MASE's denominator."""
    return np.mean(np.abs(train[m:] - train[:-m]))


def score(name, m, h, series):
    train = {sid: y[:-h] for sid, y in series.items()}
    test = {sid: y[-h:] for sid, y in series.items()}
    df = long_frame(name, train).rename(
        columns={"series_id": "unique_id", "t": "ds", "value": "y"})
    sf = StatsForecast(models=[AutoETS(season_length=m), AutoTheta(season_length=m),
                               SeasonalNaive(season_length=m)], freq=1, n_jobs=1)
    fc = sf.forecast(df=df[["unique_id", "ds", "y"]], h=h, level=[80])
    mase = {model: [] for model in MODELS}
    inside = []
    for sid, y in test.items():
        # Select by id and sort by ds rather than rely on the order of the output's rows.
        f = fc[fc["unique_id"] == sid].sort_values("ds")
        for model in MODELS:
            mase[model].append(np.mean(np.abs(y - f[model].to_numpy())) / scale(train[sid], m))
        inside.append((f["AutoETS-lo-80"].to_numpy() <= y) & (y <= f["AutoETS-hi-80"].to_numpy()))
    return train, test, {
        "season_length": m, "horizon": h, "series": len(series),
        "mase": {model: float(np.mean(v)) for model, v in mase.items()},
        "coverage_80": {"AutoETS": float(np.mean(np.concatenate(inside)))},
    }


def accuracy(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    trains, tests, peer = [], [], {}
    for name, m, h, series in datasets():
        started = time.perf_counter()
        train, test, result = score(name, m, h, series)
        trains.append(long_frame(name, train))
        tests.append(long_frame(name, test, {sid: len(y) for sid, y in train.items()}))
        peer[name] = result
        mase = " ".join(f"{k} {v:.4f}" for k, v in result["mase"].items())
        print(f"{name:14s} m={m:<2d} h={h:<2d} series={len(series):<3d} MASE {mase}  "
              f"AutoETS cover80 {result['coverage_80']['AutoETS']:.3f}  "
              f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    pd.concat(trains, ignore_index=True).to_parquet(os.path.join(out_dir, "train.parquet"), index=False)
    pd.concat(tests, ignore_index=True).to_parquet(os.path.join(out_dir, "test.parquet"), index=False)
    with open(os.path.join(out_dir, "peer.json"), "w") as f:
        json.dump({"statsforecast": statsforecast.__version__, "datasets": peer}, f, indent=2)
        f.write("\n")


def retail_series(n_series, length):
    """(n_series, length) strictly positive daily sales: level x weekly pattern x trend x noise."""
    rng = np.random.default_rng(42)
    level = rng.lognormal(np.log(100), 0.6, (n_series, 1))
    weekly = rng.lognormal(0.0, 0.2, (n_series, 7))
    weekly /= weekly.mean(axis=1, keepdims=True)  # the pattern moves sales within a week, not the level
    growth = rng.uniform(-0.1, 0.3, (n_series, 1))  # per year, so the trend stays gentle
    sigma = rng.uniform(0.05, 0.2, (n_series, 1))
    t = np.arange(length)
    trend = np.exp(growth * t / 365.0)
    noise = np.exp(rng.normal(0.0, 1.0, (n_series, length)) * sigma)
    # Every factor is positive, so every value is.
    return level * weekly[:, t % 7] * trend * noise


def bench(args):
    values = retail_series(args.series, args.length)
    names = [f"s{i:05d}" for i in range(args.series)]
    ids = np.repeat(names, args.length)
    days = np.tile(np.datetime64("2024-01-01") + np.arange(args.length), args.series)
    os.makedirs(args.out_dir, exist_ok=True)
    pq.write_table(pa.table({"series_id": pa.array(ids, pa.string()),
                             "day": pa.array(days, pa.date32()),
                             "value": pa.array(values.ravel(), pa.float64())}),
                   os.path.join(args.out_dir, "bench_series.parquet"))

    df = pd.DataFrame({"unique_id": ids, "ds": days.astype("datetime64[ns]"), "y": values.ravel()})
    model = AutoTheta(season_length=7) if args.model == "theta" else AutoETS(season_length=7)
    threads = args.threads or os.cpu_count()
    sf = StatsForecast(models=[model], freq="D", n_jobs=threads)
    # The warm-up pays the first-call costs (lazy imports, any numba compilation) outside the
    # timing; the worker pool is started anew by every call, as it is in real use, so is timed.
    sf.forecast(df=df[df["unique_id"].isin(names[:5])], h=args.horizon, level=[80, 95])
    started = time.perf_counter()
    sf.forecast(df=df, h=args.horizon, level=[80, 95])
    seconds = time.perf_counter() - started
    return {"peer": f"statsforecast {type(model).__name__}", "version": statsforecast.__version__,
            "series": args.series, "length": args.length, "horizon": args.horizon,
            "threads": threads, "seconds": seconds, "series_per_s": args.series / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    acc = commands.add_parser("accuracy")
    acc.add_argument("out_dir")
    b = commands.add_parser("bench")
    b.add_argument("series", type=int)
    b.add_argument("length", type=int)
    b.add_argument("horizon", type=int)
    b.add_argument("out_dir")
    b.add_argument("--threads", type=int, help="StatsForecast's n_jobs (default: all cores)")
    b.add_argument("--model", choices=["ets", "theta"], default="ets")
    args = parser.parse_args()
    # statsforecast and statsmodels warn about convergence and frequencies; the numbers are the output.
    warnings.filterwarnings("ignore")
    if args.command == "accuracy":
        accuracy(args.out_dir)
    else:
        json.dump(bench(args), sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
