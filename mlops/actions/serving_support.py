"""What the serving actions share: settings, the served model and its plan, the serving state.

A support module (not an action): ``serve``, ``replay`` and ``monitor`` (which trips the
breaker) import it, so no action imports another.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import get_type_hints

from mlops.actions.context import RunContext
from mlops.actions.decision_access import model_info, serving_decision
from mlops.actions.registry_access import model_name, open_registry, trusted_types
from mlops.errors import ConfigError, NotFoundError
from mlops.features.online import open_store
from mlops.features.online.store import check_trusted
from mlops.serving import (
    BreakerReference,
    ServingSettings,
    open_state,
)
from mlops.serving.breaker.limits import reference_for_breaker
from mlops.serving.breaker.shared import SharedBreakerState, reset_breaker, scope_key, trip_breaker
from mlops.serving.pipeline.features import recent_history


def settings(ctx: RunContext) -> ServingSettings:
    """``serving`` as the engine's :class:`ServingSettings`, validated.

    ``ServingConfig`` subclasses ``ServingSettings``, so the settings are the config's
    fields of that class, copied in one step (the config object is never mutated). A
    dotted ``serving.store.type`` must be listed in ``registry.trusted_types``."""
    out = _settings_fields(ServingSettings, ctx.cfg.serving)
    out.validate()
    check_trusted(out.store.type, trusted_types(ctx))
    return out


def _settings_fields(cls, node):
    """``cls`` built from the same-named attributes of ``node`` (typed config or DictConfig),
    nested settings dataclasses included."""
    hints = get_type_hints(cls)
    kw = {}
    for f in fields(cls):
        value = getattr(node, f.name)
        if is_dataclass(hints[f.name]):
            value = _settings_fields(hints[f.name], value)
        elif isinstance(value, Mapping):
            value = dict(value)
        kw[f.name] = value
    return cls(**kw)


def load_served(ctx: RunContext, alias: str | None = None):
    """(model, ModelInfo, ModelVersion, plan) for ``serving.alias``: the plan and the
    decision threshold are the ones the version carries (``serving.threshold`` overrides
    the threshold, with a warning; ``info.extra["decision"]`` records which)."""
    reg, name = open_registry(ctx), model_name(ctx)
    target = alias or str(ctx.cfg.serving.alias)
    model, mv = reg.load_model(name, int(target) if target.isdigit() else target,
                               trusted_types(ctx))
    plan = ctx.model_plan(mv)
    info = model_info(mv, serving_decision(ctx, mv), alias=target,
                      plan_name=mv.feature_plan_name)
    return model, info, mv, plan


def served_plan(ctx: RunContext) -> tuple:
    """(plan, where it came from) for the feature-only actions (materialize, parity).

    The plan of the model under ``serving.alias`` when one is registered; before any
    model exists these actions check a spec on its own, so the configured one is used.
    """
    reg, name = open_registry(ctx), model_name(ctx)
    target = str(ctx.cfg.serving.alias)
    try:
        mv = reg.get_version(name, int(target) if target.isdigit() else target)
    except NotFoundError:
        return ctx.plan(), "features (no registered model yet)"
    return ctx.model_plan(mv), f"model {name} v{mv.version} ({target})"


def served_model_or_plan(ctx: RunContext) -> tuple:
    """(model, info, plan, where the plan came from) of ``serving.alias``; before any model
    is registered, (None, None, the configured plan, ...)."""
    try:
        model, info, mv, plan = load_served(ctx)
    except NotFoundError:
        return None, None, ctx.plan(), "features (no registered model yet)"
    return model, info, plan, f"model {info.name} v{info.version} ({ctx.cfg.serving.alias})"


def breaker_reference(ctx: RunContext, mv, plan, s: ServingSettings) -> BreakerReference | None:
    """Breaker bins from the reference statistics stored with the model, with their limits
    calibrated on its rows for ``serving.breaker.window`` (None: no reference stored, so
    the breaker stays off, as /ready says)."""
    if not s.breaker.enabled:
        return None
    return reference_for_breaker(open_registry(ctx).reference_path(mv.name, mv.version),
                                 plan.feature_names, s.breaker)


def _version(ref: str):
    return int(ref) if str(ref).isdigit() else str(ref)


def fallback_model(ctx: RunContext, s: ServingSettings, load):
    """The declared fallback version (``serving.breaker.fallback``) when ``on_trip`` is
    fallback, loaded with its own decision threshold; an error now, not at the first trip,
    when it is not declared or does not exist."""
    b = s.breaker
    if not b.enabled or b.on_trip != "fallback":
        return None
    if b.fallback is None:
        raise ConfigError("on_trip=fallback needs the version that answers instead",
                          key="serving.breaker.fallback",
                          fix="name a registry alias or version, e.g. serving.breaker.fallback=3")
    try:
        return load(str(b.fallback))
    except NotFoundError as exc:
        raise ConfigError(f"names no registered version: {exc}", key="serving.breaker.fallback",
                          fix="name an existing alias or version (action=registry lists them)"
                          ) from None


def open_serving_state(ctx: RunContext, *, breaker_scope: str | None = None, **overrides):
    """The serving state of the model under ``serving.alias`` (``breaker_scope``: a replay
    run, whose breaker state is its own)."""
    s = settings(ctx)  # config errors first, before any model is loaded
    model, info, mv, plan = load_served(ctx)
    for k, v in overrides.items():
        setattr(s, k, v)
    reg = open_registry(ctx)

    def reload_fn(version: str):  # the version's own threshold (the override still wins)
        m, v = reg.load_model(info.name, _version(version), trusted_types(ctx))
        return m, model_info(v, serving_decision(ctx, v))

    def reference_fn(version: str):
        return breaker_reference(ctx, reg.get_version(info.name, _version(version)), plan, s)
    fallback = fallback_model(ctx, s, reload_fn)
    schema = dict(ctx.scan_events().collect_schema())
    alias = str(ctx.cfg.serving.alias)
    gate_alias = "production" if alias.isdigit() else alias

    def audit(action: str, details: dict) -> None:  # breaker trips/resets, reloads
        v = str(details.get("model_version", info.version))
        reg.record_event(info.name, action, version=int(v) if v.isdigit() else None,
                         actor="serving", details=details)

    def gate_check(version: str) -> list[str]:  # /admin/reload serves only what passes
        return [f"{r.name} ({r.detail})" for r in reg.check_gates(info.name, version, gate_alias)
                if not r.passed]
    return open_state(plan, model, info, s, reference=breaker_reference(ctx, mv, plan, s),
                      fallback=fallback, reload_fn=reload_fn, source_schema=schema,
                      router=experiment_router(ctx), event_id=ctx.event_id, audit=audit,
                      gate_check=gate_check, reference_fn=reference_fn,
                      breaker_scope=breaker_scope,
                      history=recent_history(plan, ctx.scan_events()) if s.mode == "realtime" else None)


def trip_serving_breaker(ctx: RunContext, name: str, version, reason: str) -> dict:
    """Open the breaker of every running and later server of ``name`` ``version`` on
    ``serving.store`` (they poll it), and record the trip in the registry's audit log."""
    s = settings(ctx)
    store = open_store(s.store.type, path=s.store.path, url=s.store.url,
                       namespace=s.store.namespace, timeout_ms=s.store.timeout_ms)
    try:
        record = trip_breaker(store, reason, model=name, version=version, source="monitor")
    finally:
        store.close()
    open_registry(ctx).record_event(name, "breaker_trip", version=int(version), actor="monitor",
                                    details={"reason": reason, "source": "monitor"})
    return {"action": "trip_breaker", "detail": reason, "store": s.store.type,
            "state": record}


def reset_serving_breaker(ctx: RunContext, name: str, version: int,
                          actor: str | None = None) -> dict:
    """Close the breaker of ``name`` ``version`` for every server on ``serving.store``
    (they apply it at their next poll); audited in the registry. Returns
    ``{"before": <record or None>, "after": <record>}``."""
    s = settings(ctx)
    store = open_store(s.store.type, path=s.store.path, url=s.store.url,
                       namespace=s.store.namespace, timeout_ms=s.store.timeout_ms)
    try:
        before = SharedBreakerState(store, key=scope_key(name, version)).read()
        after = reset_breaker(store, model=name, version=version, source="action")
    finally:
        store.close()
    open_registry(ctx).record_event(name, "breaker_reset", version=int(version), actor=actor,
                                    details={"source": "action", "store": s.store.type,
                                             "was": None if before is None else before["state"]})
    return {"before": before, "after": after}


def experiment_router(ctx: RunContext):
    """With ``experiment=<name>``: route each record to its unit's variant model."""
    if ctx.cfg.experiment is None:
        return None
    from mlops.actions.experiment_inputs import experiment_spec, guard_weights, resolve_models
    from mlops.experiments import assign_units
    from mlops.serving.router import ExperimentRouter
    spec = experiment_spec(ctx)
    guard_weights(ctx, spec)  # same seed, same weights as any earlier run of this test
    models = resolve_models(ctx, spec)
    schema = dict(ctx.scan_events().collect_schema())

    def entry(name):  # each variant decides at its own version's threshold
        model, mv = models[name]
        return model, model_info(mv, serving_decision(ctx, mv), variant=name)
    return ExperimentRouter(
        key=spec.key, unit=spec.unit, assign=lambda ids: list(assign_units(spec, ids)),
        variants={v.name: entry(v.name) for v in spec.served_variants},
        shadows={v.name: entry(v.name) for v in spec.variants if v.shadow},
        # each variant scores with the plan its model carries (they may differ)
        plans={name: ctx.model_plan(mv, schema) for name, (_, mv) in models.items()})
