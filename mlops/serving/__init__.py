"""Serving: online stores, request-time features, the HTTP app, batch scoring,
circuit breaker, prediction log, parity replay.

Entry points the action layer calls:

- ``open_state(plan, model, info, settings, ...)`` + ``serve(state)``: ``action=serve``;
- ``score_events(plan, model, info, events, out_path, ...)``: ``action=score``;
- ``materialize(plan, events, store, as_of=...)``: ``action=materialize``;
- ``replay_parity(plan, events, n_events=...)``: ``action=parity``.
"""
from mlops.features.online.request import hybrid_features, materialize, realtime_features, window_defaults
from mlops.features.online.sqlite import OnlineStore, SQLiteStore, open_store
from mlops.serving.app import create_app, readiness, serve
from mlops.serving.batch import fnv1a32, publish_predictions, score_events
from mlops.serving.breaker import BreakerReference, CircuitBreaker, FeatureBins, psi
from mlops.serving.parity import ParityReport, replay_parity
from mlops.serving.prediction_log import PredictionLog
from mlops.serving.settings import BreakerSettings, ServingSettings, StoreSettings
from mlops.serving.skew import ModelInfo, check_plan
from mlops.serving.state import ServingState, open_state

__all__ = [
    "BreakerReference", "BreakerSettings", "CircuitBreaker", "FeatureBins", "ModelInfo",
    "OnlineStore", "ParityReport", "PredictionLog", "SQLiteStore", "ServingSettings",
    "ServingState", "StoreSettings", "check_plan", "create_app", "fnv1a32", "hybrid_features",
    "materialize", "open_state", "open_store", "psi", "publish_predictions", "readiness",
    "realtime_features", "replay_parity", "score_events", "serve", "window_defaults",
]
