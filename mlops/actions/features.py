"""``action=features``: the point-in-time feature table, its summary and report.

With a label table (``data.labels``) the table is the one ``action=train`` builds (the
label join or the label spine); ``features.shard`` builds one shard of ``num_shards``,
by the entity hash batch scoring shards by, so windows stay exact.
"""
from __future__ import annotations

import time

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import ConfigError
from mlops.features.offline import sink_features
from mlops.features.summary import table_summary
from mlops.features.tables import shard_file_name, table_metadata
from mlops.filesystem import atomic_path
from mlops.reports.views.features import features_display
from mlops.serving.batch import shard_expr


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    spec = ctx.cfg.features
    shard, num_shards = spec.sharding()
    if shard is None and num_shards > 1:
        raise ConfigError(f"num_shards={num_shards} but no shard chosen", key="features.shard",
                          fix="pass features.shard=i (0 <= i < num_shards), or run "
                              "sweep=sharded_features")
    events, labels = ctx.scan_events(), ctx.scan_labels()
    plan = ctx.plan(dict(events.collect_schema()))
    path = ctx.output_dir / shard_file_name(shard, num_shards)
    metadata = table_metadata(plan.spec_hash, plan.name, shard,
                              num_shards if shard is not None else None)
    if shard is not None:  # the entity hash batch scoring shards by: windows stay exact
        events = events.filter(shard_expr(plan.entity, num_shards) == shard)
        if labels is not None and labels[1] == "entity":
            labels = (labels[0].filter(shard_expr(plan.entity, num_shards) == shard), labels[1])
    audited = ctx.cfg.training.fairness.attribute if ctx.cfg.training else None
    schema = events.collect_schema()
    with atomic_path(path) as tmp:  # whole or not at all; a full disk names the path
        if labels is not None:  # the table train builds: the label join or the label spine
            table = ctx.labelled_table(plan, events=events, labels=labels,
                                       extra=[audited] if audited in schema else []).frame
            table.lazy().sink_parquet(tmp, metadata=metadata)
        else:  # keep what train reads: the event id, the label, the audited attribute
            keep = [c for c in (ctx.event_id, plan.label.column, plan.label.available_at,
                                audited) if c and c in schema]
            sink_features(plan, events, tmp, keep=keep, metadata=metadata)
    body = table_summary(pl.scan_parquet(path), plan)
    d = ctx.data_description()
    result = {
        "action": "features", "status": "ok",
        "headline": f"{body['rows']:,} rows x {len(plan.features)} features from plan "
                    f"{plan.name} v{plan.version} ({plan.short_hash})", **body,
        "data": {"source": ctx.source_name(), "hash": ctx.data_hash(),
                 **{k: d[k] for k in ("scenario", "n_users", "days", "seed", "path") if k in d}},
        "output": path.name, "shard": shard, "num_shards": num_shards if shard is not None else None,
        "duration_s": round(time.perf_counter() - t0, 3)}
    write_report(ctx, "features", result, title=f"Features: {plan.name} v{plan.version}",
                 context=features_display(result))
    return ActionResult(result=result, metrics={"rows": body["rows"], "features": len(plan.features)})
