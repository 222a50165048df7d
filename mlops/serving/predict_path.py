"""The request path after validation, as named stages, per micro-batch.

:func:`process_batch` runs in the micro-batcher's worker thread with every request
collected in the last few ms and takes it through
features -> score -> guard -> breaker -> store -> log -> respond
(the log record is written last, once nothing else can fail, and no answer leaves before it
is durable: a request answered 2xx has its log row, and one that was not has none).
A few records in realtime mode take the no-frame path (:mod:`mlops.serving.fast_path`:
plain Python values, the compiled model, JSON rows for the store and the log); larger
batches take the frame path here: ONE points frame, ONE feature evaluation
(:func:`realtime_features` or :func:`hybrid_features`), ONE ``predict_proba``, one
breaker update, one log append. Both share :mod:`mlops.serving.predict_stages`.
:func:`answer_from_cache` serves ``mode="batch"`` from the precomputed prediction cache.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import polars as pl

from mlops.errors import MlopsError
from mlops.features.online import append_events, hybrid_features, points_frame, published_predictions, realtime_features
from mlops.serving import fast_path
from mlops.serving.fast_features import SMALL_BATCH, small_batch_features
from mlops.serving.fast_path import fast_model, fast_windows
from mlops.serving.predict_stages import (
    Batch,
    Outcome,
    ParsedRequest,
    Scores,
    answer_lists,
    degrade,
    maybe_prune,
    observe_breaker,
    refusal,
    request_ids,
    respond,
    retry_after,
    serve_unsafe_default,
)
from mlops.serving.record_guard import guard_batch
from mlops.serving.scoring import predict_scores
from mlops.serving.state import ServingState
from mlops.training.task import is_regression_model

__all__ = ["Outcome", "ParsedRequest", "answer_from_cache", "fast_model", "process_batch",
           "request_ids"]


def _split(values: list, sizes: list[int]) -> list[list]:
    out, start = [], 0
    for n in sizes:
        out.append(values[start:start + n])
        start += n
    return out


def process_batch(state: ServingState, requests: list[ParsedRequest]) -> list[Outcome]:
    """Score a micro-batch; one :class:`Outcome` per request (never raises)."""
    try:
        return _process(state, requests)
    except MlopsError as exc:  # store busy or unreachable, bad model, ...: 503, the server stays up
        return [Outcome(503, detail=str(exc), headers=retry_after(exc))] * len(requests)
    except Exception as exc:  # a bug: 500 for this batch only
        return [Outcome(500, detail=f"{type(exc).__name__}: {exc}")] * len(requests)


def _process(state: ServingState, requests: list[ParsedRequest]) -> list[Outcome]:
    """features -> score -> guard -> breaker -> store -> log -> respond."""
    breaker = state.breaker
    if breaker is not None and state.settings.breaker.on_trip == "refuse" and breaker.tripped:
        return [refusal(breaker)] * len(requests)
    batch = Batch.gather(requests)
    state.metrics.batch_records.observe(float(batch.n))
    rows_plan = fast_path.row_plan(state, batch)
    if rows_plan is not None:  # a few records: plain Python, no frame at all
        return fast_path.process(state, batch, rows_plan)
    points = points_frame(batch.cols, state.request_schema.polars_schema(), state.plan.timestamp)
    feats, as_of = _features(state, batch, points)
    X = feats.select(state.plan.feature_names)
    # one bad record (non-finite features, invalid under policy=default) never fails the
    # others: its request gets 422, or the row no model answer; neither is stored
    guard = guard_batch(X, state.plan.feature_names, batch.sizes, batch.invalid,
                        batch.warnings, policy=state.settings.invalid_record_policy)
    batch.rejected = guard.rejected
    for k in guard.rejected:
        batch.refused_req[k] = True
    scores = _score(state, points, guard.features)
    row_ok = batch.row_ok()
    row_clean = row_ok & ~guard.unsafe  # what may enter the breaker window and the store
    refused = _breaker(state, batch, X, points, scores, row_clean, guard.features)
    if refused is not None:
        return refused
    if guard.any_unsafe():
        serve_unsafe_default(state, scores, guard.unsafe)
    _store(state, batch, points, row_clean)  # before the log: a busy store leaves no log row
    durable = None
    if state.prediction_log is not None:  # last: the log commits with the answer
        durable = _log(state, batch, points, X, scores, row_ok)
    state.metrics.predictions.labels(served_by=scores.served_by).inc(float(row_ok.sum()))
    return respond(state, batch, scores, durable, as_of)


def _features(state: ServingState, batch: Batch, points: pl.DataFrame):
    """(features frame, features_as_of per row or None): hybrid, small or large batch."""
    plan, s = state.plan, state.settings
    if s.mode == "hybrid":
        res = hybrid_features(plan, state.store, points, now_us=state.now_us(),
                              ttl_seconds=s.ttl_seconds, stale_policy=s.stale_policy,
                              defaults=s.feature_defaults)
        for w, extra in zip(batch.warnings, res.warnings):
            w.extend(extra)
        if s.stale_policy == "refuse":
            batch.refused_req = [any(x) for x in _split(res.stale, batch.sizes)]
        return res.features, [None if t is None else _iso(t) for t in res.as_of_us]
    if points.height <= SMALL_BATCH and fast_windows(state):
        return small_batch_features(plan, state.store, points), None  # no query plan
    return realtime_features(plan, state.store, points), None


def _score(state: ServingState, points: pl.DataFrame, X_model: pl.DataFrame) -> Scores:
    model, info = state.active
    if state.router is not None:  # A/B: each record scored by its unit's variant model
        routed = state.router.score(points, X_model,
                                    features_for=lambda p: _plan_features(state, p, points))
        return Scores(routed.labels, routed.probs, info, routed=routed,
                      probabilistic=not is_regression_model(model))
    labels, probs = _predict(state, model, X_model, info.decision_threshold)
    return Scores(labels, probs, info, probabilistic=not is_regression_model(model))


def _breaker(state, batch, X, points, scores, row_clean, X_model) -> list[Outcome] | None:
    """The breaker stage on the clean rows (see :func:`observe_breaker`)."""
    if state.breaker is None or not row_clean.any():
        return None
    sel = X.filter(pl.Series(row_clean)) if not row_clean.all() else X
    columns = {n: sel[n] for n in state.breaker.feature_names if n in sel.columns}
    refused = observe_breaker(state, batch, columns, scores, row_clean,
                              _entities(points, state.plan, row_clean))
    if refused is None and scores.tripped_msg:
        degrade(state, batch, scores, lambda fb, thr: predict_scores(fb, X_model, threshold=thr))
    return refused


def _store(state: ServingState, batch: Batch, points: pl.DataFrame,
           row_clean: np.ndarray) -> None:
    """Realtime: the served, clean records become events later requests see."""
    served = points.filter(pl.Series(row_clean)) if not row_clean.all() else points
    if state.settings.mode != "realtime" or not served.height:
        return
    eids = batch.event_ids
    if not row_clean.all():
        eids = [e for e, keep in zip(eids, row_clean) if keep]
    append_events(state.plan, state.store, served, eids, now_us=state.now_us())
    maybe_prune(state, served.height)


def _plan_features(state: ServingState, plan, points: pl.DataFrame) -> pl.DataFrame:
    """An experiment variant's own plan over the same records (realtime: the router
    refuses other modes), before this batch's events are stored, like the served plan."""
    return realtime_features(plan, state.store, points).select(plan.feature_names)


def _predict(state: ServingState, model, X: pl.DataFrame, threshold: float):
    fast = fast_model(state, model)
    if fast is not None:
        try:
            return predict_scores(fast, X, threshold=threshold)
        except Exception:  # the compiled path failed: the model itself decides from now on
            state._fast_model = (model, None)
    return predict_scores(model, X, threshold=threshold)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


def _entities(points: pl.DataFrame, plan, keep: np.ndarray) -> list[str]:
    ents = points[plan.entity].cast(pl.String).to_list()
    return ents if keep.all() else [e for e, k in zip(ents, keep) if k]


def _log(state: ServingState, batch: Batch, points: pl.DataFrame, X: pl.DataFrame,
         scores: Scores, row_ok: np.ndarray):
    """One columnar frame per micro-batch (no per-row Python dicts); with an experiment,
    the variant and model version per row, plus one row per shadow variant and record.
    ``served_by`` is per record (model, fallback, default, abstain). Returns the log's
    durability future (None when nothing was logged)."""
    plan, schema, breaker = state.plan, state.prediction_log.schema, state.breaker
    ids, info, routed = batch.ids, scores.info, scores.routed
    preds, probs, decisions = answer_lists(scores)
    n = len(ids)
    # one constructor in the log's exact schema: append_frame then needs no cast pass
    const = {"model_name": info.name, "model_version": str(info.version),
             "plan_hash": plan.spec_hash, "variant": state.settings.variant,
             "breaker_state": breaker.status().state if breaker is not None else None,
             "served_at": datetime.now(timezone.utc)}
    features = X.select(plan.feature_names).to_struct("features")
    if features.dtype != schema["features"]:
        features = features.cast(schema["features"], strict=False)
    cols = {"request_id": ids, "entity": points[plan.entity].cast(pl.String),
            "event_ts": points[plan.timestamp].cast(schema["event_ts"]),
            "prediction": pl.Series(preds, dtype=pl.Float64, strict=False),
            "probability": pl.Series(probs if probs is not None else [None] * n,
                                     dtype=pl.Float64, strict=False),
            "served_by": pl.Series(decisions, dtype=pl.String),
            "warnings": batch.warnings, "features": features}
    frame = pl.DataFrame({c: cols[c] if c in cols else [const[c]] * n for c in schema},
                         schema=schema)
    if routed is not None and scores.served_by == "model":
        frame = frame.with_columns(
            pl.Series("variant", routed.variants, dtype=pl.String),
            pl.Series("model_version", [str(x.version) for x in routed.infos], dtype=pl.String))
    if not row_ok.all():
        frame = frame.filter(pl.Series(row_ok))
    if routed is not None:
        for name, (sinfo, slabels, sprobs) in routed.shadow.items():
            shadow = frame.with_columns(
                pl.Series("prediction", slabels[row_ok], dtype=pl.Float64, strict=False),
                pl.Series("probability", sprobs[row_ok] if scores.probabilistic
                          else [None] * int(row_ok.sum()), dtype=pl.Float64),
                pl.lit(name, pl.String).alias("variant"),
                pl.lit(str(sinfo.version), pl.String).alias("model_version"),
                pl.lit("shadow", pl.String).alias("served_by"))
            frame = pl.concat([frame, shadow])
    return state.prediction_log.append_frame(frame) if n else None


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
    preds, probs, decisions = answer_lists(answers)
    return Outcome(200, body={
        "predictions": preds, **({} if probs is None else {"probabilities": probs}),
        "decisions": decisions, "model": {"name": info.name, "version": str(info.version)},
        "plan_hash": state.plan.spec_hash, "warnings": warnings, "request_ids": ids,
        "served_by": "cache", "age_seconds": ages, "scored_at": scored, "scored_by": models})
