"""Reference bins of the circuit breaker and the PSI it compares them with.

Numeric inner edges are ``numpy.quantile(ref, k / n_bins)`` (duplicates dropped), bins
``[e_i, e_i+1)`` with open outer bins; categorical bins are the reference categories
plus one ``unseen`` bin. PSI floors every share at 1e-4.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mlops.errors import ConfigError

SHARE_FLOOR = 1e-4
SCORE = "__score__"


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
            idx = np.searchsorted(np.asarray(self.edges), np.where(ok, x, 0.0), side="right")
            return np.where(ok, idx, -1).astype(np.int16)
        lookup = self._lookup()
        unseen = len(self.categories)
        return np.fromiter((-1 if v is None else lookup.get(v, unseen) for v in values),
                           dtype=np.int16, count=len(values))

    def _lookup(self) -> dict:
        cache = self.__dict__.get("_lookup_cache")
        if cache is None:
            cache = {c: i for i, c in enumerate(self.categories)}
            object.__setattr__(self, "_lookup_cache", cache)
        return cache

    def as_dict(self) -> dict:
        return {"name": self.name, "shares": list(self.shares),
                "edges": None if self.edges is None else list(self.edges),
                "categories": None if self.categories is None else list(self.categories)}


def psi(current: np.ndarray, reference: np.ndarray) -> float:
    """PSI between two share vectors, each share floored at 1e-4."""
    c = np.maximum(np.asarray(current, dtype=np.float64), SHARE_FLOOR)
    r = np.maximum(np.asarray(reference, dtype=np.float64), SHARE_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def _numeric_bins(name: str, values, n_bins: int) -> FeatureBins:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise ConfigError("has no finite reference values", key=f"breaker.reference.{name}")
    edges = np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins))
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)
    return FeatureBins(name, tuple((counts / x.size).tolist()), edges=tuple(edges.tolist()))


def _categorical_bins(name: str, values) -> FeatureBins:
    vals = [v for v in values if v is not None]
    cats, counts = np.unique(np.asarray(vals, dtype=object).astype(str), return_counts=True)
    shares = (counts / max(len(vals), 1)).tolist() + [0.0]  # the unseen bin is empty
    return FeatureBins(name, tuple(shares), categories=tuple(cats.tolist()))


@dataclass(frozen=True)
class BreakerReference:
    """Reference bins of the monitored features and of the prediction score."""

    features: tuple[FeatureBins, ...]
    score: FeatureBins

    @classmethod
    def fit(cls, columns: Mapping[str, Sequence], scores, *, categorical: Sequence[str] = (),
            n_bins: int = 10) -> "BreakerReference":
        """Fit bins on reference data (training features and training scores).

        Numeric inner edges are ``numpy.quantile(ref, k / n_bins)``, k = 1..n_bins-1,
        duplicates dropped; categorical bins are the reference categories + unseen.
        ``columns`` maps feature name -> values (a polars DataFrame works too).
        """
        names = list(columns.columns) if hasattr(columns, "columns") else list(columns)
        feats = []
        for name in names:
            values = columns[name]
            values = values.to_list() if name in categorical and hasattr(values, "to_list") \
                else values
            feats.append(_categorical_bins(name, values) if name in categorical
                         else _numeric_bins(name, _floats(values), n_bins))
        return cls(tuple(feats), _numeric_bins(SCORE, scores, n_bins))

    def as_dict(self) -> dict:
        return {"features": [f.as_dict() for f in self.features], "score": self.score.as_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "BreakerReference":
        def build(d):
            return FeatureBins(d["name"], tuple(d["shares"]),
                               edges=None if d.get("edges") is None else tuple(d["edges"]),
                               categories=None if d.get("categories") is None
                               else tuple(d["categories"]))
        return cls(tuple(build(d) for d in data["features"]), build(data["score"]))


def _floats(values) -> np.ndarray:
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object:  # None -> NaN
        arr = np.array([np.nan if v is None else v for v in arr], dtype=np.float64)
    return arr.astype(np.float64)
