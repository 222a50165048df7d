"""In-process cost of the request pipeline per stage, frames backend vs rows backend (not in CI).

Builds the same world as ``bench_serving.py`` (SQLite store with 60 days of history,
breaker, prediction log), validates one record per request exactly as ``/predict``
does, and calls ``process_batch`` directly (no HTTP). Each stage function is wrapped
with a ``perf_counter_ns`` timer, so the table shows where a lone record's time goes;
the two paths are interleaved (the machine is shared). ``--batch`` runs several records
per call instead.

Usage::

    python benchmarks/bench_request_path.py               # 1 record, buffered log
    python benchmarks/bench_request_path.py --durable     # wait for each fsync too
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_serving import build  # noqa: E402

from mlops.serving.http.validation import check_records  # noqa: E402
from mlops.serving.pipeline import ParsedRequest, process_batch, request_ids  # noqa: E402
from mlops.serving.pipeline import stages as pipeline_stages  # noqa: E402

# (module, attribute, stage name): the one pipeline's stages, each called once per batch
STAGES = [(pipeline_stages, "respond", "respond")]


def _timed(spans: dict, name: str, fn):
    def wrapper(*a, **kw):
        t = time.perf_counter_ns()
        try:
            return fn(*a, **kw)
        finally:
            spans[name] += time.perf_counter_ns() - t
    return wrapper


def _state(tmp: str, durable: bool):
    import polars as pl

    from mlops.monitoring.reference import fit_reference
    from mlops.serving import BreakerReference, ModelInfo, ServingSettings, StoreSettings, open_state
    events, plan, feats, model = build()
    X = feats.select(plan.feature_names)
    fitted = fit_reference(X.with_columns(pl.Series("prediction", model.predict_proba(X)[:, 1])),
                           numeric=[*plan.numeric, "prediction"], categorical=plan.categorical)
    ref = BreakerReference.from_reference(fitted, plan.feature_names)
    settings = ServingSettings(log_dir=os.path.join(tmp, "plog"), log_durable=durable,
                               store=StoreSettings(path=os.path.join(tmp, "online.sqlite")))
    state = open_state(plan, model, ModelInfo("fraud", "1", plan.spec_hash), settings,
                       reference=ref, source_schema=events.schema)
    records = []
    for r in events.tail(6000).to_dicts():
        rec = {c: r[c] for c in plan.source_columns}
        rec[plan.timestamp] = r[plan.timestamp].isoformat()
        records.append(rec)
    return state, records


def _call(state, records: list[dict], spans: dict) -> None:
    s = state.settings
    t = time.perf_counter_ns()
    checked = check_records(records, state.request_schema, now_us=state.now_us(),
                            known_categories=state.categories,
                            max_future_us=int(s.max_future_seconds * 1e6),
                            max_abs=s.max_abs_value, policy=s.invalid_record_policy)
    spans["validation"] += time.perf_counter_ns() - t
    t = time.perf_counter_ns()
    out = process_batch(state, [ParsedRequest(checked.columns, checked.warnings,
                                              request_ids(records), checked.event_ids,
                                              checked.invalid)])
    if out[0].durable is not None:
        out[0].durable.result()
    spans["total (process_batch)"] += time.perf_counter_ns() - t
    assert out[0].status == 200, out[0].detail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500, help="calls per path")
    ap.add_argument("--batch", type=int, default=1, help="records per call")
    ap.add_argument("--durable", action="store_true", help="durable log (fsync per call)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    spans = {"frames": defaultdict(int), "rows": defaultdict(int)}
    current = {"spans": spans["rows"]}
    for mod, attr, name in STAGES:
        fn = getattr(mod, attr)
        setattr(mod, attr, lambda *a, _fn=fn, _name=name, **kw:
                _timed(current["spans"], _name, _fn)(*a, **kw))
    pipeline_stages.STAGES = tuple(  # every stage of the one ordered list, timed
        (lambda st, b, _fn=fn: _timed(current["spans"], _fn.__name__.replace("_stage", ""), _fn)(st, b))
        for fn in pipeline_stages.STAGES)
    with tempfile.TemporaryDirectory() as tmp:
        state, records = _state(tmp, args.durable)
        current["spans"] = defaultdict(int)  # warm-up is not counted
        for i in range(200):  # warm: model memo, SQLite pages
            _call(state, records[i:i + args.batch], current["spans"])
        pos = 200
        for rnd in range(2 * args.n // 100):  # interleave the paths in blocks of 50 calls
            path = "frames" if rnd % 2 == 0 else "rows"
            current["spans"] = spans[path]
            state.backends.forced = path
            for _ in range(50):
                _call(state, records[pos:pos + args.batch], spans[path])
                pos = (pos + args.batch) % (len(records) - args.batch)
        state.close()
    calls = args.n
    names = list(dict.fromkeys(["validation", "features", "score", "guard", "breaker", "store",
                                "log", "respond", "total (process_batch)"]))
    print(f"{args.batch} record(s) per call, {calls} calls per path, "
          f"{'durable' if args.durable else 'buffered'} log; mean us per call")
    print(f"  {'stage':24s} {'frames':>11s} {'rows':>9s}")
    for n in names:
        f, r = spans["frames"][n] / calls / 1e3, spans["rows"][n] / calls / 1e3
        print(f"  {n:24s} {f:11.0f} {r:9.0f}")
    tf = spans["frames"]["total (process_batch)"]
    tr = spans["rows"]["total (process_batch)"]
    print(f"  process_batch: rows / frames = {tr / tf:.2f}x")


if __name__ == "__main__":
    main()
