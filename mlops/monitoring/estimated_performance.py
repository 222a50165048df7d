"""``performance.estimated`` of ``action=monitor``: CBPE per chunk, realized once labels arrive.

The calibration reference is **recomputed** at every monitor run, not stored: the
model's own window (``monitoring.estimation.reference``, bounds recorded in its lineage
at training) is rebuilt from the data with the model's plan (labels from the events or
``data.labels``, as training), scored by the model, and keeps the labels known by the end
of the split, exactly the rows it was tested on. That costs one feature pass over the data
and needs the labelled events still at hand. The statistics are
:mod:`mlops.monitoring.estimation`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.monitoring.concept import LABELLED
from mlops.monitoring.estimation import ASSUMPTION, METRICS, estimate_by_chunk, fit_calibration
from mlops.monitoring.settings import EstimationSettings
from mlops.registry import ModelVersion
from mlops.training.task import PREDICTION, model_scores

KEY = "monitoring.estimation"
_WINDOWS = {"train": (0, 1), "valid": (1, 2), "test": (2, 3)}


def _unsupported(reason: str) -> dict:
    return {"supported": False, "reason": reason, "chunks": []}


def reference_scores(table: pl.DataFrame, plan: FeaturePlan, model, mv: ModelVersion,
                     window: str) -> tuple:
    """(labels, scores, entities, info) of the model's ``window`` as evaluated at training
    (``table``: the data's labelled feature table, built with the model's plan)."""
    bounds = mv.split_bounds
    if not bounds:
        raise DataError(f"model {mv.name} v{mv.version} records no split bounds",
                        key=f"{KEY}.reference", fix="retrain the model (its lineage lacks tags.split)")
    lo, hi = (bounds[i] for i in _WINDOWS[window])
    cutoff = bounds[-1]  # labels known when the model was trained
    label, avail, ts = plan.label.column, plan.label.available_at, plan.timestamp
    known = pl.col(label).is_not_null()
    if avail and avail in table.columns:
        known = known & (pl.col(avail) <= cutoff)
    rows = table.filter((pl.col(ts) >= lo) & (pl.col(ts) < hi) & known)
    if rows.height == 0:
        raise DataError(f"the model's {window} window [{lo:%Y-%m-%d}, {hi:%Y-%m-%d}) has no "
                        "labelled rows in the data", key=f"{KEY}.reference",
                        fix="monitor with the data the model was trained on")
    scores = model_scores(model, rows.select(plan.feature_names))
    info = {"window": window, "start": lo.isoformat(), "end": hi.isoformat(),
            "source": "recomputed from the data at monitor time (model's lineage bounds)"}
    return rows[label].to_numpy(), scores, rows[plan.entity].to_numpy(), info


def estimated_performance(settings: EstimationSettings, plan: FeaturePlan, model,
                          mv: ModelVersion, current: pl.DataFrame, *,
                          table: Callable[[], pl.DataFrame], threshold: float,
                          performance_chunk: str, seed: int) -> dict:
    """The ``performance.estimated`` block of monitor.json (see monitoring/estimation.py);
    ``threshold`` is the model's own decision threshold (from its version)."""
    if not settings.enabled:
        return _unsupported("disabled (monitoring.estimation.enabled=false)")
    if mv.task != "classification" or not hasattr(model, "predict_proba"):
        return _unsupported(
            "no estimate is made for regression models: CBPE needs a classifier's calibrated "
            "probabilities and no regression estimator (e.g. NannyML's DLE) is implemented; "
            "performance shows realized values once labels arrive")
    y, scores, entities, ref_info = reference_scores(table(), plan, model, mv, settings.reference)
    if not np.isin(np.unique(y.astype(float)), (0.0, 1.0)).all():
        return _unsupported("CBPE is implemented for binary classifiers (0/1 labels); this "
                            "model's labels have other values")
    chunk = settings.chunk or performance_chunk
    label = plan.label.column
    try:  # bootstrap by entity: one card's labels are correlated (bursts)
        calibration = fit_calibration(y, scores, method=settings.calibration, groups=entities)
        chunks = estimate_by_chunk(
            current, time_col=plan.timestamp, score_col=PREDICTION,
            label_col=label if label in current.columns else None,
            labelled_col=LABELLED if LABELLED in current.columns else None,
            chunk=int(chunk) if chunk.isdigit() else chunk, threshold=float(threshold),
            calibration=calibration, min_labelled_share=settings.min_labelled_share, seed=seed)
    except ConfigError as exc:
        raise exc.under(KEY) from None
    return {"supported": True, "method": "CBPE (confidence-based performance estimation)",
            "metrics": list(METRICS), "threshold": float(threshold), "chunk": chunk,
            "min_labelled_share": settings.min_labelled_share,
            "calibration": {**calibration.as_dict(), "reference": ref_info},
            "chunks": chunks, "chunks_outside_band": [c["start"] for c in chunks
                                                      if c["outside_band"]],
            "assumption": ASSUMPTION}
