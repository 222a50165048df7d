"""Realtime features for small batches through the plan's rows backend: no polars query plan.

:func:`mlops.features.online.request.realtime_features` builds one lazy query (concat,
sort, rolling passes, joins) and collects it: right for a micro-batch of hundreds of
records, but for one record most of its cost is planning, not work. Here the same plan
is evaluated by its rows backend (:mod:`mlops.features.backends.rows`: plain Python
over the entity's few stored events, derived features as closures, aggregates from the
engine's one table); this module only feeds it from the online store (stored events,
decoded with one ``json.loads``, then the batch's own events; the batch's records are the
points). The values are the frames path's, bit for bit (``tests/features/
test_backend_equality.py``); a plan without the rows backend keeps the frames path.

:func:`small_batch_features` answers with a frame (the micro-batch path),
:func:`row_features` with plain dicts (the no-frame path, :mod:`.fast_path`).
:func:`encode_payloads` writes store payloads exactly as polars does.

Example:
    >>> feats = small_batch_features(plan, store, points)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import polars as pl

from mlops.features.backends.rows import row_features as evaluate_rows
from mlops.features.compile import FeaturePlan
from mlops.features.online import OnlineStore

SMALL_BATCH = 16      # records; larger micro-batches take the vectorized polars path


def supported(plan: FeaturePlan) -> bool:
    """True when the plan has a rows backend (every part has an exact row form)."""
    return "rows" in plan.backends


@dataclass(frozen=True)
class RowPlan:
    """A plan the no-frame path may evaluate (see :func:`compile_rows`)."""

    plan: FeaturePlan


def compile_rows(plan: FeaturePlan, kinds: dict[str, str] | None = None) -> RowPlan | None:
    """The plan for the no-frame path, or None when it has no rows backend (the caller
    keeps polars). ``kinds`` (request field kinds) is accepted for older callers."""
    return RowPlan(plan) if supported(plan) else None


def _history(plan: FeaturePlan, store: OnlineStore, entities: list[str],
             times: list[int]) -> list[dict]:
    """Stored events of the entities since the longest window before the earliest point,
    as rows (one ``json.loads`` for all payloads)."""
    ent, ts = plan.entity, plan.timestamp
    since = min(times) - plan.max_period_seconds * 1_000_000
    stored = store.read_events(list(dict.fromkeys(entities)), since)
    decoded = json.loads("[" + ",".join(p for _, _, p in stored) + "]") if stored else []
    for (e, t, _), d in zip(stored, decoded):  # fresh dicts: completed in place
        d[ent], d[ts] = e, t
    return decoded


def row_features(rp: RowPlan, store: OnlineStore, cols: dict[str, list]) -> list[dict]:
    """Feature values of every record (a dict per row, all of ``plan.features``), over the
    stored history plus the batch's own events (``cols``: request columns, times in epoch
    us). A retry of a stored event, or an event sent twice, counts as the plan's rules say."""
    plan = rp.plan
    ent, ts = plan.entity, plan.timestamp
    n = len(cols[ent])
    points = [{c: vals[i] for c, vals in cols.items()} for i in range(n)]
    for p in points:
        p[ent] = str(p[ent])  # the store keys entities as strings
    history = _history(plan, store, [p[ent] for p in points], cols[ts]) + points \
        if plan.windows else []
    return evaluate_rows(plan, history, points)


def small_batch_features(plan: FeaturePlan, store: OnlineStore, points: pl.DataFrame
                         ) -> pl.DataFrame:
    """The points with every feature (same values as ``realtime_features``)."""
    cols = {c: points[c].to_list() for c in points.columns if c != plan.timestamp}
    cols[plan.timestamp] = points[plan.timestamp].cast(pl.Datetime("us")).dt.epoch("us").to_list()
    rows = row_features(RowPlan(plan), store, cols)
    kinds = {f.name: pl.String if f.kind == "categorical" else pl.Float64 for f in plan.features}
    return points.with_columns(pl.Series(n, [r[n] for r in rows], dtype=kinds[n], strict=False)
                               for n in plan.feature_names)


def _json_float(v: float) -> str:
    """A float exactly as polars' ``struct.json_encode`` writes it (non-finite: null):
    Python's shortest repr, except small exponents (``1e-05`` -> ``0.00001``,
    ``1e-07`` -> ``1e-7``)."""
    if not math.isfinite(v):
        return "null"
    r = repr(v)
    if "e-" not in r:
        return r
    mant, exp = r.split("e-")
    n = int(exp)
    if n >= 6:
        return f"{mant}e-{n}"
    sign = "-" if mant.startswith("-") else ""
    return f"{sign}0.{'0' * (n - 1)}{mant.lstrip('-').replace('.', '')}"


def _json_value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return _json_float(v)
    return json.dumps(v, ensure_ascii=False)


def encode_payloads(plan: FeaturePlan, cols: dict[str, list]) -> list[str]:
    """The store payload of every record, byte for byte what
    :func:`mlops.serving.features_online.encode_rows` writes (so the store's
    same-payload dedup works across both paths)."""
    payload = [c for c in plan.source_columns if c not in (plan.entity, plan.timestamp)]
    keys = [json.dumps(c, ensure_ascii=False) for c in payload]
    n = len(cols[plan.entity])
    return ["{" + ",".join(f"{k}:{_json_value(cols[c][i])}" for k, c in zip(keys, payload))
            + "}" for i in range(n)]
