"""``action=features``: the point-in-time feature table, its summary and report."""
from __future__ import annotations

import time

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.feature_shards import shard_options
from mlops.actions.features_view import display
from mlops.actions.outputs import ActionResult, write_report
from mlops.features.offline import sink_features
from mlops.features.summary import describe_plan, summarize
from mlops.features.tables import shard_file_name, table_metadata
from mlops.serving.batch import shard_expr
from mlops.training.table import labelled_table


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    shard, num_shards = shard_options(ctx)
    events = ctx.scan_events()
    plan = ctx.plan(dict(events.collect_schema()))
    label = plan.label["column"]
    path = ctx.output_dir / shard_file_name(shard, num_shards)
    metadata = table_metadata(plan.spec_hash, plan.name, shard,
                              num_shards if shard is not None else None)
    labels = ctx.scan_labels()
    if shard is not None:  # the entity hash batch scoring shards by: windows stay exact
        events = events.filter(shard_expr(plan.entity, num_shards) == shard)
        if labels is not None and labels[1] == "entity":
            labels = (labels[0].filter(shard_expr(plan.entity, num_shards) == shard), labels[1])
    if labels is not None:  # the table train builds: the label join or the label spine
        _write_labelled(ctx, plan, events, labels, path, metadata)
    else:
        schema = events.collect_schema()
        keep = [c for c in (ctx.event_id, label, plan.label.get("available_at"), _audited(ctx))
                if c and c in schema]
        sink_features(plan, events, path, keep=keep, metadata=metadata)
    table = pl.scan_parquet(path)
    rows = table.select(pl.len()).collect().item()
    summary = summarize(table, plan, rows)
    label_rate = (table.select(pl.col(label).cast(pl.Float64).mean()).collect().item()
                  if label in table.collect_schema() else None)
    nulls = {f["name"]: f["nulls"] for f in summary}
    result = {
        "action": "features", "status": "ok",
        "headline": f"{rows:,} rows x {len(plan.features)} features from plan "
                    f"{plan.name} v{plan.version} ({plan.short_hash})",
        "rows": rows, "columns": table.collect_schema().names(),
        "plan": describe_plan(plan),
        "data": {"source": ctx.source_name(), "hash": ctx.data_hash(), **_data_info(ctx)},
        "label": {"column": label, "positive_rate": label_rate},
        "null_counts": nulls, "features": summary, "output": path.name,
        "shard": shard, "num_shards": num_shards if shard is not None else None,
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    write_report(ctx, "features", result, title=f"Features: {plan.name} v{plan.version}",
                 context=display(result))
    return ActionResult(result=result, metrics={"rows": rows, "features": len(plan.features)})


def _write_labelled(ctx: RunContext, plan, events: pl.LazyFrame, labels, path, metadata) -> None:
    """The labelled table exactly as ``action=train`` builds it (one row per label of a
    spine by entity, or the events joined with their labels by event id), as parquet."""
    audited = _audited(ctx)
    extra = [audited] if audited and audited in events.collect_schema() else []
    table = labelled_table(plan, events, labels=labels, event_id=ctx.event_id,
                           dedupe=bool(ctx.cfg.data.dedupe), extra=extra).frame
    table.lazy().sink_parquet(path, metadata=metadata)


def _audited(ctx: RunContext) -> str | None:
    """The fairness attribute training audits: kept so train can read this table."""
    t = ctx.cfg.training
    return t.fairness.attribute if t is not None and t.fairness is not None else None


def _data_info(ctx: RunContext) -> dict:
    d = ctx.data_description()
    return {k: d[k] for k in ("scenario", "n_users", "days", "seed", "path") if k in d}
