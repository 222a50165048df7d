"""What a running server holds: plan, model(s), store, breaker, prediction log, settings.

:class:`ServingState` is built from plain objects (the action layer loads them from the
registry and the config) and checks the skew guard on construction and on reload.
:func:`open_state` is the convenience that also opens the store, the prediction log and
the breaker from :class:`ServingSettings`.

Example:
    >>> state = open_state(plan, model, ModelInfo("fraud", "3", plan.spec_hash),
    ...                    ServingSettings(log_dir="/tmp/plog"))  # doctest: +SKIP
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

import polars as pl

from mlops.errors import ConfigError
from mlops.features.compile import FeaturePlan
from mlops.features.online import OnlineStore, check_event_id, open_store
from mlops.serving.breaker import BreakerReference, CircuitBreaker
from mlops.serving.breaker.shared import SharedBreakerState, scope_key
from mlops.serving.http.connections import ConnectionLimit
from mlops.serving.http.idempotency import IdempotentAnswers
from mlops.serving.http.validation import RequestSchema
from mlops.serving.metrics import Metrics
from mlops.serving.model.scoring import known_categories
from mlops.serving.pipeline.features import Backends, probe
from mlops.serving.pipeline.micro_batch import MicroBatcher
from mlops.serving.prediction_log import PredictionLog, replica_log_dir
from mlops.serving.settings import ServingSettings
from mlops.serving.skew import ModelInfo, check_plan
from mlops.training.task import is_regression_model

ReloadFn = Callable[[str], tuple[Any, ModelInfo]]
# (action, details) -> None: writes a registry audit event (trips, resets, reloads)
AuditFn = Callable[[str, dict], None]
# version -> descriptions of the alias gates that version fails ([] = it passes)
GateFn = Callable[[str], list[str]]
# version -> the breaker bins of that version's reference (None: keep the current ones)
ReferenceFn = Callable[[str], Optional[BreakerReference]]


def utc_now() -> datetime:
    """Naive UTC now (event timestamps are naive UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class ServingState:
    """Everything the HTTP app needs. Construct it, then ``create_app(state)``.

    ``fallback`` is the (model, info) served when the breaker trips with
    ``on_trip="fallback"``; ``reload_fn(version) -> (model, info)`` backs
    ``POST /admin/reload`` (``reference_fn(version)`` gives the reloaded version's breaker
    bins); ``source_schema`` (the data's polars schema) types the request fields (else
    they are inferred from the plan); ``clock`` returns naive UTC now (tests inject a fixed
    one). The breaker's shared state is keyed by model name and version, plus
    ``breaker_scope`` when given (a replay run: its trips stay its own).
    """

    plan: FeaturePlan
    model: Any
    info: ModelInfo
    store: OnlineStore
    settings: ServingSettings = field(default_factory=ServingSettings)
    breaker: Optional[CircuitBreaker] = None
    prediction_log: Optional[PredictionLog] = None
    fallback: Optional[tuple[Any, ModelInfo]] = None
    reload_fn: Optional[ReloadFn] = None
    source_schema: Optional[dict] = None
    clock: Callable[[], datetime] = utc_now
    router: Optional[Any] = None          # ExperimentRouter: per-unit variant models
    event_id: Optional[str] = None        # request field naming the event (data.event_id)
    audit: Optional[AuditFn] = None       # registry audit events (Registry.record_event)
    gate_check: Optional[GateFn] = None   # /admin/reload serves only versions that pass
    reference_fn: Optional[ReferenceFn] = None  # /admin/reload: the version's breaker bins
    breaker_scope: Optional[str] = None   # added to the breaker's store key (a replay run)
    # ---- derived on construction (never passed in) ----
    request_schema: RequestSchema = field(init=False, repr=False)
    categories: Any = field(init=False, repr=False)     # the model's known categories
    metrics: Metrics = field(init=False, repr=False)
    started_at: float = field(init=False)
    replica_id: str = field(init=False)                 # this server in a fleet (/ready, /metadata)
    backends: Backends = field(init=False, repr=False)  # the plan's, less any the probe refused
    points_schema: dict = field(init=False, repr=False)   # request columns' dtypes
    feature_dtypes: dict = field(init=False, repr=False)  # the features' dtypes (rows to a frame)
    # ---- set by create_app: one app per state ----
    batcher: Optional[MicroBatcher] = field(default=None, init=False, repr=False)
    answers: Optional[IdempotentAnswers] = field(default=None, init=False, repr=False)
    connections: Optional[ConnectionLimit] = field(default=None, init=False, repr=False)
    # ---- caches and counters of the request path ----
    appended_since_prune: int = field(default=0, init=False, repr=False)  # events since last prune
    compiled: Optional[tuple] = field(default=None, init=False, repr=False)  # (model, compiled or None)
    _swap: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _active: tuple = field(default=(), init=False, repr=False)  # (model, info), read together

    def __post_init__(self):
        self.settings.validate()
        check_plan(self.info.plan_hash, self.plan, model=self.info)
        check_event_id(self.plan, self.event_id)
        if self.fallback is not None:
            check_plan(self.fallback[1].plan_hash, self.plan, model=self.fallback[1])
        self._check_on_trip()
        if self.router is not None:
            self.router.check(self.plan, mode=self.settings.mode)
        self.request_schema = RequestSchema.from_plan(self.plan, self.source_schema,
                                                      event_id=self.event_id)
        self.points_schema = self.request_schema.polars_schema()
        self.feature_dtypes = {f.name: pl.String if f.kind == "categorical" else pl.Float64
                               for f in self.plan.features}
        self.backends = Backends(tuple(self.plan.backends))
        if self.breaker is not None:
            # trips/resets are shared through the store and audited in the registry
            if self.breaker.shared is None:
                self.breaker.shared = self._shared_state(self.info)
            if self.breaker.listener is None:
                self.breaker.listener = self.record_event
        self.categories = known_categories(self.model)
        self.metrics = Metrics()
        self.started_at = time.time()
        self.replica_id = self.settings.replica()
        self._active = (self.model, self.info)

    def _check_on_trip(self) -> None:
        """What a tripped breaker answers must exist for this model (fallback, value)."""
        b = self.settings.breaker
        if self.breaker is not None and b.enabled and b.on_trip == "fallback" \
                and self.fallback is None:
            raise ConfigError("on_trip=fallback needs a fallback model version",
                              key="serving.breaker.fallback",
                              fix="name a registry alias or version (breaker.fallback: "
                                  "<alias|version>) or use on_trip: abstain")
        if b.default_value is not None and not is_regression_model(self.model) \
                and not 0.0 <= b.default_value <= 1.0:
            raise ConfigError(f"the served model is a classifier: the declared value is a "
                              f"probability in [0, 1]; got {b.default_value}",
                              key="serving.breaker.default_value",
                              fix="declare a probability, or use on_trip: abstain")

    def _shared_state(self, info: ModelInfo) -> SharedBreakerState:
        return SharedBreakerState(self.store, key=scope_key(info.name, info.version,
                                                            self.breaker_scope),
                                  version=str(info.version))

    @property
    def active(self) -> tuple[Any, ModelInfo]:
        """(model, info) read together, so a batch never mixes two versions."""
        return self._active

    def swap_model(self, model, info: ModelInfo) -> ModelInfo:
        """Replace the served model after the skew guard; return the previous info.

        The breaker follows the version: its state (keyed by name and version) and its
        reference become the new version's, with an empty window."""
        check_plan(info.plan_hash, self.plan, model=info)
        reference = None if self.reference_fn is None else self.reference_fn(str(info.version))
        with self._swap:
            previous = self.info
            self.model, self.info = model, info
            self._active = (model, info)
            self.categories = known_categories(model)
            if self.breaker is not None and str(previous.version) != str(info.version):
                self.breaker.rescope(self._shared_state(info), reference)
        return previous

    def record_event(self, action: str, details: dict) -> None:
        """Write an audit event (when the action layer gave an ``audit`` function)."""
        if self.audit is not None:
            self.audit(action, {"model_version": str(self.info.version), **details})

    def probe_backends(self, history: pl.DataFrame | None, *, sample: int = 200) -> None:
        """The start-up probe: refuse the rows backend (frames answer, logged, ``/ready``
        says so) when it differs from frames on ``sample`` events of stored ``history``."""
        probe(self.backends, self.plan, history, sample=sample)

    def now_us(self) -> int:
        """The clock in epoch microseconds."""
        dt = self.clock()
        if dt.tzinfo is not None:
            dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
        delta = dt - datetime(1970, 1, 1)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds

    def close(self) -> None:
        """Flush the prediction log and close the store (graceful shutdown)."""
        if self.prediction_log is not None:
            self.prediction_log.close()
        self.store.close()


def open_state(plan: FeaturePlan, model, info: ModelInfo, settings: ServingSettings, *,
               store: OnlineStore | None = None, reference: BreakerReference | dict | None = None,
               fallback: tuple[Any, ModelInfo] | None = None, reload_fn: ReloadFn | None = None,
               source_schema: dict | None = None, router=None, event_id: str | None = None,
               audit: AuditFn | None = None, gate_check: GateFn | None = None,
               reference_fn: ReferenceFn | None = None, breaker_scope: str | None = None,
               history: pl.DataFrame | None = None) -> ServingState:
    """Open the store/log/breaker named by ``settings`` and build a :class:`ServingState`.

    ``reference`` (breaker bins, e.g. ``BreakerReference.from_reference(...)`` or its ``as_dict()``)
    enables the breaker; without it the breaker is off. ``history`` (stored events, e.g.
    the latest of the data) feeds the start-up probe of the rows backend.
    """
    settings.validate()
    if store is None:
        s = settings.store
        store = open_store(s.type, path=s.path, url=s.url, namespace=s.namespace,
                           max_events_per_entity=s.max_events_per_entity, timeout_ms=s.timeout_ms)
    breaker = None
    if reference is not None and settings.breaker.enabled:
        ref = reference if isinstance(reference, BreakerReference) \
            else BreakerReference.from_dict(reference)
        breaker = CircuitBreaker(ref, settings.breaker)
    log = None
    if settings.log_dir:  # each replica of a fleet journals in its own directory
        log = PredictionLog(replica_log_dir(settings.log_dir, settings.replica()), plan,
                            flush_records=settings.log_flush_records,
                            flush_seconds=settings.log_flush_seconds, durable=settings.log_durable)
    state = ServingState(plan=plan, model=model, info=info, store=store, settings=settings,
                         breaker=breaker, prediction_log=log, fallback=fallback,
                         reload_fn=reload_fn, source_schema=source_schema, router=router,
                         event_id=event_id, audit=audit, gate_check=gate_check,
                         reference_fn=reference_fn, breaker_scope=breaker_scope)
    if settings.mode == "realtime":
        state.probe_backends(history)
    return state
