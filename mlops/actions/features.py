"""``action=features``: the point-in-time feature table, its summary and report."""
from __future__ import annotations

import time

import numpy as np
import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import ConfigError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import sink_features
from mlops.features.tables import shard_file_name, table_metadata
from mlops.serving.batch import shard_expr

HIST_BINS = 20


def summarize(df: pl.LazyFrame, plan: FeaturePlan, rows: int) -> list[dict]:
    """Per-feature summary (nulls, moments, quantiles, a small histogram)."""
    out = []
    numeric = plan.numeric
    if numeric:
        stats = df.select(
            [pl.col(c).null_count().alias(f"{c}__nulls") for c in numeric]
            + [pl.col(c).filter(pl.col(c).is_finite()).mean().alias(f"{c}__mean") for c in numeric]
            + [pl.col(c).filter(pl.col(c).is_finite()).std().alias(f"{c}__std") for c in numeric]
            + [pl.col(c).filter(pl.col(c).is_finite()).min().alias(f"{c}__min") for c in numeric]
            + [pl.col(c).filter(pl.col(c).is_finite()).max().alias(f"{c}__max") for c in numeric]
            + [pl.col(c).filter(pl.col(c).is_finite()).median().alias(f"{c}__p50") for c in numeric]
            + [pl.col(c).filter(pl.col(c).is_finite()).quantile(0.01).alias(f"{c}__p01")
               for c in numeric]
            + [pl.col(c).filter(pl.col(c).is_finite()).quantile(0.99).alias(f"{c}__p99")
               for c in numeric]
        ).collect().row(0, named=True)
    for f in plan.features:
        entry = {"name": f.name, "kind": f.kind, "source": f.source}
        if f.kind == "numeric":
            g = {k: stats[f"{f.name}__{k}"] for k in ("nulls", "mean", "std", "min", "max", "p50",
                                                       "p01", "p99")}
            entry.update(g, null_share=g["nulls"] / rows if rows else None)
            entry["hist"] = _histogram(df, f.name, g["p01"], g["p99"])
        else:
            top = (df.group_by(f.name).agg(pl.len().alias("n")).sort(["n", f.name],
                   descending=[True, False]).collect())
            entry.update(nulls=0, null_share=0.0, distinct=top.height,
                         top=[{"value": v, "share": n / rows} for v, n in top.head(8).iter_rows()])
        out.append(entry)
    return out


def _histogram(df: pl.LazyFrame, col: str, lo, hi) -> dict | None:
    if lo is None or hi is None:
        return None
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, HIST_BINS + 1)
    idx = (((pl.col(col) - lo) / (hi - lo) * HIST_BINS).floor().clip(0, HIST_BINS - 1)
           .cast(pl.Int32))
    counts = (df.filter(pl.col(col).is_finite()).select(idx.alias("b")).group_by("b")
              .agg(pl.len()).collect())
    full = np.zeros(HIST_BINS, dtype=int)
    for b, n in counts.iter_rows():
        full[b] = n
    return {"edges": [float(e) for e in edges], "counts": full.tolist(),
            "note": "p1..p99 range; tails clipped into the outer bins"}


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    shard, num_shards = shard_options(ctx)
    events = ctx.scan_events()
    plan = ctx.plan(dict(events.collect_schema()))
    label = plan.label["column"]
    schema = events.collect_schema()
    keep = [c for c in (ctx.event_id, label, plan.label.get("available_at"), _audited(ctx))
            if c and c in schema]
    if shard is not None:  # the entity hash batch scoring shards by: windows stay exact
        events = events.filter(shard_expr(plan.entity, num_shards) == shard)
    path = ctx.output_dir / shard_file_name(shard, num_shards)
    sink_features(plan, events, path, keep=keep, metadata=table_metadata(
        plan.spec_hash, plan.name, shard, num_shards if shard is not None else None))
    table = pl.scan_parquet(path)
    rows = table.select(pl.len()).collect().item()
    summary = summarize(table, plan, rows)
    label_rate = (table.select(pl.col(label).cast(pl.Float64).mean()).collect().item()
                  if label in keep else None)
    nulls = {f["name"]: f["nulls"] for f in summary}
    result = {
        "action": "features", "status": "ok",
        "headline": f"{rows:,} rows x {len(plan.features)} features from plan "
                    f"{plan.name} v{plan.version} ({plan.short_hash})",
        "rows": rows, "columns": table.collect_schema().names(),
        "plan": {"name": plan.name, "version": plan.version, "hash": plan.spec_hash,
                 "entity": plan.entity, "timestamp": plan.timestamp,
                 "windows": [w["name"] for w in plan.resolved["windows"]],
                 "derived": {d["name"]: d["expr"] for d in plan.resolved["derived"]}},
        "data": {"source": ctx.source_name(), "hash": ctx.data_hash(), **_data_info(ctx)},
        "label": {"column": label, "positive_rate": label_rate},
        "null_counts": nulls, "features": summary, "output": path.name,
        "shard": shard, "num_shards": num_shards if shard is not None else None,
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    write_report(ctx, "features", result, title=f"Features: {plan.name} v{plan.version}",
                 context=_display(result))
    return ActionResult(result=result, metrics={"rows": rows, "features": len(plan.features)})


def _audited(ctx: RunContext) -> str | None:
    """The fairness attribute training audits: kept so train can read this table."""
    t = ctx.cfg.get("training")
    return t.fairness.attribute if t is not None and t.get("fairness") is not None else None


def shard_options(ctx: RunContext) -> tuple[int | None, int]:
    """``features.shard`` / ``features.num_shards``, checked before any work."""
    f = ctx.cfg.features
    shard, n = f.get("shard"), f.get("num_shards", 1)
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"must be an int >= 1; got {n!r}", key="features.num_shards")
    if shard is None:
        if n > 1 and ctx.cfg.action == "features":
            raise ConfigError(f"num_shards={n} but no shard chosen", key="features.shard",
                              fix="pass features.shard=i (0 <= i < num_shards), or run "
                                  "sweep=sharded_features")
        return None, n
    if not isinstance(shard, int) or not 0 <= shard < n:
        raise ConfigError(f"must be an int in [0, num_shards={n}); got {shard!r}",
                          key="features.shard", fix="e.g. features.shard=0 features.num_shards=4")
    return shard, n


def _display(result: dict) -> dict:
    """Table rows with inline sparklines for the HTML report."""
    from markupsafe import Markup, escape

    from mlops.reports.svg import sparkline_hist
    rows = []
    for f in result["features"]:
        row = dict(f)
        if f.get("hist"):
            row["dist"] = sparkline_hist(f["hist"]["counts"])
        elif f.get("top"):
            row["dist"] = Markup(", ").join(
                escape(f"{t['value']} {t['share']:.0%}") for t in f["top"][:4])
        else:
            row["dist"] = "—"
        rows.append(row)
    derived = [{"name": k, "expr": v} for k, v in result["plan"]["derived"].items()]
    return {"feature_rows": rows, "derived_rows": derived,
            "cards": [{"label": "rows", "value": result["rows"]},
                      {"label": "features", "value": len(result["features"])},
                      {"label": "label positive rate", "value": result["label"]["positive_rate"],
                       "format": "pct"},
                      {"label": "build time", "value": result["duration_s"], "unit": "s"}]}


def _data_info(ctx: RunContext) -> dict:
    d = ctx.data_description()
    return {k: d[k] for k in ("scenario", "n_users", "days", "seed", "path") if k in d}
