"""``mode="batch"``: answers from the prediction cache that ``action=score`` published.

No features and no model at request time: each entity's latest precomputed prediction,
with its age (:func:`mlops.features.online.published_predictions`).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from mlops.features.online import published_predictions
from mlops.serving.pipeline.requests import Outcome
from mlops.serving.pipeline.scores import Scores
from mlops.training.task import is_regression_model

if TYPE_CHECKING:
    from mlops.serving.state import ServingState


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


def answer_from_cache(state: ServingState, entities: list[str], ids: list[str]) -> Outcome:
    """``mode="batch"``: the latest precomputed prediction per entity, with its age.

    Unknown entities get no value (decision ``abstain``) and a warning; stale ones (age >
    ttl) follow the stale policy (warn: flagged; default: the declared
    ``breaker.default_value``, else no value; refuse: 503).
    """
    s, (model, info) = state.settings, state.active
    found = published_predictions(state.store, entities)
    now = state.now_us()
    answers = Scores(np.zeros(len(entities), dtype=object), np.zeros(len(entities), dtype=object),
                     info, served_by="cache", probabilistic=not is_regression_model(model))
    ages, scored, warnings, models = [], [], [], []
    missing = np.zeros(len(entities), dtype=bool)
    stale = np.zeros(len(entities), dtype=bool)
    for i, e in enumerate(entities):
        w: list[str] = []
        hit = found.get(e)
        warnings.append(w)
        if hit is None:
            missing[i] = True
            ages.append(None), scored.append(None), models.append(None)
            w.append(f"no precomputed prediction for {state.plan.entity}={e!r}")
            continue
        body = json.loads(hit[1])
        age = (now - hit[0]) / 1e6
        models.append({"name": body.get("model_name"), "version": body.get("model_version")})
        answers.labels[i], answers.probs[i] = body.get("prediction"), body.get("probability")
        ages.append(age), scored.append(_iso(hit[0]))
        if age > s.ttl_seconds:
            if s.stale_policy == "refuse":
                return Outcome(503, detail=f"the precomputed prediction for {e!r} is "
                               f"{age:.0f} s old (ttl {s.ttl_seconds:g} s) and "
                               "serving.stale_policy=refuse; run action=score")
            w.append(f"stale prediction: {age:.0f} s old > ttl {s.ttl_seconds:g} s")
            stale[i] = s.stale_policy == "default"
    answers.answered(missing, "abstain", None, model, info.decision_threshold)
    answers.answered(stale, "default", s.breaker.default_value, model, info.decision_threshold)
    for i in np.flatnonzero(stale):
        warnings[i][-1] += ("; answered the declared default value" if s.breaker.default_value
                            is not None else "; abstained (no breaker.default_value declared)")
    preds, probs, decisions = answers.lists()
    return Outcome(200, body={
        "predictions": preds, **({} if probs is None else {"probabilities": probs}),
        "decisions": decisions, "model": {"name": info.name, "version": str(info.version)},
        "plan_hash": state.plan.spec_hash, "warnings": warnings, "request_ids": ids,
        "served_by": "cache", "age_seconds": ages, "scored_at": scored, "scored_by": models})
