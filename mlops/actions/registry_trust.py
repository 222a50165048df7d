"""``action=keygen | verify | gc | migrate``: approver keys, registry verification and schema.

    python run.py action=keygen registry.approver=alice      # key pair, prints the public key line
    python run.py action=verify [registry.expect_head=<hash>] # exit 4 naming each problem
    python run.py action=gc [registry.gc_min_age_seconds=0]   # delete what killed registrations left
    python run.py action=migrate registry=postgres            # create / upgrade the registry schema
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.registry_access import approver_name, key_path, open_index, open_registry, report_integrity
from mlops.constraints import Interval, check
from mlops.registry import migrations
from mlops.registry.signing import fingerprint, generate_keypair


def verify(ctx: RunContext) -> ActionResult:
    """``action=verify``: check the hash chain, approvals and artefacts; exit 4 on a problem."""
    return _check(ctx, "verify")


def gc(ctx: RunContext) -> ActionResult:
    """``action=gc``: delete what killed registrations left (artefacts without a row, partial
    temp files) older than ``registry.gc_min_age_seconds``, then verify."""
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
            print(f"removed interrupted write {path}")
    integrity = reg.verify(expect_head=str(rc.expect_head) if rc.expect_head else None)
    code = report_integrity(integrity)
    headline = _headline(action, integrity, removed)
    result = {"status": "ok" if integrity["ok"] else "fail", "headline": headline, "integrity": integrity,
              "removed": removed, "details": {"action_taken": action}, "registry": reg.snapshot()}
    write_report(ctx, action, result, title=f"Registry {action}", template="registry.html",
                 context=_page(audit_rows=list(reversed(result["registry"]["audit"]))[:200],
                               cards=[{"label": "events", "value": integrity["events"]},
                                      {"label": "problems", "value": len(integrity["problems"])}]))
    return ActionResult(result=result, report=f"{action}.html", exit_code=code)


def _headline(action: str, integrity: dict, removed: list[str]) -> str:
    notes = len(integrity.get("notes", []))
    if action == "gc":
        state = "verified" if integrity["ok"] else "FAILS verification"
        return f"removed {len(removed)} interrupted write(s); registry {state}"
    if not integrity["ok"]:
        return (f"registry verification failed: {len(integrity['problems'])} problem(s), first: "
                f"{integrity['problems'][0]['problem']}")
    left = f"; {notes} interrupted write(s) left by killed writers (action=gc removes them)" if notes else ""
    return f"registry verified: {integrity['events']} events, head {integrity['head'][:16]}{left}"


def migrate(ctx: RunContext) -> ActionResult:
    """``action=migrate``: create the registry schema, or bring it to this code's version
    (automatic for the embedded SQLite default; a team runs it once for PostgreSQL)."""
    db = open_index(ctx)
    try:
        done = migrations.migrate(db)
    finally:
        db.close()
    steps = ", ".join(f"{m['version']} ({m['description']})" for m in done["applied"]) or "none"
    headline = (f"registry schema {db.display}: version {done['from']} -> {done['to']}; applied: {steps}"
                if done["applied"] else f"registry schema {db.display} is current (version {done['to']})")
    print(headline)
    result = {"status": "ok", "headline": headline, "database": db.display, **done}
    write_report(ctx, "migrate", result, title="Registry schema", template="registry.html",
                 context=_page(details={}, registry={"policies": {}}))
    return ActionResult(result=result, report="migrate.html")


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
