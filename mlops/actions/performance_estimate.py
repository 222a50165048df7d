"""``performance.estimated`` of ``action=monitor``: CBPE per chunk, realized once labels arrive.

The calibration reference is **recomputed** at every monitor run, not stored: the
model's own test window (``monitoring.estimation.reference``; bounds recorded in its
lineage at training) is rebuilt from the data with the model's plan (labels from the
events or ``data.labels``, as training), scored by the model, and keeps the labels known
by the end of the split, exactly the rows it was tested on. That costs one feature pass
over the data and needs the labelled events still at hand.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from mlops.actions.context import RunContext
from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.monitoring.estimation import ASSUMPTION, METRICS, estimate_by_chunk, fit_calibration
from mlops.training.table import feature_table
from mlops.training.task import model_scores

PREDICTION = "prediction"
_WINDOWS = {"train": (0, 1), "valid": (1, 2), "test": (2, 3)}


def _unsupported(reason: str) -> dict:
    return {"supported": False, "reason": reason, "chunks": []}


def reference_scores(ctx: RunContext, plan: FeaturePlan, model, mv, window: str) -> tuple:
    """(labels, scores, entities, info) of the model's ``window`` as evaluated at training."""
    bounds = ((mv.tags or {}).get("split") or {}).get("bounds")
    if not bounds:
        raise DataError(f"model {mv.name} v{mv.version} records no split bounds",
                        key="monitoring.estimation.reference",
                        fix="retrain the model (its lineage lacks tags.split)")
    if window not in _WINDOWS:
        raise ConfigError(f"must be train, valid or test; got {window!r}",
                          key="monitoring.estimation.reference", fix="use test (the default)")
    lo, hi = (datetime.fromisoformat(bounds[i]) for i in _WINDOWS[window])
    cutoff = datetime.fromisoformat(bounds[-1])  # labels known when the model was trained
    label, avail, ts = plan.label["column"], plan.label.get("available_at"), plan.timestamp
    table = feature_table(plan, ctx.scan_events(), labels=ctx.scan_labels(), event_id=ctx.event_id,
                          dedupe=ctx.cfg.data.dedupe)  # labels from the events or data.labels
    known = pl.col(label).is_not_null()
    if avail and avail in table.columns:
        known = known & (pl.col(avail) <= cutoff)
    rows = table.filter((pl.col(ts) >= lo) & (pl.col(ts) < hi) & known)
    if rows.height == 0:
        raise DataError(f"the model's {window} window [{lo:%Y-%m-%d}, {hi:%Y-%m-%d}) has no "
                        "labelled rows in the data", key="monitoring.estimation.reference",
                        fix="monitor with the data the model was trained on")
    scores = model_scores(model, rows.select(plan.feature_names))
    info = {"window": window, "start": lo.isoformat(), "end": hi.isoformat(),
            "source": "recomputed from the data at monitor time (model's lineage bounds)"}
    return rows[label].to_numpy(), scores, rows[plan.entity].to_numpy(), info


def estimated_performance(ctx: RunContext, plan: FeaturePlan, model, mv,
                          current: pl.DataFrame, *, threshold: float) -> dict:
    """The ``performance.estimated`` block for monitor.json (see monitoring/estimation.py);
    ``threshold`` is the model's own decision threshold (from its version)."""
    mc = ctx.cfg.monitoring
    ec = mc.estimation
    if not bool(ec.enabled):
        return {"supported": False, "reason": "disabled (monitoring.estimation.enabled=false)",
                "chunks": []}
    task = str((mv.tags or {}).get("task") or "classification")
    if task != "classification" or not hasattr(model, "predict_proba"):
        return _unsupported(
            "no estimate is made for regression models: CBPE needs a classifier's calibrated "
            "probabilities and no regression estimator (e.g. NannyML's DLE) is implemented; "
            "performance shows realized values once labels arrive")
    y, scores, entities, ref_info = reference_scores(ctx, plan, model, mv, str(ec.reference))
    if not np.isin(np.unique(y.astype(float)), (0.0, 1.0)).all():
        return _unsupported("CBPE is implemented for binary classifiers (0/1 labels); this "
                            "model's labels have other values")
    try:  # bootstrap by entity: one card's labels are correlated (bursts)
        calibration = fit_calibration(y, scores, method=str(ec.calibration), groups=entities)
    except ConfigError as exc:
        raise exc.under("monitoring.estimation") from None
    chunk = str(ec.chunk) if ec.chunk else str(mc.performance.chunk)
    chunk_arg = int(chunk) if chunk.isdigit() else chunk
    threshold = float(threshold)
    try:
        chunks = estimate_by_chunk(
            current, time_col=plan.timestamp, score_col=PREDICTION,
            label_col=plan.label["column"] if plan.label["column"] in current.columns else None,
            labelled_col="__labelled" if "__labelled" in current.columns else None,
            chunk=chunk_arg, threshold=threshold, calibration=calibration,
            min_labelled_share=float(ec.min_labelled_share), seed=int(ctx.cfg.seed))
    except ConfigError as exc:
        raise exc.under("monitoring.estimation") from None
    missed = [c["start"] for c in chunks if c["outside_band"]]
    return {"supported": True, "method": "CBPE (confidence-based performance estimation)",
            "metrics": list(METRICS), "threshold": threshold, "chunk": chunk,
            "min_labelled_share": float(ec.min_labelled_share),
            "calibration": {**calibration.as_dict(), "reference": ref_info},
            "chunks": chunks, "chunks_outside_band": missed, "assumption": ASSUMPTION}


def estimation_display(block: dict) -> dict:
    """Display-only values for monitor.html: estimated vs realized per chunk, with the band."""
    from mlops.reports import svg
    if not block.get("supported") or not block.get("chunks"):
        return {"estimation_charts": {}, "estimation_rows": []}
    charts, rows = {}, []
    for metric in METRICS:
        series = {
            "estimated": [(c["start"], c["estimated"][metric]) for c in block["chunks"]],
            "realized": [(c["start"], (c["realized"] or {}).get(metric)) for c in block["chunks"]],
            "band low": [(c["start"], (c["band"][metric] or [None])[0]) for c in block["chunks"]],
            "band high": [(c["start"], (c["band"][metric] or [None, None])[1])
                          for c in block["chunks"]]}
        charts[metric] = svg.line_chart(series, xlabel="time (chunk start)", ylabel=metric,
                                        x_is_time=True, title=f"{metric}: estimated vs realized",
                                        width=520, height=240)
    for c in block["chunks"]:
        row = {"start": c["start"], "rows": c["rows"], "labelled": c["labelled_share"],
               "shown": c["shown"], "outside band": ", ".join(c["outside_band"]) or None}
        for metric in METRICS:
            row[f"{metric} est."] = c["estimated"][metric]
            row[f"{metric} real."] = (c["realized"] or {}).get(metric)
        rows.append(row)
    return {"estimation_charts": charts, "estimation_rows": rows}
