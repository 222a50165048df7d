"""The labelled table: point-in-time features of every labelled point, with its label.

Labels come from a column of the events, from a label table joined by event id, or
from an entity-keyed label spine whose features use only events strictly before each
label (DESIGN §4: as-of join, backward). Actions pass the frames and how they join;
nothing here reads config.

Example:
    >>> table = feature_table(plan, events, labels=(label_lf, "entity"))  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from mlops.data.checks import dedupe as dedupe_events
from mlops.data.checks import require_rows
from mlops.data.labels import check_labels_by_entity, join_by_event_id
from mlops.errors import ConfigError, DataError
from mlops.features.backends.frame_windows import IS_EVENT
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_at, compute_features
from mlops.features.rules import STATUS
from mlops.features.tables import open_table

LabelTable = tuple[pl.LazyFrame, str]  # (label rows, how they join: "event_id" | "entity")


def label_column(plan: FeaturePlan) -> str:
    """The plan's label column; a ConfigError naming the spec key when it declares none."""
    label = plan.label.column
    if not label:
        raise ConfigError("the feature spec names no label column", key="features.label.column",
                          fix="set label: {column: <your label column>} in the feature spec")
    return label


@dataclass(frozen=True)
class LabelledTable:
    """The labelled table and what building it dropped before any split.

    Under ``rules.nonfinite: reject`` the engine's verdict decides what a model may learn
    from, as serving decides what it answers: rows it calls unscorable (a non-finite input
    or feature: ``unscorable``) and rows that are no event (a duplicate of an earlier row
    by the plan's ``event_id`` or ``duplicates`` rule: ``duplicates``) are dropped."""

    frame: pl.DataFrame
    deduplicated: int | None = 0   # exact duplicate events dropped (data.dedupe); None: not known
    unscorable: int = 0            # rows the engine calls unscorable (reject rule)
    duplicates: int = 0            # rows that are no event: duplicates by the plan's rule (reject rule)


def feature_table(plan: FeaturePlan, events: pl.LazyFrame, *, labels: LabelTable | None = None,
                  event_id: str | None = None, dedupe: bool = False,
                  extra: Sequence[str] = ()) -> pl.DataFrame:
    """Point-in-time features for every labelled point, with label, label time and ``extra``.

    ``labels`` is a separate label table and how it joins (``event_id``: one label per
    event; ``entity``: a label spine keyed by entity and time), or None when the label
    is a column of ``events``. ``dedupe`` drops exact duplicate events first.
    """
    return labelled_table(plan, events, labels=labels, event_id=event_id, dedupe=dedupe,
                          extra=extra).frame


def labelled_table(plan: FeaturePlan, events: pl.LazyFrame, *, labels: LabelTable | None = None,
                   event_id: str | None = None, dedupe: bool = False,
                   extra: Sequence[str] = ()) -> LabelledTable:
    """:func:`feature_table` with the count of duplicate events it dropped."""
    label, known_at = label_column(plan), plan.label.available_at
    if labels is not None and labels[1] == "event_id":
        if not event_id:
            raise ConfigError("labels joined by event id need the event id column",
                              key="data.event_id", fix="set data.event_id: <your id column>")
        events = join_by_event_id(events, labels[0], event_id=event_id, label=label,
                                  known_at=known_at)
    schema = events.collect_schema()
    frame = events.collect()
    require_rows(frame, what="the event data")
    read = frame.height
    frame = dedupe_events(frame, event_id=event_id, allow=dedupe)
    dropped = read - frame.height
    if labels is not None and labels[1] == "entity":
        table = _features_at_labels(plan, frame, labels[0], label=label, known_at=known_at)
        return LabelledTable(table, dropped)
    _check_label_columns(schema, label, known_at)
    keep = [c for c in (event_id, label, known_at, *extra) if c and c in schema]
    reject = plan.rules.reject
    table = compute_features(plan, frame, keep=list(dict.fromkeys(keep)), status=reject,
                             event_flag=reject).collect()
    if not reject:
        return LabelledTable(table, dropped)
    scorable = table[STATUS].is_null()
    event = table[IS_EVENT]
    kept = table.filter(scorable & event).drop(STATUS, IS_EVENT)
    return LabelledTable(kept, dropped, unscorable=int((~scorable).sum()),
                         duplicates=int((scorable & ~event).sum()))


def _features_at_labels(plan: FeaturePlan, frame: pl.DataFrame, spine: pl.LazyFrame, *,
                        label: str, known_at: str | None) -> pl.DataFrame:
    """Features as of each label of an entity-keyed spine (only events strictly before it)."""
    spine = check_labels_by_entity(spine, entity=plan.entity, timestamp=plan.timestamp,
                                   label=label, known_at=known_at).collect()
    require_rows(spine, what="the label table", key="data.labels.path")
    feats = compute_at(plan, frame, spine, raw_from="asof").collect()
    return feats.select([plan.entity, plan.timestamp, *plan.feature_names]).with_columns(
        spine.select([c for c in spine.columns if c not in (plan.entity, plan.timestamp)]))


def _check_label_columns(schema, label: str, known_at: str | None) -> None:
    if label not in schema:
        raise DataError(f'label column "{label}" is not in the data; columns: {list(schema)}',
                        key="features.label.column",
                        fix="point it at the label column, or give a label table (data.labels)")
    if known_at and known_at not in schema:
        raise DataError(f'label time column "{known_at}" is not in the data; columns: '
                        f"{list(schema)}", key="features.label.available_at",
                        fix="name the column holding when each label became known, or null "
                            "(labels known at event time)")


def stored_feature_table(plan: FeaturePlan, path: str, *, extra: Sequence[str] = (),
                         key: str = "training.features_path") -> pl.DataFrame:
    """The table built earlier (action=features / features_merge) at ``path``, after
    checking its plan hash against ``plan`` and that it holds every needed column."""
    label = label_column(plan)
    table = open_table(path, plan.spec_hash, key=key)
    cols = table.collect_schema().names()
    needed = [plan.entity, plan.timestamp, label, plan.label.available_at,
              *plan.feature_names, *extra]
    missing = [c for c in dict.fromkeys(needed) if c and c not in cols]
    if missing:
        raise DataError(f"the feature table lacks columns {missing}", key=key,
                        fix="rebuild it with action=features on data that has them")
    # the row order compute_features gives (each entity's rows stay in one shard, in order)
    return table.sort([plan.entity, plan.timestamp], maintain_order=True).collect()
