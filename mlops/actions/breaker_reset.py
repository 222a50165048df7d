"""``action=breaker_reset``: close a model version's circuit breaker for every server.

    python run.py action=breaker_reset [registry.version=3]   # default: serving.alias's version

The breaker state is shared through the online store (``serving.store``): every server
polls it and closes its breaker at the next poll. The reset is an event of the registry's
audit log, with who reset it (``registry.actor``) and what the breaker was before.
"""
from __future__ import annotations

from contextlib import closing

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.reports.views.registry import registry_report
from mlops.serving.breaker.shared import SharedBreakerState, reset_breaker, scope_key


def run(ctx: RunContext) -> ActionResult:
    reg, name, rc = ctx.registry(), ctx.model_name, ctx.cfg.registry
    target = str(rc.version) if rc.version is not None else ctx.cfg.serving.alias
    mv = reg.get_version(name, int(target) if target.isdigit() else target)
    with closing(ctx.store()) as store:
        before = SharedBreakerState(store, key=scope_key(name, mv.version)).read()
        after = reset_breaker(store, model=name, version=mv.version, source="action")
    reg.record_event(name, "breaker_reset", version=mv.version, actor=rc.actor,
                     details={"source": "action", "store": ctx.cfg.serving.store.type,
                              "was": None if before is None else before["state"]})
    was = (before or {}).get("state", "never tripped")
    result, context = registry_report(
        reg, name, status="ok", headline=f"circuit breaker of {name} v{mv.version} reset (was "
                                         f"{was}); servers close it at their next poll",
        details={"action_taken": "breaker_reset", "breaker": {"before": before, "after": after}},
        expect_head=rc.expect_head)
    write_report(ctx, "registry", result, title=f"Registry: {name}", context=context)
    return ActionResult(result=result, registry={"model": name, "aliases": reg.aliases(name)},
                        report="registry.html")
