"""``action=features_merge``: the shards of a sharded ``action=features`` run -> one table.

Refuses (exit 2) unless every shard ``0..features.num_shards-1`` is there exactly
once, all from the configured plan, with no entity in two shards. Writes
``features.parquet`` (with the plan hash in its metadata, so ``action=train
training.features_path=...`` can check it) and the same report as ``action=features``.
"""
from __future__ import annotations

import time

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.feature_shards import shard_options
from mlops.actions.features_view import display
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import ConfigError
from mlops.features.summary import describe_plan, summarize
from mlops.features.tables import check_disjoint, check_shards, merge_shards

KEY = "features.merge_input"


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    _, num_shards = shard_options(ctx)
    pattern = ctx.cfg.features.merge_input
    if not pattern:
        raise ConfigError("features_merge needs the shard files", key=KEY,
                          fix="pass features.merge_input='<sweep dir>/*/features-*-of-*.parquet' "
                              "features.num_shards=<n>")
    plan = ctx.plan()
    shards = check_shards(str(pattern), num_shards, plan.spec_hash, key=KEY)
    check_disjoint(shards, plan.entity, key=KEY)
    path = ctx.output_dir / "features.parquet"
    rows = merge_shards(shards, path)
    table = pl.scan_parquet(path)
    summary = summarize(table, plan, rows)
    label = plan.label["column"]
    columns = table.collect_schema().names()
    rate = table.select(pl.col(label).cast(pl.Float64).mean()).collect().item() \
        if label in columns else None
    result = {
        "action": "features_merge", "status": "ok",
        "headline": f"{num_shards} shards merged: {rows:,} rows x {len(plan.features)} features "
                    f"from plan {plan.name} v{plan.version} ({plan.short_hash})",
        "rows": rows, "columns": columns, "shards": num_shards, "files": shards.files,
        "plan": describe_plan(plan),
        "data": {"source": f"{num_shards} shard files", "hash": None},
        "label": {"column": label, "positive_rate": rate},
        "null_counts": {f["name"]: f["nulls"] for f in summary}, "features": summary,
        "output": path.name, "duration_s": round(time.perf_counter() - t0, 3),
    }
    write_report(ctx, "features_merge", result, template="features.html",
                 title=f"Features: {plan.name} v{plan.version}, {num_shards} shards merged",
                 context=display(result))
    return ActionResult(result=result, metrics={"rows": rows, "shards": num_shards})
