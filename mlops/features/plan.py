"""The compiled feature plan: what every backend evaluates (built by :mod:`.compile`).

A :class:`FeaturePlan` holds the features in order, the window features, the derived
features as typed expression trees (:mod:`mlops.features.sql_tree`) with the polars
expressions rendered from them, the event rules (:mod:`mlops.features.rules`), the
backends that can evaluate it and a content hash of the resolved spec. A model records
the hash; serving recompiles the plan from the model's recorded spec.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import polars as pl

from mlops.features.rules import EventRules
from mlops.features.spec import LabelSpec
from mlops.features.sql_tree import Node, describe_tree

PLAN_FORMAT = 2  # bump when evaluation semantics change: old models then fail the skew guard
MISSING_CATEGORY = "__missing__"


@dataclass(frozen=True)
class WindowFeature:
    name: str
    column: str | None
    agg: str
    period: str
    seconds: int
    default: float | None


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str      # "numeric" | "categorical"
    source: str    # "raw" | "categorical" | "window" | "derived"


@dataclass(frozen=True)
class DerivedFeature:
    """A derived feature: its parsed tree and the canonical SQL polars evaluates."""

    name: str
    kind: str            # "numeric" | "categorical"
    tree: Node
    sql: str
    after_windows: bool  # reads a window feature (directly or through another derived one)
    key: str             # where the spec declares it, for errors


@dataclass(frozen=True)
class FeaturePlan:
    """Compiled, hashed feature logic. Evaluate with :mod:`mlops.features.offline`."""

    name: str
    version: int
    entity: str
    timestamp: str
    label: LabelSpec                                # column, available_at, task
    features: tuple[Feature, ...]
    row_exprs: tuple[tuple[str, pl.Expr], ...]      # before windows (raw, row-level derived)
    windows: tuple[WindowFeature, ...]
    post_exprs: tuple[tuple[str, pl.Expr], ...]     # after windows, in dependency order
    source_columns: tuple[str, ...]                 # columns read from the source
    spec_hash: str
    resolved: dict = field(repr=False, compare=False)
    derived: tuple[DerivedFeature, ...] = ()        # dependency order, row-level ones first
    rules: EventRules = EventRules()
    schema: dict = field(default_factory=dict, repr=False, compare=False)  # source dtypes read
    backends: tuple[str, ...] = ("frames",)         # who can evaluate it: frames, rows
    row_steps: object = field(default=None, repr=False, compare=False)  # the rows backend's program

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def max_period_seconds(self) -> int:
        """History an online store must keep per entity to evaluate every window."""
        return max((w.seconds for w in self.windows), default=0)

    @property
    def short_hash(self) -> str:
        return self.spec_hash[:12]

    def describe(self) -> dict:
        """The plan's canonical description: names, kinds, windows, columns, parsed expressions.

        Built only from the plan's own data (never a library's text form of an expression),
        so it changes when the plan's meaning does and not when polars prints differently.
        """
        exprs = {d.name: describe_tree(d.tree) for d in self.derived}
        return {
            "spec_hash": self.spec_hash, "name": self.name, "version": self.version,
            "entity": self.entity, "timestamp": self.timestamp, "label": asdict(self.label),
            "features": [[f.name, f.kind, f.source] for f in self.features],
            "windows": [asdict(w) for w in self.windows],
            "source_columns": list(self.source_columns),
            # evaluation order and stage; raw and categorical columns are described by `features`
            "row_level": [[n, exprs.get(n)] for n, _ in self.row_exprs],
            "after_windows": [[n, exprs.get(n)] for n, _ in self.post_exprs],
            "rules": self.rules.describe(),
        }


def plan_hash(resolved: dict) -> str:
    """sha256 of the canonical JSON of the semantic part of a resolved spec."""
    def strip(entry):
        return {k: v for k, v in entry.items() if k != "key"}
    canon = {**resolved, "windows": [strip(w) for w in resolved["windows"]],
             "derived": [strip(d) for d in resolved["derived"]], "plan_format": PLAN_FORMAT}
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
