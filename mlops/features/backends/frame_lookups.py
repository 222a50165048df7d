"""Single-value window features as point lookups: backward as-of joins.

``last`` (latest non-null value in ``[t - period, t)``) and ``since_last`` (seconds
from the latest event in ``[t - period, t)`` to ``t``) depend on one earlier row, not
on the whole window, so they compile to ``join_asof(strategy="backward",
allow_exact_matches=False)``: strictly before ``t`` (rows at ``t``, the point's own
event included, never match) and at most ``period`` back (polars' ``tolerance`` is
inclusive, matching the closed left edge). Among rows tied on the latest timestamp
the join takes the last one in input order, which is the documented tie-break of
``last``.

Cost per entity with n events: O(n) merge of two sorted runs (after the
O(n log n) sort that every window feature shares), independent of the period and
of how events are spread over time. One join per source column serves every
period of that column: the join runs with the longest period as tolerance and
each shorter period masks rows whose match is older than its own period.
"""
from __future__ import annotations

import polars as pl

from mlops.features.backends.frame_windows import input_column
from mlops.features.plan import WindowFeature

LOOKUP_AGGS = ("last", "since_last")
_MATCH_TS = "__lookup_ts"
_MATCH_VAL = "__lookup_val"


def _groups(windows: list[WindowFeature]) -> dict[str | None, list[WindowFeature]]:
    """Lookups sharing one join: ``last`` per source column, ``since_last`` (None) once."""
    out: dict[str | None, list[WindowFeature]] = {}
    for w in windows:
        out.setdefault(w.column if w.agg == "last" else None, []).append(w)
    return out


def add_lookups(left: pl.LazyFrame, history: pl.LazyFrame, windows: list[WindowFeature], *,
                entity: str, ts: str) -> pl.LazyFrame:
    """``left`` plus one raw column per lookup feature, rows in ``left``'s order.

    ``left`` and ``history`` must each be sorted by ``ts`` within each entity (sorted
    by ``ts``, or by (entity, ts), is enough); ``history`` holds only events, with their
    window inputs (:func:`~.frame_windows.input_column`). Raw values: ``last`` gives the value (null when
    nothing matched), ``since_last`` the matched event's timestamp; the caller turns
    them into features (defaults, seconds) exactly as it does for rolling windows.
    """
    for k, (column, ws) in enumerate(_groups(windows).items()):
        match_ts, match_val = f"{_MATCH_TS}{k}", f"{_MATCH_VAL}{k}"
        right = history.select(entity, pl.col(ts).alias(match_ts),
                               *([pl.col(input_column(column)).alias(match_val)] if column else []))
        if column:
            right = right.filter(pl.col(match_val).is_not_null())
        longest = max(w.seconds for w in ws)
        left = left.join_asof(right, left_on=ts, right_on=match_ts, by=entity,
                              strategy="backward", allow_exact_matches=False,
                              tolerance=f"{longest}s", check_sortedness=False,
                              coalesce=True)
        value = pl.col(match_val if column else match_ts)
        left = left.with_columns([
            (value if w.seconds == longest  # the join's tolerance already applied it
             else pl.when(pl.col(match_ts) >= pl.col(ts) - pl.duration(seconds=w.seconds))
             .then(value)).alias(w.name) for w in ws])
        left = left.drop([match_ts, *([match_val] if column else [])])
    return left
