"""Serving: the HTTP app, batch scoring, circuit breaker, prediction log, parity replay.

Online stores, materialization and request-time features live in
:mod:`mlops.features.online` (serving imports them, never the other way round).

Entry points the action layer calls:

- ``open_state(plan, model, info, settings, ...)`` + ``serve(state)``: ``action=serve``;
- ``score_events(plan, model, info, events, out_path, ...)``: ``action=score``;
- ``replay_parity(plan, events, n_events=...)``: ``action=parity``.

Names are imported lazily (as in :mod:`mlops.monitoring`): every run reads
:mod:`mlops.serving.settings` through the config schema, and must not pay for FastAPI,
Prometheus and scikit-learn unless it serves or scores.
"""
from __future__ import annotations

from mlops.lazy_exports import module_getattr

_EXPORTS = {
    "score_events": "batch",
    "BreakerReference": "breaker", "CircuitBreaker": "breaker", "FeatureBins": "breaker", "psi": "breaker",
    "create_app": "http.app", "serve": "http.app", "readiness": "http.routes.status",
    "ParityReport": "parity", "replay_parity": "parity", "PredictionLog": "prediction_log",
    "BreakerSettings": "settings", "ServingSettings": "settings", "StoreSettings": "settings",
    "ModelInfo": "skew", "check_plan": "skew", "ServingState": "state", "open_state": "state",
}
__all__ = sorted(_EXPORTS)


__getattr__ = module_getattr(__name__, _EXPORTS)
