"""``action=keygen | verify | gc``: approver keys and registry verification from the CLI.

    python run.py action=keygen registry.approver=alice      # key pair, prints the public key line
    python run.py action=verify [registry.expect_head=<hash>] # exit 4 naming each problem
    python run.py action=gc [registry.gc_min_age_seconds=0]   # delete orphan artefact files
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.registry_access import approver_name, key_path, open_registry, report_integrity
from mlops.constraints import Interval, check
from mlops.registry.signing import fingerprint, generate_keypair


def verify(ctx: RunContext) -> ActionResult:
    """``action=verify``: check the hash chain, approvals and artefacts; exit 4 on a problem."""
    return _check(ctx, "verify")


def gc(ctx: RunContext) -> ActionResult:
    """``action=gc``: delete orphan artefact files, then verify."""
    return _check(ctx, "gc")


def _check(ctx: RunContext, action: str) -> ActionResult:
    reg = open_registry(ctx)
    rc = ctx.cfg.registry
    removed = []
    if action == "gc":
        age = float(check("registry.gc_min_age_seconds", rc.gc_min_age_seconds,
                          [Interval(float, 0, None)]))
        removed = [str(p) for p in reg.gc_orphans(min_age_seconds=age)]
        for path in removed:
            print(f"removed orphan {path}")
    integrity = reg.verify(expect_head=str(rc.expect_head) if rc.expect_head else None)
    code = report_integrity(integrity)
    if action == "gc":
        state = "verified" if integrity["ok"] else "FAILS verification"
        headline = f"removed {len(removed)} orphan file(s); registry {state}"
    else:
        headline = (f"registry verified: {integrity['events']} events, head {integrity['head'][:16]}"
                    if integrity["ok"] else
                    f"registry verification failed: {len(integrity['problems'])} problem(s), first: "
                    f"{integrity['problems'][0]['problem']}")
    result = {"status": "ok" if integrity["ok"] else "fail", "headline": headline, "integrity": integrity,
              "removed": removed, "details": {"action_taken": action}, "registry": reg.snapshot()}
    write_report(ctx, action, result, title=f"Registry {action}", template="registry.html",
                 context=_page(audit_rows=list(reversed(result["registry"]["audit"]))[:200],
                               cards=[{"label": "events", "value": integrity["events"]},
                                      {"label": "problems", "value": len(integrity["problems"])}]))
    return ActionResult(result=result, report=f"{action}.html", exit_code=code)


def keygen(ctx: RunContext) -> ActionResult:
    """``action=keygen``: an Ed25519 key pair for ``registry.approver`` under ``paths.home``."""
    approver = approver_name(ctx, "keygen")
    path = key_path(ctx, approver)
    public = generate_keypair(path)
    line = f"registry.approvers.{approver}.public_key: {public}"
    print(f"private key: {path} (0600; keep it to yourself)")
    print(f"public key:  {path.with_suffix('.pub')}")
    print(f"declare the approver in your registry YAML (approvers: {{{approver}: {{public_key: ...}}}}) "
          f"or on the command line:\n  +{line.replace(': ', '=', 1)}")
    result = {"status": "ok", "headline": f"key pair for approver {approver} (fingerprint {fingerprint(public)})",
              "approver": approver, "public_key": public, "private_key_file": str(path),
              "public_key_file": str(path.with_suffix(".pub")), "fingerprint": fingerprint(public)}
    write_report(ctx, "keygen", result, title=f"Approver key: {approver}", template="registry.html",
                 context=_page(details={}, registry={"policies": {}}))
    return ActionResult(result=result, report="keygen.html")


def _page(**values) -> dict:
    """Context for the registry template without the version table and chart."""
    return {"version_rows": [], "versions": [], "metric_names": [], "auc_chart": None, "audit_rows": [],
            "cards": [], **values}
