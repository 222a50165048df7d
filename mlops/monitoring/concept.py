"""Concept drift on the labelled rows: performance per chunk against the training baseline,
and streaming detectors (Page-Hinkley, DDM, ADWIN) on the time-ordered error stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mlops.errors import ConfigError
from mlops.monitoring import detectors as det
from mlops.monitoring.performance import performance_by_chunk

PREDICTION = "prediction"
LABELLED, IN_WINDOW = "__labelled", "__in_window"
DETECTORS = {"page_hinkley": det.PageHinkley, "ddm": det.DDM, "adwin": det.ADWIN}


@dataclass(frozen=True)
class ConceptSettings:
    """``monitoring.performance`` plus the detectors and the stream they watch."""

    metric: str | None = None          # None: roc_auc (classification) or rmse (regression)
    chunk: str | int = "7d"
    max_drop: float | None = None      # None: a default in the metric's own scale
    threshold: float = 0.5
    detector_stream: str = "errors"
    detectors: dict[str, dict] = field(default_factory=dict)

    def metric_for(self, task: str) -> str:
        return str(self.metric or ("rmse" if task == "regression" else "roc_auc"))


@dataclass
class ConceptResult:
    """Realized performance per chunk and the first detection of each detector."""

    metric: str
    baseline: float | None
    max_drop: float
    chunks: list[dict]
    labelled_rows: int
    detections: dict
    burn_in_rows: int | None = None  # labelled rows before the window fed to the detectors

    @property
    def drifted(self) -> bool:
        return any(c.get("flag") for c in self.chunks)


def max_drop_for(configured: float | None, metric: str, baseline: float) -> float:
    """The configured tolerance, or a default in the metric's own scale."""
    if configured is not None:
        return float(configured)
    return 0.1 * abs(baseline) if metric in ("rmse", "mae") else 0.05


def error_stream(y: np.ndarray, p: np.ndarray, threshold: float, kind: str,
                 task: str = "classification") -> np.ndarray:
    """0/1 errors in time order: on every labelled row, or only on labelled positives.
    For a regressor: the absolute error of every labelled row.

    With rare positives a concept change that makes new positives look
    ordinary barely moves the overall error rate but jumps the miss rate, so
    ``missed_positives`` sees it within a few dozen labels.
    """
    if task == "regression":
        return np.abs(y - p)
    wrong = ((p >= threshold).astype(float) != y).astype(float)
    if kind == "errors":
        return wrong
    if kind == "missed_positives":
        return wrong[y == 1]
    raise ConfigError(f"must be 'errors' or 'missed_positives'; got {kind!r}",
                      key="monitoring.detector_stream")


def run_detectors(stream: np.ndarray, times: list, params: dict, kind: str) -> dict:
    """First detection per configured detector over the time-ordered error stream.
    DDM models a 0/1 error rate: on a real-valued stream (absolute errors) it is skipped."""
    out = {}
    binary = bool(np.isin(stream, (0.0, 1.0)).all())
    for name, kwargs in params.items():
        if name not in DETECTORS:
            raise ConfigError(f"unknown detector {name!r}; valid: {sorted(DETECTORS)}",
                              key=f"monitoring.detectors.{name}", fix="remove or rename it")
        if name == "ddm" and kind == "absolute_errors" and not binary:
            out[name] = {"first_detection": None, "time": None, "stream": kind,
                         "n": int(len(stream)), "note": "DDM needs 0/1 errors; skipped"}
            continue
        try:
            d = DETECTORS[name](**(kwargs or {}))
        except (TypeError, ConfigError) as exc:
            raise ConfigError(str(exc), key=f"monitoring.detectors.{name}") from None
        idx = det.first_detection(d, stream.tolist())
        out[name] = {"first_detection": idx, "time": str(times[idx]) if idx is not None else None,
                     "stream": kind, "n": int(len(stream))}
    return out


def concept_drift(stream: pl.DataFrame, settings: ConceptSettings, *, task: str,
                  baseline: float | None, timestamp: str, label: str) -> ConceptResult:
    """Performance per chunk of the labelled in-window rows and the detectors' first alarms.

    ``stream`` holds ``prediction``, ``__labelled`` and ``__in_window``; the labelled rows
    before the window are the detectors' burn-in (the error level before a change).
    Nothing is computed without labelled rows or without a training ``baseline``.
    """
    s = settings
    metric = s.metric_for(task)
    labelled = stream.filter(pl.col(IN_WINDOW) & pl.col(LABELLED))
    out = ConceptResult(metric=metric, baseline=baseline, chunks=[], detections={},
                        labelled_rows=labelled.height,
                        max_drop=max_drop_for(s.max_drop, metric, float(baseline or 0.0)))
    if not labelled.height or baseline is None:
        return out
    chunk = int(s.chunk) if str(s.chunk).isdigit() else str(s.chunk)
    out.chunks = performance_by_chunk(
        labelled, time_col=timestamp, label_col=label, score_col=PREDICTION, chunk=chunk,
        metric=metric, baseline=float(baseline), max_drop=out.max_drop)
    ordered = stream.filter(pl.col(LABELLED)).sort(timestamp)
    out.burn_in_rows = int((~ordered[IN_WINDOW]).sum())
    y = ordered[label].to_numpy().astype(float)
    kind = "absolute_errors" if task == "regression" else s.detector_stream
    errors = error_stream(y, ordered[PREDICTION].to_numpy(), float(s.threshold), kind, task)
    times = ordered[timestamp].to_list()
    if kind not in ("errors", "absolute_errors"):  # missed positives: the positives' times
        times = [t for t, v in zip(times, y) if v == 1]
    out.detections = run_detectors(errors, times, s.detectors, kind)
    return out
