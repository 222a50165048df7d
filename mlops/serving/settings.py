"""Plain settings of the serving engine (no Hydra here: the action layer fills them).

Every field mirrors a key of ``conf/serving/*.yaml``; :meth:`ServingSettings.validate`
names the key, the rule and the value when something is out of range.

Example:
    >>> s = ServingSettings(mode="hybrid", ttl_seconds=600, stale_policy="refuse")
    >>> s.validate()
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from mlops.errors import ConfigError
from mlops.features.online.store import ALIASES, is_store_type

MODES = ("realtime", "hybrid", "batch")
STALE_POLICIES = ("warn", "default", "refuse")
BREAKER_ACTIONS = ("fallback", "default", "refuse")
STORE_TYPES = ALIASES  # or a dotted class path (features.online.store)
INVALID_RECORD_POLICIES = ("reject", "default")


@dataclass
class BreakerSettings:
    """Circuit breaker thresholds (PSI over the last ``window`` requests)."""

    enabled: bool = True
    window: int = 500            # rolling window, in records
    min_requests: int = 200      # never trip on fewer records than this
    feature_psi: float = 0.25    # a feature drifts when its PSI is above this
    max_drift_share: float = 0.25  # trip when more than this share of features drift
    min_values: int = 100        # a feature's PSI counts once it has this many finite values
    prediction_psi: float = 0.25  # trip when the score PSI is above this
    action: str = "default"      # fallback | default | refuse
    default_score: float = 0.0   # probability served by action=default
    # one client cannot trip the breaker: caps on what one entity / one request adds
    max_records_per_entity: int = 5   # per entity within the window
    max_records_per_request: int = 20  # per request (records beyond are not observed)
    poll_seconds: float = 1.0    # how often a server re-reads the shared breaker state


@dataclass
class StoreSettings:
    """Which online store to open: ``sqlite`` (a file), ``redis`` (a URL) or the dotted
    path of a class implementing :class:`mlops.features.online.OnlineStore`."""

    type: str = "sqlite"             # sqlite | redis | package.module.Class
    path: str = ".mlops/online_store.sqlite"
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "mlops"
    max_events_per_entity: int = 1000  # newest events kept per entity (bounds hot entities)


@dataclass
class ServingSettings:
    """Everything the HTTP app and the request path read at run time."""

    mode: str = "realtime"           # realtime | hybrid | batch
    host: str = "127.0.0.1"
    port: int = 8080
    ttl_seconds: float = 86400.0     # hybrid/batch: max age of materialized values
    stale_policy: str = "warn"       # warn | default | refuse
    feature_defaults: dict = field(default_factory=dict)  # stale_policy=default overrides
    threshold: float = 0.5           # probability >= threshold -> prediction 1
    max_records: int = 1000          # per request
    max_body_bytes: int = 1_000_000  # per request
    batch_wait_ms: float = 2.0       # micro-batching: how long to collect requests
    max_batch: int = 64              # micro-batching: records per model call
    admin_token: Optional[str] = None  # falls back to env MLOPS_ADMIN_TOKEN
    log_dir: Optional[str] = None    # prediction log directory (None: no log)
    log_flush_records: int = 1000
    log_flush_seconds: float = 5.0
    log_durable: bool = True         # journal + fsync before answering (False: buffered)
    variant: Optional[str] = None    # A/B variant name written to the prediction log
    max_future_seconds: float = 300.0  # event times further ahead of the server clock: invalid
    max_abs_value: Optional[float] = 1e15  # |number| above this is invalid (null: no limit)
    invalid_record_policy: str = "reject"  # reject (422 for its request) | default (safe score)
    header_timeout_seconds: float = 10.0   # a client must send its request head within this
    body_timeout_seconds: float = 30.0     # ... and its body within this (else 408)
    keep_alive_seconds: float = 5.0        # idle keep-alive connections are closed after this
    idempotency_ttl_seconds: float = 86400.0  # Idempotency-Key answers are replayed this long
    store: StoreSettings = field(default_factory=StoreSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)

    def resolved_admin_token(self) -> Optional[str]:
        """The configured token, else ``MLOPS_ADMIN_TOKEN``, else None (admin disabled)."""
        return self.admin_token or os.environ.get("MLOPS_ADMIN_TOKEN") or None

    def validate(self, prefix: str = "serving") -> None:
        """Raise ConfigError naming the first bad key."""
        def need(key: str, ok: bool, rule: str, value) -> None:
            if not ok:
                raise ConfigError(f"must be {rule}; got {value!r}", key=f"{prefix}.{key}",
                                  fix=f"set {prefix}.{key} to a value that is {rule}")
        need("mode", self.mode in MODES, f"one of {list(MODES)}", self.mode)
        need("stale_policy", self.stale_policy in STALE_POLICIES,
             f"one of {list(STALE_POLICIES)}", self.stale_policy)
        need("port", isinstance(self.port, int) and 0 <= self.port < 65536, "a port number",
             self.port)
        need("ttl_seconds", self.ttl_seconds > 0, "> 0", self.ttl_seconds)
        need("threshold", 0.0 <= self.threshold <= 1.0, "in [0, 1]", self.threshold)
        need("max_records", self.max_records >= 1, ">= 1", self.max_records)
        need("max_body_bytes", self.max_body_bytes >= 1024, ">= 1024", self.max_body_bytes)
        need("batch_wait_ms", 0 <= self.batch_wait_ms <= 1000, "in [0, 1000]",
             self.batch_wait_ms)
        need("max_batch", self.max_batch >= 1, ">= 1", self.max_batch)
        need("log_flush_records", self.log_flush_records >= 1, ">= 1", self.log_flush_records)
        need("log_flush_seconds", self.log_flush_seconds > 0, "> 0", self.log_flush_seconds)
        need("max_future_seconds", self.max_future_seconds >= 0, ">= 0", self.max_future_seconds)
        need("max_abs_value", self.max_abs_value is None or self.max_abs_value > 0,
             "> 0 or null", self.max_abs_value)
        need("invalid_record_policy", self.invalid_record_policy in INVALID_RECORD_POLICIES,
             f"one of {list(INVALID_RECORD_POLICIES)}", self.invalid_record_policy)
        for key in ("header_timeout_seconds", "body_timeout_seconds", "keep_alive_seconds",
                    "idempotency_ttl_seconds"):
            need(key, getattr(self, key) > 0, "> 0", getattr(self, key))
        need("store.max_events_per_entity", self.store.max_events_per_entity >= 1, ">= 1",
             self.store.max_events_per_entity)
        need("store.type", is_store_type(self.store.type),
             f"one of {list(STORE_TYPES)} or a dotted class path 'package.module.Class'",
             self.store.type)
        b = self.breaker
        need("breaker.window", b.window >= 10, ">= 10", b.window)
        need("breaker.min_requests", 1 <= b.min_requests <= b.window,
             f"between 1 and breaker.window ({b.window})", b.min_requests)
        need("breaker.min_values", b.min_values >= 1, ">= 1", b.min_values)
        need("breaker.action", b.action in BREAKER_ACTIONS, f"one of {list(BREAKER_ACTIONS)}",
             b.action)
        need("breaker.feature_psi", b.feature_psi > 0, "> 0", b.feature_psi)
        need("breaker.max_drift_share", 0 <= b.max_drift_share < 1, "in [0, 1)",
             b.max_drift_share)
        need("breaker.prediction_psi", b.prediction_psi > 0, "> 0", b.prediction_psi)
        need("breaker.default_score", 0 <= b.default_score <= 1, "in [0, 1]", b.default_score)
        need("breaker.max_records_per_entity", b.max_records_per_entity >= 1, ">= 1",
             b.max_records_per_entity)
        need("breaker.max_records_per_request", b.max_records_per_request >= 1, ">= 1",
             b.max_records_per_request)
        need("breaker.poll_seconds", b.poll_seconds > 0, "> 0", b.poll_seconds)
