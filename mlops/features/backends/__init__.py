"""Backends: one feature plan, two evaluators that agree bit for bit.

- ``frames`` (:mod:`.frames`): polars over frames, lazily: training, batch scoring,
  materialization, large serving batches. Every plan has it.
- ``rows`` (:mod:`.rows`): plain Python over a few rows, for small realtime batches.
  A plan has it when every derived expression has an exact row form
  (:mod:`.row_exprs`); ``plan.backends`` says which the plan supports.

Both are built from the plan's expression trees, one table of aggregates
(:mod:`mlops.features.aggregates`) and the plan's event rules, so they compute the same
values. :func:`compare_backends` checks that on given history and points, and
:func:`probe_rows` on a sample of history, for a server to call before it trusts the
rows backend (and to fall back to frames, logged, when it reports a difference).

Example:
    >>> diffs = probe_rows(plan, history, sample=200)   # doctest: +SKIP
    >>> diffs == []                                      # doctest: +SKIP
    True
"""
from __future__ import annotations

import math
import random

import polars as pl

from mlops.features.backends.frames import compute_at
from mlops.features.backends.rows import row_features
from mlops.features.plan import FeaturePlan
from mlops.features.rules import STATUS

BACKENDS = ("frames", "rows")


def _sources(plan: FeaturePlan, frame: pl.DataFrame) -> pl.DataFrame:
    ts = plan.timestamp
    return (frame.select([c for c in plan.source_columns if c in frame.columns])
            .with_columns(pl.col(ts).cast(pl.Datetime("us")).dt.epoch("us")))


def frame_rows(plan: FeaturePlan, frame: pl.DataFrame) -> list[dict]:
    """The plan's source columns of ``frame`` as row dicts (timestamp: epoch us)."""
    return _sources(plan, frame).to_dicts()


def frame_columns(plan: FeaturePlan, frame: pl.DataFrame) -> dict[str, list]:
    """The plan's source columns of ``frame`` as lists (timestamp: epoch us), as the
    request pipeline holds a batch."""
    return _sources(plan, frame).to_dict(as_series=False)


def same_value(a, b, rel: float = 0.0) -> bool:
    """Equal as the backends must be: nulls with nulls, NaN with NaN, floats exactly
    (or within ``rel`` relative), anything else by ``==``."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
    return a == b


def compare_backends(plan: FeaturePlan, history: pl.DataFrame, points: pl.DataFrame, *,
                     rel: float = 0.0, status: bool = True) -> list[dict]:
    """Every feature of every point on which the two backends differ (empty: none).

    ``points`` must carry the plan's source columns (their own row-level values)."""
    if "rows" not in plan.backends:
        return []
    frames = compute_at(plan, history, points, status=status).collect()
    rows = row_features(plan, frame_rows(plan, history), frame_rows(plan, points), status=status)
    names = plan.feature_names + ([STATUS] if status else [])
    diffs = []
    for i, (want, got) in enumerate(zip(frames.select(names).iter_rows(named=True), rows)):
        for name in names:
            if not same_value(want[name], got[name], rel):
                diffs.append({"point": i, "feature": name, "frames": want[name],
                              "rows": got[name]})
    return diffs


def probe_rows(plan: FeaturePlan, history: pl.DataFrame, *, sample: int = 200,
               seed: int = 0) -> list[dict]:
    """Differences between the rows and the frames backend on ``sample`` events of
    ``history`` replayed as points over the whole history (each point at an event's own
    time: its own event and ties excluded). An empty list means the rows backend may
    serve; a server refuses it otherwise and falls back to frames."""
    if "rows" not in plan.backends or history.height == 0:
        return []
    rng = random.Random(seed)
    idx = sorted(rng.sample(range(history.height), min(sample, history.height)))
    return compare_backends(plan, history, history[idx])
