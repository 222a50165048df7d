"""The training pipeline: time split -> fit -> evaluate -> fairness -> champion -> result.

Pure engine code: it takes typed settings, the FeaturePlan, the labelled table and an
unfitted estimator pipeline, never a config node or a run context. Registering the
model is :mod:`mlops.training.registration`; reading config is the action's job.

Example:
    >>> outcome = train_model(pipe, plan, table, TrainingSettings(), task="classification")  # doctest: +SKIP
    >>> outcome.evaluation["test"]["roc_auc"]  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from mlops.data.checks import feature_warnings, require_days
from mlops.errors import ConfigError
from mlops.features.compile import FeaturePlan
from mlops.training.champion import Champion, compare_with_champion
from mlops.training.decision import DecisionRule, achieved, choose_threshold
from mlops.training.metrics import HIGHER_IS_BETTER, evaluate, fairness_audit
from mlops.training.settings import TrainingSettings
from mlops.training.split import split_bounds, time_split
from mlops.training.task import label_target, score_frame

CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1",
                          "accuracy")
REGRESSION_METRICS = ("rmse", "mae", "r2")
SPLITS = ("train", "valid", "test")


@dataclass
class TrainOutcome:
    """A fitted model and everything measured about it (frames stay in memory)."""

    model: Any
    task: str
    label: str                             # the label column of ``parts``
    parts: dict[str, pl.DataFrame]
    split: dict
    scores: dict[str, np.ndarray]
    evaluation: dict
    fairness: dict
    objective: dict
    metrics: dict                          # flat test metrics (+ valid_*, lifts): registered
    warnings: list[str] = field(default_factory=list)
    champion: dict | None = None
    decision: dict = field(default_factory=dict)  # the policy's decision (mlops.registry.policy)

    @property
    def threshold(self) -> float | None:
        """The decision threshold chosen at training (None for a regressor)."""
        return self.decision.get("threshold")


def check_objective(settings: TrainingSettings, task: str) -> tuple[str, str]:
    """(metric, split) the sweeper optimises; checked before any work, so a typo fails
    in milliseconds, not after training."""
    valid = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    metric, split = settings.objective.metric or valid[0], settings.objective.split
    if metric not in valid:
        raise ConfigError(f"unknown {task} metric {metric!r}; valid: {list(valid)}",
                          key="training.objective.metric", fix="pick one of the valid metrics")
    if split not in SPLITS:
        raise ConfigError(f"must be train, valid or test; got {split!r}",
                          key="training.objective.split")
    return metric, split


def check_fairness_gates(policies: dict, attribute: str | None, task: str) -> None:
    """A fairness gate (``registry.policies``) needs a fairness audit, so an attribute."""
    if attribute:
        return
    for alias, gates in (policies or {}).items():
        for i, gate in enumerate(gates or []):
            if isinstance(gate, dict) and "fairness" in gate:
                why = ("regression models get no fairness audit" if task == "regression"
                       else "training.fairness.attribute is null")
                raise ConfigError(f"a {gate['fairness']} gate needs a fairness audit, but {why}",
                                  key=f"registry.policies.{alias}[{i}]",
                                  fix="set training.fairness.attribute: <column> or drop this gate "
                                      "from the policy")


def window_bounds(plan: FeaturePlan, table: pl.DataFrame, settings: TrainingSettings) -> list[datetime]:
    """[start, train_end, valid_end, test_end], checked against the data's time span."""
    s, ts = settings, plan.timestamp
    first, last = table[ts].min(), table[ts].max()
    start = s.start_time()
    if start is not None:
        warmup = 0.0
        needed = (start - first).total_seconds() / 86400
    else:  # skip the warm-up: early rows see windows that are not full yet
        warmup = plan.max_period_seconds / 86400 if s.warmup_days is None else float(s.warmup_days)
        start, needed = first + timedelta(days=warmup), warmup
    days = s.train_days + s.valid_days + s.test_days
    require_days(first, last, needed_days=needed + days,
                 parts=f"warm-up {warmup:g} + train {s.train_days:g} + valid "
                       f"{s.valid_days:g} + test {s.test_days:g}")
    return split_bounds(start, train_days=s.train_days, valid_days=s.valid_days,
                        test_days=s.test_days)


def leakage_warning(task: str, valid: dict) -> str | None:
    """A validation score this close to perfect usually means a feature leaks the label."""
    key = "r2" if task == "regression" else "roc_auc"
    value = valid.get(key)
    if value is not None and value > 0.999:
        return (f"validation {key} is {value:.4f} (> 0.999): a feature probably leaks the label; "
                "the production gate `leakage_suspected` refuses this model unless you drop it")
    return None


def decide(rule: DecisionRule, task: str, y: dict[str, np.ndarray], scores: dict[str, np.ndarray]
           ) -> dict:
    """The decision part of the version's policy: the threshold ``rule`` chooses on the
    validation window and what it achieves on validation and test (None for a regressor)."""
    if task == "regression":
        return {"rule": None, "value": None, "target": None, "threshold": None, "met": None,
                "note": "a regressor has no decision threshold", "achieved": {}}
    choice = choose_threshold(rule, y["valid"], scores["valid"])
    return {**{"value": None, "target": None}, **rule.as_dict(), "threshold": choice.threshold,
            "met": choice.met, "note": choice.note,
            "achieved": {name: achieved(y[name], scores[name], choice.threshold)
                         for name in ("valid", "test")}}


def _fairness(parts: dict, scores: dict, plan: FeaturePlan, attribute: str | None,
              settings: TrainingSettings, threshold: float | None) -> dict:
    """The fairness audit of the test window's decisions (empty without an attribute)."""
    if not attribute:
        return {}
    test = parts["test"]
    if attribute not in test.columns:
        raise ConfigError(f'"{attribute}" is not a column of the data',
                          key="training.fairness.attribute", fix="name a data column or null")
    decisions = (scores["test"] >= threshold).astype(int)
    return fairness_audit(test[plan.label.column].to_numpy(), decisions,
                          test[attribute].to_numpy(), attribute=attribute,
                          min_group_rows=settings.fairness.min_group_rows)


def _flat_metrics(evaluation: dict) -> dict:
    """Test metrics (finite numbers) and the validation window's ranking metrics as valid_*."""
    flat = {k: v for k, v in evaluation["test"].items()
            if isinstance(v, (int, float)) and v is not None and np.isfinite(v)}
    flat.update({f"valid_{k}": v for k, v in evaluation["valid"].items()
                 if k in HIGHER_IS_BETTER and v is not None})
    return flat


def train_model(pipe, plan: FeaturePlan, table: pl.DataFrame, settings: TrainingSettings, *,
                task: str, champion: Champion | None = None) -> TrainOutcome:
    """Split ``table`` by time, fit ``pipe`` on the train window, evaluate every window,
    audit fairness, flag leakage and compare with ``champion`` on the test window."""
    metric, split = check_objective(settings, task)
    settings.decision.check(task)
    label = plan.label.column
    parts, split_info = time_split(table, timestamp=plan.timestamp,
                                   bounds=window_bounds(plan, table, settings),
                                   available_at=plan.label.available_at, label=label)
    warnings = feature_warnings(parts["train"], plan.feature_names)
    model = pipe.fit(parts["train"].select(plan.feature_names), label_target(parts["train"], label, task))
    scores = {name: score_frame(model, plan, parts[name]) for name in SPLITS}
    y = {name: label_target(parts[name], label, task) for name in SPLITS}
    decision = decide(settings.decision, task, y, scores)
    threshold = decision["threshold"]
    evaluation = {name: evaluate(task, y[name], scores[name], threshold) for name in SPLITS}
    fairness = _fairness(parts, scores, plan, settings.audit_attribute(task), settings, threshold)
    objective = {"name": f"{split}_{metric}", "value": evaluation[split].get(metric),
                 "direction": "maximize" if HIGHER_IS_BETTER[metric] else "minimize"}
    flat = _flat_metrics(evaluation)
    leak = leakage_warning(task, evaluation["valid"])
    flat["leakage_suspected"] = 1 if leak else 0
    if leak:
        warnings.append(leak)
    if decision["met"] is False:
        warnings.append(f"training.decision: {decision['note']}")
    section = None
    if champion is not None:
        section, lifts = compare_with_champion(champion, plan=plan, task=task, test=parts["test"],
                                               metrics=flat)
        flat.update(lifts)
    return TrainOutcome(model=model, task=task, label=label, parts=parts, split=split_info, scores=scores,
                        evaluation=evaluation, fairness=fairness, objective=objective, metrics=flat,
                        warnings=warnings, champion=section, decision=decision)
