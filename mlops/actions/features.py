"""``action=features``: the point-in-time feature table, its summary and report."""
from __future__ import annotations

import time

import numpy as np
import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.features.compile import FeaturePlan
from mlops.features.offline import sink_features

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
    events = ctx.scan_events()
    plan = ctx.plan(dict(events.collect_schema()))
    label = plan.label["column"]
    schema = events.collect_schema()
    keep = [c for c in (ctx.event_id, label, plan.label.get("available_at")) if c and c in schema]
    path = ctx.output_dir / "features.parquet"
    sink_features(plan, events, path, keep=keep)
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
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    write_report(ctx, "features", result, title=f"Features: {plan.name} v{plan.version}",
                 context=_display(result))
    return ActionResult(result=result, metrics={"rows": rows, "features": len(plan.features)})


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
