"""Registry access shared by actions: the registry under ``paths.home`` with its policies
and approvers, the model name, trusted types, key paths (a support module, not an action).
"""
from __future__ import annotations

import sys
from pathlib import Path

from mlops.actions.context import RunContext
from mlops.errors import ConfigError
from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry
from mlops.registry.approvals import check_identity
from mlops.registry.database import open_database, read_password_file


def model_name(ctx: RunContext) -> str:
    r = ctx.cfg.registry
    return str(r.model_name) if r is not None and r.model_name else str(ctx.cfg.model.name)


# actions that count or check approvals, and so need every declared approver's key
COUNTS_APPROVALS = ("approve", "promote", "rollback", "registry", "verify", "gc")


def open_registry(ctx: RunContext) -> Registry:
    """The registry ``registry.url`` / ``registry.artifacts`` name (default: under
    ``paths.home``) with the YAML-declared gate policies and approvers."""
    rc = ctx.cfg.registry
    return Registry(ctx.home, policies=rc.policies, approvers=declared_approvers(ctx), url=rc.url,
                    artifacts=rc.artifacts, password=database_password(ctx),
                    s3={"endpoint_url": rc.s3.endpoint_url, "region": rc.s3.region})


def open_index(ctx: RunContext):
    """The registry's database alone (``action=migrate`` runs before a Registry can open)."""
    return open_database(ctx.cfg.registry.url, home=ctx.home, password=database_password(ctx))


def database_password(ctx: RunContext) -> str | None:
    """The PostgreSQL password from ``registry.password_file`` (relative: under paths.home);
    None lets libpq use PGPASSWORD or ~/.pgpass. Never logged, reported or recorded."""
    name = ctx.cfg.registry.password_file
    if not name:
        return None
    path = Path(str(name)).expanduser()
    return read_password_file(path if path.is_absolute() else ctx.home / path)


def declared_approvers(ctx: RunContext) -> dict[str, str]:
    """``registry.approvers`` as ``{name: "ed25519:..."}``; each entry is a key text or
    ``{public_key: ...}`` or ``{public_key_file: <path>}`` (relative paths: under paths.home)."""
    out = {}
    for name, spec in (ctx.cfg.registry.approvers or {}).items():
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
            if ctx.action not in COUNTS_APPROVALS:
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
    return [*DEFAULT_TRUSTED_TYPES, *ctx.cfg.registry.trusted_types]


def report_integrity(integrity: dict) -> int:
    """Print the chain head, each note and each problem (one line each); the exit code:
    0 ok (notes are what killed writers left, not tampering), 4 failed."""
    print(f"chain head: {integrity['head']} ({integrity['events']} events)")
    for n in integrity.get("notes", []):
        print(f"note: {n['kind']}: {n['note']}")
    for p in integrity["problems"]:
        print(f"integrity: {p['kind']}: {p['problem']}", file=sys.stderr)
    if not integrity["ok"]:
        print(f"error: registry verification failed: {len(integrity['problems'])} problem(s)", file=sys.stderr)
    return 0 if integrity["ok"] else 4


