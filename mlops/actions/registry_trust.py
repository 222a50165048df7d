"""``action=keygen | verify | gc | migrate``: approver keys, registry verification and schema.

    python run.py action=keygen registry.approver=alice      # key pair, prints the public key line
    python run.py action=verify [registry.expect_head=<hash>] # exit 4 naming each problem
    python run.py action=gc [registry.gc_min_age_seconds=0]   # delete what killed registrations left
    python run.py action=migrate registry=postgres            # create / upgrade the registry schema
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.registry import migrations
from mlops.registry.integrity import integrity_headline
from mlops.registry.signing import fingerprint, generate_keypair
from mlops.reports.views.registry import print_integrity, registry_page


def verify(ctx: RunContext) -> ActionResult:
    """``action=verify``: check the hash chain, approvals and artefacts; exit 4 on a problem."""
    return _check(ctx, removed=None)


def gc(ctx: RunContext) -> ActionResult:
    """``action=gc``: delete what killed registrations left (artefacts without a row, partial
    temp files) older than ``registry.gc_min_age_seconds``, then verify."""
    removed = [str(p) for p in ctx.registry().gc_orphans(
        min_age_seconds=ctx.cfg.registry.gc_min_age_seconds)]
    for path in removed:
        print(f"removed interrupted write {path}")
    return _check(ctx, removed=removed)


def _check(ctx: RunContext, removed: list[str] | None) -> ActionResult:
    reg, action = ctx.registry(), ctx.action
    integrity = reg.verify(expect_head=ctx.cfg.registry.expect_head or None)
    code = print_integrity(integrity)
    result = {"status": "ok" if integrity["ok"] else "fail",
              "headline": integrity_headline(integrity, removed), "integrity": integrity,
              "removed": removed or [], "details": {"action_taken": action},
              "registry": reg.snapshot()}
    write_report(ctx, action, result, title=f"Registry {action}", template="registry.html",
                 context=registry_page(audit_rows=list(reversed(result["registry"]["audit"]))[:200],
                                       cards=[{"label": "events", "value": integrity["events"]},
                                              {"label": "problems",
                                               "value": len(integrity["problems"])}]))
    return ActionResult(result=result, report=f"{action}.html", exit_code=code)


def migrate(ctx: RunContext) -> ActionResult:
    """``action=migrate``: create the registry schema, or bring it to this code's version
    (automatic for the embedded SQLite default; a team runs it once for PostgreSQL)."""
    db = ctx.cfg.registry.open_index(ctx.home)
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
                 context=registry_page(details={}, registry={"policies": {}}))
    return ActionResult(result=result, report="migrate.html")


def keygen(ctx: RunContext) -> ActionResult:
    """``action=keygen``: an Ed25519 key pair for ``registry.approver`` under ``paths.home``."""
    approver = ctx.cfg.registry.approver_name("keygen")
    path = ctx.cfg.registry.key_path(ctx.home, approver)
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
                 context=registry_page(details={}, registry={"policies": {}}))
    return ActionResult(result=result, report="keygen.html")
