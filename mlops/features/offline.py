"""Evaluate a :class:`FeaturePlan` over event history (lazily).

Semantics (DESIGN.md section 4):

- a window of an evaluation point at time ``t`` covers ``[t - period, t)``: the
  point's own event and every event at the same timestamp are excluded;
- empty windows: ``count``/``sum``/``distinct`` give 0, the others the spec's
  ``default`` (null when none is given);
- ``since_last`` is seconds from the latest event in the window to ``t``;
- ``last`` is the latest non-null value in the window (ties broken by input order).

Two entry points share one implementation:

- :func:`compute_features`: every event is an evaluation point (training, batch scoring);
- :func:`compute_at`: evaluation points that are *not* events (a label spine, or
  serving requests whose own event must not count).
"""
from __future__ import annotations

import polars as pl

from mlops.features.compile import FeaturePlan, WindowFeature

_IS_EVENT = "__is_event"
_POINT = "__point"


def _agg_expr(w: WindowFeature, ts: str, spine: bool) -> pl.Expr:
    col = pl.col(w.column) if w.column else None
    if w.agg == "count":
        return (pl.col(_IS_EVENT).sum() if spine else pl.len()).cast(pl.Float64)
    if w.agg == "since_last":
        times = pl.col(ts).filter(pl.col(_IS_EVENT)) if spine else pl.col(ts)
        return times.max()
    if w.agg == "distinct":
        return col.drop_nulls().n_unique().cast(pl.Float64)
    if w.agg == "last":
        return col.drop_nulls().last()
    return {"sum": col.sum, "mean": col.mean, "min": col.min, "max": col.max,
            "std": col.std}[w.agg]().cast(pl.Float64)


def _finish_window(w: WindowFeature, ts: str) -> pl.Expr:
    """Turn the raw aggregate into the feature value (defaults, since_last)."""
    raw = pl.col(w.name)
    if w.agg == "since_last":
        raw = (pl.col(ts) - raw).dt.total_microseconds().cast(pl.Float64) / 1e6
    if w.default is not None and w.agg not in ("count", "sum", "distinct"):
        raw = raw.fill_null(w.default)
    return raw.alias(w.name)


def _periods(plan: FeaturePlan) -> dict[str, list[WindowFeature]]:
    out: dict[str, list[WindowFeature]] = {}
    for w in plan.windows:
        out.setdefault(f"{w.seconds}s", []).append(w)
    return out


def _rolling(plan: FeaturePlan, lf: pl.LazyFrame, spine: bool) -> list[pl.LazyFrame]:
    """One rolling pass per distinct period; outputs align row-for-row with ``lf``.

    ``lf`` must be sorted by (entity, timestamp). polars emits rolling groups in its
    own group order, so each output is re-sorted by (entity, timestamp) before it is
    placed next to ``lf``. Rows tied on (entity, timestamp) have identical window
    values (the window [t - period, t) excludes them all), so the stable re-sort
    restores the exact row alignment.
    """
    parts = []
    keys = [plan.entity, plan.timestamp]
    for period, ws in _periods(plan).items():
        aggs = [_agg_expr(w, plan.timestamp, spine).alias(w.name) for w in ws]
        parts.append(lf.rolling(index_column=plan.timestamp, period=period, closed="left",
                                group_by=plan.entity).agg(aggs)
                     .sort(keys, maintain_order=True)
                     .select([w.name for w in ws]))
    return parts


def apply_derived(plan: FeaturePlan, lf: pl.LazyFrame) -> pl.LazyFrame:
    """Derived features that depend on window features, in dependency order.

    Serving paths that obtain window values elsewhere (hybrid: the online store)
    finish with this same step, so derived logic exists once.
    """
    for name, expr in plan.post_exprs:
        lf = lf.with_columns(expr.alias(name))
    return lf


def _post(plan: FeaturePlan, lf: pl.LazyFrame) -> pl.LazyFrame:
    if plan.windows:
        lf = lf.with_columns([_finish_window(w, plan.timestamp) for w in plan.windows])
    return apply_derived(plan, lf)


def compute_features(plan: FeaturePlan, events: pl.LazyFrame | pl.DataFrame, *,
                     keep: list[str] | tuple[str, ...] = ()) -> pl.LazyFrame:
    """Features for every event, sorted by (entity, timestamp, input order).

    ``keep`` names extra source columns to carry through (ids, labels).

    Example:
        >>> lf = compute_features(plan, events, keep=["is_fraud"])  # doctest: +SKIP
    """
    lf = events.lazy()
    skip = {plan.entity, plan.timestamp, *plan.feature_names}
    base_cols = [plan.entity, plan.timestamp, *[k for k in keep if k not in skip]]
    lf = (lf.select(list(dict.fromkeys([*plan.source_columns, *base_cols])))
          .sort([plan.entity, plan.timestamp], maintain_order=True)
          .with_columns([e.alias(n) for n, e in plan.row_exprs]))
    if plan.windows:
        lf = pl.concat([lf, *_rolling(plan, lf, spine=False)], how="horizontal")
    lf = _post(plan, lf)
    return lf.select([*base_cols, *plan.feature_names])


def compute_at(plan: FeaturePlan, history: pl.LazyFrame | pl.DataFrame,
               points: pl.LazyFrame | pl.DataFrame, *, raw_from: str = "points") -> pl.LazyFrame:
    """Features at evaluation ``points`` over ``history`` events, in ``points`` order.

    ``points`` needs the entity and timestamp columns. With ``raw_from="points"``
    (serving) the points also carry the raw event fields, which feed raw and
    row-level features; with ``raw_from="asof"`` (a label spine) those come from
    the entity's latest event strictly before the point (as-of backward join).
    Points never count as events in any window.
    """
    if raw_from not in ("points", "asof"):
        raise ValueError("raw_from must be 'points' or 'asof'")
    ent, ts = plan.entity, plan.timestamp
    pts = points.lazy().with_row_index(_POINT)
    hist = (history.lazy().select(list(plan.source_columns))
            .with_columns([e.alias(n) for n, e in plan.row_exprs]))
    row_names = [n for n, _ in plan.row_exprs]
    if raw_from == "points":
        pts_rows = pts.with_columns([e.alias(n) for n, e in plan.row_exprs])
    else:
        asof = hist.select([ent, ts, *row_names]).rename({ts: "__src_ts"}).sort("__src_ts")
        pts_rows = (pts.sort(ts).join_asof(asof, left_on=ts, right_on="__src_ts", by=ent,
                                           strategy="backward", allow_exact_matches=False,
                                           check_sortedness=False)
                    .drop("__src_ts"))
    if not plan.windows:
        out = _post(plan, pts_rows)
        return out.sort(_POINT).drop(_POINT)
    events = hist.with_columns(pl.lit(True).alias(_IS_EVENT), pl.lit(None, pl.UInt32).alias(_POINT))
    point_rows = pts_rows.select([ent, ts, _POINT]).with_columns(pl.lit(False).alias(_IS_EVENT))
    combined = (pl.concat([events.select([ent, ts, *[c for c in _window_inputs(plan)],
                                          _IS_EVENT, _POINT]),
                           point_rows], how="diagonal_relaxed")
                .sort([ent, ts], maintain_order=True))
    rolled = pl.concat([combined.select([_IS_EVENT, _POINT]),
                        *_rolling(plan, combined, spine=True)], how="horizontal")
    rolled = rolled.filter(~pl.col(_IS_EVENT)).drop(_IS_EVENT)
    out = pts_rows.join(rolled, on=_POINT, how="left")
    return _post(plan, out).sort(_POINT).drop(_POINT)


def _window_inputs(plan: FeaturePlan) -> list[str]:
    return list(dict.fromkeys(w.column for w in plan.windows if w.column))


def sink_features(plan: FeaturePlan, events: pl.LazyFrame | pl.DataFrame, path, *,
                  keep: list[str] | tuple[str, ...] = (), rows_per_partition: int = 2_000_000,
                  total_rows: int | None = None) -> int:
    """Write the features of every event to ``path`` (parquet), bounded in memory.

    Window features need each entity's history sorted in memory, so the input is cut
    into entity partitions (by hash: an entity's whole history stays together, which
    keeps every window exact), each computed and written on its own, then streamed
    into one file. Peak memory follows the partition, not the dataset. Returns rows.
    """
    import tempfile
    from pathlib import Path

    lf = events.lazy()
    n = total_rows if total_rows is not None else lf.select(pl.len()).collect().item()
    parts = max(1, -(-n // rows_per_partition))
    if parts == 1:
        compute_features(plan, lf, keep=keep).sink_parquet(path)
        return n
    with tempfile.TemporaryDirectory(dir=Path(path).parent) as tmp:
        files = []
        for k in range(parts):
            # hash() is stable within a process, which is all a partition needs
            part = lf.filter(pl.col(plan.entity).hash(seed=0) % parts == k)
            files.append(Path(tmp) / f"part-{k:04d}.parquet")
            compute_features(plan, part, keep=keep).sink_parquet(files[-1])
        pl.scan_parquet(files).sink_parquet(path)
    return n
