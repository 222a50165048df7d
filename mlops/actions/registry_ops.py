"""``action=promote | approve | rollback | breaker_reset | registry``: the registry from the CLI.

Every refusal (failed gate, unknown version, self-approval, unsigned approval) is a
RegistryError: a short message, exit code 2, registry unchanged (the refusal itself is
an event of the chain). ``action=registry`` also verifies the registry and exits 4 when
verification fails.
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.registry_access import (
    approver_name,
    key_path,
    model_name,
    open_registry,
    report_integrity,
    trusted_types,
)
from mlops.errors import ConfigError, GateFailedError
from mlops.registry import Registry
from mlops.registry.signing import load_private_key


def _version(ctx: RunContext, action: str) -> int:
    v = ctx.cfg.registry.version
    if v is None:
        raise ConfigError(f"action={action} needs a version", key="registry.version",
                          fix="pass registry.version=<n> (see action=registry for the list)")
    return int(v)


def promote(ctx: RunContext) -> ActionResult:
    """``action=promote``: move ``registry.alias`` to ``registry.version`` through the gates."""
    reg, name, rc = open_registry(ctx), model_name(ctx), ctx.cfg.registry
    version = _version(ctx, "promote")
    alias = str(rc.alias)
    reg.load_model(name, version, trusted_types(ctx))  # never promote a tampered artefact
    try:
        mv = reg.promote(name, version, alias, actor=rc.actor)
    except GateFailedError as exc:
        _report(ctx, reg, "fail", f"promotion of {name} v{version} to {alias} refused",
                {"action_taken": "promote", "refused": str(exc),
                 "gates": _gates(reg, name, version, alias)})
        raise
    return _finish(ctx, reg, f"{name} v{mv.version} is now {alias}",
                   {"gates": _gates(reg, name, version, alias)})


def approve(ctx: RunContext) -> ActionResult:
    """``action=approve``: the approver signs ``registry.version`` for ``registry.alias``."""
    reg, name, rc = open_registry(ctx), model_name(ctx), ctx.cfg.registry
    version = _version(ctx, "approve")
    approver = approver_name(ctx, "approve")
    key = load_private_key(key_path(ctx, approver))
    done = reg.approve(name, version, approver, private_key=key, alias=str(rc.alias),
                       comment=rc.comment)
    return _finish(ctx, reg, f"{approver} approved {name} v{version} for {rc.alias} "
                             f"(signed, chain event #{done['event']})", {})


def rollback(ctx: RunContext) -> ActionResult:
    """``action=rollback``: ``registry.alias`` back to the version it pointed at before."""
    reg, name, rc = open_registry(ctx), model_name(ctx), ctx.cfg.registry
    before = reg.aliases(name).get(str(rc.alias))
    mv = reg.rollback(name, str(rc.alias), actor=rc.actor)
    return _finish(ctx, reg, f"{rc.alias} rolled back from v{before} to v{mv.version}",
                   {"from": before, "to": mv.version})


def breaker_reset(ctx: RunContext) -> ActionResult:
    """``action=breaker_reset``: close the circuit breaker of ``registry.version`` (default:
    the version under ``serving.alias``) for every server on ``serving.store``; audited."""
    from mlops.actions.serving_support import reset_serving_breaker
    reg, name, rc = open_registry(ctx), model_name(ctx), ctx.cfg.registry
    target = str(rc.version) if rc.version is not None else str(ctx.cfg.serving.alias)
    mv = reg.get_version(name, int(target) if target.isdigit() else target)
    state = reset_serving_breaker(ctx, name, mv.version, actor=rc.actor)
    was = (state["before"] or {}).get("state", "never tripped")
    return _finish(ctx, reg, f"circuit breaker of {name} v{mv.version} reset (was {was}); "
                             "servers close it at their next poll", {"breaker": state})


def show(ctx: RunContext) -> ActionResult:
    """``action=registry``: versions, lineage, aliases and the audit log; exit 4 when the
    registry fails verification."""
    reg, name = open_registry(ctx), model_name(ctx)
    headline = f"{len(reg.list_versions(name))} versions of {name}; aliases: " + (
        ", ".join(f"{a} -> v{v}" for a, v in sorted(reg.aliases(name).items())) or "none")
    return _finish(ctx, reg, headline, {})


def _finish(ctx: RunContext, reg: Registry, headline: str, details: dict) -> ActionResult:
    """Write registry.json/.html; the result is what registry.json holds."""
    name = model_name(ctx)
    result = _report(ctx, reg, "ok", headline, {"action_taken": ctx.action, **details})
    code = report_integrity(result["integrity"]) if ctx.action == "registry" else 0
    return ActionResult(result=result, registry={"model": name, "aliases": reg.aliases(name)},
                        report="registry.html", exit_code=code)


def _gates(reg: Registry, name: str, version: int, alias: str) -> list[dict]:
    return [g.to_dict() for g in reg.check_gates(name, version, alias)]


def _report(ctx: RunContext, reg: Registry, status: str, headline: str, details: dict) -> dict:
    """Write registry.json/.html and return the result written (its ``integrity`` included)."""
    snap = reg.snapshot()
    name = model_name(ctx)
    model = next((m for m in snap["models"] if m["name"] == name), None)
    rc = ctx.cfg.registry
    integrity = reg.verify(expect_head=str(rc.expect_head) if rc.expect_head else None)
    result = {"status": status, "headline": headline, "model": name,
              "aliases": model["aliases"] if model else {}, "details": details,
              "integrity": integrity, "registry": snap}
    write_report(ctx, "registry", result, title=f"Registry: {name}",
                 context=_display(model, snap))
    return result


def _window(split: dict | None) -> str:
    """The test days a version's metrics come from: versions tested on different days
    are not directly comparable (see auc_lift_vs_production for a same-days comparison)."""
    if not split or len(split.get("bounds", [])) < 4:
        return "—"
    return f"{split['bounds'][2][:10]} → {split['bounds'][3][:10]}"


def _display(model: dict | None, snap: dict) -> dict:
    from mlops.reports import svg
    versions = model["versions"] if model else []
    aliases = model["aliases"] if model else {}
    metric_names = ["roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall"]
    rows = []
    for v in versions:
        on = [a for a, n in aliases.items() if n == v["version"]]
        rows.append({"version": v["version"], "aliases": ", ".join(on) or "",
                     "created": v["created_at"], "who": v["who"],
                     "estimator": (v.get("tags") or {}).get("estimator", v["model_class"]),
                     "plan": f"{v.get('feature_plan_name')} ({(v.get('feature_plan_hash') or '')[:8]})",
                     "approvals": ", ".join(a["approver"] if isinstance(a, dict) else str(a)
                                            for a in v.get("approvals", [])),
                     "test_window": _window((v.get("tags") or {}).get("split")),
                     "auc_lift_vs_production": v["metrics"].get("roc_auc_lift_vs_production"),
                     **{m: v["metrics"].get(m) for m in metric_names}})
    chart = None
    if versions:
        chart = svg.bar_chart([(f"v{v['version']}", v["metrics"].get("roc_auc")) for v in versions],
                              xlabel="test ROC-AUC", ylabel="version")
    return {"version_rows": rows, "metric_names": metric_names, "auc_chart": chart,
            "audit_rows": list(reversed(snap["audit"]))[:200], "versions": versions,
            "cards": [{"label": "versions", "value": len(versions)},
                      *[{"label": a, "value": f"v{n}"} for a, n in sorted(aliases.items())]]}
