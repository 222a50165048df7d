"""Serving: the HTTP app, batch scoring, circuit breaker, prediction log, parity replay.

Online stores, materialization and request-time features live in
:mod:`mlops.features.online` (serving imports them, never the other way round).

Entry points the action layer calls:

- ``open_state(plan, model, info, settings, ...)`` + ``serve(state)``: ``action=serve``;
- ``score_events(plan, model, info, events, out_path, ...)``: ``action=score``;
- ``replay_parity(plan, events, n_events=...)``: ``action=parity``.
"""
from mlops.serving.batch import score_events
from mlops.serving.breaker import BreakerReference, CircuitBreaker, FeatureBins, psi
from mlops.serving.http.app import create_app, serve
from mlops.serving.http.routes.status import readiness
from mlops.serving.parity import ParityReport, replay_parity
from mlops.serving.prediction_log import PredictionLog
from mlops.serving.settings import BreakerSettings, ServingSettings, StoreSettings
from mlops.serving.skew import ModelInfo, check_plan
from mlops.serving.state import ServingState, open_state

__all__ = [
    "BreakerReference", "BreakerSettings", "CircuitBreaker", "FeatureBins", "ModelInfo",
    "ParityReport", "PredictionLog", "ServingSettings", "ServingState", "StoreSettings",
    "check_plan", "create_app", "open_state", "psi", "readiness", "replay_parity",
    "score_events", "serve",
]
