"""The request path after validation: features -> model -> breaker -> log, per batch.

:func:`process_batch` runs in the micro-batcher's worker thread with every request
collected in the last few ms: ONE points frame, ONE feature evaluation
(:func:`realtime_features` or :func:`hybrid_features`), ONE ``predict_proba``, one
breaker update, one log append. :func:`answer_from_cache` serves ``mode="batch"``
from the precomputed prediction cache.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import polars as pl

from mlops.errors import MlopsError
from mlops.features.online import append_events, hybrid_features, points_frame, realtime_features
from mlops.serving.fast_features import SMALL_BATCH, small_batch_features, supported
from mlops.serving.fast_model import compile_model
from mlops.serving.record_guard import guard_batch
from mlops.serving.scoring import known_categories, predict_scores
from mlops.serving.state import ServingState


@dataclass
class ParsedRequest:
    """A validated request: typed columns, warnings per record, request ids."""

    columns: dict[str, list]
    warnings: list[list[str]]
    request_ids: list[str]
    event_ids: list[str | None] | None = None   # per record (idempotent ingestion)
    invalid: list[str | None] | None = None     # per record: why it gets the safe default

    @property
    def size(self) -> int:
        return len(self.request_ids)


@dataclass
class Outcome:
    """What the endpoint answers: a body (200) or a status with a detail."""

    status: int = 200
    body: dict = field(default_factory=dict)
    detail: object = None
    durable: object = None  # a Future: the log record is fsynced once it resolves


def request_ids(records: list[dict]) -> list[str]:
    """Client-given ``request_id`` per record when it is a string, else a fresh uuid."""
    return [r["request_id"] if isinstance(r, dict) and isinstance(r.get("request_id"), str)
            and r["request_id"] else uuid.uuid4().hex for r in records]


def _breaker_gauges(state: ServingState, status) -> None:
    m = state.metrics
    m.breaker_tripped.set(1.0 if status.state == "tripped" else 0.0)
    m.breaker_window_records.set(float(status.window_records))
    m.breaker_prediction_psi.set(_num(status.prediction_psi))
    for name, v in status.feature_psi.items():
        m.breaker_feature_psi.labels(feature=name).set(_num(v))


def _num(v) -> float:
    return float("nan") if v is None else float(v)


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
    except MlopsError as exc:  # store unreachable, bad model, ...: 503, the server stays up
        return [Outcome(503, detail=str(exc))] * len(requests)
    except Exception as exc:  # a bug: 500 for this batch only
        return [Outcome(500, detail=f"{type(exc).__name__}: {exc}")] * len(requests)


def _process(state: ServingState, requests: list[ParsedRequest]) -> list[Outcome]:  # noqa: C901 (issue 16 splits it)
    plan, s = state.plan, state.settings
    breaker = state.breaker
    if breaker is not None and s.breaker.action == "refuse" and breaker.tripped:
        msg = _refused(breaker)
        return [Outcome(503, detail=msg)] * len(requests)
    sizes = [r.size for r in requests]
    cols = {c: [v for r in requests for v in r.columns[c]] for c in requests[0].columns}
    warnings = [w for r in requests for w in r.warnings]
    points = points_frame(cols, state.request_schema.polars_schema(), plan.timestamp)
    state.metrics.batch_records.observe(float(points.height))
    refused_req = [False] * len(requests)
    as_of = None
    if s.mode == "hybrid":
        res = hybrid_features(plan, state.store, points, now_us=state.now_us(),
                              ttl_seconds=s.ttl_seconds, stale_policy=s.stale_policy,
                              defaults=s.feature_defaults)
        feats = res.features
        as_of = [None if t is None else _iso(t) for t in res.as_of_us]
        for w, extra in zip(warnings, res.warnings):
            w.extend(extra)
        if s.stale_policy == "refuse":
            refused_req = [any(x) for x in _split(res.stale, sizes)]
    elif points.height <= SMALL_BATCH and _fast_windows(state):
        feats = small_batch_features(plan, state.store, points)  # no query plan per request
    else:
        feats = realtime_features(plan, state.store, points)
    model, info = state.active
    X = feats.select(plan.feature_names)
    # one bad record (non-finite features, invalid under policy=default) never fails the
    # others: its request gets 422, or the row the safe default; neither is stored
    invalid = [v for r in requests for v in (r.invalid or [None] * r.size)]
    guard = guard_batch(X, plan.feature_names, sizes, invalid, warnings,
                        policy=s.invalid_record_policy)
    rejected = guard.rejected
    for k in rejected:
        refused_req[k] = True
    X_model = guard.features
    routed = None
    if state.router is not None:  # A/B: each record scored by its unit's variant model
        routed = state.router.score(points, X_model, s.threshold,
                                    features_for=lambda p: _plan_features(state, p, points))
        labels, probs = routed.labels, routed.probs
    else:
        labels, probs = _predict(state, model, X_model)
    row_ok = np.repeat(~np.asarray(refused_req, dtype=bool), sizes)
    row_clean = row_ok & ~guard.unsafe  # what may enter the breaker window and the store
    served_by, served_info, tripped_msg = "model", info, None
    if breaker is not None and row_clean.any():
        sel = X.filter(pl.Series(row_clean)) if not row_clean.all() else X
        status = breaker.observe({n: sel[n] for n in breaker.feature_names if n in sel.columns},
                                 probs[row_clean], entities=_entities(points, plan, row_clean),
                                 request_sizes=_kept_sizes(sizes, row_clean))
        _breaker_gauges(state, status)
        if status.state == "tripped":
            tripped_msg = f"circuit breaker tripped: {status.reason}"
            if s.breaker.action == "refuse":
                return [Outcome(422, detail=rejected[k]) if k in rejected else
                        _stale_refusal() if refused else Outcome(503, detail=_refused(breaker))
                        for k, refused in enumerate(refused_req)]
            if s.breaker.action == "fallback":
                fb_model, served_info = state.fallback
                labels, probs = predict_scores(fb_model, X_model, threshold=s.threshold)
                served_by = "fallback"
                tripped_msg += f"; served by fallback model {served_info.name} " \
                               f"v{served_info.version}"
            else:
                probs = np.full(X.height, s.breaker.default_score)
                classes = np.asarray(getattr(model, "classes_", [0, 1]))
                labels = np.full(X.height, classes[1] if s.breaker.default_score >= s.threshold
                                 and classes.size > 1 else classes[0])
                served_by = "default"
                tripped_msg += "; served the default score"
    if guard.any_unsafe():
        probs = np.where(guard.unsafe, s.breaker.default_score, probs)
        classes = np.asarray(getattr(model, "classes_", [0, 1]))
        labels = np.where(guard.unsafe, classes[1] if s.breaker.default_score >= s.threshold
                          and classes.size > 1 else classes[0], labels)
    if tripped_msg:
        for w in warnings:
            w.append(tripped_msg)
    served_points = points.filter(pl.Series(row_clean)) if not row_clean.all() else points
    if s.mode == "realtime" and served_points.height:
        eids = [e for r in requests for e in (r.event_ids or [None] * r.size)]
        if not row_clean.all():
            eids = [e for e, keep in zip(eids, row_clean) if keep]
        append_events(plan, state.store, served_points, eids)
        _maybe_prune(state, served_points)
    ids = [i for r in requests for i in r.request_ids]
    label_list, prob_list = labels.tolist(), probs.tolist()
    durable = None
    if state.prediction_log is not None:
        durable = _log(state, points, X, ids, label_list, prob_list, warnings, row_ok,
                       served_by, served_info, breaker, routed)
    state.metrics.predictions.labels(served_by=served_by).inc(float(row_ok.sum()))
    out, start = [], 0
    for i, n in enumerate(sizes):
        end = start + n
        if i in rejected:
            out.append(Outcome(422, detail=rejected[i]))
        elif refused_req[i]:
            out.append(_stale_refusal())
        else:
            out.append(Outcome(200, body={
                "predictions": label_list[start:end], "probabilities": prob_list[start:end],
                "model": {"name": served_info.name, "version": str(served_info.version)},
                "plan_hash": plan.spec_hash, "warnings": warnings[start:end],
                "request_ids": ids[start:end], "served_by": served_by}, durable=durable))
            if as_of is not None:
                out[-1].body["features_as_of"] = as_of[start:end]
            if routed is not None and served_by == "model":
                out[-1].body["variants"] = routed.variants[start:end]
                out[-1].body["models"] = [{"name": x.name, "version": str(x.version)}
                                          for x in routed.infos[start:end]]
                out[-1].body["model"] = out[-1].body["models"][0]
        start = end
    return out


def _plan_features(state: ServingState, plan, points: pl.DataFrame) -> pl.DataFrame:
    """An experiment variant's own plan over the same records (realtime: the router
    refuses other modes), before this batch's events are stored, like the served plan."""
    return realtime_features(plan, state.store, points).select(plan.feature_names)


def fast_model(state: ServingState, model):
    """The compiled equivalent of ``model`` (:mod:`mlops.serving.fast_model`), built once
    per served model; None when the model has no exact fast path."""
    cached = getattr(state, "_fast_model", None)
    if cached is None or cached[0] is not model:
        compiled = compile_model(model, state.plan.feature_names,
                                 categorical=state.plan.categorical,
                                 known_categories=known_categories(model))
        cached = (model, compiled)
        state._fast_model = cached
    return cached[1]


def _fast_windows(state: ServingState) -> bool:
    ok = getattr(state, "_fast_windows", None)
    if ok is None:
        ok = state._fast_windows = supported(state.plan)
    return ok


def _predict(state: ServingState, model, X: pl.DataFrame):
    fast = fast_model(state, model)
    if fast is not None:
        try:
            return predict_scores(fast, X, threshold=state.settings.threshold)
        except Exception:  # the compiled path failed: the model itself decides from now on
            state._fast_model = (model, None)
    return predict_scores(model, X, threshold=state.settings.threshold)


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()


_PRUNE_EVERY = 10_000


def _maybe_prune(state: ServingState, points: pl.DataFrame) -> None:
    """Every ~10k appended events, drop events older than the longest window relative
    to the SERVER clock (never to client-supplied times: one record dated 9999 must not
    erase everyone's history), so the realtime store stays bounded."""
    plan = state.plan
    state.appended_since_prune = getattr(state, "appended_since_prune", 0) + points.height
    if state.appended_since_prune >= _PRUNE_EVERY and plan.windows:
        state.appended_since_prune = 0
        state.store.prune_events(state.now_us() - plan.max_period_seconds * 1_000_000)


def _entities(points: pl.DataFrame, plan, keep: np.ndarray) -> list[str]:
    ents = points[plan.entity].cast(pl.String).to_list()
    return ents if keep.all() else [e for e, k in zip(ents, keep) if k]


def _kept_sizes(sizes: list[int], keep: np.ndarray) -> list[int]:
    out, start = [], 0
    for n in sizes:
        out.append(int(keep[start:start + n].sum()))
        start += n
    return [n for n in out if n]


def _refused(breaker) -> str:
    return (f"circuit breaker tripped: {breaker.reason}; predictions are refused until an "
            "operator resets it (POST /admin/breaker/reset)")


def _stale_refusal() -> Outcome:
    return Outcome(503, detail="stale online features for this request (older than the "
                               "freshness TTL) and serving.stale_policy=refuse; run "
                               "action=materialize")


def _log(state, points, X, ids, labels, probs, warnings, row_ok, served_by, info, breaker,
         routed=None):
    """One columnar frame per micro-batch (no per-row Python dicts); with an experiment,
    the variant and model version per row, plus one row per shadow variant and record.
    Returns the log's durability future (None when nothing was logged)."""
    plan, schema = state.plan, state.prediction_log.schema
    n = len(ids)
    # one constructor in the log's exact schema: append_frame then needs no cast pass
    const = {"model_name": info.name, "model_version": str(info.version),
             "plan_hash": plan.spec_hash, "variant": state.settings.variant,
             "served_by": served_by,
             "breaker_state": breaker.status().state if breaker is not None else None,
             "served_at": datetime.now(timezone.utc)}
    features = X.select(plan.feature_names).to_struct("features")
    if features.dtype != schema["features"]:
        features = features.cast(schema["features"], strict=False)
    cols = {"request_id": ids, "entity": points[plan.entity].cast(pl.String),
            "event_ts": points[plan.timestamp].cast(schema["event_ts"]),
            "prediction": pl.Series(labels, dtype=pl.Int64, strict=False),
            "probability": probs, "warnings": warnings, "features": features}
    frame = pl.DataFrame({c: cols[c] if c in cols else [const[c]] * n for c in schema},
                         schema=schema)
    if routed is not None and served_by == "model":
        frame = frame.with_columns(
            pl.Series("variant", routed.variants, dtype=pl.String),
            pl.Series("model_version", [str(x.version) for x in routed.infos], dtype=pl.String))
    if not row_ok.all():
        frame = frame.filter(pl.Series(row_ok))
    if routed is not None:
        for name, (sinfo, slabels, sprobs) in routed.shadow.items():
            shadow = frame.with_columns(
                pl.Series("prediction", slabels[row_ok], dtype=pl.Int64, strict=False),
                pl.Series("probability", sprobs[row_ok], dtype=pl.Float64),
                pl.lit(name, pl.String).alias("variant"),
                pl.lit(str(sinfo.version), pl.String).alias("model_version"),
                pl.lit("shadow", pl.String).alias("served_by"))
            frame = pl.concat([frame, shadow])
    return state.prediction_log.append_frame(frame) if n else None


def answer_from_cache(state: ServingState, entities: list[str], ids: list[str]) -> Outcome:
    """``mode="batch"``: the latest precomputed prediction per entity, with its age.

    Unknown entities get null and a warning; stale ones (age > ttl) follow the
    stale policy (warn: flagged; default: the breaker default score; refuse: 503).
    """
    s = state.settings
    found = state.store.read_predictions(entities)
    now = state.now_us()
    preds, probs, ages, scored, warnings, models = [], [], [], [], [], []
    for e in entities:
        w: list[str] = []
        hit = found.get(e)
        if hit is None:
            preds.append(None), probs.append(None), ages.append(None), scored.append(None)
            models.append(None)
            w.append(f"no precomputed prediction for {state.plan.entity}={e!r}")
        else:
            body = json.loads(hit[1])
            age = (now - hit[0]) / 1e6
            models.append({"name": body.get("model_name"), "version": body.get("model_version")})
            pred, prob = body.get("prediction"), body.get("probability")
            if age > s.ttl_seconds:
                if s.stale_policy == "refuse":
                    return Outcome(503, detail=f"the precomputed prediction for {e!r} is "
                                   f"{age:.0f} s old (ttl {s.ttl_seconds:g} s) and "
                                   "serving.stale_policy=refuse; run action=score")
                w.append(f"stale prediction: {age:.0f} s old > ttl {s.ttl_seconds:g} s")
                if s.stale_policy == "default":
                    prob = s.breaker.default_score
                    pred = int(prob >= s.threshold)
                    w[-1] += "; served the default score"
            preds.append(pred), probs.append(prob), ages.append(age)
            scored.append(_iso(hit[0]))
        warnings.append(w)
    info = state.info
    return Outcome(200, body={
        "predictions": preds, "probabilities": probs,
        "model": {"name": info.name, "version": str(info.version)},
        "plan_hash": state.plan.spec_hash, "warnings": warnings, "request_ids": ids,
        "served_by": "cache", "age_seconds": ages, "scored_at": scored,
        "scored_by": models})
