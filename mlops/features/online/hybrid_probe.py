"""The start-up probe of the hybrid path's rows backend (:func:`probe_hybrid_rows`).

A hybrid server finishes a small batch's materialized windows with the rows backend
(:func:`~mlops.features.online.request.hybrid_rows`) and a larger one with frames
(:func:`~mlops.features.online.request.hybrid_features`). Before it trusts the rows
backend, it materializes a sample of stored history into a private in-memory store, the
way ``action=materialize`` does (JSON payloads, non-finite windows kept aside), reads it
back both ways and compares every feature and the engine's status: any difference, and
the server serves hybrid with frames only.
"""
from __future__ import annotations

import random

import polars as pl

from mlops.features.backends import frame_columns, same_value
from mlops.features.compile import FeaturePlan
from mlops.features.online.materialize import materialize
from mlops.features.online.request import hybrid_features, hybrid_rows
from mlops.features.online.sqlite import SQLiteStore
from mlops.features.rules import STATUS


def probe_hybrid_rows(plan: FeaturePlan, history: pl.DataFrame, *, sample: int = 200,
                      seed: int = 0) -> list[dict]:
    """Differences between the rows and the frames backend of the hybrid path on
    ``sample`` events of ``history`` used as requests, over the windows of ``history``
    materialized as of its latest event (empty: none; the rows backend may serve).

    Example:
        >>> probe_hybrid_rows(plan, history, sample=200)  # doctest: +SKIP
        []
    """
    if "rows" not in plan.backends or not plan.windows or history.height == 0:
        return []
    rng = random.Random(seed)
    points = history[sorted(rng.sample(range(history.height), min(sample, history.height)))]
    store = SQLiteStore(":memory:")
    try:
        report = materialize(plan, history, store)
        now_us = int(pl.Series([report.as_of]).cast(pl.Datetime("us")).dt.epoch("us")[0])
        kw = dict(now_us=now_us, ttl_seconds=float("inf"), status=True)
        frames = hybrid_features(plan, store, points.select(list(plan.source_columns)), **kw).features
        rows = hybrid_rows(plan, store, frame_columns(plan, points), **kw).features
    finally:
        store.close()
    names = [*plan.feature_names, STATUS]
    diffs = []
    for i, (want, got) in enumerate(zip(frames.select(names).iter_rows(named=True), rows)):
        diffs += [{"point": i, "feature": n, "frames": want[n], "rows": got[n]}
                  for n in names if not same_value(want[n], got[n])]
    return diffs
