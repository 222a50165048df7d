"""``action=score``: batch-score the events (or ``serving.input``) with the model under
``serving.alias`` and its own plan, optionally one shard of them (``serving.shard``)."""
from __future__ import annotations

from contextlib import closing
from datetime import timedelta

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, facts, write_report
from mlops.data.files import scan_files
from mlops.serving import score_events
from mlops.serving.batch import score_summary

FACTS = ("output", "rows", "entities_published", "seconds", "shard", "num_shards", "plan_hash",
         "mean_p", "flag_rate", "mean_prediction")


def run(ctx: RunContext) -> ActionResult:
    """Score, publish the latest per entity to the online store, summarise."""
    sc = ctx.cfg.serving
    model, info, _, plan = ctx.deployment().load(str(sc.alias), alias=str(sc.alias))
    shard, n = sc.shard, int(sc.num_shards)
    name = "predictions.parquet" if shard is None else f"predictions-{int(shard):05d}-of-{n:05d}.parquet"
    out = ctx.output_dir / name
    events = scan_files(str(sc.input), key="serving.input") if sc.input else ctx.scan_events()
    if sc.until_day is not None:  # e.g. the stable period only
        first = events.select(pl.col(plan.timestamp).min()).collect().item()
        events = events.filter(pl.col(plan.timestamp) < first + timedelta(days=float(sc.until_day)))
    keep = [c for c in (ctx.event_id,) if c and c in events.collect_schema()]
    # bounded entity partitions: memory follows the partition size, not the input size
    rows = events.select(pl.len()).collect().item()
    parts = max(2, -(-rows // (n * int(sc.rows_per_partition))))
    with closing(ctx.store()) as store:
        rep = score_events(plan, model, info, events, out, keep=keep,
                           shard=None if shard is None else int(shard),
                           num_shards=None if shard is None else n, store=store, parts=parts)
    decision = info.extra["decision"]
    stats = score_summary(out, decision["task"])
    said = (f"mean prediction {stats['mean_prediction']:.4g}" if decision["task"] == "regression"
            else f"{stats['flag_rate'] or 0:.2%} flagged at threshold {decision['threshold']:.4g}")
    result = {"status": "ok", "headline": f"scored {rep.rows:,} events with {info.name} "
              f"v{info.version}; {said}", **rep.as_dict(),
              "model": info.as_dict(), "decision": decision, "plan_hash": plan.spec_hash,
              **stats, "output": name}
    write_report(ctx, "score", result, title=f"Batch scoring: {info.name} v{info.version}",
                 context={"facts": {**facts(result, FACTS),
                                    "decision threshold": decision["threshold"],
                                    "threshold from": decision["note"] or decision["source"]},
                          "cards": [{"label": "rows", "value": rep.rows},
                                    {"label": "flagged", "value": stats.get("flag_rate"),
                                     "format": "pct"},
                                    {"label": "entities published", "value": rep.entities_published},
                                    {"label": "seconds", "value": rep.seconds}]})
    return ActionResult(result=result, metrics={"rows": rep.rows})
