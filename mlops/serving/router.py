"""Experiment routing inside the server: each record goes to its unit's variant model.

The caller (the action layer) builds the :class:`ExperimentRouter` from an
experiment spec: the served variants with their models, the shadow variants, and
an ``assign`` function (GrowthBook hashing from :mod:`mlops.experiments`) that maps
unit ids to served variant names. Features are computed once per micro-batch;
each variant's model scores only its own rows, shadow models score every row and
are logged, never returned.

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
from mlops.serving.scoring import predict_scores
from mlops.serving.skew import ModelInfo, check_plan


@dataclass
class ExperimentRouter:
    key: str
    unit: str
    assign: Callable[[list[str]], list[str]]
    variants: dict[str, tuple[Any, ModelInfo]]
    shadows: dict[str, tuple[Any, ModelInfo]] = field(default_factory=dict)

    def check(self, plan) -> None:
        """Every variant must have been trained on the served plan (skew guard)."""
        for name, (_, info) in {**self.variants, **self.shadows}.items():
            check_plan(info.plan_hash, plan, model=info)
        if not self.variants:
            raise ConfigError("an experiment needs served variants", key="experiment.variants")

    def score(self, points: pl.DataFrame, X: pl.DataFrame, threshold: float) -> "Routed":
        """Per-row variant, model info, label and probability; plus shadow scores."""
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
            lab, p = predict_scores(model, X[rows.tolist()], threshold=threshold)
            labels[rows], probs[rows] = lab, p
            for i in rows:
                infos[i] = info
        shadow = {name: (info, *predict_scores(model, X, threshold=threshold))
                  for name, (model, info) in self.shadows.items()}
        return Routed(list(names), infos, labels, probs, shadow)


@dataclass
class Routed:
    variants: list[str]
    infos: list[ModelInfo]
    labels: np.ndarray
    probs: np.ndarray
    shadow: dict[str, tuple[ModelInfo, np.ndarray, np.ndarray]]
