"""Online store against Feast, on the same feature rows in the same run (not run in CI).

    python benchmarks/bench_store.py [--entities 100000]      # or bench_serving.py --only store

Ours: SQLite online store; the bulk load (``write_features``) and the online read of one
entity and of 100 per call through the whole hybrid path (store read, decode, request and
derived features) by the backend a hybrid server takes for that many records
(``hybrid_rows`` up to ``SMALL_HYBRID_BATCH``, else ``hybrid_features``; the frames
backend's one-entity time is printed too). Feast (local provider, SQLite online store; its own
virtualenv, ``measure.peer_python("feast")``, run by ``feast_peer.py``): ``materialize`` and
``get_online_features``. In process on both sides, imports excluded; the window features
Feast returns for 50 entities must equal ours.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # this checkout's mlops
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from bench_serving import SPEC  # noqa: E402

# the feature rows' time on both sides, and how long they stay fresh (feast_peer.py's
# FeatureView ttl): every read is of a fresh row, as Feast's are
AS_OF = datetime(2024, 1, 1, tzinfo=timezone.utc)
TTL_SECONDS = 3650 * 86400
# passes over the keys 100 at a time, on both sides: 50 calls of about a millisecond were
# one 50 ms burst, whose p50 moved with the load of that moment
HUNDRED_PASSES = 10


def _hybrid_call(plan, store, template: pl.DataFrame, keys: list[str], backend: str):
    """A zero-argument call of the hybrid path for ``keys`` (giving its HybridResult), as a
    hybrid server runs it on a micro-batch of those records: the rows backend on the
    request's columns (as the request pipeline holds a batch), or the frames backend on
    the points frame."""
    from mlops.features.backends import frame_columns
    from mlops.features.online import hybrid_features, hybrid_rows
    ent, now_us = plan.entity, int(time.time() * 1e6)
    points = template.head(1).select(pl.exclude(ent)).join(pl.DataFrame({ent: keys}), how="cross")
    if backend == "frames":
        return lambda: hybrid_features(plan, store, points, now_us=now_us, ttl_seconds=TTL_SECONDS, status=True)
    cols = frame_columns(plan, points)  # what the request pipeline holds
    return lambda: hybrid_rows(plan, store, cols, now_us=now_us, ttl_seconds=TTL_SECONDS, status=True)


def _hybrid_latency(plan, store, template: pl.DataFrame, keys: list[str], batch: int,
                    backend: str | None = None, passes: int = 1) -> tuple[list, pl.DataFrame, str]:
    """Seconds per hybrid read (store read, decode, request and derived features) over
    ``keys`` in batches of ``batch``, by the backend a hybrid server takes for that batch
    (rows up to ``SMALL_HYBRID_BATCH`` records) unless ``backend`` says; the features of
    the first 50 keys; the backend. ``passes`` times over the keys."""
    from mlops.serving.pipeline.features import SMALL_HYBRID_BATCH
    if backend is None:
        backend = "rows" if batch <= SMALL_HYBRID_BATCH and "rows" in plan.backends else "frames"
    calls = [_hybrid_call(plan, store, template, keys[i:i + batch], backend)
             for i in range(0, len(keys) - batch + 1, batch)]
    calls[0]()  # warm-up
    lat = []
    for call in calls * passes:
        t = time.perf_counter()
        call()
        lat.append(time.perf_counter() - t)
    first = _hybrid_call(plan, store, template, keys[:50], backend)()
    assert not any(first.stale), "the benchmark reads fresh rows (a stale one takes the warning path)"
    feats = first.features
    return lat, feats if isinstance(feats, pl.DataFrame) else pl.DataFrame(feats), backend


def bench_store(n_entities: int, json_path: str | None = None) -> dict:
    """Our SQLite online store against Feast's (local provider, SQLite) on the same feature
    rows: the bulk load, and a one-entity / 100-entity online read (ours: the whole hybrid
    path, store read + decode + request and derived features; Feast: get_online_features).
    In process on both sides, imports excluded; Feast runs in its own virtualenv."""
    from measure import Row, emit, load_average, peer_python, run_process

    from mlops.data.synthetic import SyntheticParams, generate
    from mlops.features.compile import compile_plan
    from mlops.features.online import SQLiteStore, encode_rows, materialize
    events = generate(SyntheticParams(n_users=int(n_entities * 1.15), days=8, seed=5,
                                      tx_per_user_day=0.5))
    plan = compile_plan(SPEC, events.schema)
    names = [w.name for w in plan.windows]
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"e": [f"e{i:07d}" for i in range(n_entities)],
                          **{n: rng.random(n_entities) for n in names}})
    keys = frame["e"].sample(min(5000, n_entities), seed=1).to_list()
    load = [load_average()]
    with tempfile.TemporaryDirectory() as tmp:
        rep = materialize(plan, events, SQLiteStore(os.path.join(tmp, "online.sqlite")))
        t = time.perf_counter()
        store = SQLiteStore(os.path.join(tmp, "bulk.sqlite"))
        store.write_features(frame["e"].to_list(), int(AS_OF.timestamp() * 1e6), encode_rows(frame, names))
        write = time.perf_counter() - t
        one, first, one_by = _hybrid_latency(plan, store, events, keys, 1)
        hundred, _, hundred_by = _hybrid_latency(plan, store, events, keys, 100, passes=HUNDRED_PASSES)
        framed, framed_first, _ = _hybrid_latency(plan, store, events, keys[:2000], 1, "frames")
        for n in names:  # the rows backend reads what the frames backend reads
            assert first[n].to_list() == framed_first[n].to_list(), n
        load.append(load_average())
        feast = None
        py = peer_python("feast")
        if py:
            frame.with_columns(pl.lit(AS_OF).alias("event_timestamp")) \
                .write_parquet(os.path.join(tmp, "features.parquet"))
            Path(tmp, "keys.json").write_text(json.dumps(keys))
            run_process([py, str(ROOT / "benchmarks" / "feast_peer.py"), os.path.join(tmp, "features.parquet"),
                         os.path.join(tmp, "keys.json"), os.path.join(tmp, "feast.json"),
                         str(HUNDRED_PASSES)]).check("feast")
            feast = json.loads(Path(tmp, "feast.json").read_text())
            load.append(load_average())
    p50, p99 = np.percentile(one, [50, 99]) * 1e3
    h50 = float(np.percentile(hundred, 50) * 1e3)
    print(f"Online store (SQLite): materialize {rep.entities:,} entities from events in "
          f"{rep.compute_seconds + rep.write_seconds:.2f} s; bulk write of {n_entities:,} feature rows "
          f"{write:.2f} s")
    f50 = float(np.percentile(framed, 50) * 1e3)
    print(f"  hybrid path (read, decode, request + derived features): one entity p50 {p50:.3f} ms, "
          f"p99 {p99:.3f} ms ({one_by} backend); 100 entities p50 {h50:.3f} ms ({hundred_by} backend); "
          f"one entity by the frames backend p50 {f50:.3f} ms")
    out = {"materialize_entities": rep.entities, "materialize_s": rep.compute_seconds + rep.write_seconds,
           "bulk_write_s": write, "hybrid_one_p50_ms": p50, "hybrid_one_p99_ms": p99, "hybrid_100_p50_ms": h50,
           "hybrid_one_frames_p50_ms": f50, "backends": {"one": one_by, "hundred": hundred_by}}
    if feast is None:
        return out
    for n in names:  # the same rows in, the same values out
        assert np.allclose(first[n].to_numpy(), feast["values"][n], rtol=0, atol=0), n
    version = f"Feast {feast['version']} (SQLite)"
    common = dict(values=f"{len(names)} window features of 50 entities", load=load)
    emit([Row(benchmark=f"online store: bulk load of {n_entities:,} entity rows", peer=version,
              ours_s=write, peer_s=feast["materialize_s"], timer="in process",
              note="ours write_features; Feast materialize (parquet offline store)", **common),
          Row(benchmark="online read, one entity, p50", peer=version, ours_s=p50 / 1e3,
              peer_s=feast["one_p50_ms"] / 1e3, timer="in process, imports excluded",
              note=f"ours: the hybrid path (read, decode, request + derived features; {one_by} "
                   "backend, as a hybrid server runs one record); Feast: get_online_features(...).to_dict()",
              **common),
          Row(benchmark="online read, 100 entities per call, p50", peer=version, ours_s=h50 / 1e3,
              peer_s=feast["hundred_p50_ms"] / 1e3, timer="in process, imports excluded",
              note=f"ours: the hybrid path, {hundred_by} backend", **common)],
         json_path)
    return {**out, "feast": {k: v for k, v in feast.items() if k not in ("values", "keys")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--json", default=None, help="append the peer rows here (JSON lines)")
    args = ap.parse_args()
    print(json.dumps(bench_store(args.entities, args.json), indent=1, default=float))


if __name__ == "__main__":
    main()
