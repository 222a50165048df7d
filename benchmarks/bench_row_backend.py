"""Per-record cost of the rows backend against the no-frame path it replaced (not in CI).

The baseline is the previous implementation, loaded from git (``--baseline``, default
``main``: ``mlops/serving/fast_features.py`` and ``fast_exprs.py`` as they were there,
run against today's plan objects; since the request pipeline replaced them, pass
``--baseline 0021b11``); the current one is what the request pipeline runs for a small
batch: the stored history (``mlops.serving.pipeline.features.stored_history``) into
``mlops.features.backends.rows.row_features``. Both read the same SQLite store (the entity's recent
events) and compute every feature of one record (or ``--batch`` records), interleaved,
best of ``--repeat`` medians. Values are compared first (the baseline's sums differ in
the last bit: it summed in arrival order; the rows backend's sums are exact).

    python benchmarks/bench_row_backend.py                 # 1 record per call
    python benchmarks/bench_row_backend.py --batch 16
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from mlops.data.synthetic import SyntheticParams, generate  # noqa: E402
from mlops.features.backends.rows import row_features  # noqa: E402
from mlops.features.compile import compile_plan  # noqa: E402
from mlops.features.online import SQLiteStore, append_events  # noqa: E402
from mlops.serving.http.validation import RequestSchema  # noqa: E402
from mlops.serving.pipeline.features import stored_history  # noqa: E402


class fast_features:  # noqa: N801 - the rows backend as the request pipeline feeds it
    @staticmethod
    def compile_rows(plan, kinds=None):
        return plan

    @staticmethod
    def row_features(plan, store, cols):
        points = [dict(zip(cols, v)) for v in zip(*cols.values())]
        history = stored_history(plan, store, cols[plan.entity], cols[plan.timestamp]) + points
        return row_features(plan, history, points)


SPECS = {
    "serving bench (sum, mean, count; 1 derived)": {
        "name": "bench", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
        "categorical": ["merchant_category", "country", "channel"],
        "windows": [{"column": "amount", "aggs": ["sum", "mean", "count"], "periods": ["1h", "7d"]}],
        "derived": [{"name": "amount_ratio", "expr": "amount / (amount_mean_7d + 1)"}]},
    "every aggregate, 3 derived": {
        "name": "every", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
        "categorical": ["merchant_category", "country", "channel"],
        "windows": [{"column": "amount", "aggs": ["sum", "mean", "min", "max", "std", "count"],
                     "periods": ["1h", "1d"]},
                    {"column": "merchant_category", "aggs": ["distinct", "last"], "periods": ["1d"]},
                    {"aggs": ["since_last"], "periods": ["7d"], "default": 604800.0}],
        "derived": [{"name": "ratio", "expr": "amount / (amount_mean_1d + 1)"},
                    {"name": "log_amount", "expr": "ln(amount + 1)"},
                    {"name": "spread", "expr": "(amount_max_1d - amount_min_1d) / (amount_std_1d + 1)"}]},
}


def baseline_module(rev: str) -> types.ModuleType:
    """``fast_features`` as it was at ``rev`` (with its own ``fast_exprs``)."""
    def source(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout
    exprs = types.ModuleType("baseline_fast_exprs")
    exec(compile(source("mlops/serving/fast_exprs.py"), "baseline_fast_exprs", "exec"), exprs.__dict__)
    sys.modules["baseline_fast_exprs"] = exprs
    text = source("mlops/serving/fast_features.py").replace(
        "from mlops.serving.fast_exprs import", "from baseline_fast_exprs import")
    feats = types.ModuleType("baseline_fast_features")
    sys.modules["baseline_fast_features"] = feats  # its dataclasses look themselves up
    exec(compile(text, "baseline_fast_features", "exec"), feats.__dict__)
    return feats


def requests(plan, events: pl.DataFrame, schema: RequestSchema, n: int, batch: int) -> list[dict]:
    rows = events.tail(n * batch).to_dicts()
    out = []
    for k in range(n):
        part = rows[k * batch:(k + 1) * batch]
        cols = {c: [r[c] for r in part] for c in schema.kinds}
        cols[plan.timestamp] = [int(pl.Series([r[plan.timestamp]]).cast(pl.Datetime("us"))
                                    .dt.epoch("us")[0]) for r in part]
        out.append(cols)
    return out


def max_rel_diff(a: list[dict], b: list[dict], names: list[str]) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        for n in names:
            u, v = x[n], y[n]
            if isinstance(u, float) and isinstance(v, float) and u != v:
                worst = max(worst, abs(u - v) / max(abs(u), abs(v)))
            elif u != v and not (isinstance(u, float) and u != u):
                raise AssertionError(f"{n}: {u!r} != {v!r}")
    return worst


def measure(label: str, spec: dict, events: pl.DataFrame, old, args, tmp: str) -> None:
    plan = compile_plan(spec, events.schema)
    schema = RequestSchema.from_plan(plan, events.schema)
    store = SQLiteStore(f"{tmp}/{plan.name}.sqlite")
    ordered = events.sort(plan.timestamp)
    append_events(plan, store, ordered.head(ordered.height - args.requests * args.batch))
    reqs = requests(plan, ordered, schema, args.requests, args.batch)
    rp_old, rp_new = old.compile_rows(plan, schema.kinds), fast_features.compile_rows(plan, schema.kinds)
    assert rp_old is not None and rp_new is not None, "both paths must take the plan"
    diff = max(max_rel_diff(old.row_features(rp_old, store, c), fast_features.row_features(rp_new, store, c),
                            plan.feature_names) for c in reqs)
    times = {"baseline": [], "rows backend": []}
    for _ in range(args.repeat):
        for name, fn, rp in (("baseline", old.row_features, rp_old),
                             ("rows backend", fast_features.row_features, rp_new)):
            per = []
            for cols in reqs:
                t = time.perf_counter_ns()
                fn(rp, store, cols)
                per.append((time.perf_counter_ns() - t) / 1e3 / args.batch)
            times[name].append(statistics.median(per))
    best = {k: min(v) for k, v in times.items()}
    print(f"{label}: baseline {best['baseline']:.0f} us/record, rows backend "
          f"{best['rows backend']:.0f} us/record, ratio {best['rows backend'] / best['baseline']:.2f}x "
          f"(max relative difference of values {diff:.1e})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="main", help="git revision of the previous no-frame path")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    old = baseline_module(args.baseline)
    events = generate(SyntheticParams(n_users=400, days=30, seed=7, tx_per_user_day=4))
    print(f"{events.height:,} events; {args.requests} calls of {args.batch} record(s); "
          f"baseline = {args.baseline}'s fast_features.row_features")
    with tempfile.TemporaryDirectory() as tmp:
        for label, spec in SPECS.items():
            measure(label, spec, events, old, args, tmp)


if __name__ == "__main__":
    main()
