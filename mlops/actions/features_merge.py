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
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import ConfigError
from mlops.features.summary import table_summary
from mlops.features.tables import check_disjoint, check_shards, merge_shards
from mlops.reports.views.features import features_display

KEY = "features.merge_input"


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    spec = ctx.cfg.features
    _, num_shards = spec.sharding()
    if not spec.merge_input:
        raise ConfigError("features_merge needs the shard files", key=KEY,
                          fix="pass features.merge_input='<sweep dir>/*/features-*-of-*.parquet' "
                              "features.num_shards=<n>")
    plan = ctx.plan()
    shards = check_shards(spec.merge_input, num_shards, plan.spec_hash, key=KEY)
    check_disjoint(shards, plan.entity, key=KEY)
    path = ctx.output_dir / "features.parquet"
    rows = merge_shards(shards, path)
    body = table_summary(pl.scan_parquet(path), plan)
    result = {
        "action": "features_merge", "status": "ok",
        "headline": f"{num_shards} shards merged: {rows:,} rows x {len(plan.features)} features "
                    f"from plan {plan.name} v{plan.version} ({plan.short_hash})",
        **body, "shards": num_shards, "files": shards.files,
        "data": {"source": f"{num_shards} shard files", "hash": None},
        "output": path.name, "duration_s": round(time.perf_counter() - t0, 3)}
    write_report(ctx, "features_merge", result, template="features.html",
                 title=f"Features: {plan.name} v{plan.version}, {num_shards} shards merged",
                 context=features_display(result))
    return ActionResult(result=result, metrics={"rows": rows, "shards": num_shards})
