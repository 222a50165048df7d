"""Materialization: batch results written into the online store for serving to read.

- :func:`materialize` computes every window feature per entity as of one time and
  bulk-writes the rows (hybrid mode reads them at request time); the plan hash goes into
  the store's metadata, so a server can tell rows of another plan (:func:`check_materialized`).
- :func:`publish_predictions` writes the latest prediction per entity of a batch-scoring
  output into the key-value store's prediction cache; :func:`published_predictions`
  reads it back (batch mode answers from it).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import polars as pl

from mlops.errors import ConfigError, DataError, ServingError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_at
from mlops.features.online.codec import US, encode_rows
from mlops.features.online.events import backfill_events, check_event_id
from mlops.features.online.request import WINDOW_NONFINITE
from mlops.features.online.store import KeyValueStore, OnlineStore

PLAN_META_KEY = "features.plan_hash"
PREDICTIONS_META_KEY = "predictions.model"
PREDICTION_KEY = "prediction:"  # + entity: "{scored_at_us}|{payload}"


@dataclass
class MaterializeReport:
    """What :func:`materialize` wrote (``events``: how many, in realtime mode)."""

    entities: int
    as_of: datetime
    compute_seconds: float
    write_seconds: float
    mode: str = "hybrid"
    events: int | None = None

    def as_dict(self) -> dict:
        return {"entities": self.entities, "as_of": self.as_of.isoformat(), "mode": self.mode,
                "events": self.events, "compute_seconds": round(self.compute_seconds, 4),
                "write_seconds": round(self.write_seconds, 4)}


def materialize(plan: FeaturePlan, events: pl.LazyFrame | pl.DataFrame, store: OnlineStore,
                *, as_of: datetime | None = None, event_id: str | None = None,
                mode: str = "hybrid", now_us: int | None = None) -> MaterializeReport:
    """Load what a server of ``mode`` reads at request time, as of ``as_of``.

    ``hybrid``: every window feature per entity as of ``as_of``, bulk-written as feature
    rows. Only entities with an event in ``[as_of - longest period, as_of)`` get a row;
    the others have empty windows, which is what serving assumes for a missing row.
    ``realtime``: the events of that same period into the event store, as the server
    stores them (:func:`~mlops.features.online.events.backfill_events`), kept by
    retention one longest window past ``now_us`` (the server clock, default now), so a
    realtime server can answer requests from ``as_of`` on, older data included.
    ``as_of`` defaults to the latest event time + 1 us (so that event counts). Which rows
    are one event is the plan's rule; ``event_id`` (``data.event_id``) must match the
    plan's when both are given. A rerun writes the same rows and stores no event twice.

    Example:
        >>> materialize(plan, events, SQLiteStore("online.sqlite")).entities  # doctest: +SKIP
        2000
    """
    if not plan.windows:
        raise ServingError("the feature plan has no window features to materialize",
                           key="features.windows", fix="serve it in realtime mode: nothing to load")
    check_event_id(plan, event_id)
    t0 = time.perf_counter()
    lf = events.lazy()
    missing = [c for c in plan.source_columns if c not in lf.collect_schema()]
    if missing:
        raise DataError(f"the events lack column(s) {missing} needed by the feature plan",
                        key="data", fix="check the data source")
    as_of = as_of if as_of is not None else _after_latest(lf, plan.timestamp)
    if mode not in ("realtime", "hybrid"):
        raise ConfigError(f"materialize loads what a realtime or hybrid server reads; got mode={mode!r}",
                          key="serving.mode", fix="batch mode answers from action=score's published scores")
    if mode == "realtime":
        now = time.time_ns() // 1000 if now_us is None else now_us
        rep = backfill_events(plan, lf, store, as_of=as_of, now_us=now)
        return MaterializeReport(rep.entities, as_of, 0.0, time.perf_counter() - t0,
                                 mode="realtime", events=rep.events)
    frame = _window_rows(plan, lf, as_of)
    t1 = time.perf_counter()
    as_of_us = int(pl.Series([as_of]).cast(US).dt.epoch("us")[0])
    names = [c for c in frame.columns if c != plan.entity]
    store.write_features(frame[plan.entity].cast(pl.String).to_list(), as_of_us,
                         encode_rows(frame, names))
    store.put({PLAN_META_KEY: plan.spec_hash})
    return MaterializeReport(frame.height, as_of, t1 - t0, time.perf_counter() - t1)


def materialize_as_of(text: str | None) -> datetime | None:
    """``serving.as_of`` (ISO 8601; an offset is converted to UTC) as naive UTC, or None.

    >>> materialize_as_of("2024-03-01T12:00:00+01:00")
    datetime.datetime(2024, 3, 1, 11, 0)
    """
    if text is None or str(text).strip() == "":
        return None
    try:
        when = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"must be an ISO 8601 time such as 2024-03-01T00:00:00; got {text!r}",
                          key="serving.as_of", fix="write e.g. serving.as_of=2024-03-01T00:00:00") from None
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def _after_latest(lf: pl.LazyFrame, ts: str):
    latest = lf.select(pl.col(ts).max()).collect().item()
    if latest is None:
        raise DataError("no events to materialize", key="data")
    return latest + (datetime.resolution if isinstance(latest, datetime) else 1)


def _window_rows(plan: FeaturePlan, lf: pl.LazyFrame, as_of) -> pl.DataFrame:
    """Every window feature of each entity with an event in the period before ``as_of``
    (under ``rules.nonfinite: reject`` a window that came out non-finite is kept in
    :data:`~mlops.features.online.request.WINDOW_NONFINITE`, since JSON has no inf: the
    hybrid path restores it, and the row's verdict with it)."""
    ent, ts = plan.entity, plan.timestamp
    schema = lf.select(list(plan.source_columns)).collect_schema()
    start = as_of - timedelta(seconds=plan.max_period_seconds)
    history = lf.filter((pl.col(ts) >= start) & (pl.col(ts) < as_of))
    points = (history.select(ent).unique(maintain_order=True)
              .with_columns(pl.lit(as_of).cast(schema[ts]).alias(ts),
                            *[pl.lit(None, dtype=schema[c]).alias(c)
                              for c in plan.source_columns if c not in (ent, ts)]))
    names = [w.name for w in plan.windows]
    out = compute_at(plan, history, points).select([ent, *names])
    kinds = {f.name: f.kind for f in plan.features}
    numeric = [n for n in names if kinds[n] == "numeric"]
    if plan.rules.reject and numeric:
        found = pl.concat_str([pl.when(~pl.col(n).is_finite()).then(pl.lit(f"{n}:") + pl.col(n).cast(pl.String))
                               for n in numeric], separator=",", ignore_nulls=True)
        out = out.with_columns(pl.when(found == "").then(None).otherwise(found).alias(WINDOW_NONFINITE))
    return out.sort(ent).collect(engine="streaming")  # B-tree order


def check_materialized(plan: FeaturePlan, store: KeyValueStore) -> str | None:
    """None when the store's feature rows were materialized with ``plan``; else why not."""
    found = store.get([PLAN_META_KEY]).get(PLAN_META_KEY)
    if found is None:
        return "the online store has no materialized features; run action=materialize"
    if found != plan.spec_hash:
        return (f"the online store was materialized with feature plan {found[:12]}... but the "
                f"server loaded plan {plan.short_hash}...; run action=materialize")
    return None


def publish_predictions(plan: FeaturePlan, predictions: pl.LazyFrame, store: KeyValueStore, *,
                        scored_at: datetime | None = None) -> int:
    """Write the latest prediction per entity into the store's prediction cache.

    The cache time is ``scored_at`` (default: now, UTC); each payload also carries the
    event time it was computed for.
    """
    ent, ts = plan.entity, plan.timestamp
    latest = (predictions.sort([ent, ts], maintain_order=True).group_by(ent, maintain_order=True)
              .agg(pl.all().last()).collect())
    if latest.height == 0:
        return 0
    when = scored_at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when_us = int(when.timestamp() * 1_000_000)
    payloads = (latest.select(pl.struct(
        pl.col("prediction"), pl.col("probability"), pl.col("model_name"),
        pl.col("model_version"), pl.col("plan_hash"),
        pl.col(ts).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f").alias("event_ts"))
        .struct.json_encode()).to_series().to_list())
    entities = latest[ent].cast(pl.String).to_list()
    store.put({**{PREDICTION_KEY + e: f"{when_us}|{p}" for e, p in zip(entities, payloads)},
               PREDICTIONS_META_KEY: json.dumps(_published_model(latest))})
    return latest.height


def published_predictions(store: KeyValueStore, entities: list[str]) -> dict[str, tuple[int, str]]:
    """``{entity: (scored_at_us, payload)}`` of the entities with a published prediction."""
    found = store.get([PREDICTION_KEY + e for e in entities])
    out = {}
    for key, value in found.items():
        when, _, payload = value.partition("|")
        out[key[len(PREDICTION_KEY):]] = (int(when), payload)
    return out


def _published_model(latest: pl.DataFrame) -> dict:
    """Model name/version/plan hash of a published prediction frame (first row)."""
    row = latest.row(0, named=True)
    return {"name": row["model_name"], "version": row["model_version"],
            "plan_hash": row["plan_hash"]}
