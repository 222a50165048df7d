"""The typed result of a training run; ``to_json()`` is the ``train.json`` contract."""
from __future__ import annotations

from dataclasses import dataclass, field

from mlops.features.compile import FeaturePlan
from mlops.training.pipeline import TrainOutcome

SHOWN_METRICS = {
    "regression": ("rmse", "mae", "r2", "valid_rmse", "valid_r2"),
    "classification": ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall",
                       "valid_roc_auc", "valid_pr_auc"),
}


@dataclass(frozen=True)
class EstimatorSpec:
    """The estimator as configured: registry name, ``_target_`` and its params."""

    name: str
    target: str
    params: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    """What ``action=train`` reports (and the lifecycle and sweepers read back)."""

    task: str
    model: EstimatorSpec
    plan: dict                   # name, version, hash, features
    split: dict
    evaluation: dict
    fairness: dict
    champion: dict | None
    warnings: list[str]
    objective: dict
    metrics: dict                # flat metrics as registered (not part of train.json)
    decision: dict = field(default_factory=dict)  # the decision policy (rule, threshold, achieved)
    registry: dict | None = None  # {"model": name, "version": n} once registered
    duration_s: float = 0.0

    @classmethod
    def from_outcome(cls, outcome: TrainOutcome, plan: FeaturePlan, model: EstimatorSpec
                     ) -> TrainResult:
        """The result of ``outcome`` (not yet registered: set ``registry`` after)."""
        return cls(task=outcome.task, model=model,
                   plan={"name": plan.name, "version": plan.version, "hash": plan.spec_hash,
                         "features": plan.feature_names},
                   split=outcome.split, evaluation=outcome.evaluation, fairness=outcome.fairness,
                   champion=outcome.champion, warnings=outcome.warnings,
                   objective=outcome.objective, metrics=outcome.metrics,
                   decision=outcome.decision)

    @property
    def version(self) -> int | None:
        """The registered version, or None when the run did not register."""
        return self.registry["version"] if self.registry else None

    @property
    def headline(self) -> str:
        """One line: the model, its version and its test quality."""
        t = self.evaluation["test"]
        quality = (f"test RMSE {_f(t['rmse'])}, R² {_f(t['r2'])}" if self.task == "regression" else
                   f"test ROC-AUC {_f(t['roc_auc'])}, PR-AUC {_f(t['pr_auc'])}")
        version = f" v{self.version}" if self.version is not None else ""
        return f"{self.model.name}{version}: {quality} on {t['rows']:,} later rows"

    def shown_metrics(self) -> dict:
        """The metrics the dispatcher prints and sweepers log."""
        return {k: self.metrics[k] for k in SHOWN_METRICS[self.task] if k in self.metrics}

    def to_json(self) -> dict:
        """Exactly the dict written to ``train.json`` (key order included)."""
        return {
            "action": "train", "status": "ok", "headline": self.headline, "task": self.task,
            "model": {"name": self.model.name, "target": self.model.target,
                      "params": self.model.params},
            "plan": self.plan, "split": self.split, "decision": self.decision,
            "evaluation": self.evaluation,
            "fairness": self.fairness, "champion": self.champion, "warnings": self.warnings,
            "objective": self.objective, "registry": self.registry, "duration_s": self.duration_s,
        }


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
