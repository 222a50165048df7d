"""The policy a registered version carries: how its outputs are judged and acted upon.

Recorded at training in the version's metadata as ``policy`` (a dict, so more parts can
join it: baseline metrics, drift calibration, ...)::

    {"task": "classification" | "regression",
     "decision": {"rule": "fixed" | "positive_rate" | "precision" | "recall" | null,
                  "value": <fixed value> | null, "target": <target> | null,
                  "threshold": <float> | null,          # null for a regressor
                  "met": true | false,                  # the target reached on validation
                  "note": <why, when something is worth saying> | null,
                  "achieved": {"valid": {...}, "test": {...}}}}   # rows, positive_rate,
                                                                  # precision, recall

Everything that decides with a model (serving, batch scoring, experiments, monitoring,
champion comparisons) reads it with :func:`decision_policy`, never from its own config.
Versions registered before policies existed fall back to the ``training.threshold``
recorded in their config, else 0.5 (a classifier's own ``predict``), with a note.

Example:
    >>> d = decision_policy({"policy": {"task": "classification",
    ...                                 "decision": {"rule": "fixed", "threshold": 0.3}}})
    >>> d.threshold, d.source
    (0.3, 'policy')
    >>> decision_policy({"config": {"training": {"threshold": 0.8}}}).threshold
    0.8
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mlops.constraints import Interval, check
from mlops.errors import ConfigError

TASKS = ("classification", "regression")
CLASSIFIER_DEFAULT = 0.5  # what a binary classifier's predict() does (argmax)


@dataclass(frozen=True)
class DecisionPolicy:
    """The decision a version makes: its task and (classifiers) its threshold.

    ``source`` says where the threshold came from: ``policy`` (recorded at training),
    ``legacy`` (an old version: its recorded ``training.threshold`` or 0.5) or
    ``override`` (an explicit run override, ``overridden`` is the key).
    """

    task: str = "classification"
    threshold: float | None = CLASSIFIER_DEFAULT
    rule: str | None = "fixed"
    target: float | None = None
    source: str = "policy"
    note: str | None = None
    achieved: dict = field(default_factory=dict)
    policy_threshold: float | None = None   # the version's own, when overridden
    overridden: str | None = None           # the key of the override

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    def overridden_by(self, value: float | None, *, key: str) -> "DecisionPolicy":
        """This policy with an explicit threshold override from ``key`` (None: unchanged).

        A regressor has no threshold to override: an override is a ConfigError.
        """
        if value is None:
            return self
        if not self.is_classifier:
            raise ConfigError("the model is a regressor: it has no decision threshold",
                              key=key, fix=f"drop {key} (leave it null)")
        value = check(key, value, [Interval(float, 0, 1, closed="both")])
        return replace(self, threshold=float(value), source="override",
                       policy_threshold=self.threshold, overridden=key,
                       note=f"{key}={value:g} overrides the version's threshold "
                            f"{_fmt(self.threshold)}")

    def notice(self, name: str, version: int | str) -> str | None:
        """The line a run prints about version ``name`` ``version`` deciding this way: a
        warning when an override replaces its threshold, a note when an old version (from
        before policies) falls back; None when there is nothing to say."""
        if self.source == "override":
            return f"warning: {name} v{version}: {self.note}"
        if self.source == "legacy" and self.is_classifier:
            return f"note: {name} v{version} {self.note}"
        return None

    def as_dict(self) -> dict:
        """JSON-safe, for run results and ``/metadata``."""
        return {"task": self.task, "threshold": self.threshold, "rule": self.rule,
                "target": self.target, "source": self.source, "note": self.note,
                "policy_threshold": self.policy_threshold, "overridden_by": self.overridden}


def _fmt(v: float | None) -> str:
    return "none" if v is None else f"{v:g}"


def _metadata(version: Any) -> dict:
    """A ModelVersion or a metadata dict, as a dict with ``policy``, ``config``, ``tags``."""
    if isinstance(version, dict):
        return version
    return {"policy": getattr(version, "policy", None), "config": getattr(version, "config", None),
            "tags": getattr(version, "tags", None)}


def decision_policy(version: Any) -> DecisionPolicy:
    """The decision policy of a registered version (a ModelVersion or its metadata dict).

    With a recorded ``policy``: its task and decision. Without (registered before
    policies): the task from the version's tags, the threshold from its recorded
    ``training.threshold``, else 0.5, and a note saying so.
    """
    meta = _metadata(version)
    policy = meta.get("policy") or {}
    decision = policy.get("decision") if isinstance(policy, dict) else None
    if isinstance(decision, dict) and policy.get("task") in TASKS:
        task = policy["task"]
        threshold = decision.get("threshold") if task == "classification" else None
        return DecisionPolicy(task=task, threshold=None if threshold is None else float(threshold),
                              rule=decision.get("rule"), target=decision.get("target"),
                              note=decision.get("note"), achieved=decision.get("achieved") or {})
    task = str((meta.get("tags") or {}).get("task") or "classification")
    if task == "regression":
        return DecisionPolicy(task=task, threshold=None, rule=None, source="legacy",
                              note="registered before decision policies; a regressor has no "
                                   "decision threshold")
    recorded = ((meta.get("config") or {}).get("training") or {}).get("threshold")
    if recorded is not None:
        return DecisionPolicy(task=task, threshold=float(recorded), rule="fixed", source="legacy",
                              note="registered before decision policies: the training.threshold "
                                   f"recorded in its config ({float(recorded):g})")
    return DecisionPolicy(task=task, threshold=CLASSIFIER_DEFAULT, rule="fixed", source="legacy",
                          note="registered before decision policies and no threshold recorded: "
                               "0.5, a classifier's own default")


def policy_record(task: str, decision: dict) -> dict:
    """The ``policy`` metadata of a new version (``decision`` as documented above)."""
    return {"task": task, "decision": decision}
