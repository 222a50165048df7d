"""The request pipeline: one ordered list of stages over a micro-batch.

:func:`process_batch` runs in the micro-batcher's worker thread with every request
collected in the last few ms and takes the batch through :data:`STAGES`::

    features -> score -> guard -> breaker -> store -> log -> respond

- features (:mod:`.features`): the plan's features of every record, as rows (the rows
  backend, a few records) or a frame (the frames backend; hybrid), with the engine's status;
- score (:mod:`.scores`): ONE model call (compiled when exact; per variant with an experiment);
- guard (:mod:`.guard`): unscorable or invalid records answered 422 or without the model;
- breaker: the clean records enter its window; when tripped it refuses or degrades;
- store: realtime mode appends the batch's events (what the plan counts as events);
- log: the answered records, committed with the answer (group commit);
- respond (:mod:`.answers`): one outcome per request.

The events are stored before the log record is written, and no answer leaves before the
record is durable: a request answered 2xx has its log row, and one that was not (a busy
store, a failed commit) has none. Every stage reads the batch's features through one
interface (:mod:`.tables`), whether they are rows or a frame: there is one pipeline.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from mlops.errors import MlopsError
from mlops.features.online import store_event_ids
from mlops.features.online.codec import encode_columns, payload_columns
from mlops.features.rules import REJECTED_INPUT
from mlops.serving.model import predict_scores
from mlops.serving.pipeline.answers import refusal, respond, stale_refusal
from mlops.serving.pipeline.features import features
from mlops.serving.pipeline.guard import answer_unsafe, guard
from mlops.serving.pipeline.requests import Batch, Outcome, ParsedRequest, retry_after
from mlops.serving.pipeline.scores import degrade, score, unscorable

log = logging.getLogger(__name__)
PRUNE_EVERY = 10_000


def _kept_sizes(sizes: list[int], keep: np.ndarray) -> list[int]:
    """Records kept per request (requests left with none dropped)."""
    out, start = [], 0
    for n in sizes:
        out.append(int(keep[start:start + n].sum()))
        start += n
    return [n for n in out if n]


def _gauges(state, status) -> None:
    m = state.metrics
    m.breaker_tripped.set(1.0 if status.state == "tripped" else 0.0)
    m.breaker_window_records.set(float(status.window_records))
    m.breaker_prediction_psi.set(float("nan") if status.prediction_psi is None else status.prediction_psi)
    for name, v in status.feature_psi.items():
        m.breaker_feature_psi.labels(feature=name).set(float("nan") if v is None else float(v))


def breaker(state, batch: Batch) -> list[Outcome] | None:
    """The clean records enter the breaker's window; a tripped breaker refuses (503) or
    degrades the answers (abstain, fallback, declared value). Then the records the guard
    marked get their answer without the model."""
    b, clean = state.breaker, batch.row_ok() & ~batch.unsafe
    if b is not None and clean.any():
        present = set(state.plan.feature_names)
        columns = batch.features.columns([n for n in b.feature_names if n in present], clean)
        entities = [e for e, keep in zip(batch.cols[state.plan.entity], clean) if keep]
        status = b.observe(columns, batch.scores.probs[clean], entities=entities,
                           request_sizes=_kept_sizes(batch.sizes, clean))
        _gauges(state, status)
        if status.state == "tripped":
            batch.scores.tripped_msg = f"circuit breaker tripped: {status.reason}"
            if state.settings.breaker.on_trip == "refuse":
                return [Outcome(422, detail=batch.rejected[k]) if k in batch.rejected else
                        stale_refusal() if refused else refusal(b)
                        for k, refused in enumerate(batch.refused_req)]
            X = batch.features.model_input(unscorable(batch), rows=False)
            degrade(state, batch, lambda fb, thr: predict_scores(fb, X, threshold=thr))
    answer_unsafe(state, batch)
    return None


def store(state, batch: Batch) -> None:
    """Realtime: the batch's events (what the plan counts: not the records validation
    refused, not the ones with a non-finite input under ``reject``) become history later
    requests see, stored under the plan's event identity."""
    plan = state.plan
    if state.settings.mode != "realtime" or not plan.windows:
        return
    keep = batch.valid & np.array([s != REJECTED_INPUT for s in batch.features.status()], dtype=bool)
    if not keep.any():
        return
    cols = batch.cols if keep.all() else {c: [v for v, k in zip(vals, keep) if k]
                                          for c, vals in batch.cols.items()}
    n = len(cols[plan.entity])
    eid = plan.rules.event_id
    ids = store_event_ids(plan, cols.get(eid) if eid else None, n)
    state.store.append_events(cols[plan.entity], cols[plan.timestamp],
                              encode_columns(payload_columns(plan), cols), ids, now_us=state.now_us())
    _maybe_prune(state, n)


def _maybe_prune(state, appended: int) -> None:
    """Every ~10k appended events, drop events stored and dated before the longest window
    before the SERVER clock (never a client-supplied time: one record dated 9999 must not
    erase everyone's history; a backfill of older data is kept one window past its load)."""
    plan = state.plan
    state.appended_since_prune += appended
    if state.appended_since_prune >= PRUNE_EVERY and plan.windows:
        state.appended_since_prune = 0
        state.store.prune_events(state.now_us() - plan.max_period_seconds * 1_000_000)


def _number(v):
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):  # a class label that is not a number: the log keeps null
        return None


def _log_rows(state, batch: Batch) -> list[list]:
    """The answered records as rows in the log's column order, plus one row per shadow
    variant and record with an experiment."""
    plog, plan, scores = state.prediction_log, state.plan, batch.scores
    labels, probs, decisions = scores.lists()
    probs = probs if probs is not None else [None] * batch.n
    routed = scores.routed if scores.served_by == "model" else None
    feats = batch.features.log_values()
    row = {"model_name": scores.info.name, "model_version": str(scores.info.version),
           "plan_hash": plan.spec_hash, "variant": state.settings.variant,
           "breaker_state": state.breaker.status().state if state.breaker is not None else None,
           "served_at": time.time_ns() // 1000}
    out, shadows = [], []
    for i in np.flatnonzero(batch.row_ok()).tolist():
        row.update(request_id=batch.ids[i], entity=batch.cols[plan.entity][i],
                   event_ts=batch.cols[plan.timestamp][i], served_by=decisions[i],
                   prediction=_number(labels[i]), probability=probs[i],
                   warnings=batch.warnings[i], features=feats[i])
        if routed is not None:
            row.update(variant=routed.variants[i], model_version=str(routed.infos[i].version))
        out.append([row[c] for c in plog.schema])
        for name, (sinfo, slabels, sprobs) in (scores.routed.shadow.items() if scores.routed else ()):
            shadow = {**row, "prediction": _number(slabels[i]), "variant": name,
                      "probability": float(sprobs[i]) if scores.probabilistic else None,
                      "model_version": str(sinfo.version), "served_by": "shadow"}
            shadows.append([shadow[c] for c in plog.schema])
    return out + shadows


def log_stage(state, batch: Batch) -> None:
    """The answered records go to the prediction log; their answers wait for the commit."""
    if state.prediction_log is not None:
        rows = _log_rows(state, batch)
        batch.durable = state.prediction_log.append_rows(rows) if rows else None


STAGES = (features, score, guard, breaker, store, log_stage)


def process_batch(state, requests: list[ParsedRequest]) -> list[Outcome]:
    """Score a micro-batch; one :class:`Outcome` per request (never raises)."""
    try:
        return _run(state, requests)
    except MlopsError as exc:  # store busy or unreachable, bad model, ...: 503, the server stays up
        return [Outcome(503, detail=str(exc), headers=retry_after(exc))] * len(requests)
    except Exception as exc:  # a bug: 500 for this batch only
        log.exception("the request pipeline failed on a batch of %d requests", len(requests))
        return [Outcome(500, detail=f"{type(exc).__name__}: {exc}")] * len(requests)
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":  # KeyboardInterrupt, SystemExit: not ours
            raise
        # polars panicked (pyo3_runtime.PanicException is a BaseException): a bug in
        # polars or in how the plan drives it, reported like any other bug of one batch
        log.error("polars panicked while computing a batch: %s", exc)
        return [Outcome(500, detail=f"polars panicked while computing the features: {exc}")] \
            * len(requests)


def _run(state, requests: list[ParsedRequest]) -> list[Outcome]:
    b = state.breaker
    if b is not None and state.settings.breaker.on_trip == "refuse" and b.tripped:
        return [refusal(b)] * len(requests)
    batch = Batch.gather(requests, state.points_schema, state.plan.timestamp)
    state.metrics.batch_records.observe(float(batch.n))
    for stage in STAGES:
        refused = stage(state, batch)
        if refused is not None:
            return refused
    state.metrics.feature_batches.labels(backend=batch.backend).inc()
    state.metrics.predictions.labels(served_by=batch.scores.served_by).inc(float(batch.row_ok().sum()))
    return respond(state, batch)
