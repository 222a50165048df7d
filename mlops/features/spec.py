"""Feature spec: the declarative definition users write in ``conf/features/*.yaml``.

These dataclasses are also the Hydra structured-config schema of the ``features``
and ``feature_group`` config groups (registered by :mod:`mlops.config`), so a typo
in a key fails at compose time. :func:`parse_spec` builds a spec from a plain dict
(tests, Python users) and :func:`resolve` flattens groups into one normalized
dict: the input of the compiler and of the plan hash.

Example:
    >>> spec = parse_spec({"name": "demo", "entity": "card", "timestamp": "ts", "raw": ["amount"],
    ...     "windows": [{"column": "amount", "aggs": ["sum"], "periods": ["1h"]}]})
    >>> resolve(spec)["windows"][0]["name"]
    'amount_sum_1h'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from mlops.constraints import Interval, check
from mlops.errors import FeatureSpecError
from mlops.features.aggregates import AGGREGATES

AGGREGATIONS = tuple(AGGREGATES)
NONFINITE = ("missing", "reject")
DUPLICATES = ("identical", "all")
_PERIOD = re.compile(r"^(\d+)(s|m|h|d|w)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MISSING = "???"  # OmegaConf's mark of a required value


@dataclass
class WindowSpec:
    """Per-entity aggregates over ``[t - period, t)`` for each agg x period."""

    column: Optional[str] = None
    aggs: list[str] = field(default_factory=lambda: ["count"])
    periods: list[str] = field(default_factory=lambda: ["1d"])
    name: Optional[str] = None
    default: Optional[float] = None


@dataclass
class DerivedSpec:
    """A feature written as a SQL expression over columns and other features."""

    name: str = ""
    expr: str = ""
    kind: str = "numeric"


@dataclass
class FeatureGroupSpec:
    """A reusable bundle of features, composed into specs via defaults lists."""

    description: str = ""
    raw: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    windows: list[WindowSpec] = field(default_factory=list)
    derived: list[DerivedSpec] = field(default_factory=list)


@dataclass
class LabelSpec:
    """The target: a column of the events, known from ``available_at`` on."""

    column: Optional[str] = None          # the label column; required to train
    available_at: Optional[str] = None    # when the label became known; null = at event time
    task: Optional[str] = None            # classification | regression; null = from the estimator



@dataclass
class RulesSpec:
    """How records become events, decided once for every path (:mod:`mlops.features.rules`)."""

    nonfinite: str = "missing"        # missing | reject: a NaN or +-inf value in a record
    duplicates: str = "identical"     # identical | all: rows without an event id that are equal


@dataclass
class FeatureSpec(FeatureGroupSpec):
    """A named, versioned feature set for one entity."""

    name: str = "features"
    version: int = 1
    entity: str = "???"                   # required: the column naming whose history windows aggregate
    timestamp: str = "???"                # required: the event-time column
    event_id: Optional[str] = None        # names each event: rows sharing an id are one event
    rules: RulesSpec = field(default_factory=RulesSpec)
    label: LabelSpec = field(default_factory=LabelSpec)
    groups: dict[str, FeatureGroupSpec] = field(default_factory=dict)
    # how action=features runs, not what it computes: resolve() leaves these out, so
    # they never enter the plan hash (a shard's plan is the whole run's plan)
    shard: Optional[int] = None           # this shard of num_shards (by entity hash)
    num_shards: int = 1
    merge_input: Optional[str] = None     # features_merge: glob of the shard files

    def role_columns(self) -> dict[str, str]:
        """The columns this spec gives a role (entity, timestamp, label, label time): never
        features of a drift comparison; each with why, for the report."""
        declared = [(self.entity, "the entity key (features.entity)"),
                    (self.timestamp, "the event timestamp (features.timestamp)"),
                    (self.label.column, "the label (features.label.column)"),
                    (self.label.available_at, "when the label arrived (features.label.available_at)")]
        return {name: why for name, why in declared if name and name != MISSING}

    def sharding(self) -> tuple[Optional[int], int]:
        """(``shard``, ``num_shards``), checked: at least one shard, and ``shard`` one of them."""
        check("features.num_shards", self.num_shards, [Interval(int, 1, None)])
        if self.shard is not None:
            check("features.shard", self.shard, [Interval(int, 0, self.num_shards)],
                  fix=f"pass features.shard=i with 0 <= i < features.num_shards ({self.num_shards})")
        return self.shard, self.num_shards


def period_seconds(period: str, *, key: str) -> int:
    """``"30d"`` -> 2592000. Raises FeatureSpecError naming ``key`` otherwise."""
    m = _PERIOD.match(str(period).strip())
    if not m or int(m.group(1)) <= 0:
        raise FeatureSpecError(
            f"window period must be a positive integer followed by s, m, h, d or w; got {period!r}",
            key=key, fix="write e.g. '10m', '1h', '30d'")
    return int(m.group(1)) * _SECONDS[m.group(2)]


def _build(cls, data: Any, key: str):
    if is_dataclass(data):
        return data
    if not isinstance(data, dict):
        raise FeatureSpecError(f"must be a mapping; got {type(data).__name__}", key=key)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise FeatureSpecError(f"unknown key(s) {unknown}; valid keys: {sorted(known)}",
                               key=key, fix="remove or rename the key")
    kwargs = {}
    for name, value in data.items():
        sub = f"{key}.{name}" if key else name
        if name == "windows":
            value = [_build(WindowSpec, v, f"{sub}[{i}]") for i, v in enumerate(value or [])]
        elif name == "derived":
            value = [_build(DerivedSpec, v, f"{sub}[{i}]") for i, v in enumerate(value or [])]
        elif name == "label":
            value = _build(LabelSpec, value, sub)
        elif name == "rules":
            value = _build(RulesSpec, value, sub)
        elif name == "groups":
            value = {g: _build(FeatureGroupSpec, v, f"{sub}.{g}") for g, v in (value or {}).items()}
        kwargs[name] = value
    return cls(**kwargs)


def parse_spec(data: dict | FeatureSpec, *, key: str = "features") -> FeatureSpec:
    """Build a :class:`FeatureSpec` from a plain dict, naming bad keys in errors."""
    return data if isinstance(data, FeatureSpec) else _build(FeatureSpec, dict(data), key)


def _window_entries(w: WindowSpec, key: str) -> list[dict]:
    aggs, periods = list(w.aggs), list(w.periods)
    if not aggs:
        raise FeatureSpecError("needs at least one aggregation", key=f"{key}.aggs",
                               fix=f"add one of {list(AGGREGATIONS)}")
    if not periods:
        raise FeatureSpecError("needs at least one period", key=f"{key}.periods",
                               fix="add e.g. '1h' or '30d'")
    if w.name and len(aggs) * len(periods) != 1:
        raise FeatureSpecError("an explicit name needs exactly one agg and one period",
                               key=f"{key}.name", fix="drop `name` to get generated names")
    out = []
    for agg in aggs:
        if agg not in AGGREGATIONS:
            raise FeatureSpecError(f"unknown aggregation {agg!r}; valid: {list(AGGREGATIONS)}",
                                   key=f"{key}.aggs", fix="use one of the valid aggregations")
        if AGGREGATES[agg].reads_column and not w.column:
            raise FeatureSpecError(f"aggregation {agg!r} needs a column", key=f"{key}.column",
                                   fix="set `column:` to the value to aggregate")
        for p in periods:
            secs = period_seconds(p, key=f"{key}.periods")
            base = w.column if w.column and AGGREGATES[agg].reads_column else "events"
            name = w.name or f"{base}_{agg}_{p}"
            out.append({"name": name, "column": w.column if AGGREGATES[agg].reads_column
                        else None, "agg": agg, "period": p, "seconds": secs,
                        "default": w.default, "key": key})
    return out


def _claim(seen: dict[str, str], name: str, where: str) -> None:
    """Record that feature ``name`` is defined at ``where``; a bad or repeated name is an error."""
    if not _NAME.match(name):
        raise FeatureSpecError(f"feature name {name!r} is not a valid identifier", key=where,
                               fix="use letters, digits and underscores")
    if name in seen and seen[name] != where:
        raise FeatureSpecError(f"feature {name!r} is defined twice (also at {seen[name]})",
                               key=where, fix="rename one of them or drop the duplicate")
    seen[name] = where


def _add_columns(cols: list[str], key: str, into: list[str], seen: dict[str, str]) -> None:
    """Append the source columns ``cols`` (declared at ``key``) to ``into``, once each."""
    for i, col in enumerate(cols):
        _claim(seen, col, f"{key}[{i}]")
        if col not in into:
            into.append(col)


def _derived_entry(d: DerivedSpec, where: str, seen: dict[str, str]) -> dict:
    """The resolved entry of one derived feature declared at ``where``."""
    if not d.name or not d.expr:
        raise FeatureSpecError("needs both `name` and `expr`", key=where,
                               fix="e.g. {name: ratio, expr: 'x / (y + 1)'}")
    if d.kind not in ("numeric", "categorical"):
        raise FeatureSpecError(f"kind must be 'numeric' or 'categorical'; got {d.kind!r}",
                               key=f"{where}.kind")
    _claim(seen, d.name, where)
    return {"name": d.name, "expr": d.expr.strip(), "kind": d.kind, "key": where}


def _rules(rules: RulesSpec) -> dict:
    """The resolved rules, each checked against its options."""
    for name, options in (("nonfinite", NONFINITE), ("duplicates", DUPLICATES)):
        value = getattr(rules, name)
        if value not in options:
            raise FeatureSpecError(f"must be one of {list(options)}; got {value!r}",
                                   key=f"features.rules.{name}", fix=f"use one of {list(options)}")
    return {"nonfinite": rules.nonfinite, "duplicates": rules.duplicates}


def resolve(spec: FeatureSpec) -> dict:
    """Flatten groups + the spec's own features into one normalized dict.

    Groups come first in name order, then the spec's own entries; a feature
    name defined twice is an error naming both places.
    """
    for name, what in (("entity", "the column naming whose history the windows aggregate"),
                       ("timestamp", "the event-time column")):
        if getattr(spec, name) in (None, "", MISSING):
            raise FeatureSpecError("has no value", key=f"features.{name}",
                                   fix=f"set {name}: <{what}> in the feature spec")
    parts = [(f"features.groups.{g}", spec.groups[g]) for g in sorted(spec.groups)]
    parts.append(("features", spec))
    raw, categorical, windows, derived, seen = [], [], [], [], {}
    for key, part in parts:
        _add_columns(part.raw, f"{key}.raw", raw, seen)
        _add_columns(part.categorical, f"{key}.categorical", categorical, seen)
        for i, w in enumerate(part.windows):
            for entry in _window_entries(w, f"{key}.windows[{i}]"):
                _claim(seen, entry["name"], entry["key"])
                windows.append(entry)
        derived += [_derived_entry(d, f"{key}.derived[{i}]", seen) for i, d in enumerate(part.derived)]
    if not (raw or categorical or windows or derived):
        raise FeatureSpecError("the spec defines no features", key="features",
                               fix="add raw, categorical, windows or derived entries")
    return {
        "name": spec.name, "version": int(spec.version), "entity": spec.entity,
        "timestamp": spec.timestamp, "event_id": spec.event_id, "rules": _rules(spec.rules),
        "label": {"column": spec.label.column, "available_at": spec.label.available_at,
                  "task": spec.label.task},
        "raw": raw, "categorical": categorical, "windows": windows, "derived": derived,
    }
