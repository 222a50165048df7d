"""The monitoring pipeline behind ``action=monitor``, on typed inputs.

:func:`run_monitor` takes the model's fitted reference, the current rows (already scored,
with ``__labelled`` / ``__in_window`` flags), a :class:`MonitorSettings` and the model's
facts, and returns a :class:`MonitorResult`: data drift of the inputs, prediction drift of
the score, the multivariate test, performance per chunk and the streaming detectors.
``MonitorResult.to_json()`` is the ``monitor.json`` contract. What to *do* about drift
(alerts, tripping the breaker, retraining) needs the run's home and registry, so the action
layer does it and records it in ``MonitorResult.actions``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from mlops.errors import ConfigError
from mlops.monitoring.concept import IN_WINDOW, PREDICTION, ConceptResult, ConceptSettings, concept_drift
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.multivariate import MultivariateSettings, multivariate_check
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.reference import Reference
from mlops.monitoring.verdict import drift_headline, drift_reasons, progress_for, run_status
from mlops.registry import ModelVersion


@dataclass(frozen=True)
class MonitorSettings:
    """Everything ``monitoring.*`` decides for one monitor run."""

    policy: DriftPolicy
    on_drift: tuple[str, ...] = ("alert",)
    prediction_drift_acts: bool = True   # the score's drift past its limit is data drift too
    multivariate: MultivariateSettings = field(default_factory=MultivariateSettings)
    concept: ConceptSettings = field(default_factory=ConceptSettings)


@dataclass(frozen=True)
class ModelFacts:
    """The monitored model version: its name, version, alias, task and training metrics."""

    name: str
    version: int
    alias: str
    task: str = "classification"
    metrics: dict = field(default_factory=dict)

    @classmethod
    def of(cls, version: ModelVersion, alias: str) -> ModelFacts:
        """The facts of a registered ``version`` monitored under ``alias``."""
        return cls(name=version.name, version=version.version, alias=alias, task=version.task,
                   metrics=dict(version.metrics or {}))


@dataclass
class MonitorResult:
    """What one monitor run found; :meth:`to_json` is ``monitor.json``."""

    model: ModelFacts
    current: dict
    reference: dict                  # which reference: kind, path or period, rows
    drift: dict                      # detect_drift's dict plus ``multivariate``
    prediction_drift: dict | None
    concept: ConceptResult
    multivariate_acts: bool
    prediction_drift_acts: bool = True
    estimated: dict | None = None    # performance before labels (set by the caller)
    actions: list[dict] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def prediction_drifted(self) -> bool:
        return bool(self.prediction_drift_acts and self.prediction_drift
                    and self.prediction_drift.get("drift"))

    def _data_reasons(self) -> list[str]:
        reasons = drift_reasons(self.drift, self.multivariate_acts)
        if self.prediction_drifted:
            p = self.prediction_drift
            reasons.append(f"prediction drift ({p['test']} {p['score']:.3g} > {p['threshold']:.3g})")
        return reasons

    @property
    def data_drift(self) -> bool:
        return bool(self._data_reasons())

    @property
    def found(self) -> bool:
        return self.data_drift or self.concept.drifted

    def reasons(self) -> list[str]:
        """Why the run acts: data drift reasons, then a performance drop."""
        return self._data_reasons() + (["performance drop"] if self.concept.drifted else [])

    @property
    def status(self) -> str:
        return run_status(self.found, self.drift)

    @property
    def headline(self) -> str:
        return (drift_headline(self.drift)
                + ("; the model's prediction drifted" if self.prediction_drifted else "")
                + ("; performance dropped (concept drift)" if self.concept.drifted else "")
                + (f"; actions: {', '.join(a['action'] for a in self.actions)}"
                   if self.actions else ""))

    def to_json(self) -> dict:
        """The ``monitor.json`` dict (key order as written since the first release)."""
        c, m = self.concept, self.model
        return {
            "status": self.status, "headline": self.headline,
            "model": {"name": m.name, "version": m.version, "alias": m.alias},
            "current": self.current, "reference": self.reference,
            **self.drift, "prediction_drift": self.prediction_drift, "task": m.task,
            "performance": {"metric": c.metric, "baseline": c.baseline.value,
                            "limit": None if c.baseline.limit is None else c.baseline.limit.threshold,
                            "max_drop": (None if c.baseline.limit is None
                                         else abs(c.baseline.limit.threshold - c.baseline.value)),
                            "baseline_info": c.baseline.to_dict(), "chunks": c.chunks,
                            "concept_drift": c.drifted, "labelled_rows": c.labelled_rows,
                            "stream": c.stream, "estimated": self.estimated},
            "detectors": c.detections, "data_drift": self.data_drift, "actions": self.actions,
            "duration_s": self.duration_s,
        }


def split_reference(ref: Reference) -> tuple[Reference, Reference | None]:
    """Inputs only (data drift) and the model score alone (prediction drift)."""
    numeric = {k: v for k, v in ref.numeric.items() if k != PREDICTION}
    sample = {k: v for k, v in ref.sample.items() if k.split("\0")[0] != PREDICTION}
    rows = ref.rows
    inputs = Reference(numeric=numeric, categorical=dict(ref.categorical), n_bins=ref.n_bins,
                       max_rows=ref.max_rows, sample=sample,
                       rows=None if rows is None else rows.select([*numeric, *ref.categorical]))
    pred = (Reference(numeric={PREDICTION: ref.numeric[PREDICTION]}, categorical={},
                      n_bins=ref.n_bins, max_rows=ref.max_rows,
                      rows=None if rows is None else rows.select([PREDICTION]))
            if PREDICTION in ref.numeric else None)
    return inputs, pred


def run_monitor(reference: Reference, stream: pl.DataFrame, settings: MonitorSettings, *,
                model: ModelFacts, timestamp: str, label: str, current_info: dict,
                reference_path: str | None = None, reference_info: dict | None = None) -> MonitorResult:
    """Data drift, prediction drift, multivariate drift and concept drift of one window.

    ``stream`` holds the window's rows (``__in_window``) and, before them, the labelled
    burn-in rows of the detectors; ``reference`` is the model's (inputs + ``prediction``).
    """
    inputs_ref, pred_ref = split_reference(reference)
    cur = stream.filter(pl.col(IN_WINDOW))
    judged_pred = pred_ref is not None and PREDICTION in cur.columns
    # the score's drift acts beside the inputs': one family, judged together
    family = len(inputs_ref.features) + int(judged_pred and settings.prediction_drift_acts)
    drift = detect_drift(inputs_ref, cur, settings.policy, family_size=family,
                         progress=progress_for(cur.height, len(inputs_ref.features)))
    pred_drift = (detect_drift(pred_ref, cur, settings.policy, family_size=family)["features"][PREDICTION]
                  if judged_pred else None)
    drift["multivariate"] = multivariate_check(
        settings.multivariate, inputs_ref.sample_frame(), cur, list(inputs_ref.numeric),
        list(inputs_ref.categorical), min_rows=settings.policy.min_rows_dataset)
    baseline_rows = (None if reference.baseline is None else reference.baseline.frame(
        time_col=timestamp, label_col=label, score_col=PREDICTION))
    concept = concept_drift(stream, settings.concept, task=model.task, baseline_rows=baseline_rows,
                            recorded=model.metrics.get(settings.concept.metric_for(model.task)),
                            timestamp=timestamp, label=label)
    current = dict(current_info)
    if concept.burn_in_rows is not None:
        current["detector_burn_in_rows"] = concept.burn_in_rows
    return MonitorResult(model=model, current=current,
                         reference=reference_info or {"path": reference_path},
                         drift=drift, prediction_drift=pred_drift, concept=concept,
                         multivariate_acts=settings.multivariate.act,
                         prediction_drift_acts=settings.prediction_drift_acts)


def window_bounds(first: datetime, last: datetime, start_day: float | None,
                  days: float) -> tuple[datetime, datetime]:
    """``[lo, hi)`` of the monitored window: the last ``days`` of the data, or ``days``
    from ``start_day`` days after the first event."""
    if days <= 0:
        raise ConfigError(f"must be > 0; got {days}", key="monitoring.window.days")
    if start_day is None:
        return last - timedelta(days=days), last + timedelta(microseconds=1)
    lo = first + timedelta(days=float(start_day))
    return lo, lo + timedelta(days=days)
