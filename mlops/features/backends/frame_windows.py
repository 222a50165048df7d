"""Multi-row window aggregates over ``[t - period, t)``, per entity (frames backend).

:func:`add_windows` takes a frame sorted by (entity, timestamp) and adds columns aligned
row for row with it. The frame mixes events with rows that must never count (evaluation
points, duplicates, rejected records): ``__is_event`` is false for them and their
window inputs (:func:`input_column`) are null.

The aggregates are array operations over the whole sorted frame, every entity at once
(:mod:`.window_arrays`): each row's window is a range of rows found by one
``searchsorted`` per period, ``count`` and the exact ``sum``/``mean``/``std`` are
differences of prefix sums (of the event flag, of each value's exact digits), ``min`` and
``max`` range queries on a disjoint sparse table, ``distinct`` interval counting. Each is
O(n) or O(n log n) in the frame's rows, however the events are spread over entities: one
entity holding every event costs what 20,000 entities do.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl

from mlops.features.backends import window_arrays
from mlops.features.backends.entity_order import RowOrder
from mlops.features.plan import WindowFeature

IS_EVENT = "__is_event"
_T = "__t_int"
_E = "__entity_run"


def input_column(column: str) -> str:
    """The window input of ``column``: its value on events, null elsewhere."""
    return f"__in_{column}"


def add_windows(lf: pl.LazyFrame, windows: list[WindowFeature], *, entity: str,
                ts: str, presorted: bool = True) -> pl.LazyFrame:
    """``lf`` plus one raw column per ``count``, ``min``, ``max``, ``sum``, ``mean``,
    ``std`` and ``distinct`` feature, computed as arrays over the whole frame
    (:mod:`.window_arrays`): count, sum and distinct 0 on an empty window, the others
    null (the caller applies the defaults). ``presorted``: ``lf`` is sorted by (entity,
    timestamp); otherwise its rows stay in their order and the windows are computed
    through a permutation (:class:`.entity_order.RowOrder`), so no column is reordered
    but the window inputs."""
    if not windows:
        return lf
    schema = lf.collect_schema()
    t_int, per_second = _time_as_int(schema[ts], ts)
    coded = list(dict.fromkeys(w.column for w in windows if w.agg == "distinct"))
    codes = [_value_code(input_column(c), schema[input_column(c)]).alias(_code(c)) for c in coded
             if not schema[input_column(c)].is_float()]
    run = [pl.col(entity).rle_id().alias(_E)] if presorted else []
    lf = lf.with_columns(t_int.alias(_T), *run, *codes)
    out_schema = {**schema, **{w.name: pl.Float64 for w in windows}}
    order = None if presorted else (entity, ts)
    return lf.map_batches(partial(_window_frame, windows, per_second, order), schema=out_schema)


def _code(column: str) -> str:
    return f"__code_{column}"


def _window_frame(windows: list[WindowFeature], per_second: int, order: tuple[str, str] | None,
                  df: pl.DataFrame) -> pl.DataFrame:
    """The frame plus its window columns, without the working columns (``order``: the
    entity and time columns of a frame not sorted by them)."""
    rows = RowOrder(df[_E].to_numpy()) if order is None else RowOrder.of(df[order[0]], df[order[1]])
    t = df[_T]
    bounds = window_arrays.SortedWindows(rows.run, rows.take(t.fill_null(t.min() or 0).to_numpy()),
                                         max(w.seconds for w in windows) * per_second)
    ticks = {w.seconds: w.seconds * per_second for w in windows}
    spans = {s: (bounds.start(p), bounds.end) for s, p in ticks.items()}
    events = rows.take(df[IS_EVENT].fill_null(False).to_numpy())
    out: dict[str, np.ndarray] = {}
    by_column: dict[str, list[WindowFeature]] = {}
    for w in windows:
        if w.agg == "count":
            out[w.name] = window_arrays.window_count(events, *spans[w.seconds])
        else:
            by_column.setdefault(w.column, []).append(w)
    for column, ws in by_column.items():
        out.update(_column_windows(df, rows, column, ws, bounds, spans, ticks))
    work = [c for c in (_T, _E, *(_code(c) for c in by_column)) if c in df.columns]
    return df.drop(work).with_columns(
        [pl.Series(w.name, rows.put(out[w.name]), dtype=pl.Float64).fill_nan(None) for w in windows])


def _column_windows(df: pl.DataFrame, rows: RowOrder, column: str, windows: list[WindowFeature],
                    bounds: window_arrays.SortedWindows, spans: dict, ticks: dict) -> dict:
    """The window columns of one input column (in ``rows`` order)."""
    values = df[input_column(column)]
    present = rows.take(values.is_not_null().to_numpy())
    x = rows.take(values.to_numpy()) if values.dtype.is_float() else None
    out = {}
    sums = [w for w in windows if w.agg in ("sum", "mean", "std")]
    if sums:
        aggs: dict[int, list[str]] = {}
        for w in sums:
            aggs.setdefault(w.seconds, []).append(w.agg)
        done = window_arrays.exact_windows(x, present, aggs, spans)
        out.update({w.name: done[(w.seconds, w.agg)] for w in sums})
    for w in windows:
        if w.agg in ("min", "max"):
            out[w.name] = window_arrays.window_extreme(x, present, *spans[w.seconds], w.agg == "max")
        elif w.agg == "distinct":
            codes = ((x + 0.0).view(np.int64) if x is not None  # -0.0 and 0.0: one value
                     else rows.take(df[_code(column)].fill_null(0).cast(pl.Int64).to_numpy()))
            out[w.name] = window_arrays.window_distinct(codes, present, bounds, ticks[w.seconds])
    return out


def _time_as_int(dtype: pl.DataType, ts: str) -> tuple[pl.Expr, int]:
    """The timestamp as an integer and its ticks per second (exact, no rounding)."""
    if dtype == pl.Date:
        return pl.col(ts).cast(pl.Datetime("ms")).dt.epoch("ms"), 1_000
    unit = getattr(dtype, "time_unit", None) or "us"
    return pl.col(ts).dt.epoch(unit), {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]


def _value_code(column: str, dtype: pl.DataType) -> pl.Expr:
    """Equal values get equal codes (strings: categorical codes); nulls stay null."""
    if dtype == pl.String:
        return pl.col(column).cast(pl.Categorical).to_physical()
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        return pl.col(column).to_physical()
    return pl.col(column)
