"""``action=promote | approve | rollback | registry``: the registry from the CLI.

Every refusal (failed gate, unknown version, self-approval, unsigned approval) is a
RegistryError: a short message, exit code 2, registry unchanged (the refusal itself is
an event of the chain). ``action=registry`` also verifies the registry and exits 4 when
verification fails.
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import GateFailedError
from mlops.registry.signing import load_private_key
from mlops.reports.views.registry import print_integrity, registry_report


def promote(ctx: RunContext) -> ActionResult:
    """``action=promote``: move ``registry.alias`` to ``registry.version`` through the gates."""
    reg, name, rc = ctx.registry(), ctx.model_name, ctx.cfg.registry
    version = rc.target_version("promote")
    ctx.load_model(version)  # never promote a tampered artefact

    def gates() -> list[dict]:
        return [g.to_dict() for g in reg.check_gates(name, version, rc.alias)]
    try:
        mv = reg.promote(name, version, rc.alias, actor=rc.actor)
    except GateFailedError as exc:
        _report(ctx, "fail", f"promotion of {name} v{version} to {rc.alias} refused",
                {"action_taken": "promote", "refused": str(exc), "gates": gates()})
        raise
    return finish(ctx, f"{name} v{mv.version} is now {rc.alias}", {"gates": gates()})


def approve(ctx: RunContext) -> ActionResult:
    """``action=approve``: the approver signs ``registry.version`` for ``registry.alias``."""
    name, rc = ctx.model_name, ctx.cfg.registry
    version = rc.target_version("approve")
    approver = rc.approver_name("approve")
    key = load_private_key(rc.key_path(ctx.home, approver))
    done = ctx.registry().approve(name, version, approver, private_key=key, alias=rc.alias,
                                  comment=rc.comment)
    return finish(ctx, f"{approver} approved {name} v{version} for {rc.alias} "
                       f"(signed, chain event #{done['event']})", {})


def rollback(ctx: RunContext) -> ActionResult:
    """``action=rollback``: ``registry.alias`` back to the version it pointed at before."""
    reg, name, rc = ctx.registry(), ctx.model_name, ctx.cfg.registry
    before = reg.aliases(name).get(rc.alias)
    mv = reg.rollback(name, rc.alias, actor=rc.actor)
    return finish(ctx, f"{rc.alias} rolled back from v{before} to v{mv.version}",
                  {"from": before, "to": mv.version})


def show(ctx: RunContext) -> ActionResult:
    """``action=registry``: versions, lineage, aliases and the audit log; exit 4 when the
    registry fails verification."""
    reg, name = ctx.registry(), ctx.model_name
    headline = f"{len(reg.list_versions(name))} versions of {name}; aliases: " + (
        ", ".join(f"{a} -> v{v}" for a, v in sorted(reg.aliases(name).items())) or "none")
    return finish(ctx, headline, {})


def finish(ctx: RunContext, headline: str, details: dict) -> ActionResult:
    """Write registry.json/.html; the result is what registry.json holds."""
    result = _report(ctx, "ok", headline, {"action_taken": ctx.action, **details})
    code = print_integrity(result["integrity"]) if ctx.action == "registry" else 0
    return ActionResult(result=result, report="registry.html", exit_code=code,
                        registry={"model": ctx.model_name,
                                  "aliases": ctx.registry().aliases(ctx.model_name)})


def _report(ctx: RunContext, status: str, headline: str, details: dict) -> dict:
    """Write registry.json/.html and return the result written (its ``integrity`` included)."""
    result, context = registry_report(ctx.registry(), ctx.model_name, status=status,
                                      headline=headline, details=details,
                                      expect_head=ctx.cfg.registry.expect_head)
    write_report(ctx, "registry", result, title=f"Registry: {ctx.model_name}", context=context)
    return result
