"""``action=serve | score | score_merge | materialize | parity``: serving from the registry.

The served model comes from ``serving.alias`` and carries its plan: features are
computed with the spec recorded with that version (``features=`` is for training; a
different one given explicitly is a SkewError naming both hashes).
"""
from __future__ import annotations

import glob
import time
from datetime import timedelta

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.serving_support import (
    load_served,
    open_serving_state,
    served_model_or_plan,
    served_plan,
    settings,
)
from mlops.errors import DataError
from mlops.features.online import materialize, open_store
from mlops.features.online.materialize import materialize_as_of
from mlops.serving import replay_parity, score_events
from mlops.serving import serve as serve_app
from mlops.serving.batch import score_summary
from mlops.serving.shards import merge_shards


def serve(ctx: RunContext) -> ActionResult:
    """``action=serve``: the HTTP app for the model under ``serving.alias``."""
    state = open_serving_state(ctx)
    s = state.settings
    print(f"serving {state.info.name} v{state.info.version} ({s.mode}) on "
          f"http://{s.host}:{s.port}  (docs: /docs, metrics: /metrics)")
    serve_app(state)
    return ActionResult(result={"status": "ok", "headline": "server stopped"})


def _events_input(ctx: RunContext) -> pl.LazyFrame:
    src = ctx.cfg.serving.input
    if src:
        from mlops.data.files import scan_files
        return scan_files(str(src), key="serving.input")
    return ctx.scan_events()


def score(ctx: RunContext) -> ActionResult:
    """``action=score``: batch-score the events (or ``serving.input``), optionally one shard."""
    s, sc = settings(ctx), ctx.cfg.serving  # config errors first, before any model is loaded
    model, info, mv, plan = load_served(ctx)
    shard, n = sc.shard, int(sc.num_shards)
    name = "predictions.parquet" if shard is None else f"predictions-{int(shard):05d}-of-{n:05d}.parquet"
    out = ctx.output_dir / name
    events = _events_input(ctx)
    if sc.until_day is not None:  # e.g. the stable period only
        ts = plan.timestamp
        first = events.select(pl.col(ts).min()).collect().item()
        events = events.filter(pl.col(ts) < first + timedelta(days=float(sc.until_day)))
    keep = [c for c in (ctx.event_id,) if c and c in events.collect_schema()]
    store = open_store(s.store.type, path=s.store.path, url=s.store.url,
                       namespace=s.store.namespace, timeout_ms=s.store.timeout_ms)
    # bounded entity partitions: memory follows the partition size, not the input size
    rows = events.select(pl.len()).collect().item()
    parts = max(2, -(-rows // (n * int(sc.rows_per_partition))))
    rep = score_events(plan, model, info, events, out, keep=keep,
                       shard=None if shard is None else int(shard),
                       num_shards=None if shard is None else n, store=store, parts=parts)
    store.close()
    decision = info.extra["decision"]
    stats = score_summary(out, decision["task"])
    said = (f"mean prediction {stats['mean_prediction']:.4g}" if decision["task"] == "regression"
            else f"{stats['flag_rate'] or 0:.2%} flagged at threshold {decision['threshold']:.4g}")
    result = {"status": "ok", "headline": f"scored {rep.rows:,} events with {info.name} "
              f"v{info.version}; {said}", **rep.as_dict(),
              "model": info.as_dict(), "decision": decision, "plan_hash": plan.spec_hash,
              **stats, "output": name}
    write_report(ctx, "score", result, title=f"Batch scoring: {info.name} v{info.version}",
                 context={"facts": {**_facts(result, ("output", "rows", "entities_published",
                                                     "seconds", "shard", "num_shards", "plan_hash",
                                                     "mean_p", "flag_rate", "mean_prediction")),
                                    "decision threshold": decision["threshold"],
                                    "threshold from": decision["note"] or decision["source"]},
                          "cards": [{"label": "rows", "value": rep.rows},
                                    {"label": "flagged", "value": stats.get("flag_rate"),
                                     "format": "pct"},
                                    {"label": "entities published", "value": rep.entities_published},
                                    {"label": "seconds", "value": rep.seconds}]})
    return ActionResult(result=result, metrics={"rows": rep.rows})


def score_merge(ctx: RunContext) -> ActionResult:
    """``action=score_merge``: verify every shard of a sharded score run is present, complete and disjoint."""
    sc = ctx.cfg.serving
    src = sc.input
    if not src:
        raise DataError("score_merge needs the shard files", key="serving.input",
                        fix="pass serving.input='<sweep dir>/*/predictions-*.parquet'")
    n = int(sc.num_shards)
    out = ctx.output_dir / "predictions.parquet"
    rep = merge_shards(sorted(glob.glob(str(src))), n, entity=served_plan(ctx)[0].entity,
                       event_id=ctx.event_id, out=out)
    counts, files = {"rows": rep.rows, "entities": rep.entities}, rep.files
    result = {"status": "ok", "headline": f"{n} shards, {counts['rows']:,} rows, "
              f"{counts['entities']:,} entities, no duplicates", "shards": n, "files": files,
              "rows": counts["rows"], "entities": counts["entities"], "output": out.name}
    write_report(ctx, "score", result, title="Sharded scoring: merged",
                 context={"facts": _facts(result, ("output", "shards", "rows", "entities"))})
    return ActionResult(result=result, report="score.html")


def materialize_store(ctx: RunContext) -> ActionResult:
    """``action=materialize``: what the server of ``serving.mode`` reads, as of
    ``serving.as_of``: window features (hybrid) or the events of the longest window (realtime)."""
    plan, plan_from = served_plan(ctx)
    s = settings(ctx)
    store = open_store(s.store.type, path=s.store.path, url=s.store.url,
                       namespace=s.store.namespace, timeout_ms=s.store.timeout_ms)
    t0 = time.perf_counter()
    rep = materialize(plan, ctx.scan_events(), store, event_id=ctx.event_id, mode=s.mode,
                      as_of=materialize_as_of(ctx.cfg.serving.as_of))
    what = f"{rep.events:,} events of {rep.entities:,} entities" if rep.mode == "realtime" \
        else f"{rep.entities:,} entities"
    result = {"status": "ok", "headline": f"materialized {what} as of "
              f"{rep.as_of:%Y-%m-%d %H:%M} into {s.store.type} ({rep.mode})", **rep.as_dict(),
              "store": {"type": s.store.type, "path": s.store.path if s.store.type == "sqlite"
                        else s.store.url}, "plan_hash": plan.spec_hash, "plan_from": plan_from,
              "seconds": round(time.perf_counter() - t0, 3)}
    write_report(ctx, "materialize", result, title="Materialize the online store",
                 context={"facts": {**_facts(result, ("mode", "entities", "events", "as_of", "compute_seconds",
                                                      "write_seconds", "plan_hash",
                                                      "plan_from")),
                                    **result["store"]}})
    return ActionResult(result=result)


def parity(ctx: RunContext) -> ActionResult:
    """``action=parity``: replay events through the request pipeline of every backend of
    the plan (the served model when one is registered) and compare with batch scoring."""
    model, info, plan, plan_from = served_model_or_plan(ctx)
    events = ctx.scan_events().collect()
    rep = replay_parity(plan, events, model=model, info=info,
                        n_events=int(ctx.cfg.serving.parity_events), seed=int(ctx.cfg.seed),
                        batch_size=4, source_schema=dict(events.schema))
    result = {"status": "ok" if rep.ok else "fail", "headline": rep.headline(), **rep.as_dict(),
              "plan": {"name": plan.name, "hash": plan.spec_hash, "from": plan_from}}
    write_report(ctx, "parity", result, title="Parity: the request pipeline vs batch scoring")
    return ActionResult(result=result, exit_code=0 if rep.ok else 1)


def _facts(result: dict, keys) -> dict:
    return {k.replace("_", " "): result.get(k) for k in keys}
