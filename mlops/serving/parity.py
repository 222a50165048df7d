"""Training-serving parity: history replayed through the real request pipeline, per backend.

:func:`replay_parity` scores the events with batch scoring (:func:`score_events`, the
path of ``action=score`` and of training's features) and sends them, in time order,
through the server's request pipeline once per backend the plan supports
(:func:`mlops.serving.pipeline.process_batch` with that backend forced): request
validation, features against an online store, the guard, the model, the store writes
and the prediction log. For ``n_events`` sampled events (runs of ``batch_size``
consecutive events, one request each; the events between them go into the store as
history, as the server would have stored them) every feature the pipeline logged is
compared with batch scoring's, and so is the probability: features bit for bit
(``tolerance``, absolute, 0 by default), probabilities within ``prob_tolerance``
(a model's sums may differ in the last bit between one row and a batch), nulls with
nulls (a record the engine calls unscorable is answered without the model and written
by batch scoring without a prediction). Without a model only features are compared.
"""
from __future__ import annotations

import math
import random
import tempfile
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from mlops.errors import DataError
from mlops.features.compile import FeaturePlan
from mlops.features.online import OnlineStore, SQLiteStore
from mlops.features.online.events import append_history
from mlops.serving.batch import score_events
from mlops.serving.http.validation import check_records
from mlops.serving.pipeline import ParsedRequest, process_batch
from mlops.serving.prediction_log import PredictionLog, scan_prediction_log
from mlops.serving.settings import ServingSettings
from mlops.serving.skew import ModelInfo
from mlops.serving.state import ServingState

_ROW = "__parity_row"


@dataclass
class ParityReport:
    """Outcome of a replay: how much was compared and every mismatch, in all and per
    backend (each mismatch names its backend)."""

    events: int
    features: int
    compared: int
    max_abs_diff: float
    mismatches: list[dict] = field(default_factory=list)
    backends: dict[str, dict] = field(default_factory=dict)
    max_prob_diff: float | None = None   # None: no model, features only

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def headline(self) -> str:
        """One line: what was compared, or how many mismatches and where."""
        names = " and ".join(self.backends)
        what = "features and probabilities" if self.max_prob_diff is not None else "features"
        if self.ok:
            return (f"serving equals batch scoring: {self.events} events x {self.features} features "
                    f"through the request pipeline of the {names} backend"
                    f"{'s' if len(self.backends) > 1 else ''} ({what}; features bit for bit)")
        bad = ", ".join(f"{b}: {v['n_mismatches']}" for b, v in self.backends.items() if not v["ok"])
        return f"{len(self.mismatches)} mismatches between serving and batch scoring ({bad})"

    def as_dict(self) -> dict:
        return {"ok": self.ok, "events": self.events, "features": self.features,
                "compared": self.compared, "max_abs_diff": self.max_abs_diff,
                "max_prob_diff": self.max_prob_diff,
                "mismatches": self.mismatches[:100], "n_mismatches": len(self.mismatches),
                "backends": self.backends}


class _NoModel:
    """A stand-in model when none is registered: the pipeline runs, features are compared."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


def _record(row: dict, plan: FeaturePlan) -> dict:
    rec = {c: row[c] for c in plan.source_columns}
    ts = rec[plan.timestamp]
    rec[plan.timestamp] = ts.isoformat() if isinstance(ts, datetime) else ts
    return rec


def _same(a, b, tol: float) -> tuple[bool, float]:
    if a is None or b is None:
        return a is None and b is None, 0.0
    if isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b), 0.0
        if math.isinf(a) or math.isinf(b):
            return a == b, 0.0
        d = abs(float(a) - float(b))
        return d <= tol, d
    return a == b, 0.0


def replay_parity(plan: FeaturePlan, events: pl.DataFrame, *, model=None, info: ModelInfo | None = None,
                  n_events: int = 200, seed: int = 0, batch_size: int = 1, tolerance: float = 0.0,
                  prob_tolerance: float = 1e-12, store: OnlineStore | None = None,
                  source_schema: dict | None = None, backends: tuple[str, ...] | None = None
                  ) -> ParityReport:
    """Replay ``n_events`` sampled events through the request pipeline of each backend and
    compare what it logged with batch scoring (see the module docstring).

    Each backend gets a private in-memory SQLite store, unless ``store`` is given: then all
    share it (a replay only adds events, and a window at ``t`` never sees events at or
    after ``t``).

    Example:
        >>> replay_parity(plan, events, model=model, info=info).ok  # doctest: +SKIP
        True
    """
    missing = [c for c in plan.source_columns if c not in events.columns]
    if missing:
        raise DataError(f"the events lack column(s) {missing}", key="data")
    info = info or ModelInfo("parity", "0", plan.spec_hash)
    ordered = events.with_row_index(_ROW).sort(plan.timestamp, maintain_order=True)
    n = min(n_events, ordered.height)
    groups = _groups(ordered.height, n, max(int(batch_size), 1), seed)
    out = ParityReport(sum(b - a for a, b in groups), len(plan.feature_names), 0, 0.0,
                       max_prob_diff=None if model is None else 0.0)
    with tempfile.TemporaryDirectory(prefix="mlops-parity-") as tmp:
        truth = _batch_truth(plan, model or _NoModel(), info, ordered, f"{tmp}/batch.parquet")
        for backend in backends or plan.backends:
            logged = _replay(plan, backend, model or _NoModel(), info, ordered, groups,
                             store or SQLiteStore(":memory:"), source_schema, f"{tmp}/{backend}")
            found = _compare(plan, truth, logged, tolerance, prob_tolerance if model is not None else None)
            out.compared += found["compared"]
            out.max_abs_diff = max(out.max_abs_diff, found["max_abs_diff"])
            if model is not None:
                out.max_prob_diff = max(out.max_prob_diff, found["max_prob_diff"])
            out.mismatches += [{"backend": backend, **m} for m in found.pop("mismatches")]
            out.backends[backend] = {"ok": found["n_mismatches"] == 0, **found}
    return out


def _batch_truth(plan: FeaturePlan, model, info: ModelInfo, ordered: pl.DataFrame, path: str) -> dict:
    """Batch scoring's features and probability of every event, by row."""
    score_events(plan, model, info, ordered, path, keep=[_ROW], include_features=True, parts=1)
    return {r[_ROW]: r for r in pl.read_parquet(path).iter_rows(named=True)}


def _replay(plan: FeaturePlan, backend: str, model, info: ModelInfo, ordered: pl.DataFrame,
            groups: list[tuple[int, int]], store: OnlineStore, source_schema: dict | None,
            log_dir: str) -> dict:
    """One backend's replay: the logged row of every request record, by row."""
    settings = ServingSettings(invalid_record_policy="default", max_abs_value=None,
                               log_dir=log_dir, log_durable=False, log_flush_records=10**9)
    clock = {"now": None}
    state = ServingState(plan=plan, model=model, info=info, store=store, settings=settings,
                         prediction_log=PredictionLog(log_dir, plan, flush_records=10**9,
                                                      durable=False),
                         source_schema=source_schema or dict(ordered.schema),
                         clock=lambda: clock["now"])
    state.backends.forced = backend
    rows = ordered.select(_ROW, *plan.source_columns)
    done = 0  # rows [0, done) of `rows` are in the store
    try:
        for first, last in groups:
            req = rows.slice(first, last - first)
            clock["now"] = req[plan.timestamp].max()
            if first > done:  # the history before this request, as the server stored it
                append_history(plan, store, rows.slice(done, first - done).drop(_ROW),
                               now_us=state.now_us())
            recs = [_record(r, plan) for r in req.iter_rows(named=True)]
            checked = check_records(recs, state.request_schema, now_us=state.now_us(),
                                    policy="default", max_abs=None)
            outcome, = process_batch(state, [ParsedRequest(
                checked.columns, checked.warnings, [str(i) for i in req[_ROW]],
                checked.event_ids, checked.invalid)])
            if outcome.status != 200:
                raise DataError(f"the {backend} pipeline answered {outcome.status}: {outcome.detail}",
                                key="serving")
            done = last
    finally:
        state.prediction_log.close()
    logged = scan_prediction_log(log_dir)
    return {} if logged is None else {int(r["request_id"]): r for r in logged.collect().iter_rows(named=True)}


def _compare(plan: FeaturePlan, truth: dict, logged: dict, tol: float, prob_tol: float | None) -> dict:
    """Features (and probabilities) of every logged record against batch scoring's."""
    mismatches, compared, worst, worst_p = [], 0, 0.0, 0.0
    for row, got in sorted(logged.items()):
        want = truth[row]
        for name in plan.feature_names:
            ok, diff = _same(want[name], got["features"][name], tol)
            compared += 1
            worst = max(worst, diff)
            if not ok:
                mismatches.append({"row": row, "entity": want[plan.entity], "feature": name,
                                   "batch": want[name], "online": got["features"][name]})
        if prob_tol is not None:
            col = "probability" if want["probability"] is not None or got["probability"] is not None \
                else "prediction"  # a regressor's value
            served = got[col] if got["served_by"] == "model" else None
            want_value = None if want[col] is None else float(want[col])
            ok, diff = _same(want_value, served, prob_tol)
            worst_p = max(worst_p, diff)
            if not ok:
                mismatches.append({"row": row, "entity": want[plan.entity], "feature": col,
                                   "batch": want_value, "online": served})
    return {"compared": compared, "max_abs_diff": worst, "max_prob_diff": worst_p,
            "n_mismatches": len(mismatches), "mismatches": mismatches, "requests": len(logged)}


def _groups(total: int, n: int, size: int, seed: int) -> list[tuple[int, int]]:
    """Non-overlapping runs [first, last) of consecutive rows, ~n rows in all."""
    starts = range(0, total - size + 1, size)
    k = min(max(n // size, 1), len(starts))
    return [(a, a + size) for a in sorted(random.Random(seed).sample(starts, k))]
