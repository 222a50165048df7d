"""Reference bins of the circuit breaker, taken from monitoring's fitted reference.

The bins and shares are those of :class:`mlops.monitoring.reference.Reference` (numeric
inner edges ``numpy.quantile(ref, k / n_bins)``, duplicates dropped, bins ``[e_i, e_i+1)``
with open outer bins; categorical bins are the reference categories plus one ``unseen``
bin) and the PSI is :func:`mlops.monitoring.stats.psi` (shares floored at 1e-4): one
drift reference and one PSI for monitoring and serving.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from mlops.errors import ConfigError, DataError
from mlops.monitoring import stats
from mlops.monitoring.reference import Reference
from mlops.monitoring.stats import PSI_FLOOR as SHARE_FLOOR
from mlops.monitoring.stats import psi

__all__ = ["SCORE", "SHARE_FLOOR", "BreakerReference", "FeatureBins", "psi"]
SCORE = "__score__"
PREDICTION = "prediction"  # the score's column in a model's reference


@dataclass(frozen=True)
class FeatureBins:
    """Reference bins of one feature: numeric ``edges`` or ``categories`` (+ unseen)."""

    name: str
    shares: tuple[float, ...]
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self):
        if (self.edges is None) == (self.categories is None):
            raise ConfigError("give exactly one of edges or categories",
                              key=f"breaker.reference.{self.name}")
        n = len(self.edges) + 1 if self.edges is not None else len(self.categories) + 1
        if len(self.shares) != n:
            raise ConfigError(f"needs {n} reference shares (one per bin); got {len(self.shares)}",
                              key=f"breaker.reference.{self.name}.shares",
                              fix="numeric: len(edges)+1; categorical: len(categories)+1 (unseen)")
        if self.edges is not None and any(np.diff(self.edges) <= 0):
            raise ConfigError("edges must be strictly increasing",
                              key=f"breaker.reference.{self.name}.edges")

    @property
    def n_bins(self) -> int:
        return len(self.shares)

    def bin(self, values) -> np.ndarray:
        """Bin index per value (int16); -1 for null/NaN/inf (dropped)."""
        if self.edges is not None:
            x = np.asarray(values, dtype=np.float64)
            ok = np.isfinite(x)
            idx = stats.bin_index(np.where(ok, x, 0.0), np.asarray(self.edges))
            return np.where(ok, idx, -1).astype(np.int16)
        lookup = self._lookup()
        unseen = len(self.categories)
        return np.fromiter((-1 if v is None else lookup.get(v, unseen) for v in values),
                           dtype=np.int16, count=len(values))

    @cached_property
    def _category_index(self) -> dict:
        # cached_property writes the instance dict directly: no mutation through a frozen field
        return {c: i for i, c in enumerate(self.categories)}

    def _lookup(self) -> dict:
        return self._category_index

    def as_dict(self) -> dict:
        return {"name": self.name, "shares": list(self.shares),
                "edges": None if self.edges is None else list(self.edges),
                "categories": None if self.categories is None else list(self.categories)}


@dataclass(frozen=True)
class BreakerReference:
    """Reference bins of the monitored features and of the prediction score, and their
    calibrated limits (a :class:`~mlops.serving.breaker.limits.BreakerLimits`; None: not
    calibrated, see :func:`mlops.serving.breaker.limits.calibrated_reference`)."""

    features: tuple[FeatureBins, ...]
    score: FeatureBins
    limits: Any = field(default=None, compare=False)

    @classmethod
    def from_reference(cls, reference: Reference, features: Sequence[str], *,
                       score: str = PREDICTION) -> "BreakerReference":
        """The breaker's bins of ``features`` and of the ``score`` column, as fitted in
        a monitoring reference (the one stored with the model). Features without a valid
        reference value are not monitored; a reference without the score is a DataError.
        """
        bins = []
        for name in features:
            if name in reference.numeric:
                ref = reference.numeric[name]
                shares = stats.shares(ref.counts)
                if shares is not None:
                    bins.append(FeatureBins(name, tuple(shares.tolist()),
                                            edges=tuple(ref.edges.tolist())))
            elif name in reference.categorical:
                cat = reference.categorical[name]
                shares = stats.shares(cat.counts)
                if shares is not None:  # the unseen bin is empty in the reference
                    bins.append(FeatureBins(name, tuple(shares.tolist()) + (0.0,),
                                            categories=tuple(cat.categories)))
        ref = reference.numeric.get(score)
        shares = None if ref is None else stats.shares(ref.counts)
        if shares is None:
            raise DataError(f"the reference has no fitted {score!r} column; it has "
                            f"{reference.features}", key="reference",
                            fix="refit the reference with the model's scores")
        return cls(tuple(bins), FeatureBins(SCORE, tuple(shares.tolist()),
                                            edges=tuple(ref.edges.tolist())))

    def as_dict(self) -> dict:
        return {"features": [f.as_dict() for f in self.features], "score": self.score.as_dict(),
                "limits": None if self.limits is None else self.limits.as_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "BreakerReference":
        from mlops.serving.breaker.limits import BreakerLimits  # it builds on these bins

        def build(d):
            return FeatureBins(d["name"], tuple(d["shares"]),
                               edges=None if d.get("edges") is None else tuple(d["edges"]),
                               categories=None if d.get("categories") is None
                               else tuple(d["categories"]))
        limits = data.get("limits")
        return cls(tuple(build(d) for d in data["features"]), build(data["score"]),
                   limits=None if limits is None else BreakerLimits.from_dict(limits))


def _floats(values) -> np.ndarray:
    """Values as float64 (None -> NaN), for binning."""
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object:  # None -> NaN
        arr = np.array([np.nan if v is None else v for v in arr], dtype=np.float64)
    return arr.astype(np.float64)
