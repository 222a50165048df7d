"""The no-frame request path for a few records (realtime mode): plain Python values.

A lone record through polars costs a dozen small frames (request columns, features,
guard, store encoding, log record) at 0.1-1 ms each, far more than the work. Here the
same stages run on plain values:

- features: :func:`mlops.serving.fast_features.row_features` over the entity's few
  stored events, derived features as Python closures (:mod:`.fast_exprs`);
- score: the compiled model (:mod:`.fast_model`) on a numpy matrix built from the rows;
- guard: :func:`mlops.serving.record_guard.guard_rows`;
- breaker: the shared stage with columns as lists;
- store: payloads encoded exactly as polars would (:func:`.fast_features.encode_payloads`);
- log: rows handed to :meth:`PredictionLog.append_rows` (JSON bytes, no frame).

:func:`row_plan` says when a batch may take it (realtime, no experiment, at most
``SMALL_BATCH`` records, a plan and model with exact fast equivalents). Tests compare
every output with the frame path on random records and histories
(``tests/serving/test_serving_no_frame_path.py``).
"""
from __future__ import annotations

import time

import numpy as np
import polars as pl

from mlops.serving.fast_features import SMALL_BATCH, RowPlan, compile_rows, encode_payloads, row_features, supported
from mlops.serving.fast_model import compile_model
from mlops.serving.predict_stages import (
    Batch,
    Outcome,
    Scores,
    answer_lists,
    degrade,
    maybe_prune,
    observe_breaker,
    respond,
    serve_unsafe_default,
)
from mlops.serving.record_guard import guard_rows
from mlops.serving.scoring import known_categories, predict_scores
from mlops.serving.state import ServingState


def fast_model(state: ServingState, model):
    """The compiled equivalent of ``model`` (:mod:`mlops.serving.fast_model`), built once
    per served model; None when the model has no exact fast path."""
    cached = state._fast_model
    if cached is None or cached[0] is not model:
        compiled = compile_model(model, state.plan.feature_names,
                                 categorical=state.plan.categorical,
                                 known_categories=known_categories(model))
        cached = (model, compiled)
        state._fast_model = cached
    return cached[1]


def fast_windows(state: ServingState) -> bool:
    """True when the plan's windows have a direct small-batch implementation."""
    ok = state._fast_windows
    if ok is None:
        ok = state._fast_windows = supported(state.plan)
    return ok


def row_plan(state: ServingState, batch: Batch) -> RowPlan | None:
    """The plan's row steps when ``batch`` may take the no-frame path, else None."""
    if batch.n > SMALL_BATCH or state.settings.mode != "realtime" or state.router is not None:
        return None
    model = fast_model(state, state.active[0])
    classes = getattr(model, "classes_", None)
    if model is None or classes is None or np.asarray(classes).dtype.kind not in "iu":
        return None  # integer class labels only (the log's numeric prediction column)
    cached = state._row_plan
    if cached is None:
        cached = state._row_plan = (compile_rows(state.plan, state.request_schema.kinds),)
    return cached[0]


def process(state: ServingState, batch: Batch, rp: RowPlan) -> list[Outcome]:
    """features -> score -> guard -> breaker -> store -> log -> respond, without frames."""
    plan, s = state.plan, state.settings
    rows = row_features(rp, state.store, batch.cols)
    names = plan.feature_names
    floats = [f.name for f in plan.features if f.kind == "numeric"]
    guard = guard_rows(rows, floats, batch.sizes, batch.invalid, batch.warnings,
                       policy=s.invalid_record_policy)
    batch.rejected = guard.rejected
    for k in guard.rejected:
        batch.refused_req[k] = True
    scores = _score(state, guard.features)
    row_ok = batch.row_ok()
    row_clean = row_ok & ~guard.unsafe
    refused = _breaker(state, batch, rows, scores, row_clean, guard.features)
    if refused is not None:
        return refused
    if guard.any_unsafe():
        serve_unsafe_default(state, scores, guard.unsafe)
    _store(state, batch, row_clean)  # before the log: a busy store leaves no log row
    durable = None
    if state.prediction_log is not None:  # last: the log commits with the answer
        durable = _log(state, batch, [[r[n] for n in names] for r in rows], scores, row_ok)
    state.metrics.predictions.labels(served_by=scores.served_by).inc(float(row_ok.sum()))
    return respond(state, batch, scores, durable)


def _frame(state: ServingState, rows: list[dict]) -> pl.DataFrame:
    """Rows as the frame the model itself takes (only when the compiled model failed or
    the fallback model serves: rare)."""
    kinds = {f.name: (pl.String if f.kind == "categorical" else pl.Float64)
             for f in state.plan.features}
    names = state.plan.feature_names
    return pl.DataFrame([[r[n] for n in names] for r in rows],
                        schema={n: kinds[n] for n in names}, orient="row")


def _labels(proba: np.ndarray, classes, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`mlops.serving.scoring.predict_scores` from the probabilities."""
    classes = np.asarray(classes)
    if proba.shape[1] == 2:
        p = proba[:, 1]
        return np.where(p >= threshold, classes[1], classes[0]), p
    idx = proba.argmax(axis=1)
    return classes[idx], proba[np.arange(proba.shape[0]), idx]


def _score(state: ServingState, rows: list[dict]) -> Scores:
    """The served model's answers at its own decision threshold (only classifiers come
    here: :func:`row_plan` needs integer classes)."""
    model, info = state.active
    fast = fast_model(state, model)
    if fast is not None:
        try:
            proba = np.asarray(fast.predict_proba_rows(rows), dtype=np.float64)
            labels, probs = _labels(proba, fast.classes_, info.decision_threshold)
            return Scores(labels, probs, info)
        except Exception:  # the compiled path failed: the model itself decides from now on
            state._fast_model = (model, None)
    labels, probs = predict_scores(model, _frame(state, rows), threshold=info.decision_threshold)
    return Scores(labels, probs, info)


def _breaker(state, batch: Batch, rows: list[dict], scores: Scores, row_clean: np.ndarray,
             model_rows: list[dict]) -> list[Outcome] | None:
    if state.breaker is None or not row_clean.any():
        return None
    kept = [r for r, keep in zip(rows, row_clean) if keep]
    present = set(state.plan.feature_names)
    columns = {n: [r[n] for r in kept] for n in state.breaker.feature_names if n in present}
    entities = [e for e, keep in zip(batch.cols[state.plan.entity], row_clean) if keep]
    refused = observe_breaker(state, batch, columns, scores, row_clean, entities)
    if refused is None and scores.tripped_msg:
        degrade(state, batch, scores, lambda fb, thr: predict_scores(
            fb, _frame(state, model_rows), threshold=thr))
    return refused


def _store(state: ServingState, batch: Batch, row_clean: np.ndarray) -> None:
    """The clean records become events (payloads byte-identical to the frame path)."""
    plan = state.plan
    if not plan.windows or not row_clean.any():
        return
    cols = batch.cols if row_clean.all() else {
        c: [v for v, keep in zip(vals, row_clean) if keep] for c, vals in batch.cols.items()}
    eids = batch.event_ids if row_clean.all() else \
        [e for e, keep in zip(batch.event_ids, row_clean) if keep]
    state.store.append_events(cols[plan.entity], cols[plan.timestamp],
                              encode_payloads(plan, cols), eids, now_us=state.now_us())
    maybe_prune(state, len(eids))


def _log(state: ServingState, batch: Batch, features: list[list], scores: Scores,
         row_ok: np.ndarray):
    """The batch's log rows as lists in the log's column order (no frame)."""
    log, plan, info = state.prediction_log, state.plan, scores.info
    breaker_state = state.breaker.status().state if state.breaker is not None else None
    served_at = time.time_ns() // 1000
    labels, probs, decisions = answer_lists(scores)
    probs = probs if probs is not None else [None] * len(labels)
    row = {"model_name": info.name, "model_version": str(info.version),
           "plan_hash": plan.spec_hash, "variant": state.settings.variant,
           "breaker_state": breaker_state, "served_at": served_at}
    out = []
    for i in np.flatnonzero(row_ok).tolist():
        row.update(request_id=batch.ids[i], entity=batch.cols[plan.entity][i],
                   event_ts=batch.cols[plan.timestamp][i], served_by=decisions[i],
                   prediction=None if labels[i] is None else float(labels[i]),
                   probability=probs[i], warnings=batch.warnings[i], features=features[i])
        out.append([row[c] for c in log.schema])
    return log.append_rows(out) if batch.n else None
