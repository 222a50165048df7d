"""Realtime window features for small batches, without a polars query plan per request.

:func:`mlops.features.online.request.realtime_features` builds one lazy query (concat,
sort, a rolling pass per period, join) and collects it: right for a micro-batch of
hundreds of records, but for one record most of its ~2-3 ms is planning, not work.
:func:`small_batch_features` computes the same window aggregates directly over each
entity's few recent events (read from the store, decoded with ``json.loads``), with the
semantics of :mod:`mlops.features.offline`:

- the window of a point at ``t`` is ``[t - period, t)`` over the stored events plus the
  batch's own events (the point's own event and ties excluded; an event present twice,
  same entity, time and payload, counts once);
- ``count`` counts events, the value aggregates ignore nulls; empty windows give
  ``count``/``sum``/``distinct`` 0 and the others the spec's ``default`` (else null);
  ``std`` is the sample deviation (null below two values), ``last`` the latest non-null
  value (ties by input order), ``since_last`` seconds since the latest event;

and then evaluates row-level and derived features with the plan's own polars
expressions (one small eager ``with_columns``). ``tests/serving/test_serving_fast_path.py``
checks it against :func:`realtime_features` on random histories (floats within 1e-9).

:func:`compile_rows` + :func:`row_features` go one step further for the single-record
path: no polars frame at all. Request values arrive as plain lists, stored events are
decoded with ``json.loads``, and row-level and derived features run as Python closures
(:mod:`mlops.serving.fast_exprs`); a plan with an expression outside that subset gets
None from :func:`compile_rows` and keeps the frame-based path.

Example:
    >>> feats = small_batch_features(plan, store, points)  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from mlops.features.compile import MISSING_CATEGORY, FeaturePlan
from mlops.features.offline import apply_derived
from mlops.features.online import OnlineStore
from mlops.serving.fast_exprs import compile_numeric

SMALL_BATCH = 16      # records; larger micro-batches take the vectorized polars path
_AGGS = {"count", "sum", "mean", "min", "max", "std", "distinct", "last", "since_last"}


def supported(plan: FeaturePlan) -> bool:
    """True when every window aggregate has a direct implementation here and reads a
    stored source column (a window over a row-level derived column needs the plan's
    expressions over the history: the polars path)."""
    stored = set(plan.source_columns) - {plan.entity, plan.timestamp}
    return all(w.agg in _AGGS and (w.column is None or w.column in stored)
               for w in plan.windows)


def _std(vals: list[float]) -> float | None:
    n = len(vals)
    if n < 2:
        return None
    mean = sum(vals) / n
    # d * d, not d ** 2: an overflow gives inf (then the record guard), never an exception
    return math.sqrt(sum((v - mean) * (v - mean) for v in vals) / (n - 1))


def _aggregate(agg: str, times: list[int], vals: list, t_us: int):
    """One window aggregate over the events in the window (``vals`` may hold None)."""
    if agg == "count":
        return float(len(times))
    if agg == "since_last":
        return (t_us - max(times)) / 1e6 if times else None
    present = [v for v in vals if v is not None]
    if agg == "sum":
        return float(sum(present)) if present else 0.0
    if agg == "distinct":
        return float(len(set(present)))
    if agg == "last":
        return present[-1] if present else None
    if not present:
        return None
    if agg == "mean":
        return sum(present) / len(present)
    if agg == "min":
        return float(min(present))
    if agg == "max":
        return float(max(present))
    return _std(present)


def _window_value(w, events: list[tuple[int, dict]], t: int):
    """Window ``w`` at time ``t`` over an entity's time-sorted events: [t - period, t)."""
    lo = t - w.seconds * 1_000_000
    inside = [ev for ev in events if lo <= ev[0] < t]
    vals = [ev[1][w.column] for ev in inside] if w.column else []
    v = _aggregate(w.agg, [ev[0] for ev in inside], vals, t)
    if v is None and w.default is not None and w.agg not in ("count", "sum", "distinct"):
        v = w.default
    return v


def _history(plan: FeaturePlan, store: OnlineStore, points: pl.DataFrame,
             entities: list[str], times: list[int]) -> dict[str, list[tuple[int, dict]]]:
    """``{entity: [(time, window input values), ...]}`` sorted by time: stored events
    since the longest window before the earliest point, then the batch's own events.

    Window inputs go through the plan's row expressions (e.g. a null category becomes
    the missing category), exactly as the polars path prepares its history."""
    columns = list(dict.fromkeys(w.column for w in plan.windows if w.column))
    payload = [c for c in plan.source_columns if c not in (plan.entity, plan.timestamp)]
    since = min(times) - plan.max_period_seconds * 1_000_000
    stored = store.read_events(list(dict.fromkeys(entities)), since)
    owners = [e for e, _, _ in stored] + entities
    stamps = [t for _, t, _ in stored] + times
    decoded = [json.loads(p) for _, _, p in stored]
    raw = {c: [d.get(c) for d in decoded] + points[c].to_list() for c in payload}
    frame = pl.DataFrame(raw, schema={c: points.schema[c] for c in payload}, strict=False)
    exprs = dict(plan.row_exprs)
    values = frame.select([exprs[c].alias(c) if c in exprs else pl.col(c) for c in columns])
    cols = [values[c].to_list() for c in columns]
    out: dict[str, list[tuple[int, dict]]] = {}
    seen = set()
    for i, (e, t) in enumerate(zip(owners, stamps)):
        key = (e, t, *(raw[c][i] for c in payload))
        if key in seen:  # a stored event sent again (a retry) counts once, as in the polars path
            continue
        seen.add(key)
        out.setdefault(e, []).append((t, {c: col[i] for c, col in zip(columns, cols)}))
    for events in out.values():
        events.sort(key=lambda x: x[0])  # stable: ties keep input order
    return out


def small_batch_features(plan: FeaturePlan, store: OnlineStore, points: pl.DataFrame
                         ) -> pl.DataFrame:
    """Features of every point, in order (same values as ``realtime_features``)."""
    ent, ts = plan.entity, plan.timestamp
    entities = points[ent].cast(pl.String).to_list()
    times = points[ts].cast(pl.Datetime("us")).dt.epoch("us").to_list()
    history = _history(plan, store, points, entities, times) if plan.windows else {}
    window_cols: dict[str, list] = {w.name: [] for w in plan.windows}
    for e, t in zip(entities, times):
        events = history.get(e, [])
        for w in plan.windows:
            v = _window_value(w, events, t)
            window_cols[w.name].append(v)
    kinds = {f.name: f.kind for f in plan.features}
    windows = [pl.Series(n, vals, dtype=pl.String if kinds.get(n) == "categorical"
                         else pl.Float64, strict=False) for n, vals in window_cols.items()]
    frame = points.with_columns(windows).lazy().with_columns(
        [e.alias(n) for n, e in plan.row_exprs])
    return apply_derived(plan, frame).collect()  # one collect: row-level + derived


# ---------------------------------------------------------------- no frame at all
def _to_float(v):
    # polars' strict=False cast of a decoded JSON value to Float64
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _to_category(v):
    return MISSING_CATEGORY if v is None else (v if isinstance(v, str) else str(v))


def _to_string(v):
    return v if v is None or isinstance(v, str) else str(v)


@dataclass(frozen=True)
class RowPlan:
    """A :class:`FeaturePlan` as Python steps over one row (a dict)."""

    plan: FeaturePlan
    convert: dict[str, Callable]              # source column -> typed value
    row_steps: tuple[tuple[str, Callable], ...]
    post_steps: tuple[tuple[str, Callable], ...]
    window_kinds: dict[str, Callable]         # window feature -> cast of its value


def _derived_step(d: dict, numeric: set[str]) -> Callable | None:
    if d["kind"] != "numeric":
        return None
    return compile_numeric(d["expr"], numeric)


def compile_rows(plan: FeaturePlan, kinds: dict[str, str]) -> RowPlan | None:
    """The row steps of ``plan`` (``kinds``: request field -> number/string/...), or
    None when the fast path cannot reproduce it exactly (the caller keeps polars)."""
    if not supported(plan):
        return None
    convert = {c: (_to_float if kinds.get(c) == "number" else _to_string)
               for c in plan.source_columns}
    numeric = {c for c in plan.source_columns if kinds.get(c) == "number"}
    derived = {d["name"]: d for d in plan.resolved["derived"]}
    steps = []
    for name, _ in plan.row_exprs:
        if name in derived:
            fn = _derived_step(derived[name], numeric)
            if fn is None:
                return None
            numeric.add(name)
        else:
            src = next(f.source for f in plan.features if f.name == name)
            fn = _raw_step(name, src)
        steps.append((name, fn))
    kinds_of = {f.name: f.kind for f in plan.features}
    window_kinds = {w.name: (_to_string if kinds_of.get(w.name) == "categorical" else _to_float)
                    for w in plan.windows}
    numeric |= {n for n, k in window_kinds.items() if k is _to_float}
    post = []
    for name, _ in plan.post_exprs:
        fn = _derived_step(derived[name], numeric)
        if fn is None:
            return None
        numeric.add(name)
        post.append((name, fn))
    return RowPlan(plan, convert, tuple(steps), tuple(post), window_kinds)


def _raw_step(name: str, source: str) -> Callable:
    if source == "categorical":
        return lambda row: _to_category(row[name])
    return lambda row: _to_float(row[name])


def _window_inputs(rp: RowPlan) -> dict[str, Callable]:
    """How a window's input column is prepared (the plan's row expression for it)."""
    plan = rp.plan
    sources = {f.name: f.source for f in plan.features}
    out = {}
    for c in dict.fromkeys(w.column for w in plan.windows if w.column):
        src = sources.get(c)
        out[c] = _to_category if src == "categorical" else (
            _to_float if src == "raw" else rp.convert[c])
    return out


def _row_history(rp: RowPlan, store: OnlineStore, cols: dict[str, list]
                 ) -> dict[str, list[tuple[int, dict]]]:
    """``{entity: [(time, window inputs), ...]}``: as :func:`_history`, without frames.

    A hot entity brings up to ``max_events_per_entity`` stored events: they are decoded
    with ONE ``json.loads``, and each costs one tuple and one small dict of its window
    inputs only. An event's identity is (entity, time, payload bytes): every writer encodes
    payloads byte for byte alike (:func:`encode_payloads`), so a retry of a stored event
    counts once without converting every payload column of every stored event."""
    plan = rp.plan
    entities, times = cols[plan.entity], cols[plan.timestamp]
    prep = [(c, rp.convert[c], fn) for c, fn in _window_inputs(rp).items()]
    since = min(times) - plan.max_period_seconds * 1_000_000
    stored = store.read_events(list(dict.fromkeys(entities)), since)
    decoded = json.loads("[" + ",".join(p for _, _, p in stored) + "]") if stored else []
    out: dict[str, list[tuple[int, dict]]] = {}
    seen = set()
    for (e, t, p), d in zip(stored, decoded):
        if (e, t, p) in seen:
            continue
        seen.add((e, t, p))
        out.setdefault(e, []).append((t, {c: fn(conv(d.get(c))) for c, conv, fn in prep}))
    for i, (e, t, p) in enumerate(zip(entities, times, encode_payloads(plan, cols))):
        if (e, t, p) in seen:  # a stored event sent again (a retry) counts once
            continue
        seen.add((e, t, p))
        out.setdefault(e, []).append((t, {c: fn(cols[c][i]) for c, _, fn in prep}))
    for events in out.values():
        events.sort(key=lambda x: x[0])  # stable: ties keep input order
    return out


def row_features(rp: RowPlan, store: OnlineStore, cols: dict[str, list]) -> list[dict]:
    """Feature values of every record (a dict per row, all of ``plan.features``), equal
    to :func:`small_batch_features` (``cols``: request columns, times in epoch us)."""
    plan = rp.plan
    ent, ts = plan.entity, plan.timestamp
    history = _row_history(rp, store, cols) if plan.windows else {}
    rows = []
    for i, (e, t) in enumerate(zip(cols[ent], cols[ts])):
        row = {c: cols[c][i] for c in plan.source_columns}
        events = history.get(e, [])
        for w in plan.windows:
            v = _window_value(w, events, t)
            row[w.name] = rp.window_kinds[w.name](v)
        row.update({name: fn(row) for name, fn in rp.row_steps})
        for name, fn in rp.post_steps:
            row[name] = fn(row)
        rows.append(row)
    return rows


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
