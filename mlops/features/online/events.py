"""Which records the event store keeps, decided by the plan's rules (as offline decides).

- :func:`store_event_ids`: the identity each event is stored under. The plan's
  ``event_id`` when it declares one (rows sharing an id are one event; a null id is never
  a duplicate), every row its own under ``duplicates: all``, else the store's own identity
  (entity, time and payload: ``duplicates: identical``). So the store keeps what the
  engine counts, and a retry or a replay run twice stores nothing twice.
- :func:`check_event_id`: the data's event id column (``data.event_id``, which joins late
  labels and outcomes) and the plan's are one setting: when both are given they must match.
- :func:`backfill_events`: the events of ``[as_of - longest window, as_of)`` as the server
  stores them: realtime history loaded before serving (``action=materialize`` in realtime
  mode), kept by retention one longest window past the load.
"""
from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from mlops.errors import ConfigError, DataError
from mlops.features.backends.frame_windows import IS_EVENT
from mlops.features.backends.frames import event_flags, row_stage
from mlops.features.compile import FeaturePlan
from mlops.features.online.codec import US, encode_rows, payload_columns
from mlops.features.online.store import FeatureStore

_UNIQUE = itertools.count()
_RUN = uuid.uuid4().hex[:12]  # with the counter: an identity no other row shares


def _fresh() -> str:
    return f"row:{_RUN}:{next(_UNIQUE)}"


def store_event_ids(plan: FeaturePlan, ids: Sequence | None, n: int) -> list[str | None] | None:
    """The identity each of ``n`` events is stored under (None: the store's own, entity,
    time and payload). ``ids``: the values of the plan's ``event_id`` column, when it has one.

    >>> store_event_ids(plan_without_event_id, None, 2)  # doctest: +SKIP
    None
    """
    rules = plan.rules
    if rules.event_id is not None:
        return [_fresh() if v is None else f"id:{v}" for v in (ids if ids is not None else [None] * n)]
    if rules.duplicates == "all":
        return [_fresh() for _ in range(n)]
    return None


def check_event_id(plan: FeaturePlan, data_event_id: str | None) -> None:
    """Refuse a ``data.event_id`` that names another column than the plan's ``event_id``."""
    spec = plan.rules.event_id
    if data_event_id and spec and data_event_id != spec:
        raise ConfigError(f"names {data_event_id!r} but the feature spec's event_id (the rule of "
                          f"which rows are one event) is {spec!r}: one column identifies an event",
                          key="data.event_id",
                          fix=f"set data.event_id={spec} or the spec's event_id to {data_event_id!r}")


@dataclass
class BackfillReport:
    """What :func:`backfill_events` stored."""

    entities: int
    events: int
    stored: int
    as_of: datetime


def backfill_events(plan: FeaturePlan, events: pl.LazyFrame | pl.DataFrame, store: FeatureStore,
                    *, as_of: datetime, now_us: int) -> BackfillReport:
    """Store the events of ``[as_of - longest window, as_of)`` as the realtime server would
    (only what the plan's rules make events; each under :func:`store_event_ids`), kept by
    retention until one longest window past ``now_us`` (the server clock)."""
    ts = plan.timestamp
    start = as_of - timedelta(seconds=plan.max_period_seconds)
    window = (events.lazy().select(list(plan.source_columns))
              .filter((pl.col(ts) >= start) & (pl.col(ts) < as_of)).collect())
    if window.height == 0:
        raise DataError(f"no events in [{start}, {as_of}) to load into the event store",
                        key="serving.as_of", fix="pick an as_of inside the data")
    kept, stored = append_history(plan, store, window, now_us=now_us)
    return BackfillReport(kept[plan.entity].n_unique(), kept.height, stored, as_of)


def append_history(plan: FeaturePlan, store: FeatureStore, events: pl.DataFrame, *,
                   now_us: int | None) -> tuple[pl.DataFrame, int]:
    """Store ``events`` (source columns, in arrival order) as the realtime server stores
    the records it answers: only what the plan's rules make events, numbers as a request
    carries them (Float64, so a record sent again is the same event), each under
    :func:`store_event_ids`. Returns (the events kept, how many were new to the store)."""
    if events.height == 0:
        return events, 0
    flags = event_flags(plan, row_stage(plan, events.lazy())).select(IS_EVENT).collect()
    kept = events.filter(flags[IS_EVENT]).with_columns(
        pl.col(c).cast(pl.Float64) for c in payload_columns(plan)
        if events.schema[c].is_numeric() or events.schema[c] == pl.Boolean)
    if kept.height == 0:
        return kept, 0
    eid = plan.rules.event_id
    ids = store_event_ids(plan, None if eid is None else kept[eid].to_list(), kept.height)
    stored = store.append_events(kept[plan.entity].cast(pl.String).to_list(),
                                 kept[plan.timestamp].cast(US).dt.epoch("us").to_list(),
                                 encode_rows(kept, payload_columns(plan)), ids, now_us=now_us)
    return kept, stored
