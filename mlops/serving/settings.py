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

from mlops.constraints import Check, Interval, Options
from mlops.constraints import validate as check_constraints
from mlops.features.online.store import ALIASES, is_store_type

MODES = ("realtime", "hybrid", "batch")
STALE_POLICIES = ("warn", "default", "refuse")
BREAKER_ACTIONS = ("fallback", "default", "refuse")
STORE_TYPES = ALIASES  # or a dotted class path (features.online.store)
INVALID_RECORD_POLICIES = ("reject", "default")
UNKNOWN_FIELD_POLICIES = ("reject", "ignore")


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
    unknown_fields: str = "reject"         # a record field the plan does not read: reject (422) | ignore
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
        """Raise ConfigError naming the first bad key (declared rules, mlops.constraints)."""
        positive, count = [Interval(float, 0, None, closed="neither")], [Interval(int, 1, None)]
        share = [Interval(float, 0, 1, closed="both")]
        rules = {
            "mode": [Options(*MODES)], "stale_policy": [Options(*STALE_POLICIES)],
            "port": [Interval(int, 0, 65536)], "ttl_seconds": positive, "threshold": share,
            "max_records": count, "max_body_bytes": [Interval(int, 1024, None)],
            "batch_wait_ms": [Interval(float, 0, 1000, closed="both")], "max_batch": count,
            "log_flush_records": count, "log_flush_seconds": positive,
            "max_future_seconds": [Interval(float, 0, None)],
            "max_abs_value": [*positive, None],
            "invalid_record_policy": [Options(*INVALID_RECORD_POLICIES)],
            "unknown_fields": [Options(*UNKNOWN_FIELD_POLICIES)],
            "header_timeout_seconds": positive, "body_timeout_seconds": positive,
            "keep_alive_seconds": positive, "idempotency_ttl_seconds": positive,
            "store.max_events_per_entity": count,
            "store.type": [Check(is_store_type, f"one of {list(STORE_TYPES)} or a dotted class "
                                                "path 'package.module.Class'")],
            "breaker.window": [Interval(int, 10, None)],
            # never trip on fewer records than the window can hold
            "breaker.min_requests": [Interval(int, 1, self.breaker.window, closed="both")],
            "breaker.min_values": count, "breaker.action": [Options(*BREAKER_ACTIONS)],
            "breaker.feature_psi": positive, "breaker.max_drift_share": [Interval(float, 0, 1)],
            "breaker.prediction_psi": positive, "breaker.default_score": share,
            "breaker.max_records_per_entity": count, "breaker.max_records_per_request": count,
            "breaker.poll_seconds": positive,
        }
        check_constraints(self, rules, prefix=prefix)
