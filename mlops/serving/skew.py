"""Training-serving skew guard and the model metadata the server carries.

A model records the hash of the feature plan it was trained on; the server refuses to
serve it with any other plan (at startup and on every reload).

Example:
    >>> info = ModelInfo(name="fraud", version="3", plan_hash="ab" * 32)
    >>> check_plan(info.plan_hash, plan, model=info)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mlops.errors import SkewError
from mlops.features.compile import FeaturePlan


@dataclass(frozen=True)
class ModelInfo:
    """What the server says about a model: registry name, version, plan hash, and the
    decision threshold it decides at (the version's policy, or an explicit override).

    ``threshold`` None: a regressor (no decision) or, for a classifier, 0.5 (what its
    ``predict`` does); :attr:`decision_threshold` says which number is used.
    """

    name: str
    version: str
    plan_hash: str
    extra: dict = field(default_factory=dict, compare=False)
    threshold: float | None = None

    @property
    def decision_threshold(self) -> float:
        """The threshold a classifier's score is decided at (ignored for a regressor)."""
        return 0.5 if self.threshold is None else float(self.threshold)

    def as_dict(self) -> dict:
        return {"name": self.name, "version": str(self.version), "plan_hash": self.plan_hash,
                "threshold": self.threshold,
                **{k: v for k, v in self.extra.items() if k not in ("name", "version")}}


def check_plan(model_plan_hash: str, plan: FeaturePlan, *, model: ModelInfo | None = None) -> None:
    """Raise :class:`SkewError` unless ``model_plan_hash`` is the hash of ``plan``.

    The message names both hashes (12 characters each) and the model when given.
    """
    if model_plan_hash == plan.spec_hash:
        return
    who = f"model {model.name} v{model.version}" if model is not None else "the model"
    got = (model_plan_hash or "<none>")[:12]
    raise SkewError(
        f"{who} was trained on feature plan {got}... but the server loaded plan "
        f"{plan.short_hash}... ({plan.name} v{plan.version})",
        key="serving.model",
        fix="retrain the model or serve the spec it was trained with")
