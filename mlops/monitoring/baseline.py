"""The model's own baseline: what "worse" means for this model, on its out-of-sample rows.

A performance limit is relative to the model, never an absolute number borrowed from
another data set: by default it is calibrated on the model's baseline rows (its scores and
labels on the validation and test windows, stored with the version): the metric per chunk
of the monitoring chunk size, and the limit ``baseline -/+ max(k * std, min_change *
|baseline|)`` (:func:`mlops.monitoring.calibration.band_limit`). A declared limit is either
relative (``max_change: "20%"``: 20% of the baseline) or absolute (``max_change: 0.05``, in
the metric's units).

When the baseline holds fewer than ``min_chunks`` chunks of the monitoring chunk size, it
is cut into ``min_chunks`` chunks by rows (smaller chunks vary more: a wider, conservative
band; the note says so). A version registered before baselines were stored has none: its
recorded test metric is the baseline and the band is ``min_change`` of it, with a note.

>>> parse_change("20%"), parse_change(0.05), parse_change(None)
(('relative', 0.2), ('absolute', 0.05), None)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from mlops.errors import ConfigError
from mlops.monitoring.calibration import ChunkLayout, Limit, band_limit, fixed_limit
from mlops.monitoring.performance import METRICS, metric_value, performance_by_chunk

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_change(value: object) -> tuple[str, float] | None:
    """``max_change`` as ``(kind, amount)``: "20%" relative, a number absolute, None calibrated."""
    if value is None:
        return None
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if not m:
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"must be a share like '20%', a number in the metric's units or "
                                  f"null (calibrated); got {value!r}",
                                  key="monitoring.performance.max_change", fix="e.g. max_change: '20%'") from None
        else:
            return "relative", float(m.group(1)) / 100.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"must be '20%', a number >= 0 or null; got {value!r}",
                          key="monitoring.performance.max_change", fix="e.g. max_change: '20%'")
    return "absolute", float(value)


@dataclass(frozen=True)
class PerformanceBaseline:
    """The baseline value of the monitored metric and the limit each chunk is judged by."""

    metric: str
    value: float | None
    limit: Limit | None
    source: str                # "baseline rows" | "recorded test metric"
    rows: int = 0
    note: str | None = None

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "source": self.source, "rows": self.rows,
                "limit": None if self.limit is None else self.limit.to_dict(),
                "limit_text": None if self.limit is None else self.limit.describe(), "note": self.note}


def performance_baseline(rows: pl.DataFrame | None, *, metric: str, chunk: str | int,
                         max_change: object, min_change: float, k: float, min_chunks: int,
                         time_col: str, label_col: str, score_col: str,
                         recorded: float | None) -> PerformanceBaseline:
    """The metric's baseline and limit from the baseline ``rows`` (time, label, score), or
    from the ``recorded`` test metric when the version has no baseline rows."""
    higher = METRICS[metric][0]
    change = parse_change(max_change)
    labelled = None if rows is None else rows.filter(pl.col(label_col).is_not_null()
                                                      & pl.col(score_col).is_not_null())
    if labelled is None or labelled.height == 0:
        if recorded is None:
            return PerformanceBaseline(metric, None, None, "none", note="no baseline: the version "
                                       "has neither baseline rows nor a recorded test metric")
        width = _declared_width(change, recorded) if change else abs(recorded) * min_change
        note = ("the version has no baseline rows (registered before they were stored): the band is "
                f"{'max_change' if change else f'min_change ({min_change:g})'} of the recorded test metric")
        return PerformanceBaseline(metric, recorded, _band(metric, recorded, width, higher, change),
                                   "recorded test metric", note=note)
    y = labelled.get_column(label_col).to_numpy()
    score = labelled.get_column(score_col).to_numpy()
    try:
        value = metric_value(metric, y.astype(np.float64), score.astype(np.float64))
    except ValueError:  # e.g. AUC on one class
        value = math.nan
    if not math.isfinite(value):
        return PerformanceBaseline(metric, None, None, "baseline rows", rows=labelled.height,
                                   note=f"{metric} is undefined on the baseline rows")
    if change:
        return PerformanceBaseline(metric, value, _band(metric, value, _declared_width(change, value),
                                                        higher, change), "baseline rows", rows=labelled.height)
    values, layout = _chunk_metrics(labelled, metric=metric, chunk=chunk, min_chunks=min_chunks,
                                    time_col=time_col, label_col=label_col, score_col=score_col)
    limit = None if layout is None else band_limit(values, k=k, baseline=value, min_change=min_change,
                                                   higher_is_better=higher, statistic=metric, layout=layout)
    if limit is None:
        limit = _band(metric, value, abs(value) * min_change, higher, None)
        return PerformanceBaseline(metric, value, limit, "baseline rows", rows=labelled.height,
                                   note=f"too few baseline chunks with a defined {metric}: the band is "
                                        f"min_change ({min_change:g}) of the baseline")
    return PerformanceBaseline(metric, value, limit, "baseline rows", rows=labelled.height)


def _declared_width(change: tuple[str, float], baseline: float) -> float:
    kind, amount = change
    return amount * abs(baseline) if kind == "relative" else amount


def _band(metric: str, baseline: float, width: float, higher: bool, change) -> Limit:
    limit = fixed_limit(metric, baseline - width if higher else baseline + width,
                        "below" if higher else "above")
    note = None if change is None else f"declared max_change ({change[1]:g}, {change[0]})"
    return Limit(**{**limit.__dict__, "note": note})


def _chunk_metrics(rows: pl.DataFrame, *, metric: str, chunk: str | int, min_chunks: int,
                   time_col: str, label_col: str, score_col: str) -> tuple[list[float], ChunkLayout | None]:
    """The metric on each chunk of the baseline: monitoring's own chunks when there are at
    least ``min_chunks`` of them, else ``min_chunks`` chunks by rows (noted)."""
    def by(c) -> list[float]:
        parts = performance_by_chunk(rows, time_col=time_col, label_col=label_col, score_col=score_col,
                                     chunk=c, metric=metric, baseline=0.0, max_drop=0.0,
                                     higher_is_better=True)
        # a trailing remainder (the baseline's last few days) is no chunk of this size: its
        # noisier metric would widen the band for nothing
        full = float(np.median([p["rows"] for p in parts])) if parts else 0.0
        return [p["value"] for p in parts if p["value"] is not None and p["rows"] >= full / 2]

    values = by(chunk)
    size = max(rows.height // max(len(values), 1), 1)
    note = None
    if len(values) < min_chunks:
        size = -(-rows.height // min_chunks)   # ceil: min_chunks chunks, no small remainder
        if size < 2:
            return [], None
        note = (f"the baseline holds {len(values)} chunk(s) of {chunk} with a defined {metric}; "
                f"calibrated on {min_chunks} chunks of {size} rows (wider, conservative limits)")
        values = by(size)
    n = len(values)
    return values, ChunkLayout(starts=np.arange(n) * size, ends=np.arange(n) * size + size,
                               chunk_rows=size, window_rows=size, total_rows=rows.height, note=note)
