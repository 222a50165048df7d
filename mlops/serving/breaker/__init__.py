"""The circuit breaker: the live window against the model's reference, shared by servers.

- :mod:`.circuit`: :class:`CircuitBreaker` (observe, trip, reset, status);
- :mod:`.bins`: the reference's bins and PSI (:class:`BreakerReference`, monitoring's);
- :mod:`.limits`: limits calibrated on the model's reference rows;
- :mod:`.window`: the live window, each entity's latest records within its share;
- :mod:`.shared`: the trip/reset record every server polls in the key-value store.
"""
from mlops.serving.breaker.bins import BreakerReference, FeatureBins, psi
from mlops.serving.breaker.circuit import BreakerStatus, CircuitBreaker

__all__ = ["BreakerReference", "BreakerStatus", "CircuitBreaker", "FeatureBins", "psi"]
