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

from mlops.errors import DataError, ServingError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_at
from mlops.features.online.codec import US, encode_rows
from mlops.features.online.store import KeyValueStore, OnlineStore

PLAN_META_KEY = "features.plan_hash"
PREDICTIONS_META_KEY = "predictions.model"
PREDICTION_KEY = "prediction:"  # + entity: "{scored_at_us}|{payload}"


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
    as_of_us = int(pl.Series([as_of]).cast(US).dt.epoch("us")[0])
    store.write_features(frame[ent].cast(pl.String).to_list(), as_of_us,
                         encode_rows(frame, names))
    store.put({PLAN_META_KEY: plan.spec_hash})
    return MaterializeReport(frame.height, as_of, t1 - t0, time.perf_counter() - t1)


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
