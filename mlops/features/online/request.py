"""Request-time features: the same FeaturePlan, evaluated against the online store.

- **realtime**: window features come from the entity's recent events in the store. A
  batch of requests is evaluated with ONE :func:`compute_at` call (one polars collect):
  the history is the stored events plus the batch's own events, so each request sees
  exactly what :func:`compute_features` would see (earlier events, windows
  ``[t - period, t)``, its own event and ties excluded), however requests are batched.
  A batch event identical to a stored one (a client retry) or to another batch event
  counts once. After scoring, :func:`append_events` stores the batch's events; the
  store ignores events it already holds (same event id, else same entity, time and
  payload), so retries and replays never count an event twice.
- **hybrid**: window features come from rows a batch job materialized with
  :func:`materialize` (each with its ``as_of`` time); row-level features come from the
  request; post-window derived features are evaluated with the plan's ``post_exprs``.
  A row older than ``ttl_seconds`` is stale and handled by the ``stale_policy``:
  ``warn`` (served, flagged), ``default`` (empty-window defaults, flagged) or
  ``refuse`` (the caller answers 503).

Store payloads are JSON objects encoded and decoded with vectorized polars
(``struct.json_encode`` / ``str.json_decode``), never row by row in Python.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from mlops.errors import DataError, ServingError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import apply_derived, compute_at
from mlops.features.online.sqlite import OnlineStore

PLAN_META_KEY = "features.plan_hash"
_US = pl.Datetime("us")


def points_frame(columns: dict[str, list], schema: dict[str, pl.DataType],
                 timestamp: str) -> pl.DataFrame:
    """Request columns (timestamps as epoch microseconds) -> a typed points frame."""
    data = {c: pl.Series(c, v, dtype=pl.Int64 if c == timestamp else schema[c], strict=False)
            for c, v in columns.items()}
    data[timestamp] = data[timestamp].cast(_US)
    return pl.DataFrame(data)


def _payload_columns(plan: FeaturePlan) -> list[str]:
    return [c for c in plan.source_columns if c not in (plan.entity, plan.timestamp)]


def encode_rows(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    """One JSON object per row of ``frame[columns]`` (vectorized)."""
    if not columns:
        return ["{}"] * frame.height
    return frame.select(pl.struct(columns).struct.json_encode()).to_series().to_list()


def decode_rows(payloads: list[str], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Inverse of :func:`encode_rows` with explicit dtypes (missing keys -> null)."""
    if not schema:
        return pl.DataFrame(height=len(payloads))
    return (pl.Series("p", payloads, dtype=pl.String)
            .str.json_decode(pl.Struct(schema)).struct.unnest())


def _ts_us(frame: pl.DataFrame, ts: str) -> pl.Series:
    return frame[ts].cast(_US).dt.epoch("us")


def read_history(plan: FeaturePlan, store: OnlineStore, points: pl.DataFrame) -> pl.DataFrame:
    """Stored events of the points' entities within the longest window (one store call)."""
    schema = {c: points.schema[c] for c in plan.source_columns}
    ent, ts = plan.entity, plan.timestamp
    since = int(_ts_us(points, ts).min()) - plan.max_period_seconds * 1_000_000
    rows = store.read_events(points[ent].cast(pl.String).unique(maintain_order=True).to_list(),
                             since)
    if not rows:
        return pl.DataFrame(schema=schema)
    entities, times, payloads = zip(*rows)
    body = decode_rows(list(payloads), {c: schema[c] for c in _payload_columns(plan)})
    return body.with_columns(pl.Series(ent, entities, dtype=schema[ent]),
                             pl.Series(ts, times, dtype=pl.Int64).cast(_US)).select(list(schema))


def realtime_features(plan: FeaturePlan, store: OnlineStore, points: pl.DataFrame
                      ) -> pl.DataFrame:
    """Features of every point, in order: stored history + the batch's own events.

    Example:
        >>> feats = realtime_features(plan, store, points)  # doctest: +SKIP
        >>> append_events(plan, store, points)               # after scoring
    """
    history = read_history(plan, store, points) if plan.windows else None
    if history is not None:
        own = points.select(history.columns)
        # an event already stored (a retry) or sent twice in one batch counts once
        history = pl.concat([history, own], how="vertical_relaxed").unique(maintain_order=True)
    else:
        history = points.select(list(plan.source_columns))
    return compute_at(plan, history, points, raw_from="points").collect()


def append_events(plan: FeaturePlan, store: OnlineStore, points: pl.DataFrame,
                  event_ids: list[str | None] | None = None) -> int:
    """Store the points as events so later requests see them in their windows.

    ``event_ids`` (one per point, None where unknown) makes a second append of the same
    event a no-op; without ids an event is identified by entity, time and payload.
    Returns how many events were new."""
    if not plan.windows:
        return 0
    return store.append_events(points[plan.entity].cast(pl.String).to_list(),
                               _ts_us(points, plan.timestamp).to_list(),
                               encode_rows(points, _payload_columns(plan)), event_ids)


def window_defaults(plan: FeaturePlan, overrides: dict | None = None) -> dict[str, object]:
    """Empty-window value of every window feature (count/sum/distinct 0, else the
    spec's ``default``), overridden by ``overrides``."""
    out = {w.name: (0.0 if w.agg in ("count", "sum", "distinct") else w.default)
           for w in plan.windows}
    out.update({k: v for k, v in (overrides or {}).items() if k in out})
    return out


def _window_schema(plan: FeaturePlan) -> dict[str, pl.DataType]:
    kinds = {f.name: f.kind for f in plan.features}
    return {w.name: (pl.String if kinds[w.name] == "categorical" else pl.Float64)
            for w in plan.windows}


@dataclass
class HybridResult:
    """Features of a hybrid batch plus freshness per row."""

    features: pl.DataFrame
    as_of_us: list[int | None]
    stale: list[bool]
    warnings: list[list[str]] = field(default_factory=list)


def hybrid_features(plan: FeaturePlan, store: OnlineStore, points: pl.DataFrame, *,
                    now_us: int, ttl_seconds: float, stale_policy: str = "warn",
                    defaults: dict | None = None) -> HybridResult:
    """Materialized windows + request row-level features + post-window derived ones.

    The caller refuses (503) when ``stale_policy == "refuse"`` and any row is stale;
    here such rows keep their stored values.
    """
    ent = plan.entity
    wschema = _window_schema(plan)
    fallback = window_defaults(plan, defaults)
    entities = points[ent].cast(pl.String).to_list()
    found = store.read_features(entities) if plan.windows else {}
    ttl_us = ttl_seconds * 1_000_000
    payloads, as_of, stale, warnings = [], [], [], []
    for e in entities:
        hit = found.get(e)
        w: list[str] = []
        if hit is None:
            as_of.append(None)
            stale.append(False)
            payloads.append(None)
            if plan.windows:
                w.append(f"no materialized features for {ent}={e!r}; using empty-window defaults")
        else:
            age = now_us - hit[0]
            is_stale = age > ttl_us
            as_of.append(hit[0])
            stale.append(is_stale)
            if is_stale and stale_policy == "default":
                payloads.append(None)
                w.append(f"stale features for {ent}={e!r} (age {age / 1e6:.0f} s > ttl "
                         f"{ttl_seconds:g} s); using defaults")
            else:
                payloads.append(hit[1])
                if is_stale:
                    w.append(f"stale features for {ent}={e!r} (age {age / 1e6:.0f} s > ttl "
                             f"{ttl_seconds:g} s)")
        warnings.append(w)
    frame = points.lazy().with_columns([e.alias(n) for n, e in plan.row_exprs])
    if plan.windows:
        present = [p for p in payloads if p is not None]
        decoded = decode_rows(present, wschema) if present else pl.DataFrame(schema=wschema)
        it = iter(range(decoded.height))
        pos = [None if p is None else next(it) for p in payloads]
        windows = decoded.with_row_index("__i").lazy()
        aligned = (pl.LazyFrame({"__i": pos}, schema={"__i": pl.UInt32})
                   .join(windows, on="__i", how="left", maintain_order="left")
                   .with_columns([pl.when(pl.col("__i").is_null())
                                  .then(pl.lit(fallback[n], dtype=wschema[n]))
                                  .otherwise(pl.col(n)).alias(n) for n in wschema])
                   .drop("__i"))
        frame = pl.concat([frame, aligned], how="horizontal")
    out = apply_derived(plan, frame).collect()
    return HybridResult(out, as_of, stale, warnings)


@dataclass
class MaterializeReport:
    """What :func:`materialize` wrote."""

    entities: int
    as_of: datetime
    compute_seconds: float
    write_seconds: float

    def as_dict(self) -> dict:
        return {"entities": self.entities, "as_of": self.as_of.isoformat(),
                "compute_seconds": round(self.compute_seconds, 4),
                "write_seconds": round(self.write_seconds, 4)}


def materialize(plan: FeaturePlan, events: pl.LazyFrame | pl.DataFrame, store: OnlineStore,
                *, as_of: datetime | None = None, event_id: str | None = None
                ) -> MaterializeReport:
    """Compute every window feature per entity as of ``as_of`` and bulk-write them.

    Only entities with an event in ``[as_of - longest period, as_of)`` get a row; the
    others have empty windows, which is what serving assumes for a missing row.
    ``as_of`` defaults to the latest event time + 1 us (so that event counts).
    With ``event_id`` (the events' id column) an event present twice in the input (a
    file loaded twice) counts once; a rerun overwrites the rows with the same values.

    Example:
        >>> materialize(plan, events, SQLiteStore("online.sqlite")).entities  # doctest: +SKIP
        2000
    """
    if not plan.windows:
        raise ServingError("the feature plan has no window features to materialize",
                           key="features.windows", fix="use serving.mode=realtime instead")
    t0 = time.perf_counter()
    lf = events.lazy()
    ent, ts = plan.entity, plan.timestamp
    missing = [c for c in plan.source_columns if c not in lf.collect_schema()]
    if missing:
        raise DataError(f"the events lack column(s) {missing} needed by the feature plan",
                        key="data", fix="check the data source")
    schema = lf.select(list(plan.source_columns)).collect_schema()
    if as_of is None:
        latest = lf.select(pl.col(ts).max()).collect().item()
        if latest is None:
            raise DataError("no events to materialize", key="data")
        as_of = latest + (datetime.resolution if isinstance(latest, datetime) else 1)
    start = as_of - timedelta(seconds=plan.max_period_seconds)
    history = lf.filter((pl.col(ts) >= start) & (pl.col(ts) < as_of))
    if event_id is not None and event_id in lf.collect_schema():
        history = history.unique(subset=[event_id], keep="first", maintain_order=True)
    points = (history.select(ent).unique(maintain_order=True)
              .with_columns(pl.lit(as_of).cast(schema[ts]).alias(ts),
                            *[pl.lit(None, dtype=schema[c]).alias(c)
                              for c in plan.source_columns if c not in (ent, ts)]))
    names = [w.name for w in plan.windows]
    frame = (compute_at(plan, history, points).select([ent, *names]).sort(ent)  # B-tree order
             .collect(engine="streaming"))
    t1 = time.perf_counter()
    as_of_us = int(pl.Series([as_of]).cast(_US).dt.epoch("us")[0])
    store.write_features(frame[ent].cast(pl.String).to_list(), as_of_us,
                         encode_rows(frame, names))
    store.set_meta(PLAN_META_KEY, plan.spec_hash)
    return MaterializeReport(frame.height, as_of, t1 - t0, time.perf_counter() - t1)


def check_materialized(plan: FeaturePlan, store: OnlineStore) -> str | None:
    """None when the store's feature rows were materialized with ``plan``; else why not."""
    found = store.get_meta(PLAN_META_KEY)
    if found is None:
        return "the online store has no materialized features; run action=materialize"
    if found != plan.spec_hash:
        return (f"the online store was materialized with feature plan {found[:12]}... but the "
                f"server loaded plan {plan.short_hash}...; run action=materialize")
    return None

