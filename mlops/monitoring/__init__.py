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

from mlops.lazy_exports import module_getattr

_EXPORTS = {
    "Reference": "reference", "fit_reference": "reference",
    "DriftPolicy": "policy", "detect_drift": "drift",
    "performance_by_chunk": "performance",
    "PageHinkley": "detectors", "DDM": "detectors", "ADWIN": "detectors",
    "first_detection": "detectors", "detections": "detectors",
}
__all__ = sorted(_EXPORTS)


__getattr__ = module_getattr(__name__, _EXPORTS)
