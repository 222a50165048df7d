"""Training-serving parity: replay history through the serving path, compare with batch.

:func:`replay_parity` walks the events in time order. Every event goes into an online
store (as the realtime server appends them); for ``n_events`` sampled events, the
request path runs first (JSON-like record -> validation -> points frame ->
:func:`realtime_features` against the store), and every feature is compared with
:func:`compute_features` over the whole history. Floats must agree within ``tolerance``
(absolute), nulls with nulls, strings exactly.
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
from mlops.serving.validation import RequestSchema, validate_records

_ROW = "__parity_row"


@dataclass
class ParityReport:
    """Outcome of a replay: how much was compared and every mismatch."""

    events: int
    features: int
    compared: int
    max_abs_diff: float
    mismatches: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict:
        return {"ok": self.ok, "events": self.events, "features": self.features,
                "compared": self.compared, "max_abs_diff": self.max_abs_diff,
                "mismatches": self.mismatches[:100], "n_mismatches": len(self.mismatches)}


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
                  seed: int = 0, batch_size: int = 1, tolerance: float = 1e-9,
                  store: OnlineStore | None = None,
                  source_schema: dict | None = None) -> ParityReport:
    """Replay ``n_events`` sampled events through the realtime path; compare features.

    ``batch_size > 1`` sends runs of consecutive events together, as the
    micro-batcher does. The store defaults to a private in-memory SQLite store.

    Example:
        >>> replay_parity(plan, generate(SyntheticParams(n_users=50, days=20))).ok  # doctest: +SKIP
        True
    """
    missing = [c for c in plan.source_columns if c not in events.columns]
    if missing:
        raise DataError(f"the events lack column(s) {missing}", key="data")
    store = store or SQLiteStore(":memory:")
    schema = RequestSchema.from_plan(plan, source_schema or events.schema)
    ordered = (events.with_row_index(_ROW).sort(plan.timestamp, maintain_order=True))
    truth = compute_features(plan, ordered, keep=[_ROW]).collect()
    truth_rows = {r[_ROW]: r for r in truth.iter_rows(named=True)}
    n = min(n_events, ordered.height)
    groups = _groups(ordered.height, n, max(int(batch_size), 1), seed)
    rows = ordered.select(_ROW, *plan.source_columns)
    mismatches, compared, worst = [], 0, 0.0
    done = 0  # rows [0, done) of `ordered` are in the store
    for first, last in groups:
        if first > done:  # the history before this request batch
            append_events(plan, store, rows.slice(done, first - done))
        req = rows.slice(first, last - first).to_dicts()
        cols, _ = validate_records([_record(r, plan) for r in req], schema, now_us=0)
        points = points_frame(cols, schema.polars_schema(), plan.timestamp)
        online = realtime_features(plan, store, points)
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
    return ParityReport(sum(b - a for a, b in groups), len(plan.feature_names), compared,
                        worst, mismatches)


def _groups(total: int, n: int, size: int, seed: int) -> list[tuple[int, int]]:
    """Non-overlapping runs [first, last) of consecutive rows, ~n rows in all."""
    starts = range(0, total - size + 1, size)
    k = min(max(n // size, 1), len(starts))
    return [(a, a + size) for a in sorted(random.Random(seed).sample(starts, k))]
