"""A feature table's summary: per-feature nulls, moments, quantiles and a small histogram.

Used by the features report (``action=features`` and ``action=features_merge``).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from mlops.features.compile import FeaturePlan

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


def describe_plan(plan: FeaturePlan) -> dict:
    """The plan's identity and shape as recorded in a features report."""
    return {"name": plan.name, "version": plan.version, "hash": plan.spec_hash,
            "entity": plan.entity, "timestamp": plan.timestamp,
            "windows": [w["name"] for w in plan.resolved["windows"]],
            "derived": {d["name"]: d["expr"] for d in plan.resolved["derived"]}}


def table_summary(table: pl.LazyFrame, plan: FeaturePlan) -> dict:
    """The body of features.json for a written feature table: ``rows``, ``columns``, the
    plan, the label's positive rate (None without the label), null counts per feature and
    the per-feature summary."""
    rows = table.select(pl.len()).collect().item()
    summary = summarize(table, plan, rows)
    label, columns = plan.label.column, table.collect_schema().names()
    rate = (table.select(pl.col(label).cast(pl.Float64).mean()).collect().item()
            if label in columns else None)
    return {"rows": rows, "columns": columns, "plan": describe_plan(plan),
            "label": {"column": label, "positive_rate": rate},
            "null_counts": {f["name"]: f["nulls"] for f in summary}, "features": summary}
