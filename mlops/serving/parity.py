"""Training-serving parity: replay history through every serving backend, compare with batch.

:func:`replay_parity` walks the events in time order, once per backend the plan supports
(``plan.backends``: ``frames``, the polars path of large micro-batches,
:func:`realtime_features`; ``rows``, the plain-Python path of small batches,
:func:`mlops.serving.fast_features.small_batch_features`). Every event goes into an
online store (as the realtime server appends them); for ``n_events`` sampled events the
request runs first (JSON-like record -> validation -> points -> the backend against the
store), and every feature is compared with :func:`compute_features` over the whole
history. Floats must be equal (within ``tolerance``, absolute: 0 by default, since both
backends compute the same bits), nulls with nulls, strings exactly. The report gives
each backend's comparisons and mismatches.

What it does not replay yet: the whole request pipeline through the real server (guard,
model, store writes, log), which the request-pipeline rework will bring.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from mlops.errors import DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features
from mlops.features.online import OnlineStore, SQLiteStore, append_events, points_frame, realtime_features
from mlops.serving.fast_features import small_batch_features
from mlops.serving.validation import RequestSchema, validate_records

FEATURES_BY = {"frames": realtime_features, "rows": small_batch_features}

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

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict:
        return {"ok": self.ok, "events": self.events, "features": self.features,
                "compared": self.compared, "max_abs_diff": self.max_abs_diff,
                "mismatches": self.mismatches[:100], "n_mismatches": len(self.mismatches),
                "backends": self.backends}


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
        d = abs(float(a) - float(b))
        return d <= tol, d
    return a == b, 0.0


def replay_parity(plan: FeaturePlan, events: pl.DataFrame, *, n_events: int = 200,
                  seed: int = 0, batch_size: int = 1, tolerance: float = 0.0,
                  store: OnlineStore | None = None, source_schema: dict | None = None,
                  backends: tuple[str, ...] | None = None) -> ParityReport:
    """Replay ``n_events`` sampled events through each serving backend; compare features.

    ``batch_size > 1`` sends runs of consecutive events together, as the micro-batcher
    does. ``backends`` defaults to every backend the plan supports. Each backend gets a
    private in-memory SQLite store, unless ``store`` is given: then all share it (a
    replay only adds events, and a window at ``t`` never sees events at or after ``t``).

    Example:
        >>> replay_parity(plan, generate(SyntheticParams(n_users=50, days=20))).ok  # doctest: +SKIP
        True
    """
    missing = [c for c in plan.source_columns if c not in events.columns]
    if missing:
        raise DataError(f"the events lack column(s) {missing}", key="data")
    schema = RequestSchema.from_plan(plan, source_schema or events.schema)
    ordered = (events.with_row_index(_ROW).sort(plan.timestamp, maintain_order=True))
    truth = compute_features(plan, ordered, keep=[_ROW]).collect()
    truth_rows = {r[_ROW]: r for r in truth.iter_rows(named=True)}
    n = min(n_events, ordered.height)
    groups = _groups(ordered.height, n, max(int(batch_size), 1), seed)
    rows = ordered.select(_ROW, *plan.source_columns)
    out = ParityReport(sum(b - a for a, b in groups), len(plan.feature_names), 0, 0.0)
    for backend in backends or plan.backends:
        found = _replay(plan, FEATURES_BY[backend], store or SQLiteStore(":memory:"), schema,
                        rows, groups, truth_rows, tolerance)
        compared, worst, mismatches = found
        out.compared += compared
        out.max_abs_diff = max(out.max_abs_diff, worst)
        out.mismatches += [{"backend": backend, **m} for m in mismatches]
        out.backends[backend] = {"ok": not mismatches, "compared": compared,
                                 "max_abs_diff": worst, "n_mismatches": len(mismatches)}
    return out


def _replay(plan: FeaturePlan, features, store: OnlineStore, schema: RequestSchema,
            rows: pl.DataFrame, groups: list[tuple[int, int]], truth_rows: dict,
            tolerance: float) -> tuple[int, float, list[dict]]:
    """One backend's replay: (features compared, largest |difference|, mismatches)."""
    mismatches, compared, worst = [], 0, 0.0
    done = 0  # rows [0, done) of `rows` are in the store
    for first, last in groups:
        if first > done:  # the history before this request batch
            append_events(plan, store, rows.slice(done, first - done))
        req = rows.slice(first, last - first).to_dicts()
        cols, _ = validate_records([_record(r, plan) for r in req], schema, now_us=0)
        points = points_frame(cols, schema.polars_schema(), plan.timestamp)
        online = features(plan, store, points)
        append_events(plan, store, points)  # as the server does after scoring
        done = last
        for r, got in zip(req, online.iter_rows(named=True)):
            want = truth_rows[r[_ROW]]
            for name in plan.feature_names:
                ok, diff = _same(want[name], got[name], tolerance)
                compared += 1
                worst = max(worst, diff)
                if not ok:
                    mismatches.append({"row": r[_ROW], "entity": r[plan.entity],
                                       "feature": name, "batch": want[name],
                                       "online": got[name]})
    return compared, worst, mismatches


def _groups(total: int, n: int, size: int, seed: int) -> list[tuple[int, int]]:
    """Non-overlapping runs [first, last) of consecutive rows, ~n rows in all."""
    starts = range(0, total - size + 1, size)
    k = min(max(n // size, 1), len(starts))
    return [(a, a + size) for a in sorted(random.Random(seed).sample(starts, k))]
