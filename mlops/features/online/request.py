"""Request-time features: the same FeaturePlan, evaluated against the online store.

- **realtime**: window features come from the entity's recent events in the store. A
  batch of requests is evaluated with ONE :func:`compute_at` call (one polars collect):
  the history is the stored events plus the batch's own events, so each request sees
  exactly what :func:`compute_features` would see (earlier events, windows
  ``[t - period, t)``, its own event and ties excluded), however requests are batched.
  Which rows count as events (a retry identical to a stored event counts once) is the
  plan's rule (:mod:`mlops.features.rules`), applied by :func:`compute_at` as offline.
  After scoring, :func:`append_events` stores the batch's events; the store ignores
  events it already holds (same event id, else same entity, time and payload), so
  retries and replays never count an event twice.
- **hybrid**: window features come from rows a batch job materialized
  (:func:`mlops.features.online.materialize.materialize`, each with its ``as_of`` time);
  row-level features come from the request; post-window derived features are evaluated
  with the plan's ``post_exprs``. A row older than ``ttl_seconds`` is stale and handled
  by the ``stale_policy``: ``warn`` (served, flagged), ``default`` (empty-window
  defaults, flagged) or ``refuse`` (the caller answers 503).
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import polars as pl

from mlops.features.aggregates import empty_value
from mlops.features.backends.frames import apply_derived, compute_at, row_stage, status_expr, working_columns
from mlops.features.backends.rows import hybrid_row_features
from mlops.features.compile import FeaturePlan
from mlops.features.online.codec import US, decode_rows, encode_rows, epoch_us, payload_columns
from mlops.features.online.store import FeatureStore
from mlops.features.rules import REJECTED_FEATURE, STATUS


def read_history(plan: FeaturePlan, store: FeatureStore, points: pl.DataFrame) -> pl.DataFrame:
    """Stored events of the points' entities within the longest window (one store call)."""
    schema = {c: points.schema[c] for c in plan.source_columns}
    ent, ts = plan.entity, plan.timestamp
    since = int(epoch_us(points, ts).min()) - plan.max_period_seconds * 1_000_000
    rows = store.read_events(points[ent].cast(pl.String).unique(maintain_order=True).to_list(),
                             since)
    if not rows:
        return pl.DataFrame(schema=schema)
    entities, times, payloads = zip(*rows)
    body = decode_rows(list(payloads), {c: schema[c] for c in payload_columns(plan)})
    return body.with_columns(pl.Series(ent, entities, dtype=schema[ent]),
                             pl.Series(ts, times, dtype=pl.Int64).cast(US)).select(list(schema))


def realtime_features(plan: FeaturePlan, store: FeatureStore, points: pl.DataFrame, *,
                      events: Sequence[bool] | None = None, status: bool = False) -> pl.DataFrame:
    """Features of every point, in order: stored history + the batch's own events.

    ``events`` (one flag per point, default all) says which points are events of the
    batch: a record the server refuses before features (a future time) is a point but
    never an event, so it counts in no batch-mate's window. ``status`` adds the engine's
    :data:`~mlops.features.rules.STATUS` column.

    Example:
        >>> feats = realtime_features(plan, store, points)  # doctest: +SKIP
        >>> append_events(plan, store, points)               # doctest: +SKIP
    """
    history = read_history(plan, store, points) if plan.windows else None
    if history is not None:
        own = points.select(history.columns)
        if events is not None and not all(events):
            own = own.filter(pl.Series(list(events), dtype=pl.Boolean))
        # stored events first, then the batch's own, in arrival order: the plan's rules
        # count an event stored and sent again (a retry), or sent twice, once
        history = pl.concat([history, own], how="vertical_relaxed")
    else:
        history = points.select(list(plan.source_columns))
    return compute_at(plan, history, points, raw_from="points", status=status).collect()


def append_events(plan: FeaturePlan, store: FeatureStore, points: pl.DataFrame,
                  event_ids: list[str | None] | None = None, *, now_us: int | None = None) -> int:
    """Store the points as events so later requests see them in their windows.

    ``event_ids`` (one per point, None where unknown) makes a second append of the same
    event a no-op; without ids an event is identified by entity, time and payload.
    ``now_us`` is the server's clock (retention keeps an event one longest window past
    it: see :class:`FeatureStore`). Returns how many events were new."""
    if not plan.windows:
        return 0
    return store.append_events(points[plan.entity].cast(pl.String).to_list(),
                               epoch_us(points, plan.timestamp).to_list(),
                               encode_rows(points, payload_columns(plan)), event_ids, now_us=now_us)


# a materialized row's windows that came out non-finite (rules.nonfinite: reject), as
# "name:value,..." (JSON has no inf): written by materialize, restored by the hybrid path
WINDOW_NONFINITE = "__window_nonfinite"


def window_defaults(plan: FeaturePlan, overrides: dict | None = None) -> dict[str, object]:
    """Empty-window value of every window feature (the aggregate table's: count, sum and
    distinct 0, else the spec's ``default``), overridden by ``overrides``."""
    out = {w.name: empty_value(w.agg, w.default) for w in plan.windows}
    out.update({k: v for k, v in (overrides or {}).items() if k in out})
    return out


def _window_schema(plan: FeaturePlan) -> dict[str, pl.DataType]:
    kinds = {f.name: f.kind for f in plan.features}
    return {w.name: (pl.String if kinds[w.name] == "categorical" else pl.Float64)
            for w in plan.windows}


@dataclass
class HybridResult:
    """Features of a hybrid batch (a frame from :func:`hybrid_features`, one dict per point
    from :func:`hybrid_rows`) plus freshness per row."""

    features: pl.DataFrame | list[dict]
    as_of_us: list[int | None]
    stale: list[bool]
    warnings: list[list[str]] = field(default_factory=list)


def hybrid_features(plan: FeaturePlan, store: FeatureStore, points: pl.DataFrame, *,
                    now_us: int, ttl_seconds: float, stale_policy: str = "warn",
                    defaults: dict | None = None, status: bool = False) -> HybridResult:
    """Materialized windows + request row-level features + post-window derived ones.

    The caller refuses (503) when ``stale_policy == "refuse"`` and any row is stale;
    here such rows keep their stored values. ``status`` adds the engine's
    :data:`~mlops.features.rules.STATUS`: the request's own verdict, else the one
    materialized with the windows (a window that came out non-finite under
    ``rules.nonfinite: reject``).
    """
    found = _materialized(plan, store, points[plan.entity].cast(pl.String).to_list(), now_us,
                          ttl_seconds, stale_policy)
    frame = row_stage(plan, points.lazy(), inputs=False)
    if plan.windows:
        aligned = _aligned(plan, found.payloads, window_defaults(plan, defaults))
        frame = pl.concat([frame, aligned], how="horizontal")
    out = apply_derived(plan, frame)
    if status:
        out = out.with_columns(status_expr(plan))
        if plan.windows:
            out = out.with_columns(pl.coalesce(STATUS, pl.when(pl.col(WINDOW_NONFINITE).is_not_null())
                                               .then(pl.lit(REJECTED_FEATURE))).alias(STATUS))
    out = out.drop([*working_columns(plan), WINDOW_NONFINITE], strict=False).collect()
    return HybridResult(out, found.as_of, found.stale, found.warnings)


def hybrid_rows(plan: FeaturePlan, store: FeatureStore, points: dict[str, list], *,
                now_us: int, ttl_seconds: float, stale_policy: str = "warn",
                defaults: dict | None = None, status: bool = False) -> HybridResult:
    """:func:`hybrid_features` of a few points by the rows backend: no frame is built.

    ``points`` are the source columns, one list of values each (the timestamp in epoch
    microseconds), as the request pipeline holds a batch; the features come back as one
    dict per point, bit for bit what :func:`hybrid_features` gives (the stored rows
    decoded by ``json.loads``; Python's and polars' float parsing are both correctly
    rounded). Raises ValueError when the plan has no rows backend.

    Example:
        >>> res = hybrid_rows(plan, store, {"user": ["a"], "ts": [t], "amount": [2.0]},
        ...                   now_us=t, ttl_seconds=3600)  # doctest: +SKIP
        >>> res.features[0]["amount_sum_1h"]              # doctest: +SKIP
        5.0
    """
    n = len(next(iter(points.values()), ()))
    entities = [None if e is None else str(e) for e in points.get(plan.entity, [None] * n)]
    found = _materialized(plan, store, entities, now_us, ttl_seconds, stale_policy)
    windows, rejected = _row_windows(plan, found.payloads, defaults)
    feats = hybrid_row_features(plan, points, windows, rejected, status=status)
    return HybridResult(feats, found.as_of, found.stale, found.warnings)


def _row_windows(plan: FeaturePlan, payloads: list[str | None],
                 defaults: dict | None) -> tuple[list[dict], list[bool]]:
    """The window values of every point from its payload (non-finite values restored from
    ``WINDOW_NONFINITE``), else the empty-window defaults; and whether it had any."""
    wschema = _window_schema(plan)
    numbers = tuple((n, dtype == pl.Float64) for n, dtype in wschema.items())
    rows = _decoded([p for p in payloads if p is not None])
    # every window a number and every stored value a float or null: a row holding exactly
    # the window names is its own values (the conversion below would copy it unchanged)
    as_is = all(number for _, number in numbers) and _floats_or_nulls(rows)
    decoded, names = iter(rows), wschema.keys()
    fallback = None
    windows, rejected = [], []
    for payload in payloads:
        if payload is None:
            if fallback is None:
                fallback = {n: _typed(v, wschema[n]) for n, v in window_defaults(plan, defaults).items()}
            windows.append(dict(fallback)), rejected.append(False)
            continue
        stored = next(decoded)
        if as_is and stored.keys() == names:
            windows.append(stored), rejected.append(False)
            continue
        get = stored.get
        values = {n: v if (v := get(n)) is None or not number else float(v) for n, number in numbers}
        kept = get(WINDOW_NONFINITE)
        if kept is not None:
            for part in kept.split(","):
                name, _, value = part.rpartition(":")
                if name in values and wschema[name] == pl.Float64:
                    values[name] = float(value)
        windows.append(values), rejected.append(kept is not None)
    return windows, rejected


def _floats_or_nulls(rows: list) -> bool:
    """Whether every decoded row is an object whose values are all floats or nulls."""
    try:
        return set(map(type, chain.from_iterable(map(dict.values, rows)))) <= _FLOAT_OR_NULL
    except TypeError:  # a row that is no object: the row-by-row path says what it is
        return False


_FLOAT_OR_NULL = {float, type(None)}


def _decoded(payloads: list[str]) -> list:
    """``json.loads`` of every payload, in one parse of ``[p1,p2,...]`` (the same parser, so
    the same values, without a call per payload: half the time for 100 rows); one by one
    when the joined text does not split back into one value per payload (a malformed
    payload then raises its own error)."""
    if len(payloads) > 1:
        try:
            values = json.loads("[" + ",".join(payloads) + "]")
        except ValueError:
            values = None
        if values is not None and len(values) == len(payloads):
            return values
    return [json.loads(p) for p in payloads]


def _typed(value, dtype: pl.DataType):
    """A default as the frames path types it (``pl.lit(value, dtype=dtype)``): plain
    numbers and strings directly, anything else through polars."""
    if value is None or (dtype == pl.String and isinstance(value, str)):
        return value
    if dtype == pl.Float64 and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return pl.select(pl.lit(value, dtype=dtype)).item()


@dataclass
class _Found:
    payloads: list[str | None]
    as_of: list[int | None]
    stale: list[bool]
    warnings: list[list[str]]


def _materialized(plan: FeaturePlan, store: FeatureStore, entities: list[str | None], now_us: int,
                  ttl_seconds: float, stale_policy: str) -> _Found:
    """Each point's materialized row (None: none, or stale under ``default``), its time,
    whether it is stale and the warnings saying so."""
    ent = plan.entity
    rows = store.read_features(entities) if plan.windows else {}
    ttl_us = ttl_seconds * 1_000_000
    hits = [rows.get(e) for e in entities]
    found = _Found([None if h is None else h[1] for h in hits], [None if h is None else h[0] for h in hits],
                   [h is not None and now_us - h[0] > ttl_us for h in hits], [[] for _ in hits])
    if None not in hits and True not in found.stale:
        return found  # every row present and fresh: nothing to say
    for i, (e, hit) in enumerate(zip(entities, hits)):
        if hit is None:
            if plan.windows:
                found.warnings[i].append(f"no materialized features for {ent}={e!r}; using empty-window defaults")
        elif found.stale[i]:
            if stale_policy == "default":
                found.payloads[i] = None
            found.warnings[i].append(
                f"stale features for {ent}={e!r} (age {(now_us - hit[0]) / 1e6:.0f} s > ttl {ttl_seconds:g} s)"
                + ("; using defaults" if stale_policy == "default" else ""))
    return found


def _aligned(plan: FeaturePlan, payloads: list[str | None], fallback: dict) -> pl.LazyFrame:
    """The window values of every point, from its payload or the empty-window defaults."""
    wschema = _window_schema(plan)
    present = [p for p in payloads if p is not None]
    schema = {**wschema, WINDOW_NONFINITE: pl.String}
    decoded = decode_rows(present, schema) if present else pl.DataFrame(schema=schema)
    it = iter(range(decoded.height))
    pos = [None if p is None else next(it) for p in payloads]
    windows = decoded.with_row_index("__i").lazy()
    return (pl.LazyFrame({"__i": pos}, schema={"__i": pl.UInt32})
            .join(windows, on="__i", how="left", maintain_order="left")
            .with_columns([pl.when(pl.col("__i").is_null())
                           .then(pl.lit(fallback[n], dtype=wschema[n]))
                           .otherwise(_restored(n) if wschema[n] == pl.Float64 else pl.col(n)).alias(n)
                           for n in wschema])
            .drop("__i"))


def _restored(name: str) -> pl.Expr:
    """A window value, or the non-finite one materialize kept aside for it."""
    kept = pl.col(WINDOW_NONFINITE).str.extract(rf"(?:^|,){re.escape(name)}:([^,]+)", 1)
    return pl.coalesce(kept.cast(pl.Float64), pl.col(name))
