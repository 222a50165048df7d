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
from mlops.errors import ConfigError
from mlops.features.online.store import ALIASES, is_store_type
from mlops.serving.prediction_log.fleet import default_replica_id, replica_id_problem

MODES = ("realtime", "hybrid", "batch")
STALE_POLICIES = ("warn", "default", "refuse")
ON_TRIP = ("abstain", "refuse", "fallback", "default")
# what the live window is compared with: the model's training reference, or the window of
# traffic just before it (data with seasons the training period did not see)
BREAKER_REFERENCES = ("training", "previous")
STORE_TYPES = ALIASES  # or a dotted class path (features.online.store)
INVALID_RECORD_POLICIES = ("reject", "default")
UNKNOWN_FIELD_POLICIES = ("reject", "ignore")


@dataclass
class BreakerSettings:
    """Circuit breaker: PSI of the live window against the model's reference, and what
    a tripped breaker answers (``on_trip``)."""

    enabled: bool = True
    # (the smallest window whose own noise on the reference is within psi_floor:
    # serving.breaker.limits.choose_window)
    window: Optional[int] = None  # rolling window, in records; null: calibrated on the reference
    # training: PSI against the model's training reference | previous: against the `window`
    # records before the window (limits calibrated on consecutive reference chunks)
    reference: str = "training"
    # Limits are calibrated on the model's reference (serving.breaker_limits): null keeps
    # the calibrated value, a number overrides it for every column
    min_requests: Optional[int] = None      # armed from this many records; null: calibrated
    feature_psi: Optional[float] = None     # a feature drifts past this PSI; null: calibrated
    max_drift_share: float = 0.25  # trip when more than this share of features drift
    min_values: Optional[int] = None        # a feature votes from this many finite values;
                                            # null: min_requests (calibrated)
    prediction_psi: Optional[float] = None  # trip past this score PSI; null: calibrated
    std_multiplier: float = 3.0  # calibrated limit: mean + this x std of reference chunks
    psi_floor: float = 0.1       # ... and never below this effect size (monitoring's PSI floor)
    # abstain: 200, decision "abstain", no value | refuse: 503 + Retry-After |
    # fallback: the declared `fallback` version answers | default: the declared default_value
    on_trip: str = "abstain"
    fallback: Optional[str] = None        # on_trip=fallback: a registry alias or version
    default_value: Optional[float] = None  # on_trip=default: the constant answered (no default)
    # one client cannot trip the breaker: caps on what one entity / one request adds
    max_entity_share: float = 0.1     # an entity keeps its latest records, at most this share of the window
    max_records_per_request: int = 20  # per request (records beyond are not observed)
    poll_seconds: float = 1.0    # how often a server re-reads the shared breaker state
    action: Optional[str] = None         # removed: on_trip (a ConfigError says so)
    default_score: Optional[float] = None  # removed: on_trip + default_value
    max_records_per_entity: Optional[int] = None  # removed: max_entity_share

    def per_entity(self, window: int) -> int:
        """Records one entity may hold in a window of ``window`` records (its latest ones),
        at least 1."""
        return max(1, int(self.max_entity_share * window))

    def check_removed(self, prefix: str = "serving.breaker") -> None:
        """The keys this breaker no longer has are errors naming their replacement."""
        if self.action is not None:
            new = {"default": "abstain (no invented value), or default with a declared "
                              "default_value", "fallback": "fallback with breaker.fallback: "
                              "<alias or version>", "refuse": "refuse"}.get(str(self.action),
                                                                           "abstain")
            raise ConfigError(f"was replaced by on_trip (abstain | refuse | fallback | default); "
                              f"got action={self.action!r}", key=f"{prefix}.action",
                              fix=f"write {prefix}.on_trip: {new}")
        if self.max_records_per_entity is not None:
            raise ConfigError("was replaced by max_entity_share: an entity now keeps its LATEST "
                              "records (its first ones froze the window on old traffic), up to "
                              "a share of the window", key=f"{prefix}.max_records_per_entity",
                              fix=f"drop it, or write {prefix}.max_entity_share: "
                                  f"{self.max_records_per_entity / max(self.window or 500, 1):.4g}"
                                  f"{'' if self.window else ' (of a 500-record window)'}")
        if self.default_score is not None:
            raise ConfigError("was replaced by default_value, answered only with on_trip: "
                              "default (a constant is never served unless declared)",
                              key=f"{prefix}.default_score",
                              fix=f"drop it (on_trip: abstain answers no value) or write "
                                  f"{prefix}.on_trip: default and {prefix}.default_value: "
                                  f"{self.default_score}")


@dataclass
class StoreSettings:
    """Which online store to open: ``sqlite`` (a file), ``redis`` (a URL) or the dotted
    path of a class implementing :class:`mlops.features.online.OnlineStore`."""

    type: str = "sqlite"             # sqlite | redis | package.module.Class
    path: str = ".mlops/online_store.sqlite"
    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "mlops"
    max_events_per_entity: int = 1000  # newest events kept per entity (bounds hot entities)
    timeout_ms: float = 1000.0       # a store operation waiting longer (a lock, a slow server): 503


@dataclass
class ServingSettings:
    """Everything the HTTP app and the request path read at run time."""

    mode: str = "realtime"           # realtime | hybrid | batch
    host: str = "127.0.0.1"
    port: int = 8080
    ttl_seconds: float = 86400.0     # hybrid/batch: max age of materialized values
    stale_policy: str = "warn"       # warn | default | refuse
    feature_defaults: dict = field(default_factory=dict)  # stale_policy=default overrides
    max_records: int = 1000          # per request
    max_body_bytes: int = 1_000_000  # per request
    batch_wait_ms: float = 2.0       # micro-batching: how long to collect requests
    max_batch: int = 64              # micro-batching: records per model call
    admin_token: Optional[str] = None  # falls back to env MLOPS_ADMIN_TOKEN
    log_dir: Optional[str] = None    # prediction log directory (None: no log)
    # this server's name in a fleet: it journals under <log_dir>/<replica_id>/ (null: the
    # host name and the port, which two servers of one or two machines never share)
    replica_id: Optional[str] = None
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
    # open connections at most (null: the open-file limit minus a reserve); at the limit the
    # oldest idle connection of the client holding most is closed, else the new one gets 503
    max_connections: Optional[int] = None
    idempotency_ttl_seconds: float = 86400.0  # Idempotency-Key answers are replayed this long
    store: StoreSettings = field(default_factory=StoreSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)

    def resolved_admin_token(self) -> Optional[str]:
        """The configured token, else ``MLOPS_ADMIN_TOKEN``, else None (admin disabled)."""
        return self.admin_token or os.environ.get("MLOPS_ADMIN_TOKEN") or None

    def replica(self) -> str:
        """This server's replica id: ``replica_id`` when given, else ``<host>-<port>``."""
        return self.replica_id or default_replica_id(self.port)

    def validate(self, prefix: str = "serving") -> None:
        """Raise ConfigError naming the first bad key (declared rules, mlops.constraints)."""
        self.breaker.check_removed(f"{prefix}.breaker")
        positive, count = [Interval(float, 0, None, closed="neither")], [Interval(int, 1, None)]
        rules = {
            "mode": [Options(*MODES)], "stale_policy": [Options(*STALE_POLICIES)],
            "port": [Interval(int, 0, 65536)], "ttl_seconds": positive,
            "max_records": count, "max_body_bytes": [Interval(int, 1024, None)],
            "batch_wait_ms": [Interval(float, 0, 1000, closed="both")], "max_batch": count,
            "log_flush_records": count, "log_flush_seconds": positive,
            "max_future_seconds": [Interval(float, 0, None)],
            "max_abs_value": [*positive, None],
            "invalid_record_policy": [Options(*INVALID_RECORD_POLICIES)],
            "unknown_fields": [Options(*UNKNOWN_FIELD_POLICIES)],
            "header_timeout_seconds": positive, "body_timeout_seconds": positive,
            "keep_alive_seconds": positive, "idempotency_ttl_seconds": positive,
            "store.max_events_per_entity": count, "store.timeout_ms": positive,
            "max_connections": [Interval(int, 1, None), None],
            "store.type": [Check(is_store_type, f"one of {list(STORE_TYPES)} or a dotted class "
                                                "path 'package.module.Class'")],
            "breaker.window": [Interval(int, 10, None), None],
            "breaker.reference": [Options(*BREAKER_REFERENCES)],
            # never trip on fewer records than the window can hold
            "breaker.min_requests": [Interval(int, 1, self.breaker.window, closed="both"), None]
            if self.breaker.window else [Interval(int, 1, None), None],
            "breaker.min_values": [*count, None], "breaker.on_trip": [Options(*ON_TRIP)],
            "breaker.feature_psi": [*positive, None],
            "breaker.max_drift_share": [Interval(float, 0, 1)],
            "breaker.prediction_psi": [*positive, None], "breaker.std_multiplier": positive,
            "breaker.psi_floor": [Interval(float, 0, None)],
            "breaker.default_value": [Interval(float, None, None), None],
            "breaker.fallback": [str, None],
            "breaker.max_entity_share": [Interval(float, 0, 1, closed="right")],
            "breaker.max_records_per_request": count,
            "breaker.poll_seconds": positive,
            "replica_id": [Check(lambda v: isinstance(v, str) and replica_id_problem(v) is None,
                                 "1-128 letters, digits, '.', '_' or '-', starting with a "
                                 "letter or digit, other than 'journal' and 'quarantine' (a directory name)"),
                           None],
        }
        check_constraints(self, rules, prefix=prefix)
        if self.breaker.on_trip == "default" and self.breaker.default_value is None:
            raise ConfigError("on_trip=default answers a declared constant, and none is declared",
                              key=f"{prefix}.breaker.default_value",
                              fix="declare the value for this model (breaker.default_value: ...) "
                                  "or use on_trip: abstain")
