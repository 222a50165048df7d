"""Evaluate a :class:`FeaturePlan` over event history: the frames backend's entry points.

The implementation is :mod:`mlops.features.backends.frames` (polars, lazily); this
module keeps the import path that training, batch scoring, monitoring and the actions
use. See that module for the semantics.
"""
from __future__ import annotations

from mlops.features.backends.frames import apply_derived, compute_at, compute_features, sink_features

__all__ = ["apply_derived", "compute_at", "compute_features", "sink_features"]
