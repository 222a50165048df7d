"""A hot entity must not slow down its batch-mates (issue 12, item 2).

30,000 stored events for one entity, ~30 for every other. Micro-batches of 16 requests
are scored through the real request path (``process_batch``: store read, features,
model, store append), with and without the hot entity in the batch, and with the
per-entity cap (``serving.store.max_events_per_entity``, default 1000) vs without a cap
(the old behaviour). Prints p50/p99 per batch and the ratio hot / normal.

    python benchmarks/bench_hot_entity.py [--repeats 200]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "serving"))

from serving_world import build_world, record  # noqa: E402

from mlops.features.online import (  # noqa: E402
    SQLiteStore,  # noqa: E402
    append_events,
    points_frame,
)
from mlops.serving.http.app import freeze_startup_heap  # noqa: E402
from mlops.serving.http.validation import check_records  # noqa: E402
from mlops.serving.pipeline import ParsedRequest, process_batch  # noqa: E402
from mlops.serving.settings import ServingSettings  # noqa: E402
from mlops.serving.state import ServingState  # noqa: E402

NOW = datetime(2024, 2, 1, 12, 0, 0)


def _state(world, path: Path, cap: int | None) -> ServingState:
    store = SQLiteStore(path, max_events_per_entity=cap)
    return ServingState(plan=world.plan, model=world.model, info=world.info, store=store,
                        settings=ServingSettings(), source_schema=world.events.schema,
                        clock=lambda: NOW)


def _parsed(state, recs):
    c = check_records(recs, state.request_schema, now_us=state.now_us())
    return ParsedRequest(c.columns, c.warnings, [f"r{i}" for i in range(len(recs))])


def _fill(world, state, hot_events: int):
    plan = world.plan
    append_events(plan, state.store, world.events.select(list(plan.source_columns)))
    base = record(world.events.row(0, named=True), plan)
    rows = [{**base, "user_id": "hot", "amount": 10.0 + i % 50,
             "event_ts": (NOW - timedelta(days=6, seconds=-i * 15)).isoformat()}
            for i in range(hot_events)]
    for i in range(0, len(rows), 5000):
        c = check_records(rows[i:i + 5000], state.request_schema, now_us=state.now_us())
        append_events(plan, state.store, points_frame(c.columns, state.request_schema
                                                      .polars_schema(), plan.timestamp))


def _measure(world, state, repeats: int, with_hot: bool) -> np.ndarray:
    users = world.events["user_id"].unique().sort().to_list()
    base = record(world.events.row(0, named=True), world.plan)
    out = []
    for k in range(repeats):
        ts = (NOW - timedelta(minutes=30, seconds=-k)).isoformat()
        ents = (["hot"] if with_hot else []) + users[k % 40: k % 40 + (15 if with_hot else 16)]
        reqs = [_parsed(state, [{**base, "user_id": e, "event_ts": ts}]) for e in ents]
        t = time.perf_counter()
        res = process_batch(state, reqs)
        out.append(time.perf_counter() - t)
        assert all(r.status == 200 for r in res), res[0].detail
    return np.array(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--hot-events", type=int, default=30_000)
    args = ap.parse_args()
    world = build_world(n_users=80, days=30)
    with tempfile.TemporaryDirectory() as tmp:
        for label, cap in (("cap 1000 (default)", 1000), ("no cap (before)", None)):
            state = _state(world, Path(tmp) / f"{cap}.sqlite", cap)
            _fill(world, state, args.hot_events)
            stored = state.store.count_events("hot")
            _measure(world, state, 10, True)  # warm-up
            freeze_startup_heap()  # as the server's start-up does
            normal = _measure(world, state, args.repeats, False)
            hot = _measure(world, state, args.repeats, True)
            print(f"{label}: hot entity holds {stored} events; 16-request micro-batch "
                  f"p50/p99 ms: normal {np.percentile(normal, 50):.2f}/"
                  f"{np.percentile(normal, 99):.2f}, with the hot entity "
                  f"{np.percentile(hot, 50):.2f}/{np.percentile(hot, 99):.2f}; "
                  f"p99 ratio hot/normal {np.percentile(hot, 99) / np.percentile(normal, 99):.2f}x "
                  f"(target <= 2x)")
            state.store.close()


if __name__ == "__main__":
    main()
