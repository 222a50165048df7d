"""Multi-row window aggregates over ``[t - period, t)``, per entity (frames backend).

:func:`add_windows` adds columns aligned row for row with its frame, which is sorted by
(entity, timestamp) or in any order (the rows are then visited through a permutation,
:class:`.entity_order.RowOrder`, and stay where they are, or come out sorted). The frame
mixes events with rows that must never count (evaluation points, duplicates, rejected
records): ``__is_event`` is false for them and their window inputs (:func:`input_column`)
are null; duplicates of the ``identical`` rule can be left to this module, which compares
only rows tied on (entity, time).

The aggregates are array operations over blocks of whole entities in sorted order
(:mod:`.window_arrays`, about :data:`BLOCK` rows a block): each row's window is a range
of rows found by one ``searchsorted`` per period, ``count`` and the exact
``sum``/``mean``/``std`` are differences of prefix sums (of the event flag, of each
value's exact digits), ``min`` and ``max`` range queries on a disjoint sparse table,
``distinct`` interval counting. Each is O(n) or O(n log n) in the frame's rows, however
the events are spread over entities: one entity holding every event costs what 20,000
entities do.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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


def add_windows(lf: pl.LazyFrame, windows: list[WindowFeature], *, entity: str, ts: str,
                order: str = "presorted", identity: str | None = None) -> pl.LazyFrame:
    """``lf`` plus one raw column per ``count``, ``min``, ``max``, ``sum``, ``mean``,
    ``std`` and ``distinct`` feature, computed as arrays over the whole frame
    (:mod:`.window_arrays`): count, sum and distinct 0 on an empty window, the others
    null (the caller applies the defaults).

    ``order``: ``"presorted"`` (``lf`` is sorted by (entity, timestamp)), ``"input"``
    (rows stay in ``lf``'s order: the windows are computed through a permutation,
    :class:`.entity_order.RowOrder`, and only their inputs are reordered) or ``"sort"``
    (rows come out sorted by (entity, timestamp, input order)). ``identity`` (not with
    ``"presorted"``): a column whose equal values make one event; of equal rows only the
    first in ``lf``'s order stays an event (``IS_EVENT``; the duplicates rule, applied
    here because only rows tied on (entity, time) can be equal: a few rows to compare
    instead of a hash of every row). The column is dropped."""
    if not windows:
        return lf
    schema = lf.collect_schema()
    t_int, per_second = _time_as_int(schema[ts], ts)
    coded = list(dict.fromkeys(w.column for w in windows if w.agg == "distinct"))
    codes = [_value_code(input_column(c), schema[input_column(c)]).alias(_code(c)) for c in coded
             if not schema[input_column(c)].is_float()]
    run = [pl.col(entity).rle_id().alias(_E)] if order == "presorted" else []
    lf = lf.with_columns(t_int.alias(_T), *run, *codes)
    out_schema = {**{k: v for k, v in schema.items() if k != identity},
                  **{w.name: pl.Float64 for w in windows}}
    how = _How(entity, ts, order, identity, per_second)
    return lf.map_batches(partial(_window_frame, windows, how), schema=out_schema)


@dataclass(frozen=True)
class _How:
    entity: str
    ts: str
    order: str             # presorted | input | sort
    identity: str | None   # the duplicates rule's row identity, or None
    per_second: int        # time ticks per second


def _code(column: str) -> str:
    return f"__code_{column}"


def _window_frame(windows: list[WindowFeature], how: _How, df: pl.DataFrame) -> pl.DataFrame:
    """The frame plus its window columns, without the working columns. The sorted rows
    are cut at entity boundaries into blocks of about :data:`BLOCK` rows, computed one
    after the other: each block gathers its inputs and writes its results in place (the
    frame's order, or the sorted order with ``"sort"``), so the working arrays follow the
    block, not the frame."""
    rows = (RowOrder(df[_E].to_numpy()) if how.order == "presorted"
            else RowOrder.of(df[how.entity], df[how.ts]))
    t = df[_T]
    times = t.fill_null(t.min() or 0).to_numpy()
    flags = df[IS_EVENT].fill_null(False).to_numpy()
    inputs = {c: _Input.of(df, c) for c in dict.fromkeys(w.column for w in windows if w.column)}
    identity = df[how.identity] if how.identity else None
    max_ticks = max(w.seconds for w in windows) * how.per_second
    out = {w.name: np.empty(len(times)) for w in windows}
    events_out = np.empty(len(times), dtype=bool)

    def one_block(lo: int, hi: int) -> None:  # writes only its own rows of the results
        at = slice(lo, hi) if rows.perm is None else rows.perm[lo:hi]  # the block's frame rows
        to = slice(lo, hi) if how.order == "sort" else at  # where its results go
        bounds = window_arrays.SortedWindows(rows.run[lo:hi] - rows.run[lo], times[at], max_ticks)
        events = flags[at]
        if identity is not None:
            events = first_of_identity(identity, at, bounds.end, events)
        for name, values in _block(windows, how.per_second, bounds, events,
                                   {c: data.block(at) for c, data in inputs.items()}).items():
            out[name][to] = values
        events_out[to] = events
    _each_block(one_block, window_arrays.entity_blocks(rows.run, BLOCK))
    work = [c for c in (_T, _E, how.identity, *(_code(c) for c in inputs)) if c in df.columns]
    df = df.drop(work)[rows.perm] if how.order == "sort" else df.drop(work)
    columns = [pl.Series(IS_EVENT, events_out)]
    for w in windows:  # one result at a time (memory)
        column = pl.Series(w.name, out.pop(w.name), dtype=pl.Float64)
        columns.append(column.fill_nan(None) if w.agg in _MAY_BE_NAN else column)
    return df.with_columns(columns)


def _each_block(run, blocks: list[tuple[int, int]]) -> None:
    """``run(lo, hi)`` for every block, on polars' thread pool size of threads (numpy
    releases the GIL in its array loops, so blocks of whole entities run side by side
    on as many cores as polars itself uses; ``POLARS_MAX_THREADS`` caps both)."""
    workers = min(pl.thread_pool_size(), len(blocks))
    if workers <= 1:
        for lo, hi in blocks:
            run(lo, hi)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in [pool.submit(run, lo, hi) for lo, hi in blocks]:
            done.result()  # re-raises a block's error


_MAY_BE_NAN = ("mean", "std", "min", "max")  # NaN: no value in the window (null in the frame)


BLOCK = 1 << 17  # rows per block of whole entities (a bigger entity is a block of its own)


@dataclass(frozen=True)
class _Input:
    """One window input column in the frame's order: where it has a value, and the
    values (floats) or codes (equal values, equal codes; for ``distinct``)."""

    present: np.ndarray
    x: np.ndarray | None
    codes: np.ndarray | None

    @classmethod
    def of(cls, df: pl.DataFrame, column: str) -> _Input:
        values = df[input_column(column)]
        present = values.is_not_null().to_numpy()
        if values.dtype.is_float():
            return cls(present, values.to_numpy(), None)
        codes = df[_code(column)] if _code(column) in df.columns else None
        return cls(present, None, None if codes is None else codes.fill_null(0).to_numpy())

    def block(self, at) -> _Input:
        """The rows ``at`` (a slice or row numbers), in that order."""
        return _Input(self.present[at], None if self.x is None else self.x[at],
                      None if self.codes is None else self.codes[at].astype(np.int64))


def first_of_identity(identity: pl.Series, at, group: np.ndarray, events: np.ndarray) -> np.ndarray:
    """``events`` of a block of sorted rows (``at``: their rows in the frame, a slice or
    row numbers) without the events equal in ``identity`` to an earlier event: only
    events sharing their (entity, time) group (``group``: the group's first row in the
    block, :attr:`.window_arrays.SortedWindows.end`) are compared; ties keep input order
    within a group, so the first in the group is the first in input order."""
    n = len(group)
    next_same = np.zeros(n, dtype=bool)
    next_same[:-1] = group[1:] == group[:-1]
    tied = np.flatnonzero(events & (next_same | (group != np.arange(n))))
    if not len(tied):
        return events
    source = tied + at.start if isinstance(at, slice) else at[tied]
    pairs = pl.DataFrame({"g": group[tied], "k": identity.gather(source)})
    first = pairs.select(pl.struct("g", "k").is_first_distinct()).to_series().to_numpy()
    events = events.copy()
    events[tied[~first]] = False
    return events


def _block(windows: list[WindowFeature], per_second: int, bounds: window_arrays.SortedWindows,
           events: np.ndarray, inputs: dict[str, _Input]) -> dict[str, np.ndarray]:
    """Every window column over one block of sorted rows (``inputs``: the block's)."""
    ticks = {w.seconds: w.seconds * per_second for w in windows}
    spans = {s: (bounds.start(p), bounds.end) for s, p in ticks.items()}
    out: dict[str, np.ndarray] = {}
    for w in windows:
        if w.agg == "count":
            out[w.name] = window_arrays.window_count(events, *spans[w.seconds])
    for column, data in inputs.items():
        ws = [w for w in windows if w.column == column and w.agg != "count"]
        present, x = data.present & events, data.x
        sums = [w for w in ws if w.agg in ("sum", "mean", "std")]
        if sums:
            aggs: dict[int, list[str]] = {}
            for w in sums:
                aggs.setdefault(w.seconds, []).append(w.agg)
            done = window_arrays.exact_windows(x, present, aggs, spans)
            out.update({w.name: done[(w.seconds, w.agg)] for w in sums})
        for w in ws:
            if w.agg in ("min", "max"):
                out[w.name] = window_arrays.window_extreme(x, present, *spans[w.seconds], w.agg == "max")
            elif w.agg == "distinct":
                codes = (x + 0.0).view(np.int64) if x is not None else data.codes  # -0.0 is 0.0
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
