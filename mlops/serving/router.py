"""Experiment routing inside the server: each record goes to its unit's variant model.

The caller (the action layer) builds the :class:`ExperimentRouter` from an
experiment spec: the served variants with their models, the shadow variants, and
an ``assign`` function (GrowthBook hashing from :mod:`mlops.experiments`) that maps
unit ids to served variant names. Features are computed once per micro-batch;
each variant's model scores only its own rows, shadow models score every row and
are logged, never returned.

Variants may carry different feature plans (a model carries its plan): ``plans``
maps a variant to its own plan, and ``score`` asks ``features_for(plan)`` for that
plan's features of the same records. Such a plan must read a subset of the served
plan's columns with windows no longer than its own (the online store holds the
served plan's events), and mixed plans need realtime mode (hybrid rows are
materialized for one plan).

Example:
    >>> router = ExperimentRouter(key="ab", unit="user_id", assign=assign_fn,
    ...     variants={"control": (m1, info1), "treatment": (m2, info2)},
    ...     shadows={"candidate": (m3, info3)})                      # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import polars as pl

from mlops.errors import ConfigError
from mlops.serving.model.scoring import predict_scores
from mlops.serving.skew import ModelInfo, check_plan


@dataclass
class ExperimentRouter:
    key: str
    unit: str
    assign: Callable[[list[str]], list[str]]
    variants: dict[str, tuple[Any, ModelInfo]]
    shadows: dict[str, tuple[Any, ModelInfo]] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)  # variant -> its model's plan

    def check(self, plan, mode: str = "realtime") -> None:
        """Every variant's model matches its plan (skew guard); other plans are servable."""
        for name, (_, info) in {**self.variants, **self.shadows}.items():
            own = self.plans.get(name, plan)
            check_plan(info.plan_hash, own, model=info)
            if own.spec_hash != plan.spec_hash:
                _check_servable(name, own, plan, mode)
        if not self.variants:
            raise ConfigError("an experiment needs served variants", key="experiment.variants")

    def score(self, points: pl.DataFrame, X: pl.DataFrame,
              features_for: Callable | None = None) -> "Routed":
        """Per-row variant, model info, label and probability; plus shadow scores.

        ``X`` holds the served plan's features; a variant with its own plan is scored
        on ``features_for(plan)`` (the same records, that plan's features). Each variant
        decides at its own threshold (``info.decision_threshold``: its version's policy).
        """
        cache: dict[str, pl.DataFrame] = {}

        def features(name: str) -> pl.DataFrame:
            own = self.plans.get(name)
            if own is None or features_for is None:
                return X
            if own.spec_hash not in cache:
                cache[own.spec_hash] = features_for(own)
            return cache[own.spec_hash]

        if self.unit not in points.columns:
            raise ConfigError(f"requests lack the experiment unit {self.unit!r}",
                              key="experiment.unit", fix="send the unit id in every record")
        names = self.assign(points[self.unit].cast(pl.String).to_list())
        names_arr = np.asarray(names, dtype=object)
        labels = np.zeros(X.height, dtype=np.int64)
        probs = np.zeros(X.height)
        infos: list[ModelInfo | None] = [None] * X.height
        for name, (model, info) in self.variants.items():
            rows = np.flatnonzero(names_arr == name)
            if rows.size == 0:
                continue
            lab, p = predict_scores(model, features(name)[rows.tolist()],
                                    threshold=info.decision_threshold)
            labels[rows], probs[rows] = lab, p
            for i in rows:
                infos[i] = info
        shadow = {name: (info, *predict_scores(model, features(name),
                                               threshold=info.decision_threshold))
                  for name, (model, info) in self.shadows.items()}
        return Routed(list(names), infos, labels, probs, shadow)


def _check_servable(name: str, own, served, mode: str) -> None:
    """A variant plan other than the served one must be computable from what is served."""
    fix = ("serve (serving.alias) the variant whose plan reads the most columns, or train "
           "the variants on one feature spec")
    if mode != "realtime":
        raise ConfigError(f"variant {name!r} carries plan {own.short_hash} ({own.name}) but "
                          f"the server uses {served.short_hash} ({served.name}); serving.mode="
                          f"{mode} holds one plan's features", key="serving.mode",
                          fix="use serving.mode=realtime for variants on different plans")
    extra = [c for c in own.source_columns if c not in served.source_columns]
    if extra or (own.entity, own.timestamp) != (served.entity, served.timestamp) \
            or own.max_period_seconds > served.max_period_seconds:
        raise ConfigError(f"variant {name!r} carries plan {own.short_hash} ({own.name}), which "
                          f"needs columns {extra or 'or windows'} the served plan "
                          f"{served.short_hash} ({served.name}) does not keep",
                          key="experiment.variants", fix=fix)


@dataclass
class Routed:
    variants: list[str]
    infos: list[ModelInfo]
    labels: np.ndarray
    probs: np.ndarray
    shadow: dict[str, tuple[ModelInfo, np.ndarray, np.ndarray]]


def experiment_router(spec, models: dict[str, tuple], *, info_of: Callable,
                      plan_of: Callable) -> ExperimentRouter:
    """The router of experiment ``spec``: each unit to its variant's model (``models``:
    variant -> (model, ModelVersion)), each variant deciding at its own version's threshold
    (``info_of(mv, variant)``) and scoring with the plan its model carries (``plan_of(mv)``)."""
    from mlops.experiments import assign_units

    def entry(name):
        model, mv = models[name]
        return model, info_of(mv, name)
    return ExperimentRouter(
        key=spec.key, unit=spec.unit, assign=lambda ids: list(assign_units(spec, ids)),
        variants={v.name: entry(v.name) for v in spec.served_variants},
        shadows={v.name: entry(v.name) for v in spec.variants if v.shadow},
        plans={name: plan_of(mv) for name, (_, mv) in models.items()})
