"""The frames backend: a :class:`FeaturePlan` evaluated with polars (lazily).

Semantics (DESIGN.md section 4, shared with the rows backend :mod:`.rows`):

- a window of an evaluation point at time ``t`` covers ``[t - period, t)``: the
  point's own event and every event at the same timestamp are excluded;
- aggregates and their empty-window values come from one table
  (:data:`mlops.features.aggregates.AGGREGATES`); ``sum``, ``mean`` and ``std`` are
  exact (:mod:`mlops.features.exact`), so they do not depend on the history before the
  window; ``last`` is the latest non-null value (ties broken by input order);
- what is an event (valid, first of its identity) and what a non-finite value becomes
  follow the plan's rules (:mod:`mlops.features.rules`): only events count in windows.

Each aggregation compiles to the cheapest exact formulation, all O(n log n) or better
per entity (:mod:`.frame_windows`, :mod:`.frame_lookups`), so one huge entity costs
what its share of rows costs.

Two entry points share one implementation:

- :func:`compute_features`: every row is an evaluation point (training, batch scoring);
- :func:`compute_at`: evaluation points that are *not* events (a label spine, or
  serving requests whose own event must not count).
"""
from __future__ import annotations

import polars as pl

from mlops.features.aggregates import AGGREGATES, empty_value
from mlops.features.backends.entity_order import sort_by_entity_time
from mlops.features.backends.frame_lookups import add_lookups
from mlops.features.backends.frame_windows import IS_EVENT, add_windows, input_column
from mlops.features.plan import MISSING_CATEGORY, FeaturePlan, WindowFeature
from mlops.features.rules import REJECTED_FEATURE, REJECTED_INPUT, STATUS

_POINT = "__point"
_BAD_INPUT = "__bad_input"
_BAD_FEATURE = "__bad_feature"
_KEY = "__key"
_ROW = "__row"


def _ruled(plan: FeaturePlan, lf: pl.LazyFrame, names: list[str], flag: str) -> pl.LazyFrame:
    """Apply the nonfinite rule to numeric columns ``names``: null them (``missing``) or
    mark the row in ``flag`` (``reject``)."""
    if not names:
        return lf
    if plan.rules.reject:
        bad = pl.any_horizontal([~pl.col(n).is_finite().fill_null(True) for n in names])
        return lf.with_columns((pl.col(flag) | bad).alias(flag))
    return lf.with_columns([pl.when(pl.col(n).is_finite()).then(pl.col(n)).alias(n)
                            for n in names])


def row_stage(plan: FeaturePlan, lf: pl.LazyFrame, *, inputs: bool = True) -> pl.LazyFrame:
    """Row-level derived features (over the source columns, as the spec's expressions
    read them), then raw (Float64) and categorical (String, null as the missing
    category) features and (``inputs``: events only) the window inputs; the nonfinite
    rule applies to each numeric value as it is computed (``__bad_input``)."""
    lf = lf.with_columns(pl.lit(False).alias(_BAD_INPUT), pl.lit(False).alias(_BAD_FEATURE))
    schema = lf.collect_schema()
    if plan.rules.event_id is None and plan.rules.duplicates == "identical" \
            and all(c in schema for c in plan.source_columns):  # points may carry fewer
        lf = lf.with_columns(_identity(plan, schema))
    exprs = dict(plan.row_exprs)
    for d in plan.derived:
        if not d.after_windows:
            lf = lf.with_columns(exprs[d.name].alias(d.name))
            lf = _ruled(plan, lf, [d.name] if d.kind == "numeric" else [], _BAD_INPUT)
    raw = [f.name for f in plan.features if f.source == "raw"]
    cats = [f.name for f in plan.features if f.source == "categorical"]
    lf = lf.with_columns([pl.col(c).cast(pl.Float64) for c in raw]
                         + [pl.col(c).cast(pl.String).fill_null(MISSING_CATEGORY) for c in cats])
    lf = _ruled(plan, lf, raw, _BAD_INPUT)
    return _window_inputs(plan, lf, keep=inputs)


def _window_inputs(plan: FeaturePlan, lf: pl.LazyFrame, *, keep: bool) -> pl.LazyFrame:
    """One input column per window column: the feature's value, or the source value (a
    number as Float64 under the nonfinite rule, anything else as String). Without
    ``keep`` (points: they count in no window) only the rule's flag is kept, from the
    columns the points carry."""
    features = set(plan.feature_names)
    schema = lf.collect_schema()
    inputs, numeric = [], []
    for c in dict.fromkeys(w.column for w in plan.windows if w.column):
        if c not in schema:
            continue
        if c in features or not (schema[c].is_numeric() or schema[c] == pl.Boolean):
            inputs.append((pl.col(c) if c in features else pl.col(c).cast(pl.String)).alias(input_column(c)))
        else:
            inputs.append(pl.col(c).cast(pl.Float64).alias(input_column(c)))
            numeric.append(input_column(c))
    lf = _ruled(plan, lf.with_columns(inputs), numeric, _BAD_INPUT)
    return lf if keep else lf.drop([input_column(c) for c in dict.fromkeys(
        w.column for w in plan.windows if w.column) if c in schema])


def _identity(plan: FeaturePlan, schema) -> pl.Expr:
    """``__key``: an event's source values as they came (NaN and +-inf as null, -0.0 as
    0.0): rows with equal keys are one event under ``duplicates: identical``."""
    parts = [pl.when(pl.col(c).is_finite()).then(pl.col(c) + 0.0).alias(c)
             if schema[c].is_float() else pl.col(c) for c in plan.source_columns]
    return pl.struct(parts).alias(_KEY)


def event_flags(plan: FeaturePlan, lf: pl.LazyFrame, *, identical: bool = True) -> pl.LazyFrame:
    """``__is_event``: the row counts in windows (valid, first of its identity in input
    order); non-events get null window inputs. Call before any sort. Without
    ``identical`` the duplicates rule's identity is left to the windows
    (:func:`~.frame_windows.add_windows`, ``identity=``)."""
    rules, ent, ts = plan.rules, plan.entity, plan.timestamp
    valid = pl.col(ent).is_not_null() & pl.col(ts).is_not_null()
    if rules.reject:
        valid = valid & ~pl.col(_BAD_INPUT)
    if rules.event_id is not None:
        key = pl.col(rules.event_id)
        first = key.is_null() | key.is_first_distinct().over(valid)
    elif rules.duplicates == "identical" and identical:
        first = pl.col(_KEY).is_first_distinct().over(valid)
    else:
        first = pl.lit(True)
    lf = lf.with_columns((valid & first).alias(IS_EVENT))
    names = [input_column(c) for c in dict.fromkeys(w.column for w in plan.windows if w.column)]
    return lf.with_columns([pl.when(pl.col(IS_EVENT)).then(pl.col(n)).alias(n) for n in names])


def _by_form(plan: FeaturePlan) -> dict[str, list[WindowFeature]]:
    out: dict[str, list[WindowFeature]] = {}
    for w in plan.windows:
        out.setdefault(AGGREGATES[w.agg].frame, []).append(w)
    return out


def _multi_row(plan: FeaturePlan, lf: pl.LazyFrame, forms: dict, *, order: str = "presorted",
               identity: str | None = None) -> pl.LazyFrame:
    """``lf`` plus the count, extreme, exact and distinct window columns (raw: not yet
    defaulted); ``order`` and ``identity`` as :func:`~.frame_windows.add_windows`."""
    return add_windows(lf, _multi_windows(forms), entity=plan.entity, ts=plan.timestamp,
                       order=order, identity=identity)


def _multi_windows(forms: dict) -> list[WindowFeature]:
    return [w for form in ("count", "extreme", "exact", "distinct") for w in forms.get(form, [])]


def _finish_window(w: WindowFeature, ts: str) -> pl.Expr:
    """The raw aggregate as the feature value (empty-window value, since_last)."""
    raw = pl.col(w.name)
    if w.agg == "since_last":
        # times the reciprocal, as polars divides by a constant (and the rows backend)
        raw = (pl.col(ts) - raw).dt.total_microseconds().cast(pl.Float64) * (1 / 1e6)
    empty = empty_value(w.agg, w.default)
    if empty is not None:
        raw = raw.fill_null(empty)
    return raw.alias(w.name)


def apply_derived(plan: FeaturePlan, lf: pl.LazyFrame) -> pl.LazyFrame:
    """Derived features that depend on window features, in dependency order, each under
    the nonfinite rule. Serving paths that obtain window values elsewhere (hybrid: the
    online store) finish with this same step, so derived logic exists once."""
    lf = _with_flags(lf)
    exprs = dict(plan.post_exprs)
    for d in plan.derived:
        if d.after_windows:
            lf = lf.with_columns(exprs[d.name].alias(d.name))
            lf = _ruled(plan, lf, [d.name] if d.kind == "numeric" else [], _BAD_FEATURE)
    return lf


def _with_flags(lf: pl.LazyFrame) -> pl.LazyFrame:
    have = lf.collect_schema()
    return lf.with_columns([pl.lit(False).alias(f) for f in (_BAD_INPUT, _BAD_FEATURE)
                            if f not in have])


def _post(plan: FeaturePlan, lf: pl.LazyFrame) -> pl.LazyFrame:
    lf = _with_flags(lf)
    if plan.windows:
        lf = lf.with_columns([_finish_window(w, plan.timestamp) for w in plan.windows])
        numeric = [f.name for f in plan.features if f.source == "window" and f.kind == "numeric"]
        lf = lf.with_columns([pl.col(n).cast(pl.Float64) for n in numeric])
        lf = _ruled(plan, lf, numeric, _BAD_FEATURE)
    return apply_derived(plan, lf)


def status_expr(plan: FeaturePlan) -> pl.Expr:
    """Why a row is not scorable (null when it is): :data:`mlops.features.rules.STATUS`
    from the rule flags of :func:`row_stage` and :func:`apply_derived` (the hybrid path,
    which gets its windows elsewhere, reads it after those two steps)."""
    reject = plan.rules.reject
    return (pl.when(pl.col(plan.entity).is_null() | pl.col(plan.timestamp).is_null())
            .then(pl.lit("no entity or timestamp"))
            .when(pl.lit(reject) & pl.col(_BAD_INPUT)).then(pl.lit(REJECTED_INPUT))
            .when(pl.lit(reject) & pl.col(_BAD_FEATURE)).then(pl.lit(REJECTED_FEATURE))
            .otherwise(pl.lit(None, dtype=pl.String)).alias(STATUS))


def compute_features(plan: FeaturePlan, events: pl.LazyFrame | pl.DataFrame, *,
                     keep: list[str] | tuple[str, ...] = (), status: bool = False,
                     event_flag: bool = False, input_order: bool = False) -> pl.LazyFrame:
    """Features for every row, sorted by (entity, timestamp, input order), or with
    ``input_order`` in the input's own order (cheaper: no column is reordered).

    ``keep`` names extra source columns to carry through (ids, labels); ``status`` adds
    :data:`mlops.features.rules.STATUS` (null when the row is scorable); ``event_flag``
    adds ``IS_EVENT`` (:data:`~mlops.features.backends.frame_windows.IS_EVENT`: the row
    counts in windows; a duplicate or an invalid row does not).

    Example:
        >>> lf = compute_features(plan, events, keep=["is_fraud"])  # doctest: +SKIP
    """
    ent, ts = plan.entity, plan.timestamp
    skip = {ent, ts, *plan.feature_names}
    base_cols = [ent, ts, *[k for k in keep if k not in skip]]
    lf = events.lazy().select(list(dict.fromkeys([*plan.source_columns, *base_cols])))
    forms = _by_form(plan)
    # duplicates are equal rows, so tied on (entity, time): the windows, which group rows
    # by (entity, time), find them among the few tied rows instead of hashing every row
    defer = bool(_multi_windows(forms)) and plan.rules.event_id is None \
        and plan.rules.duplicates == "identical"
    lf = event_flags(plan, row_stage(plan, lf), identical=not defer)
    if not defer:
        lf = lf.drop(_KEY, strict=False)  # the identity key has done its work
    lf = _windowed(plan, _needed(plan, lf, base_cols), forms, input_order=input_order,
                   identity=_KEY if defer else None)
    lf = _post(plan, lf)
    restore = input_order and bool(forms.get("lookup"))
    out = lf.select([*base_cols, *plan.feature_names, *([status_expr(plan)] if status else []),
                     *([IS_EVENT] if event_flag else []), *([_ROW] if restore else [])])
    return out.sort(_ROW).drop(_ROW) if restore else out


def _needed(plan: FeaturePlan, lf: pl.LazyFrame, base_cols: list[str]) -> pl.LazyFrame:
    """Only the columns the windows and the output read (a sort moves every column)."""
    read = {*base_cols, *plan.feature_names,
            *(c for _, e in plan.post_exprs for c in e.meta.root_names())}
    return lf.select([c for c in lf.collect_schema() if c not in plan.source_columns or c in read])


def _windowed(plan: FeaturePlan, lf: pl.LazyFrame, forms: dict, *, input_order: bool,
              identity: str | None) -> pl.LazyFrame:
    """``lf`` plus its raw window columns: rows sorted by (entity, time), or (``input_order``)
    in ``lf``'s order (lookups join on rows in time order: then ``_ROW`` restores it)."""
    ent, ts = plan.entity, plan.timestamp
    lookups = forms.get("lookup")
    if input_order and lookups:
        lf = lf.with_row_index(_ROW)
    if _multi_windows(forms):
        order = "input" if input_order and not lookups else "sort"
        lf = _multi_row(plan, lf, forms, order=order, identity=identity)
    elif lookups or not input_order:
        lf = sort_by_entity_time(lf, ent, ts)
    if lookups:
        lf = add_lookups(lf, lf.filter(pl.col(IS_EVENT)), lookups, entity=ent, ts=ts)
    return lf


def compute_at(plan: FeaturePlan, history: pl.LazyFrame | pl.DataFrame,
               points: pl.LazyFrame | pl.DataFrame, *, raw_from: str = "points",
               status: bool = False) -> pl.LazyFrame:
    """Features at evaluation ``points`` over ``history`` rows, in ``points`` order.

    ``points`` needs the entity and timestamp columns. With ``raw_from="points"``
    (serving) the points also carry the raw event fields, which feed raw and
    row-level features; with ``raw_from="asof"`` (a label spine) those come from
    the entity's latest event strictly before the point (as-of backward join).
    Points never count as events in any window; history rows count when the plan's
    rules make them events. ``status`` as in :func:`compute_features`.
    """
    if raw_from not in ("points", "asof"):
        raise ValueError("raw_from must be 'points' or 'asof'")
    ent, ts = plan.entity, plan.timestamp
    forms = _by_form(plan)
    multi = forms.get("count", []) + forms.get("extreme", []) + forms.get("exact", []) \
        + forms.get("distinct", [])
    # as-of joins need time order within each entity: a sort by time alone gives it
    # and is cheaper than by (entity, time); rolling windows need (entity, time).
    # The points travel whole through the sorted pipeline and one sort on their integer
    # index restores their order (cheaper than sorting a narrow copy and pasting its
    # columns back next to the points: measured 1.3x slower on 1M points)
    order = [ent, ts] if multi else [ts]
    pts = points.lazy().with_row_index(_POINT).sort(order, maintain_order=True)
    source = history.lazy().select(list(plan.source_columns))
    hist = event_flags(plan, row_stage(plan, source))
    events = hist.filter(pl.col(IS_EVENT)).sort(ts, maintain_order=True)
    at = _points(plan, pts, events, raw_from)
    if forms.get("lookup"):
        at = add_lookups(at, events, forms["lookup"], entity=ent, ts=ts)
    if multi:
        # the points come out of the combined frame in ``at``'s (entity, time) order
        at = pl.concat([at, _multi_row_at(plan, events, at, forms)],
                       how="horizontal")
    out = _post(plan, at)
    if status:
        out = out.with_columns(status_expr(plan))
    return out.sort(_POINT).drop(working_columns(plan), strict=False)


def working_columns(plan: FeaturePlan) -> list[str]:
    """Working columns the points carry through :func:`compute_at` (and the hybrid path)."""
    return [_POINT, _BAD_INPUT, _BAD_FEATURE, _KEY]


def _points(plan: FeaturePlan, pts: pl.LazyFrame, events: pl.LazyFrame,
            raw_from: str) -> pl.LazyFrame:
    """The points with their row-level features: their own, or the latest event's."""
    ent, ts = plan.entity, plan.timestamp
    if raw_from == "points":
        return row_stage(plan, pts, inputs=False)
    row_names = [n for n, _ in plan.row_exprs]
    at = pts.with_columns(pl.lit(False).alias(_BAD_INPUT))
    if not row_names:
        return at  # nothing row-level to carry over from the earlier event
    asof = events.select([ent, ts, *row_names]).rename({ts: "__src_ts"})
    return at.join_asof(asof, left_on=ts, right_on="__src_ts", by=ent, strategy="backward",
                        allow_exact_matches=False, check_sortedness=False).drop("__src_ts")


def _multi_row_at(plan: FeaturePlan, events: pl.LazyFrame, keys: pl.LazyFrame,
                  forms: dict) -> pl.LazyFrame:
    """Count, extreme, exact and distinct values at the points, in ``keys`` order
    (points sorted by entity, time; only their entity and time are read): points ride
    along with the events (flagged, inputs null, so they never count) and are picked
    out afterwards. The stable sort places each point after the events at its timestamp
    and keeps ``keys`` order among points."""
    ent, ts = plan.entity, plan.timestamp
    inputs = [input_column(c) for c in dict.fromkeys(w.column for w in plan.windows if w.column)]
    rolling = [w.name for w in plan.windows if AGGREGATES[w.agg].frame in ("count", "extreme", "exact")]
    names = rolling + [w.name for w in forms.get("distinct", [])]
    combined = (pl.concat([events.select([ent, ts, IS_EVENT, *inputs]),
                           keys.select([ent, ts]).with_columns(pl.lit(False).alias(IS_EVENT))],
                          how="diagonal_relaxed")
                .sort([ent, ts], maintain_order=True))
    lookups = {k: v for k, v in forms.items() if k != "lookup"}
    out = _multi_row(plan, combined, lookups)
    return out.filter(~pl.col(IS_EVENT)).select(names)


def sink_features(plan: FeaturePlan, events: pl.LazyFrame | pl.DataFrame, path, *,
                  keep: list[str] | tuple[str, ...] = (), rows_per_partition: int = 2_000_000,
                  total_rows: int | None = None, metadata: dict[str, str] | None = None) -> int:
    """Write the features of every event to ``path`` (parquet), bounded in memory.

    Window features need each entity's history sorted in memory, so the input is cut
    into entity partitions (by hash: an entity's whole history stays together, which
    keeps every window exact), each computed on its own and appended to the one output
    file as row groups (no second pass over the output). Peak memory follows the
    partition, not the dataset. Rows keep the input's order (within each partition):
    a table needs no particular order, and reordering every column costs more than the
    windows. ``metadata`` goes into the parquet footer (see :mod:`mlops.features.tables`).
    Returns rows.
    """
    lf = events.lazy()
    n = total_rows if total_rows is not None else lf.select(pl.len()).collect().item()
    parts = max(1, -(-n // rows_per_partition))
    if parts == 1:
        compute_features(plan, lf, keep=keep, input_order=True).sink_parquet(path, metadata=metadata)
        return n
    import pyarrow.parquet as pq  # here: one partition needs no pyarrow

    writer = None
    try:
        for k in range(parts):
            # hash() is stable within a process, which is all a partition needs
            part = lf.filter(pl.col(plan.entity).hash(seed=0) % parts == k)
            table = compute_features(plan, part, keep=keep, input_order=True).collect().to_arrow()
            if writer is None:
                schema = table.schema.with_metadata({**(table.schema.metadata or {}),
                                                     **(metadata or {})})
                writer = pq.ParquetWriter(str(path), schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
            del table
    finally:
        if writer is not None:
            writer.close()
    return n
