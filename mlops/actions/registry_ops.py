"""``action=promote | approve | rollback | registry``: the registry from the CLI.

Every refusal (failed gate, unknown version, self-approval, unsigned approval) is a
RegistryError: a short message, exit code 2, registry unchanged (the refusal itself is
an event of the chain). ``action=registry`` also verifies the registry and exits 4 when
verification fails.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.config.validate import plain
from mlops.errors import ConfigError, GateFailedError
from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry
from mlops.registry.approvals import check_identity
from mlops.registry.signing import load_private_key


def model_name(ctx: RunContext) -> str:
    r = ctx.cfg.registry
    return str(r.model_name) if r is not None and r.model_name else str(ctx.cfg.model.name)


# actions that count or check approvals, and so need every declared approver's key
COUNTS_APPROVALS = ("approve", "promote", "rollback", "registry", "verify", "gc")


def open_registry(ctx: RunContext) -> Registry:
    """The registry under ``paths.home`` with the YAML-declared gate policies and approvers."""
    return Registry(ctx.home, policies=plain(ctx.cfg.registry.policies), approvers=declared_approvers(ctx))


def declared_approvers(ctx: RunContext) -> dict[str, str]:
    """``registry.approvers`` as ``{name: "ed25519:..."}``; each entry is a key text or
    ``{public_key: ...}`` or ``{public_key_file: <path>}`` (relative paths: under paths.home)."""
    out = {}
    for name, spec in (plain(ctx.cfg.registry.approvers) or {}).items():
        key = f"registry.approvers.{name}"
        check_identity(name, key=key)
        if isinstance(spec, str):
            spec = {"public_key": spec}
        if not isinstance(spec, dict) or len(spec) != 1 or not set(spec) <= {"public_key", "public_key_file"}:
            raise ConfigError(f"must be {{public_key: 'ed25519:...'}} or {{public_key_file: <path>}}; "
                              f"got {spec!r} instead", key=key,
                              fix="paste the line printed by action=keygen, or point at the .pub file")
        if "public_key" in spec:
            out[name] = spec["public_key"]
            continue
        path = Path(str(spec["public_key_file"])).expanduser()
        path = path if path.is_absolute() else ctx.home / path
        if not path.is_file():
            if str(ctx.cfg.get("action")) not in COUNTS_APPROVALS:
                continue  # training or serving never counts approvals: a key not made yet is fine
            raise ConfigError(f"public key file {path} does not exist", key=f"{key}.public_key_file",
                              fix=f"run `python run.py action=keygen registry.approver={name}` or fix the path")
        out[name] = path.read_text().strip()
    return out


def key_path(ctx: RunContext, approver: str) -> Path:
    """``registry.key_file``, or ``<paths.home>/keys/<approver>.key``."""
    rc = ctx.cfg.registry
    return Path(str(rc.key_file)).expanduser() if rc.key_file else ctx.home / "keys" / f"{approver}.key"


def approver_name(ctx: RunContext, action: str) -> str:
    value = ctx.cfg.registry.approver
    if not value:
        raise ConfigError(f"action={action} needs an approver", key="registry.approver",
                          fix="pass registry.approver=<name> (a declared approver, not the trainer)")
    return check_identity(str(value), key="registry.approver")


def trusted_types(ctx: RunContext) -> list[str]:
    return [*DEFAULT_TRUSTED_TYPES, *plain(ctx.cfg.registry.trusted_types)]


def _version(ctx: RunContext, action: str) -> int:
    v = ctx.cfg.registry.version
    if v is None:
        raise ConfigError(f"action={action} needs a version", key="registry.version",
                          fix="pass registry.version=<n> (see action=registry for the list)")
    return int(v)


def run(ctx: RunContext, action: str) -> ActionResult:
    reg = open_registry(ctx)
    name, rc = model_name(ctx), ctx.cfg.registry
    status, headline, details = "ok", "", {}
    if action == "promote":
        version = _version(ctx, action)
        reg.load_model(name, version, trusted_types(ctx))  # never promote a tampered artefact
        try:
            mv = reg.promote(name, version, str(rc.alias), actor=rc.actor)
        except GateFailedError as exc:
            _report(ctx, reg, "fail", f"promotion of {name} v{version} to {rc.alias} refused",
                    {"action_taken": "promote", "refused": str(exc),
                     "gates": _gates(reg, name, version, str(rc.alias))})
            raise
        headline = f"{name} v{mv.version} is now {rc.alias}"
        details = {"gates": _gates(reg, name, version, str(rc.alias))}
    elif action == "approve":
        version = _version(ctx, action)
        approver = approver_name(ctx, action)
        key = load_private_key(key_path(ctx, approver))
        done = reg.approve(name, version, approver, private_key=key, alias=str(rc.alias), comment=rc.comment)
        headline = f"{approver} approved {name} v{version} for {rc.alias} (signed, chain event #{done['event']})"
    elif action == "rollback":
        before = reg.aliases(name).get(str(rc.alias))
        mv = reg.rollback(name, str(rc.alias), actor=rc.actor)
        headline = f"{rc.alias} rolled back from v{before} to v{mv.version}"
        details = {"from": before, "to": mv.version}
    else:
        headline = f"{len(reg.list_versions(name))} versions of {name}; aliases: " + (
            ", ".join(f"{a} -> v{v}" for a, v in sorted(reg.aliases(name).items())) or "none")
    integrity = _report(ctx, reg, status, headline, {"action_taken": action, **details})
    registry_info = {"model": name, "aliases": reg.aliases(name)}
    code = 0
    if action == "registry":
        code = report_integrity(integrity)
    return ActionResult(result={"headline": headline}, registry=registry_info,
                        report="registry.html", exit_code=code)


def report_integrity(integrity: dict) -> int:
    """Print the chain head and each problem (one line each); the exit code: 0 ok, 4 failed."""
    print(f"chain head: {integrity['head']} ({integrity['events']} events)")
    for p in integrity["problems"]:
        print(f"integrity: {p['kind']}: {p['problem']}", file=sys.stderr)
    if not integrity["ok"]:
        print(f"error: registry verification failed: {len(integrity['problems'])} problem(s)", file=sys.stderr)
    return 0 if integrity["ok"] else 4


def _gates(reg: Registry, name: str, version: int, alias: str) -> list[dict]:
    return [g.to_dict() for g in reg.check_gates(name, version, alias)]


def _report(ctx: RunContext, reg: Registry, status: str, headline: str, details: dict) -> dict:
    snap = reg.snapshot()
    name = model_name(ctx)
    model = next((m for m in snap["models"] if m["name"] == name), None)
    rc = ctx.cfg.registry
    integrity = reg.verify(expect_head=str(rc.expect_head) if rc.get("expect_head") else None)
    result = {"status": status, "headline": headline, "model": name, "details": details,
              "integrity": integrity, "registry": snap}
    write_report(ctx, "registry", result, title=f"Registry: {name}",
                 context=_display(model, snap))
    return integrity


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
