"""Stages of the request path that both feature paths share: breaker -> respond.

A micro-batch flows features -> score -> guard -> breaker -> log -> store -> respond.
The first stages differ between the frame path (:mod:`mlops.serving.predict_path`,
polars, any batch size) and the no-frame path for small batches
(:mod:`mlops.serving.fast_path`); the batch bookkeeping, the breaker decision and
the answers are the same code for both, held here.
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlops.serving.state import ServingState
from mlops.training.task import is_regression_model


@dataclass
class ParsedRequest:
    """A validated request: typed columns, warnings per record, request ids."""

    columns: dict[str, list]
    warnings: list[list[str]]
    request_ids: list[str]
    event_ids: list[str | None] | None = None   # per record (idempotent ingestion)
    invalid: list[str | None] | None = None     # per record: why the model does not answer it

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
    headers: dict | None = None  # e.g. Retry-After of a refusal


def request_ids(records: list[dict]) -> list[str]:
    """Client-given ``request_id`` per record when it is a string, else a fresh uuid."""
    return [r["request_id"] if isinstance(r, dict) and isinstance(r.get("request_id"), str)
            and r["request_id"] else uuid.uuid4().hex for r in records]


@dataclass
class Batch:
    """One micro-batch, flattened: one entry per record, in request order."""

    sizes: list[int]
    cols: dict[str, list]
    ids: list[str]
    warnings: list[list[str]]
    invalid: list[str | None]
    event_ids: list[str | None]
    refused_req: list[bool]           # per request: answered 422/503, nothing served
    rejected: dict = field(default_factory=dict)   # request -> 422 details

    @property
    def n(self) -> int:
        return len(self.ids)

    @classmethod
    def gather(cls, requests: list[ParsedRequest]) -> "Batch":
        """Concatenate the requests' columns and per-record extras."""
        cols = {c: [v for r in requests for v in r.columns[c]] for c in requests[0].columns}
        return cls([r.size for r in requests], cols,
                   [i for r in requests for i in r.request_ids],
                   [w for r in requests for w in r.warnings],
                   [v for r in requests for v in (r.invalid or [None] * r.size)],
                   [e for r in requests for e in (r.event_ids or [None] * r.size)],
                   [False] * len(requests))

    def row_ok(self) -> np.ndarray:
        """Rows of requests that are served (not refused)."""
        return np.repeat(~np.asarray(self.refused_req, dtype=bool), self.sizes)


@dataclass
class Scores:
    """What a batch is answered and who answered it.

    ``labels``: the prediction per record (a classifier's class at its decision threshold,
    a regressor's value); ``probs``: the model's score per record (P(positive) or the
    value: what the breaker watches and the log keeps); ``probabilistic``: a classifier,
    whose score is answered as ``probabilities``; ``decisions``: per record who answered:
    ``model``, ``fallback``, ``default`` (the declared value) or ``abstain`` (no value).
    """

    labels: np.ndarray
    probs: np.ndarray
    info: object                      # ModelInfo of the served model
    served_by: str = "model"
    tripped_msg: str | None = None
    routed: object = None             # RoutedScores with an experiment
    probabilistic: bool = True
    decisions: np.ndarray | None = None

    def __post_init__(self):
        if self.decisions is None:
            self.decisions = np.full(len(self.labels), self.served_by, dtype=object)

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


def breaker_gauges(state: ServingState, status) -> None:
    """Export the breaker's state and PSIs."""
    m = state.metrics
    m.breaker_tripped.set(1.0 if status.state == "tripped" else 0.0)
    m.breaker_window_records.set(float(status.window_records))
    m.breaker_prediction_psi.set(_num(status.prediction_psi))
    for name, v in status.feature_psi.items():
        m.breaker_feature_psi.labels(feature=name).set(_num(v))


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def kept_sizes(sizes: list[int], keep: np.ndarray) -> list[int]:
    """Records kept per request (requests left with none dropped)."""
    out, start = [], 0
    for n in sizes:
        out.append(int(keep[start:start + n].sum()))
        start += n
    return [n for n in out if n]


def refused_message(breaker) -> str:
    """The 503 detail while the breaker refuses predictions."""
    return (f"circuit breaker tripped: {breaker.reason}; predictions are refused until an "
            "operator resets it (POST /admin/breaker/reset or action=breaker_reset)")


def refusal(breaker) -> Outcome:
    """The 503 of a tripped breaker with ``on_trip=refuse``; Retry-After is when this
    server next reads the shared state (a reset elsewhere is seen by then)."""
    retry = max(1, math.ceil(breaker.settings.poll_seconds))
    return Outcome(503, detail=refused_message(breaker), headers={"Retry-After": str(retry)})


def stale_refusal() -> Outcome:
    """The 503 of a request whose online features are stale under ``refuse``."""
    return Outcome(503, detail="stale online features for this request (older than the "
                               "freshness TTL) and serving.stale_policy=refuse; run "
                               "action=materialize")


def default_labels(model, score: float, threshold: float, n: int) -> np.ndarray:
    """The label of a declared default probability ``score`` for ``n`` rows."""
    classes = np.asarray(getattr(model, "classes_", [0, 1]))
    label = classes[1] if score >= threshold and classes.size > 1 else classes[0]
    return np.full(n, label)


def observe_breaker(state: ServingState, batch: Batch, columns: Mapping[str, Sequence],
                    scores: Scores, row_clean: np.ndarray, entities: list[str]
                    ) -> list[Outcome] | None:
    """Feed the clean rows to the breaker; when it is tripped apply its action: refuse
    (the outcomes returned), or abstain / fallback / declared value (``scores`` updated by
    :func:`degrade`)."""
    breaker, s = state.breaker, state.settings
    if breaker is None or not row_clean.any():
        return None
    status = breaker.observe(columns, scores.probs[row_clean], entities=entities,
                             request_sizes=kept_sizes(batch.sizes, row_clean))
    breaker_gauges(state, status)
    if status.state != "tripped":
        return None
    scores.tripped_msg = f"circuit breaker tripped: {status.reason}"
    if s.breaker.on_trip == "refuse":
        return [Outcome(422, detail=batch.rejected[k]) if k in batch.rejected else
                stale_refusal() if refused else refusal(breaker)
                for k, refused in enumerate(batch.refused_req)]
    return None


def degrade(state: ServingState, batch: Batch, scores: Scores,
            fallback_scores: Callable[[object, float], tuple[np.ndarray, np.ndarray]]) -> None:
    """With a tripped breaker (``on_trip`` abstain, fallback or default): answer no value,
    the fallback version's (at its own threshold) or the declared value, and say so in
    every record's warnings."""
    b, model, info = state.settings.breaker, *state.active
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


def serve_unsafe_default(state: ServingState, scores: Scores, unsafe: np.ndarray) -> None:
    """Rows the guard marked unsafe (``invalid_record_policy=default``) get the declared
    ``breaker.default_value``, or no value (``abstain``) when none is declared."""
    model, info = state.active
    scores.answered(unsafe, "default", state.settings.breaker.default_value, model,
                    info.decision_threshold)


def answer_lists(scores: Scores) -> tuple[list, list | None, list]:
    """(predictions, probabilities or None for a regressor, decisions): null where the
    record was not answered with a value (``abstain``)."""
    none = scores.decisions == "abstain"
    preds = [None if skip else v for v, skip in zip(scores.labels.tolist(), none)]
    probs = None if not scores.probabilistic else \
        [None if skip else v for v, skip in zip(scores.probs.tolist(), none)]
    return preds, probs, scores.decisions.tolist()


def respond(state: ServingState, batch: Batch, scores: Scores, durable,
            as_of: list | None = None) -> list[Outcome]:
    """One :class:`Outcome` per request, in order."""
    label_list, prob_list, decisions = answer_lists(scores)
    info, routed = scores.info, scores.routed
    out, start = [], 0
    for i, n in enumerate(batch.sizes):
        end = start + n
        if i in batch.rejected:
            out.append(Outcome(422, detail=batch.rejected[i]))
        elif batch.refused_req[i]:
            out.append(stale_refusal())
        else:
            body = {"predictions": label_list[start:end],
                    **({} if prob_list is None else {"probabilities": prob_list[start:end]}),
                    "decisions": decisions[start:end],
                    "model": {"name": info.name, "version": str(info.version)},
                    "plan_hash": state.plan.spec_hash, "warnings": batch.warnings[start:end],
                    "request_ids": batch.ids[start:end], "served_by": scores.served_by}
            if as_of is not None:
                body["features_as_of"] = as_of[start:end]
            if routed is not None and scores.served_by == "model":
                body["variants"] = routed.variants[start:end]
                body["models"] = [{"name": x.name, "version": str(x.version)}
                                  for x in routed.infos[start:end]]
                body["model"] = body["models"][0]
            out.append(Outcome(200, body=body, durable=durable))
        start = end
    return out


PRUNE_EVERY = 10_000


def maybe_prune(state: ServingState, appended: int) -> None:
    """Every ~10k appended events, drop events older than the longest window relative
    to the SERVER clock (never to client-supplied times: one record dated 9999 must not
    erase everyone's history), so the realtime store stays bounded."""
    plan = state.plan
    state.appended_since_prune = state.appended_since_prune + appended
    if state.appended_since_prune >= PRUNE_EVERY and plan.windows:
        state.appended_since_prune = 0
        state.store.prune_events(state.now_us() - plan.max_period_seconds * 1_000_000)
