"""Monitoring: data drift, performance with delayed labels, streaming concept-drift detectors.

* ``reference``: :func:`fit_reference` -> :class:`Reference` (fitted once from training data,
  saved with the model; ``summary()`` feeds reports; the serving circuit breaker bins with it).
* ``drift``: :func:`detect_drift` (the monitor.json contract) under a :class:`DriftPolicy`.
* ``stats``: the statistics themselves (PSI, Jensen-Shannon, KS, Wasserstein, chi-square).
* ``performance``: :func:`performance_by_chunk`.
* ``detectors``: :class:`PageHinkley`, :class:`DDM`, :class:`ADWIN`, :func:`first_detection`.

Names are imported lazily so that ``import mlops.monitoring`` stays cheap.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Reference": "reference", "fit_reference": "reference",
    "DriftPolicy": "policy", "detect_drift": "drift",
    "performance_by_chunk": "performance",
    "PageHinkley": "detectors", "DDM": "detectors", "ADWIN": "detectors",
    "first_detection": "detectors", "detections": "detectors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
