"""The rows backend: a :class:`FeaturePlan` evaluated over plain Python rows, no frames.

For a few records a polars query plan costs far more than the work, so the plan also
compiles (:func:`compile_row_steps`) into Python steps: raw and categorical columns,
derived expressions as closures (:mod:`.row_exprs`), window aggregates through the row
forms of :data:`mlops.features.aggregates.AGGREGATES`, the event rules of
:mod:`mlops.features.rules`. :func:`row_features` then gives exactly what the frames
backend's :func:`mlops.features.backends.frames.compute_at` gives for the same history
and points: same rules, same empty-window values, aggregates equal bit for bit. A plan
with a part that has no exact row form keeps ``backends == ("frames",)``.

Rows are dicts of source values as polars holds them (numbers, strings, None), the
timestamp as integer epoch microseconds. History rows are events in arrival order;
points are evaluation points (they never count in any window).

Example:
    >>> plan.backends                                              # doctest: +SKIP
    ('frames', 'rows')
    >>> row_features(plan, history=[{"user": "a", "ts": 0, "amount": 5.0}],
    ...              points=[{"user": "a", "ts": 10_000_000, "amount": 1.0}])  # doctest: +SKIP
    [{'amount': 1.0, 'amount_sum_1h': 5.0}]
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from math import isfinite

import polars as pl

from mlops.features.aggregates import AGGREGATES, empty_value
from mlops.features.backends.row_exprs import compile_expr
from mlops.features.plan import MISSING_CATEGORY, FeaturePlan
from mlops.features.rules import REJECTED_FEATURE, REJECTED_INPUT, STATUS

Step = tuple[str, Callable[[dict], object], bool]   # (name, fn(row), numeric)


@dataclass(frozen=True)
class RowSteps:
    """A plan as Python steps (built once per plan)."""

    sources: tuple[str, ...]              # source columns, as they come
    numbers: tuple[str, ...]              # ... of which those read as float (None stays None)
    raw: tuple[str, ...]
    categorical: tuple[str, ...]
    inputs: tuple[str, ...]               # numeric window inputs that are source columns only
    before: tuple[Step, ...]              # row-level derived features
    after: tuple[Step, ...]               # derived features after the windows
    string_windows: frozenset[str]        # window features whose value is a category
    key_floats: tuple[int, ...]           # positions of float columns in an event's identity
    direct: tuple | None                  # (column, convert) of window inputs, when an event
    #                                       needs no row stage (missing rule, no derived input)
    extras: tuple[str, ...] = ()          # what a row holds besides the plan's features
    checked: tuple[str, ...] = ()         # raw + inputs: numbers the nonfinite rule reads
    reject: bool = False                  # plan.rules.reject, read once per row


def _to_str(v):
    return v


def _number(dtype: pl.DataType) -> bool:
    """Sources whose Float64 cast ``float()`` reproduces (not decimals)."""
    return dtype.is_float() or dtype.is_integer() or dtype == pl.Boolean


def _source_kind(name: str, dtype: pl.DataType, plan_ts: str) -> str | None:
    """How an expression may read the source column (None: not at all, frames only)."""
    if name == plan_ts:
        tz = getattr(dtype, "time_zone", None)
        return "ts" if isinstance(dtype, pl.Datetime) and tz in (None, "UTC") else None
    return {pl.Float64: "float", pl.String: "str"}.get(dtype)


def compile_row_steps(plan: FeaturePlan, frame_schema: dict) -> RowSteps | None:
    """The plan's row program, or None when some part has no exact row form."""
    kinds: dict[str, str] = {}
    for c in plan.source_columns:
        kind = _source_kind(c, plan.schema[c], plan.timestamp)
        if kind is not None:
            kinds[c] = kind
    numbers = tuple(c for c in plan.source_columns if c != plan.timestamp and _number(plan.schema[c]))
    raw = tuple(f.name for f in plan.features if f.source == "raw")
    cats = tuple(f.name for f in plan.features if f.source == "categorical")
    if any(plan.schema[c] != pl.String and not plan.schema[c].is_integer() for c in cats):
        return None  # polars spells other types as strings its own way
    if any(not _number(plan.schema[c]) for c in raw):
        return None
    before = _derived_steps(plan, kinds, after=False)  # over the source columns
    kinds.update(dict.fromkeys(raw, "float"))
    kinds.update(dict.fromkeys(cats, "str"))
    strings = frozenset(f.name for f in plan.features if f.source == "window" and f.kind == "categorical")
    kinds.update({w.name: "str" if w.name in strings else "float" for w in plan.windows})
    after = _derived_steps(plan, kinds, after=True)
    if before is None or after is None or not _windows_ok(plan, kinds):
        return None
    features = {f.name for f in plan.features}
    inputs = tuple(dict.fromkeys(w.column for w in plan.windows
                                 if w.column and w.column not in features))
    floats = tuple(i for i, c in enumerate(plan.source_columns) if plan.schema[c].is_float())
    return RowSteps(tuple(plan.source_columns), numbers, raw, cats, inputs, before, after, strings,
                    floats, _direct(plan, raw, cats, inputs, kinds), _extras(plan, before),
                    raw + inputs, plan.rules.reject)


def _extras(plan: FeaturePlan, before: tuple) -> tuple[str, ...]:
    """The names a row holds that are no feature of the plan (the entity, the timestamp,
    sources read only by expressions or windows): dropped from a finished row."""
    names = set(plan.feature_names)
    held = [*plan.source_columns, *(name for name, _, _ in before)]
    return tuple(c for c in dict.fromkeys(held) if c not in names)


def _float_or_null(v):
    if v is None:
        return None
    v = float(v)
    return v if -math.inf < v < math.inf else None


def _category(v):
    return MISSING_CATEGORY if v is None else str(v)


def _direct(plan: FeaturePlan, raw, cats, inputs, kinds) -> tuple | None:
    """Window inputs read straight from an event's source values (the fast path of
    :func:`_events`): under the ``missing`` rule, when no window reads a derived column."""
    columns = list(dict.fromkeys(w.column for w in plan.windows if w.column))
    if plan.rules.reject or not set(columns) <= set(raw) | set(cats) | set(inputs):
        return None
    return tuple((c, _category if c in cats else _to_str if kinds.get(c) == "str"
                  else _float_or_null) for c in columns)


def _windows_ok(plan: FeaturePlan, kinds: dict[str, str]) -> bool:
    """Window inputs the row forms read as the frames do: numbers as floats, strings."""
    def ok(c):
        return kinds.get(c) in ("float", "str") or (c in plan.schema and _number(plan.schema[c]))
    return all(w.column is None or ok(w.column) for w in plan.windows)


def _derived_steps(plan: FeaturePlan, kinds: dict[str, str], *, after: bool) -> tuple | None:
    steps = []
    for d in plan.derived:
        if d.after_windows != after:
            continue
        expr = compile_expr(d.tree, kinds)
        if expr is None:
            return None
        if d.kind == "numeric" and expr.kind in ("float", "int", "decimal", "bool", "null"):
            fn = expr.fn if expr.kind in ("float", "decimal", "null") else _finish_number(expr.fn)
            steps.append((d.name, fn, True))
        elif d.kind == "categorical" and expr.kind in ("str", "null"):
            steps.append((d.name, _finish_category(expr.fn), False))
        else:
            return None
        kinds[d.name] = "float" if d.kind == "numeric" else "str"
    return tuple(steps)


def _finish_number(fn):
    def f(row):
        v = fn(row)
        return None if v is None else float(v)
    return f


def _finish_category(fn):
    def f(row):
        v = fn(row)
        return MISSING_CATEGORY if v is None else v
    return f


# ------------------------------------------------------------ evaluation
def _nonfinite(v) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _row_stage(plan: FeaturePlan, steps: RowSteps, src: dict) -> tuple[dict, bool]:
    """(row values, valid input), as the frames backend's ``row_stage``: row-level
    derived features over the typed sources, then raw and categorical features, the
    nonfinite rule applied to every numeric row-level value."""
    get = src.get
    row = {c: get(c) for c in steps.sources}
    return row, _stage(steps, row)


def _stage(steps: RowSteps, row: dict) -> bool:
    """:func:`_row_stage` on ``row``, a fresh dict of source values (changed in place);
    whether its input is valid."""
    null_rule = not steps.reject
    for c in steps.numbers:
        v = row[c]
        if v is not None:
            row[c] = float(v)
    bad = False
    for name, fn, numeric in steps.before:
        v = fn(row)
        if numeric and _nonfinite(v):
            bad, v = True, (None if null_rule else v)
        row[name] = v
    for c in steps.checked:
        v = row[c]
        if isinstance(v, float) and not isfinite(v):
            bad = True
            if null_rule:
                row[c] = None
    for c in steps.categorical:
        v = row[c]
        row[c] = MISSING_CATEGORY if v is None else str(v)
    return not bad or null_rule


def _identity(plan: FeaturePlan, steps: RowSteps, src: dict):
    """What makes two events the same (see :mod:`mlops.features.rules`): the event id,
    or the source values as they came (a NaN or +-inf as null; 3 == 3.0 and 0.0 == -0.0
    as the frames backend's key)."""
    eid = plan.rules.event_id
    if eid is not None:
        value = src.get(eid)
        return None if value is None else ("id", value)
    if plan.rules.duplicates == "all":
        return None
    key = tuple(map(src.get, plan.source_columns))
    for i in steps.key_floats:
        v = key[i]
        if v is not None and not -math.inf < v < math.inf:
            key = key[:i] + (None,) + key[i + 1:]
    return key


def _events(plan: FeaturePlan, steps: RowSteps, history: list[dict]) -> dict:
    """``{entity: (times, rows)}``: the history's events (valid, first of each identity),
    each entity's sorted by time (ties keep arrival order)."""
    out: dict = {}
    seen: set = set()
    ent, ts, direct = plan.entity, plan.timestamp, steps.direct
    for src in history:
        e, t = src.get(ent), src.get(ts)
        if e is None or t is None:
            continue
        if direct is not None:  # only the window inputs: no row stage needed
            row = {c: conv(src.get(c)) for c, conv in direct}
        else:
            row, valid = _row_stage(plan, steps, src)
            if not valid:
                continue
        key = _identity(plan, steps, src)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.setdefault(e, []).append((t, row))
    result = {}
    for e, evs in out.items():
        evs.sort(key=lambda x: x[0])
        result[e] = ([t for t, _ in evs], [r for _, r in evs])
    return result


def _windows(plan: FeaturePlan, steps: RowSteps, times: list[int], rows: list[dict],
             t: int, out: dict) -> None:
    """Every window feature at time ``t`` over one entity's events."""
    hi = bisect_left(times, t)
    cache: dict = {}
    for w in plan.windows:
        lo = bisect_left(times, t - w.seconds * 1_000_000, 0, hi)
        if w.column is not None and (w.column, lo) not in cache:
            cache[(w.column, lo)] = [v for v in (r[w.column] for r in rows[lo:hi]) if v is not None]
        values = cache.get((w.column, lo), [])
        latest = times[hi - 1] if hi > lo else None
        v = AGGREGATES[w.agg].row(values, hi - lo, latest, t)
        if v is None:
            v = empty_value(w.agg, w.default)
        if v is not None and w.name not in steps.string_windows and not isinstance(v, float):
            v = float(v)
        out[w.name] = v


def _point(plan: FeaturePlan, steps: RowSteps, events: dict, src: dict, status: bool) -> dict:
    row, valid = _row_stage(plan, steps, src)
    times, rows = events.get(row.get(plan.entity), ([], []))
    t = src.get(plan.timestamp)
    _windows(plan, steps, times, rows, t, row)
    null_rule = not plan.rules.reject
    bad_feature = False
    for w in plan.windows:
        if _nonfinite(row[w.name]):
            bad_feature, row[w.name] = True, (None if null_rule else row[w.name])
    return _finished(plan, steps, row, t, valid, bad_feature, status)


def _finished(plan: FeaturePlan, steps: RowSteps, row: dict, t, valid: bool, bad_feature: bool,
              status: bool) -> dict:
    """The derived features after the windows (each under the nonfinite rule), then
    ``row`` reduced to the plan's features (and the engine's status)."""
    for name, fn, numeric in steps.after:
        v = fn(row)
        if numeric and isinstance(v, float) and not isfinite(v):
            bad_feature, v = True, (v if steps.reject else None)
        row[name] = v
    if status:  # the usual verdict (None) without the call
        verdict = (None if valid and not bad_feature and t is not None and row.get(plan.entity) is not None
                   else _status(plan, row, t, valid, bad_feature))
    for name in steps.extras:  # the row becomes the features: no copy
        del row[name]
    if status:
        row[STATUS] = verdict
    return row


def _status(plan: FeaturePlan, row: dict, t, valid: bool, bad_feature: bool) -> str | None:
    if row.get(plan.entity) is None or t is None:
        return "no entity or timestamp"
    if plan.rules.reject and not valid:
        return REJECTED_INPUT
    if plan.rules.reject and bad_feature:
        return REJECTED_FEATURE
    return None


def row_features(plan: FeaturePlan, history: list[dict], points: list[dict], *,
                 status: bool = False) -> list[dict]:
    """Features of every point over the history's events (see the module docstring).

    Raises ValueError when the plan has no rows backend (``"rows" not in plan.backends``).
    With ``status``, each dict also carries :data:`mlops.features.rules.STATUS`.
    """
    steps = plan.row_steps
    if steps is None:
        raise ValueError(f"plan {plan.name!r} has no rows backend (backends: {plan.backends})")
    events = _events(plan, steps, history) if plan.windows else {}
    return [_point(plan, steps, events, p, status) for p in points]


def hybrid_row_features(plan: FeaturePlan, points: dict[str, list], windows: list[dict],
                        rejected: list[bool], *, status: bool = False) -> list[dict]:
    """Features of every point whose window values are given (the hybrid path: read from
    the online store), as the frames backend finishes them there
    (:func:`mlops.features.online.hybrid_features`): row-level features from the point,
    the windows as given, then the derived features after the windows. ``points`` are
    source columns (a list of values each; one absent is null). ``rejected[i]``
    says point ``i``'s windows came out non-finite when materialized under
    ``rules.nonfinite: reject`` (its status is then ``REJECTED_FEATURE``).

    Example:
        >>> hybrid_row_features(plan, {"user": ["a"], "ts": [0], "amount": [2.0]},
        ...                     [{"amount_sum_1h": 5.0}], [False])  # doctest: +SKIP
        [{'amount': 2.0, 'amount_sum_1h': 5.0}]
    """
    steps = plan.row_steps
    if steps is None:
        raise ValueError(f"plan {plan.name!r} has no rows backend (backends: {plan.backends})")
    ts, sources, out = plan.timestamp, steps.sources, []
    absent = [None] * len(windows)
    values = zip(*[points.get(c, absent) for c in sources], strict=True)
    for vals, found, bad in zip(values, windows, rejected, strict=True):
        row = dict(zip(sources, vals))  # a point's source values: no dict per request to copy
        t, valid = row[ts], _stage(steps, row)
        row.update(found)
        out.append(_finished(plan, steps, row, t, valid, bad, status))
    return out
