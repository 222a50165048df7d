"""Concept drift on the labelled rows: performance per chunk against the model's own baseline,
and streaming detectors (Page-Hinkley, DDM, ADWIN) on an error stream that fits the task.

Performance: each chunk's metric is judged against a limit relative to the model (see
:mod:`mlops.monitoring.baseline`): calibrated on the spread of the metric over chunks of the
model's baseline rows, or a declared ``max_change``.

Detectors watch, in time order, for a classifier the misclassifications at the model's own
decision threshold (0/1), for a regressor the absolute error divided by the model's
baseline mean absolute error (1.0 = as good as at training). Their parameters are in units
of the baseline: Page-Hinkley's ``delta`` and ``threshold`` and ADWIN's values are scaled by
the standard deviation of the same stream on the baseline rows, so one setting means the same
on error rates of 1% and on errors in thousands of dollars, and a stable window stays quiet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Union

import numpy as np
import polars as pl

from mlops.constraints import Check, Constrained
from mlops.errors import ConfigError
from mlops.monitoring import detectors as det
from mlops.monitoring.baseline import PerformanceBaseline, parse_change, performance_baseline
from mlops.monitoring.calibration import DEFAULT_MIN_CHUNKS, DEFAULT_STD_MULTIPLIER
from mlops.monitoring.detector_limits import calibrate_detector
from mlops.monitoring.performance import performance_by_chunk
from mlops.training.task import PREDICTION

LABELLED, IN_WINDOW = "__labelled", "__in_window"
DETECTORS = {"page_hinkley": det.PageHinkley, "ddm": det.DDM, "adwin": det.ADWIN}
STREAMS = ("errors", "missed_positives")
# Page-Hinkley's defaults in units of the baseline stream's standard deviation: a rise of the
# error by more than 0.1 sd accumulates; an alarm needs at least 5 sd of accumulated excess,
# raised to what the baseline stream reaches without a change (detector_limits). Only a rise
# counts: an error that falls is no reason to pause a model.
PAGE_HINKLEY_UNITS = {"delta": 0.1, "threshold": 5.0, "mode": "up"}


def _is_change(value: object) -> bool:
    try:
        parse_change(value)
    except ConfigError:
        return False
    return True


@dataclass
class PerformanceSettings(Constrained):
    """``monitoring.performance``: the metric per chunk and how far it may move from the
    model's baseline."""

    metric: Optional[str] = None          # null = roc_auc (classification) or rmse (regression)
    chunk: str = "7d"                     # "1d", "7d", or a row count like "5000"
    # a share or a number, which OmegaConf types as a union: read by baseline.parse_change
    max_change: Optional[Union[int, float, str]] = None  # null calibrated; "20%" relative; 0.05 absolute
    min_change: float = 0.05              # a calibrated band is at least this share of the baseline

    KEY: ClassVar[str] = "performance"
    CONSTRAINTS: ClassVar[dict] = {"max_change": [Check(_is_change, "a share like '20%', a "
                                                        "number >= 0 (metric units) or None")]}


@dataclass
class ConceptSettings(PerformanceSettings):
    """``monitoring.performance`` plus the detectors, the stream they watch and the
    model's decision threshold."""

    std_multiplier: float = DEFAULT_STD_MULTIPLIER
    min_chunks: int = DEFAULT_MIN_CHUNKS
    threshold: float = 0.5             # the model's decision threshold (from its version)
    detector_stream: str = "errors"
    detectors: dict[str, dict] = field(default_factory=dict)

    def metric_for(self, task: str) -> str:
        return str(self.metric or ("rmse" if task == "regression" else "roc_auc"))


@dataclass
class ConceptResult:
    """Realized performance per chunk and the first detection of each detector."""

    metric: str
    baseline: PerformanceBaseline
    chunks: list[dict]
    labelled_rows: int
    detections: dict
    burn_in_rows: int | None = None  # labelled rows before the window fed to the detectors
    stream: dict = field(default_factory=dict)  # what the detectors watched, in which units

    @property
    def drifted(self) -> bool:
        return any(c.get("flag") for c in self.chunks)


def error_stream(y: np.ndarray, p: np.ndarray, threshold: float, kind: str,
                 task: str = "classification", scale: float | None = None) -> np.ndarray:
    """The detectors' stream in time order. Classifier: 0/1 misclassification at
    ``threshold`` on every labelled row (``errors``) or on labelled positives only
    (``missed_positives``). Regressor: ``|y - p| / scale`` (``scale``: the baseline MAE).

    >>> error_stream(np.array([1.0, 3.0]), np.array([2.0, 3.5]), 0.5, "errors", "regression", 0.5).tolist()
    [2.0, 1.0]
    """
    if task == "regression":
        return np.abs(y - p) / (scale if scale and scale > 0 else 1.0)
    wrong = ((p >= threshold).astype(float) != y).astype(float)
    if kind == "errors":
        return wrong
    if kind == "missed_positives":
        return wrong[y == 1]
    raise ConfigError(f"must be one of {list(STREAMS)}; got {kind!r}", key="monitoring.detector_stream")


def _scaled_params(name: str, kwargs: dict, sd: float | None) -> dict:
    """Page-Hinkley's ``delta``/``threshold`` given in baseline standard deviations."""
    if name != "page_hinkley":
        return dict(kwargs)
    out = {**PAGE_HINKLEY_UNITS, **kwargs}
    unit = sd if sd is not None and sd > 0 else 1.0
    return {**out, "delta": float(out["delta"]) * unit, "threshold": float(out["threshold"]) * unit}


def run_detectors(stream: np.ndarray, times: list, params: dict, kind: str,
                  baseline: np.ndarray | None = None, window_from: int = 0) -> dict:
    """First detection per configured detector over the time-ordered stream.

    ``baseline`` is the same stream on the model's baseline rows: Page-Hinkley's parameters
    are scaled by its standard deviation, and Page-Hinkley's and DDM's alarm levels are
    raised to what the baseline reaches without any change (:mod:`.detector_limits`).
    DDM models a 0/1 error rate: on a real-valued stream (scaled errors) it is skipped.
    The stream's first ``window_from`` values are the burn-in before the monitored window:
    a detection there is about the previous window, so ``first_detection`` is the first one at
    or after it (earlier ones are counted in ``before_window``)."""
    out = {}
    sd = float(baseline.std()) if baseline is not None and baseline.size > 1 else None
    binary = bool(np.isin(stream, (0.0, 1.0)).all())
    for name, kwargs in params.items():
        if name not in DETECTORS:
            raise ConfigError(f"unknown detector {name!r}; valid: {sorted(DETECTORS)}",
                              key=f"monitoring.detectors.{name}", fix="remove or rename it")
        if name == "ddm" and not binary:
            out[name] = {"first_detection": None, "time": None, "stream": kind,
                         "n": int(len(stream)), "note": "DDM needs 0/1 errors; skipped"}
            continue
        scaled = _scaled_params(name, kwargs or {}, sd)
        try:
            DETECTORS[name](**scaled)  # parameter errors name the key before any calibration
            scaled, calibration = calibrate_detector(name, scaled, baseline, len(stream))
            d = DETECTORS[name](**scaled)
        except (TypeError, ConfigError) as exc:
            raise ConfigError(str(exc), key=f"monitoring.detectors.{name}") from None
        found = det.detections(d, stream.tolist())
        idx = next((i for i in found if i >= window_from), None)
        out[name] = {"first_detection": idx, "time": str(times[idx]) if idx is not None else None,
                     "stream": kind, "n": int(len(stream)), "parameters": scaled,
                     "calibration": calibration, "before_window": sum(1 for i in found if i < window_from)}
    return out


def concept_drift(stream: pl.DataFrame, settings: ConceptSettings, *, task: str,
                  baseline_rows: pl.DataFrame | None, recorded: float | None, timestamp: str,
                  label: str) -> ConceptResult:
    """Performance per chunk of the labelled in-window rows and the detectors' first alarms.

    ``stream`` holds ``prediction``, ``__labelled`` and ``__in_window``; the labelled rows
    before the window are the detectors' burn-in (the error level before a change).
    ``baseline_rows`` (time, label, score of the model's out-of-sample windows) calibrate the
    limits; ``recorded`` is the version's recorded test metric, the fallback baseline.
    """
    s = settings
    metric = s.metric_for(task)
    base = performance_baseline(
        baseline_rows, metric=metric, chunk=_chunk(s.chunk), max_change=s.max_change,
        min_change=s.min_change, k=s.std_multiplier, min_chunks=s.min_chunks, time_col=timestamp,
        label_col=label, score_col=PREDICTION, recorded=recorded)
    labelled = stream.filter(pl.col(IN_WINDOW) & pl.col(LABELLED))
    out = ConceptResult(metric=metric, baseline=base, chunks=[], detections={},
                        labelled_rows=labelled.height)
    if not labelled.height or base.limit is None:
        return out
    width = abs(base.limit.threshold - base.value)
    out.chunks = performance_by_chunk(
        labelled, time_col=timestamp, label_col=label, score_col=PREDICTION, chunk=_chunk(s.chunk),
        metric=metric, baseline=float(base.value), max_drop=width)
    ordered = stream.filter(pl.col(LABELLED)).sort(timestamp)
    out.burn_in_rows = int((~ordered[IN_WINDOW]).sum())
    kind = "absolute_errors_over_baseline_mae" if task == "regression" else s.detector_stream
    scale, base_stream = _baseline_stream(baseline_rows, task, s, label, kind)
    y = ordered[label].to_numpy().astype(float)
    errors = error_stream(y, ordered[PREDICTION].to_numpy(), float(s.threshold), kind, task, scale)
    times = ordered[timestamp].to_list()
    burn_in = out.burn_in_rows
    if kind == "missed_positives":  # the positives' times
        times = [t for t, v in zip(times, y) if v == 1]
        burn_in = int((y[:out.burn_in_rows] == 1).sum())
    out.detections = run_detectors(errors, times, s.detectors, kind, base_stream, window_from=burn_in)
    out.stream = {"kind": kind, "baseline_mae": scale,
                  "baseline_mean": None if base_stream is None else float(base_stream.mean()),
                  "baseline_sd": None if base_stream is None else float(base_stream.std()),
                  "threshold": None if task == "regression" else float(s.threshold)}
    return out


def _baseline_stream(rows: pl.DataFrame | None, task: str, s: ConceptSettings, label: str,
                     kind: str) -> tuple[float | None, np.ndarray | None]:
    """(scale, stream): the regressor's baseline MAE and the detectors' stream on the
    baseline rows in time order (None without baseline rows)."""
    if rows is None:
        return None, None
    rows = rows.filter(pl.col(label).is_not_null() & pl.col(PREDICTION).is_not_null())
    if rows.height < 2:
        return None, None
    y, p = rows[label].to_numpy().astype(float), rows[PREDICTION].to_numpy().astype(float)
    scale = float(np.mean(np.abs(y - p))) if task == "regression" else None
    return scale, error_stream(y, p, float(s.threshold), kind, task, scale)


def _chunk(chunk: str | int) -> str | int:
    return int(chunk) if str(chunk).isdigit() else str(chunk)
