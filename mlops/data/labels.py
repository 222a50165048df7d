"""Labels kept in their own table, joined to events without leaking the future.

Two shapes, as label tables come in practice:

- **by event id**: one label per event (``event_id, label[, known_at]``), e.g. a
  chargeback file keyed by transaction id. Joined on the id; events without a
  label row stay unlabelled (null).
- **by entity**: labels about an entity at a time (``entity, ts, label[, known_at]``),
  e.g. "customer churned on day t". Each label row becomes a training point whose
  features are computed over events strictly before ``ts`` (the label spine of
  :func:`mlops.features.offline.compute_at`, an as-of backward join).

``known_at`` is when the label became known; the training split only uses labels
known by its cut-off. Without it, labels are known at event (or label) time.

Example:
    >>> ev = pl.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]})
    >>> lab = pl.DataFrame({"id": ["b"], "y": [1]})
    >>> join_by_event_id(ev.lazy(), lab.lazy(), event_id="id", label="y").collect()["y"].to_list()
    [None, 1]
"""
from __future__ import annotations

import polars as pl

from mlops.errors import DataError


def _require(schema, cols: list[str], *, what: str, key: str) -> None:
    missing = [c for c in cols if c and c not in schema]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing}; it has {list(schema)}", key=key,
                        fix="map its columns with data.labels.columns or fix the names")


def join_by_event_id(events: pl.LazyFrame, labels: pl.LazyFrame, *, event_id: str, label: str,
                     known_at: str | None = None, key: str = "data.labels") -> pl.LazyFrame:
    """Events with the label (and ``known_at``) of their id; duplicate label ids are an error."""
    _require(events.collect_schema(), [event_id], what="the event data", key="data.event_id")
    _require(labels.collect_schema(), [event_id, label, known_at], what="the label table", key=key)
    cols = [event_id, label, *([known_at] if known_at else [])]
    lab = labels.select(cols)
    dups = lab.group_by(event_id).len().filter(pl.col("len") > 1).select(pl.len()).collect().item()
    if dups:
        raise DataError(f"{dups} event id(s) have more than one label row", key=key,
                        fix="keep one label per event id (the final one)")
    ev = events.drop([c for c in (label, known_at) if c and c in events.collect_schema()])
    return ev.join(lab, on=event_id, how="left", maintain_order="left")


def check_labels_by_entity(labels: pl.LazyFrame, *, entity: str, timestamp: str, label: str,
                           known_at: str | None, key: str = "data.labels") -> pl.LazyFrame:
    """The label table of an entity-keyed spine: (entity, timestamp, label[, known_at])."""
    _require(labels.collect_schema(), [entity, timestamp, label, known_at],
             what="the label table", key=key)
    return labels.select([entity, timestamp, label, *([known_at] if known_at else [])])
