"""What a server deploys: the registered version under an alias, the plan and the decision it
carries, and the serving state built from them (breaker reference, fallback, hot reload,
audit and promotion gates through the registry).

The actions hand over a :class:`Deployment` (the registry, the model's name, the trusted
types and how a version's plan and decision are read); everything else is decided here::

    dep = Deployment(registry, "fraud", trusted=[], plan_of=plan_of, decision_of=decision_of)
    state = open_deployment(dep, settings, alias="production", events=events_lazyframe)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from mlops.errors import ConfigError, NotFoundError
from mlops.features.compile import FeaturePlan
from mlops.features.online.store import check_trusted
from mlops.registry import ModelVersion, Registry
from mlops.registry.policy import DecisionPolicy
from mlops.serving.breaker import BreakerReference
from mlops.serving.breaker.limits import reference_for_breaker
from mlops.serving.pipeline.features import recent_history
from mlops.serving.settings import ServingSettings
from mlops.serving.skew import ModelInfo
from mlops.serving.state import ServingState, open_state


def model_info(mv, decision: DecisionPolicy, **extra) -> ModelInfo:
    """The server's :class:`ModelInfo` of version ``mv`` deciding at ``decision``."""
    return ModelInfo(mv.name, str(mv.version), str(mv.feature_plan_hash),
                     extra={**extra, "decision": decision.as_dict()},
                     threshold=decision.threshold)


def version_ref(ref: str | int) -> str | int:
    """A registry reference: ``3`` (or ``"3"``) is a version, anything else an alias."""
    return int(ref) if str(ref).isdigit() else str(ref)


@dataclass(frozen=True)
class Deployment:
    """A registered model as servers load it: each version with the plan it was trained on
    (``plan_of``) and the decision it answers with (``decision_of``)."""

    registry: Registry
    name: str
    trusted: list[str]
    plan_of: Callable[[ModelVersion], FeaturePlan]
    decision_of: Callable[[ModelVersion], DecisionPolicy]

    def load_model(self, ref: str | int, **extra) -> tuple[Any, ModelInfo, ModelVersion]:
        """(model, info, version) of ``ref`` (an alias or a version number)."""
        model, mv = self.registry.load_model(self.name, version_ref(ref), self.trusted)
        return model, model_info(mv, self.decision_of(mv), **extra), mv

    def load(self, ref: str | int, **extra) -> tuple[Any, ModelInfo, ModelVersion, FeaturePlan]:
        """(model, info, version, plan) of ``ref``: the plan is the one the version carries."""
        model, mv = self.registry.load_model(self.name, version_ref(ref), self.trusted)
        info = model_info(mv, self.decision_of(mv), **extra, plan_name=mv.feature_plan_name)
        return model, info, mv, self.plan_of(mv)

    def plan(self, ref: str, configured: Callable[[], FeaturePlan]) -> tuple[FeaturePlan, str]:
        """(plan, where it came from): the plan of ``ref``'s version, or before any model is
        registered the ``configured`` one (feature-only actions check a spec on its own)."""
        try:
            mv = self.registry.get_version(self.name, version_ref(ref))
        except NotFoundError:
            return configured(), "features (no registered model yet)"
        return self.plan_of(mv), f"model {self.name} v{mv.version} ({ref})"

    def model_or_plan(self, ref: str, configured: Callable[[], FeaturePlan]) -> tuple:
        """(model, info, plan, where the plan came from) of ``ref``; before any model is
        registered, (None, None, the ``configured`` plan, ...)."""
        try:
            model, info, _, plan = self.load(ref, alias=ref)
        except NotFoundError:
            return None, None, configured(), "features (no registered model yet)"
        return model, info, plan, f"model {info.name} v{info.version} ({ref})"

    def breaker_reference(self, mv: ModelVersion, plan: FeaturePlan,
                          settings: ServingSettings) -> BreakerReference | None:
        """Breaker bins from the reference stored with ``mv``, limits calibrated for
        ``serving.breaker.window`` (None: breaker off or no reference, as /ready says)."""
        if not settings.breaker.enabled:
            return None
        return reference_for_breaker(self.registry.reference_path(mv.name, mv.version),
                                     plan.feature_names, settings.breaker)

    def fallback(self, settings: ServingSettings) -> tuple[Any, ModelInfo] | None:
        """The declared fallback (``serving.breaker.fallback``) when ``on_trip`` is fallback,
        with its own decision; an error now, not at the first trip, when it is missing."""
        b = settings.breaker
        if not b.enabled or b.on_trip != "fallback":
            return None
        if b.fallback is None:
            raise ConfigError("on_trip=fallback needs the version that answers instead",
                              key="serving.breaker.fallback",
                              fix="name a registry alias or version, e.g. serving.breaker.fallback=3")
        try:
            return self.load_model(str(b.fallback))[:2]
        except NotFoundError as exc:
            raise ConfigError(f"names no registered version: {exc}", key="serving.breaker.fallback",
                              fix="name an existing alias or version (action=registry lists them)"
                              ) from None

    def audit(self, version: str) -> Callable[[str, dict], None]:
        """Breaker trips/resets and reloads, recorded in the registry's audit log."""
        def record(action: str, details: dict) -> None:
            v = str(details.get("model_version", version))
            self.registry.record_event(self.name, action, version=int(v) if v.isdigit() else None,
                                       actor="serving", details=details)
        return record

    def failed_gates(self, alias: str) -> Callable[[str], list[str]]:
        """/admin/reload serves only a version that passes ``alias``'s promotion gates."""
        gate_alias = "production" if alias.isdigit() else alias
        return lambda version: [f"{r.name} ({r.detail})" for r in
                                self.registry.check_gates(self.name, version, gate_alias)
                                if not r.passed]


def open_deployment(dep: Deployment, settings: ServingSettings, *, alias: str,
                    events: pl.LazyFrame, event_id: str | None = None, router=None,
                    breaker_scope: str | None = None) -> ServingState:
    """The serving state of ``dep``'s version under ``alias`` (``events``: the data's
    schema and, in realtime mode, the latest events for the start-up probe;
    ``breaker_scope``: a replay run, whose breaker state is its own)."""
    check_trusted(settings.store.type, dep.trusted)
    settings = replace(settings)  # the server's own copy: reloads never touch the config
    model, info, mv, plan = dep.load(alias, alias=alias)
    return open_state(
        plan, model, info, settings, reference=dep.breaker_reference(mv, plan, settings),
        fallback=dep.fallback(settings), reload_fn=lambda v: dep.load_model(v)[:2],
        source_schema=dict(events.collect_schema()), router=router, event_id=event_id,
        audit=dep.audit(info.version), gate_check=dep.failed_gates(alias),
        reference_fn=lambda v: dep.breaker_reference(dep.registry.get_version(dep.name, version_ref(v)),
                                                     plan, settings),
        breaker_scope=breaker_scope,
        history=recent_history(plan, events) if settings.mode in ("realtime", "hybrid") else None)
