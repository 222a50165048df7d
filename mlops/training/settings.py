"""``conf/training/*.yaml`` and ``conf/model/*.yaml``: what one training run needs; these
settings are the config schema.

Hydra builds them from the YAML (structured config), and the training engine reads them
as they are (:func:`mlops.training.pipeline.train_model`, :func:`mlops.training.run.train`).

Example:
    >>> s = TrainingSettings(train_days=30, objective=ObjectiveSettings(metric="pr_auc"))
    >>> s.objective.metric, s.start_time() is None
    ('pr_auc', True)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Optional

from mlops.constraints import Check, Constrained, Interval
from mlops.errors import ConfigError
from mlops.features.compile import FeaturePlan
from mlops.training.decision import DecisionRule
from mlops.training.task import infer_task

_DAYS = [Interval(float, 0, None, closed="neither")]


def _is_iso(value: str) -> bool:
    datetime.fromisoformat(value)
    return True


@dataclass
class ModelSettings:
    """``conf/model/*.yaml``: an estimator (allowlisted ``_target_``) + preprocessing."""

    name: str = "model"                   # registry model name (set it in your project.yaml)
    _target_: str = "???"
    params: dict[str, Any] = field(default_factory=dict)
    scale_numeric: bool = True
    max_categories: int = 30

    def build(self, plan: FeaturePlan, *, trusted: list[str]) -> tuple[Any, str]:
        """(unfitted pipeline, task): the estimator ``_target_`` names (``trusted``: dotted
        classes allowed besides the built-in list) behind the plan's preprocessing; the task
        comes from the estimator and must agree with the label's declared one."""
        # here, not at the top: the config schema imports this class, and most actions
        # never build a model (scikit-learn costs a second of start-up)
        from mlops.training.estimator import build_estimator, build_pipeline
        est = build_estimator(self._target_, self.params, trusted=trusted)
        task = infer_task(est, declared=plan.label.task)
        pipe = build_pipeline(est, numeric=plan.numeric, categorical=plan.categorical,
                              scale_numeric=self.scale_numeric, max_categories=self.max_categories)
        return pipe, task


@dataclass
class ObjectiveSettings:
    """What Hydra sweepers optimise (``training.objective``)."""

    metric: Optional[str] = None          # null = roc_auc (classification) or rmse (regression)
    split: str = "valid"                  # what sweepers optimise: never the test window


@dataclass
class FairnessSettings:
    """The fairness audit of the test window's decisions (``training.fairness``)."""

    attribute: Optional[str] = None   # sensitive attribute column (not a feature); null = no audit
    min_group_rows: int = 30


@dataclass
class ReferenceSettings:
    """The monitoring reference stored with the model (``training.reference``)."""

    n_bins: int = 10
    max_rows: int = 200_000


@dataclass
class TrainingSettings(Constrained):
    """``conf/training/*.yaml``: time-based split, decision rule, fairness, registration."""

    start: Optional[str] = None           # first day of the train window; null = first event + warm-up
    warmup_days: Optional[float] = None   # skip rows whose windows are not full yet; null = longest window
    train_days: float = 40.0
    valid_days: float = 10.0
    test_days: float = 10.0
    decision: DecisionRule = field(default_factory=DecisionRule)
    threshold: Optional[float] = None     # removed: training.decision (a ConfigError says so)
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)
    fairness: FairnessSettings = field(default_factory=FairnessSettings)
    reference: ReferenceSettings = field(default_factory=ReferenceSettings)
    register: bool = True
    description: str = ""
    compare_with: Optional[str] = None    # alias scored on the same test window (champion)
    features_path: Optional[str] = None   # a built feature table (parquet glob): skip computing it

    CONSTRAINTS: ClassVar[dict] = {
        "start": [Check(_is_iso, "an ISO date or datetime (e.g. 2024-03-01)"), None],
        "warmup_days": [Interval(float, 0, None), None],
        "train_days": _DAYS, "valid_days": _DAYS, "test_days": _DAYS,
        "fairness.min_group_rows": [Interval(int, 1, None)],
        "reference.n_bins": [Interval(int, 2, None)], "reference.max_rows": [Interval(int, 1, None)]}

    def check(self) -> None:
        """The removed ``threshold`` names its replacement; then the declared constraints."""
        if self.threshold is not None:
            raise ConfigError("was replaced by training.decision (the threshold is part of the "
                              "model's decision policy, recorded with the version)",
                              key="training.threshold",
                              fix=f"write training.decision: {{rule: fixed, value: {self.threshold}}} "
                                  "(or rule: positive_rate | precision | recall with a target)")
        super().check()

    def start_time(self) -> datetime | None:
        """``start`` as a datetime (None: first event + warm-up)."""
        return datetime.fromisoformat(self.start) if self.start else None

    def recent_window(self, end: datetime, days: float, *, compare_with: str,
                      description: str) -> "TrainingSettings":
        """Continuous training: these settings on the last ``days`` before ``end``, split
        70/15/15 into train/valid/test by time (so the candidate is still evaluated on later
        data than it saw), with no warm-up (the window starts well after the data does) and
        the champion ``compare_with`` scored on the same test days."""
        return replace(self, warmup_days=0.0, compare_with=compare_with,
                       start=(end - timedelta(days=days)).isoformat(), train_days=days * 0.7,
                       valid_days=days * 0.15, test_days=days * 0.15, description=description)

    def audit_attribute(self, task: str) -> str | None:
        """The fairness attribute to audit: regression models get no fairness audit."""
        return self.fairness.attribute if task == "classification" else None
