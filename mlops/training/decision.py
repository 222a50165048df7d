"""The decision rule: how a classifier's score becomes a 0/1 decision, set at training.

A rule is declared in ``training.decision`` and applied once, on the validation window:

- ``fixed``: ``value`` is the threshold (default 0.5, what a classifier's ``predict`` does);
- ``positive_rate``: the lowest threshold at which at most ``target`` of the validation
  rows are positive (``score >= threshold``);
- ``precision``: the lowest threshold at which the precision on validation reaches
  ``target`` (the most recall that precision allows);
- ``recall``: the highest threshold at which the recall on validation reaches ``target``
  (the fewest positives that recall allows).

Candidate thresholds are the distinct validation scores (and, for ``positive_rate``, just
above the largest one, which makes nothing positive). The chosen threshold and what it
achieved on the validation and test windows are recorded with the model
(:func:`mlops.registry.policy.policy_record`). Regressors have no decision threshold.

Example:
    >>> y = np.array([0, 0, 1, 0, 1, 1])
    >>> p = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    >>> choose_threshold(DecisionRule("positive_rate", target=0.5), y, p).threshold
    0.4
    >>> choose_threshold(DecisionRule("precision", target=1.0), y, p).threshold
    0.8
    >>> choose_threshold(DecisionRule("recall", target=1.0), y, p).threshold
    0.3
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mlops.constraints import Interval, Options, validate
from mlops.errors import ConfigError, DataError

RULES = ("fixed", "positive_rate", "precision", "recall")
KEY = "training.decision"


@dataclass
class DecisionRule:
    """``training.decision``: ``rule`` with its ``value`` (fixed) or ``target`` (the others)."""

    rule: str = "fixed"                   # fixed | positive_rate | precision | recall
    value: Optional[float] = 0.5          # fixed: the threshold
    target: Optional[float] = None        # positive_rate | precision | recall: the target

    def check(self, task: str) -> "DecisionRule":
        """Raise ConfigError naming ``training.decision.<key>`` unless the rule fits ``task``."""
        validate(self, {"rule": [Options(*RULES)]}, prefix=KEY)
        if task == "regression":
            if self.rule != "fixed":
                raise ConfigError(f"a regressor has no decision threshold, so no {self.rule!r} "
                                  "rule", key=f"{KEY}.rule",
                                  fix="drop training.decision (or keep rule: fixed) for a regressor")
            return self
        if self.rule == "fixed":
            validate(self, {"value": [Interval(float, 0, 1, closed="both")]}, prefix=KEY)
        else:
            validate(self, {"target": [Interval(float, 0, 1, closed="neither")]}, prefix=KEY)
        return self

    def as_dict(self) -> dict:
        return ({"rule": "fixed", "value": self.value} if self.rule == "fixed"
                else {"rule": self.rule, "target": self.target})


@dataclass(frozen=True)
class Choice:
    """The chosen threshold; ``met`` says whether the target was reached on validation."""

    threshold: float
    met: bool = True
    note: str | None = None


def achieved(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Positive rate, precision and recall of ``scores >= threshold`` (None when undefined).

    >>> achieved(np.array([1, 0, 1]), np.array([0.9, 0.6, 0.2]), 0.5)
    {'rows': 3, 'positive_rate': 0.6666666666666666, 'precision': 0.5, 'recall': 0.5}
    """
    y = np.asarray(y).astype(int)
    pos = np.asarray(scores, dtype=float) >= threshold
    tp, n_pos, n_true = int((pos & (y == 1)).sum()), int(pos.sum()), int((y == 1).sum())
    return {"rows": int(y.size), "positive_rate": n_pos / y.size if y.size else None,
            "precision": tp / n_pos if n_pos else None,
            "recall": tp / n_true if n_true else None}


def _sweep(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct scores ascending, positives at each as threshold, true positives at each)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    cum_tp = np.cumsum(t)
    # the last row of each run of equal scores: everything at or above that score
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    return s[last][::-1], (last + 1)[::-1], cum_tp[last][::-1]


def choose_threshold(rule: DecisionRule, y: np.ndarray, scores: np.ndarray) -> Choice:
    """The threshold ``rule`` picks on the validation labels ``y`` and ``scores``."""
    if rule.rule == "fixed":
        return Choice(float(rule.value))
    y, scores = np.asarray(y).astype(int), np.asarray(scores, dtype=float)
    if y.size == 0:
        raise DataError("the validation window is empty", key="training.valid_days",
                        fix="widen the validation window")
    thr, n_pos, tp = _sweep(y, scores)
    target = float(rule.target)
    if rule.rule == "positive_rate":
        ok = np.flatnonzero(n_pos <= target * y.size)
        if ok.size:
            return Choice(float(thr[ok[0]]))
        return Choice(float(np.nextafter(thr[-1], np.inf)),
                      note="ties at the top score: nothing is positive")
    if int(y.sum()) == 0:
        raise DataError(f"the validation window has no positives, so no {rule.rule} can be "
                        "measured", key="training.valid_days",
                        fix="widen the validation window or use training.decision.rule=fixed")
    if rule.rule == "recall":
        ok = np.flatnonzero(tp >= target * y.sum())
        return Choice(float(thr[ok[-1]]))
    precision = tp / n_pos
    ok = np.flatnonzero(precision >= target)
    if ok.size:
        return Choice(float(thr[ok[0]]))
    best = int(np.flatnonzero(precision == precision.max())[0])
    return Choice(float(thr[best]), met=False,
                  note=f"precision {target:g} is not reached on validation; the threshold with "
                       f"the highest precision ({precision[best]:.3f}) is used")
