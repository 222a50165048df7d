"""The score stage and what a batch is answered: the model's scores, or no model at all.

:func:`score` calls the served model once per micro-batch (each record by its unit's
variant with an experiment), on rows or a frame as the batch holds them: the compiled
model (:mod:`mlops.serving.model.compiled`) when it is exact, else the model itself. A
record the engine calls unscorable is scored on a copy with its non-finite values
replaced (its score is discarded by the guard), so the model never sees one.
:class:`Scores` records, per record, who answered (``decisions``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mlops.serving.model import compile_model, known_categories, predict_scores
from mlops.serving.pipeline.requests import Batch
from mlops.training.task import is_regression_model

if TYPE_CHECKING:
    from mlops.serving.state import ServingState

log = logging.getLogger(__name__)


class Scores:
    """What a batch is answered and who answered it.

    ``labels``: the prediction per record (a classifier's class at its decision threshold,
    a regressor's value); ``probs``: the model's score per record (P(positive) or the
    value: what the breaker watches and the log keeps); ``probabilistic``: a classifier,
    whose score is answered as ``probabilities``; ``decisions``: per record who answered:
    ``model``, ``fallback``, ``default`` (the declared value) or ``abstain`` (no value).
    """

    def __init__(self, labels: np.ndarray, probs: np.ndarray, info, *, served_by: str = "model",
                 routed=None, probabilistic: bool = True):
        self.labels, self.probs, self.info = labels, probs, info
        self.served_by, self.routed, self.probabilistic = served_by, routed, probabilistic
        self.tripped_msg: str | None = None
        self.decisions = np.full(len(labels), served_by, dtype=object)

    def answered(self, rows: np.ndarray, decision: str, value: float | None, model,
                 threshold: float) -> None:
        """``rows`` are answered without the model: the declared ``value`` (its label at
        ``threshold`` for a classifier) or, when None, nothing (``abstain``)."""
        self.decisions = np.where(rows, decision if value is not None else "abstain",
                                  self.decisions).astype(object)
        if value is None:
            return
        self.probs = np.where(rows, value, self.probs)
        label = default_labels(model, value, threshold, 1)[0] if self.probabilistic else value
        self.labels = np.where(rows, label, self.labels)

    def lists(self) -> tuple[list, list | None, list]:
        """(predictions, probabilities or None for a regressor, decisions): null where the
        record was not answered with a value (``abstain``)."""
        none = self.decisions == "abstain"
        preds = [None if skip else v for v, skip in zip(self.labels.tolist(), none)]
        probs = None if not self.probabilistic else \
            [None if skip else v for v, skip in zip(self.probs.tolist(), none)]
        return preds, probs, self.decisions.tolist()


def default_labels(model, score: float, threshold: float, n: int) -> np.ndarray:
    """The label of a declared default probability ``score`` for ``n`` rows."""
    classes = np.asarray(getattr(model, "classes_", [0, 1]))
    label = classes[1] if score >= threshold and classes.size > 1 else classes[0]
    return np.full(n, label)


def compiled_model(state: ServingState, model):
    """The compiled equivalent of ``model`` (built once per served model), or None when
    it has no exact one."""
    cached = state.compiled
    if cached is None or cached[0] is not model:
        compiled = compile_model(model, state.plan.feature_names,
                                 categorical=state.plan.categorical,
                                 known_categories=known_categories(model))
        cached = state.compiled = (model, compiled)
    return cached[1]


def unscorable(batch: Batch) -> list[int]:
    """Records the engine calls unscorable (its status is set)."""
    return [i for i, why in enumerate(batch.features.status()) if why is not None]


def model_scores(state: ServingState, model, batch: Batch, threshold: float):
    """(labels, scores) of ``model`` on the batch's features: compiled when it can be."""
    bad = unscorable(batch)
    fast = compiled_model(state, model)
    if fast is not None:
        try:
            return predict_scores(fast, batch.features.model_input(bad, rows=True),
                                  threshold=threshold)
        except Exception as exc:  # the compiled form failed: the model itself answers from now on
            log.warning("the compiled model failed (%s: %s); the model itself answers from now on",
                        type(exc).__name__, exc)
            state.compiled = (model, None)
    return predict_scores(model, batch.features.model_input(bad, rows=False), threshold=threshold)


def score(state: ServingState, batch: Batch) -> None:
    """The score stage: the served model (or each record's variant) on every record."""
    model, info = state.active
    probabilistic = not is_regression_model(model)
    if state.router is not None:  # A/B: each record scored by its unit's variant model
        X = batch.features.model_input(unscorable(batch), rows=False)
        routed = state.router.score(batch.points, X, features_for=lambda p: variant_features(state, batch, p))
        batch.scores = Scores(routed.labels, routed.probs, info, routed=routed,
                              probabilistic=probabilistic)
        return
    labels, probs = model_scores(state, model, batch, info.decision_threshold)
    batch.scores = Scores(labels, probs, info, probabilistic=probabilistic)


def variant_features(state: ServingState, batch: Batch, plan):
    """An experiment variant's own plan over the same records (realtime: the router
    refuses other modes), before this batch's events are stored, like the served plan."""
    from mlops.features.online import realtime_features
    return realtime_features(plan, state.store, batch.points,
                             events=batch.valid).select(plan.feature_names)


def degrade(state: ServingState, batch: Batch,
            fallback_scores: Callable[[object, float], tuple[np.ndarray, np.ndarray]]) -> None:
    """With a tripped breaker (``on_trip`` abstain, fallback or default): answer no value,
    the fallback version's (at its own threshold) or the declared value, and say so in
    every record's warnings."""
    b, (model, info), scores = state.settings.breaker, state.active, batch.scores
    everyone = np.ones(batch.n, dtype=bool)
    if b.on_trip == "fallback":
        fb_model, scores.info = state.fallback
        scores.labels, scores.probs = fallback_scores(fb_model, scores.info.decision_threshold)
        scores.probabilistic = not is_regression_model(fb_model)
        scores.served_by = "fallback"
        scores.decisions = np.full(batch.n, "fallback", dtype=object)
        scores.tripped_msg += (f"; served by fallback model {scores.info.name} "
                               f"v{scores.info.version}")
    elif b.on_trip == "default":
        scores.answered(everyone, "default", b.default_value, model, info.decision_threshold)
        scores.served_by = "default"
        scores.tripped_msg += f"; answered the declared default value {b.default_value:g}"
    else:
        scores.answered(everyone, "abstain", None, model, info.decision_threshold)
        scores.served_by = "abstain"
        scores.tripped_msg += "; abstained (no prediction)"
    for w in batch.warnings:
        w.append(scores.tripped_msg)
