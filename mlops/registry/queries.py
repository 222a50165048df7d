"""Read-side helpers over an open registry connection: resolve names, build ModelVersions.

Kept apart from the :class:`~mlops.registry.registry.Registry` facade so both the
write paths (inside a transaction) and the read paths share one definition of
"what does ``fraud@production`` mean" and one wording for not-found errors.
"""
from __future__ import annotations

import difflib
import re
import sqlite3
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError, NotFoundError, RegistryError
from mlops.registry import store
from mlops.registry.lineage import ModelVersion

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ALIAS_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
LATEST = "latest"

_JSON_COLUMNS = ("config", "hyperparameters", "metrics", "fairness", "tags")


def check_model_name(name: Any) -> str:
    """Return ``name`` if it is a valid model name, else raise ConfigError."""
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise ConfigError(
            f"The model name must match {MODEL_NAME.pattern} (letters, digits, '_', '.', '-'); "
            f"got {name!r} instead",
            key="name",
        )
    return name


def check_alias_name(alias: Any) -> str:
    """Return ``alias`` if it is a valid alias name ([a-z0-9_-]+, not all digits, not 'latest')."""
    if not isinstance(alias, str) or not ALIAS_NAME.match(alias) or alias.isdigit() or alias == LATEST:
        raise ConfigError(
            "The alias must match [a-z0-9_-]+, must not be all digits (that reads as a version) "
            f"and must not be '{LATEST}'; got {alias!r} instead",
            key="alias",
            fix="use a name like 'production', 'staging' or 'challenger'",
        )
    return alias


def row_to_version(row: sqlite3.Row, root: Path) -> ModelVersion:
    """Build a ModelVersion from a ``versions`` row; stored paths are relative to ``root``."""
    values = dict(row)
    for column in _JSON_COLUMNS:
        values[column] = store.loads(values[column])
    values["artifact_path"] = root / values["artifact_path"]
    if values["reference_path"] is not None:
        values["reference_path"] = root / values["reference_path"]
    return ModelVersion(**values)


def version_numbers(conn: sqlite3.Connection, name: str) -> list[int]:
    """All version numbers of ``name`` in ascending order (empty if unknown)."""
    rows = conn.execute("SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))
    return [r[0] for r in rows]


def alias_map(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    """``{alias: version}`` for ``name``, sorted by alias."""
    rows = conn.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))
    return {r[0]: r[1] for r in rows}


def model_names(conn: sqlite3.Connection) -> list[str]:
    """Every registered model name, sorted."""
    return [r[0] for r in conn.execute("SELECT DISTINCT name FROM versions ORDER BY name")]


def _did_you_mean(word: str, options: list[str]) -> str:
    prefixed = [o for o in options if o.startswith(word) or word.startswith(o)]
    close = prefixed or difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f". Did you mean '{close[0]}'?" if close else ""


def _short(numbers: list[int]) -> str:
    if len(numbers) <= 20:
        return str(numbers)
    head, tail = ", ".join(map(str, numbers[:3])), ", ".join(map(str, numbers[-3:]))
    return f"[{head}, ..., {tail}] ({len(numbers)} versions)"


def describe(conn: sqlite3.Connection, name: str) -> str:
    """``model 'fraud' has versions [1, 2]; aliases: production -> 2`` (for error messages)."""
    aliases = alias_map(conn, name)
    shown = ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none"
    return f"model '{name}' has versions {_short(version_numbers(conn, name))}; aliases: {shown}"


def require_model(conn: sqlite3.Connection, name: str) -> list[int]:
    """Version numbers of ``name``; NotFoundError listing the registered models if there are none."""
    check_model_name(name)
    numbers = version_numbers(conn, name)
    if not numbers:
        known = model_names(conn)
        raise NotFoundError(
            f"model '{name}' is not registered; registered models: {known}{_did_you_mean(name, known)}"
        )
    return numbers


def resolve(conn: sqlite3.Connection, name: str, version_or_alias: int | str) -> int:
    """Turn ``3``, ``"3"``, ``"latest"`` or an alias like ``"production"`` into a version number."""
    numbers = require_model(conn, name)
    ref = version_or_alias
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise ConfigError(
            f"must be a version number or an alias name; got {ref!r} instead", key="version"
        )
    if isinstance(ref, str) and ref.strip().isdigit():
        ref = int(ref.strip())
    if isinstance(ref, int):
        if ref not in numbers:
            raise NotFoundError(f"model '{name}' has no version {ref}; {describe(conn, name)}")
        return ref
    if ref == LATEST:
        return numbers[-1]
    aliases = alias_map(conn, name)
    if ref not in aliases:
        hint = _did_you_mean(ref, list(aliases))
        raise NotFoundError(f"model '{name}' has no alias '{ref}'; {describe(conn, name)}{hint}")
    return aliases[ref]


def get(conn: sqlite3.Connection, name: str, version: int, root: Path) -> ModelVersion:
    """The ModelVersion row for an existing ``(name, version)``."""
    row = conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
    if row is None:  # callers resolve first; reaching this is a bug or a concurrent wipe
        raise NotFoundError(f"model '{name}' has no version {version}; {describe(conn, name)}")
    return row_to_version(row, root)


def approvers(conn: sqlite3.Connection, name: str, version: int) -> list[dict[str, Any]]:
    """Approval records of a version, oldest first."""
    rows = conn.execute(
        "SELECT approver, ts, comment FROM approvals WHERE name = ? AND version = ? ORDER BY ts, approver",
        (name, version),
    )
    return [dict(r) for r in rows]


def alias_stack(conn: sqlite3.Connection, name: str, alias: str) -> list[int]:
    """Versions the alias has pointed at, replayed from history: promote pushes, rollback pops.

    The last element is the current target; the one before it is where a rollback goes.
    """
    stack: list[int] = []
    rows = conn.execute(
        "SELECT action, version FROM alias_history WHERE name = ? AND alias = ? ORDER BY id", (name, alias)
    )
    for action, version in rows:
        if action == "promote":
            stack.append(version)
        elif stack:
            stack.pop()
            if not stack or stack[-1] != version:  # history written by us never does this
                raise RegistryError(f"alias history of '{name}'/'{alias}' is inconsistent at a rollback "
                                    f"to version {version}")
    return stack


def history(conn: sqlite3.Connection, name: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Alias moves of ``name`` (optionally one alias), oldest first."""
    sql = "SELECT id, ts, alias, version, previous, action, actor FROM alias_history WHERE name = ?"
    args: tuple = (name,)
    if alias is not None:
        sql, args = sql + " AND alias = ?", (name, alias)
    return [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]


def audit_rows(conn: sqlite3.Connection, name: str | None = None) -> list[dict[str, Any]]:
    """Audit entries (optionally of one model), oldest first, ``details`` decoded."""
    sql, args = "SELECT * FROM audit", ()
    if name is not None:
        sql, args = sql + " WHERE model = ?", (name,)
    out = []
    for row in conn.execute(sql + " ORDER BY id", args):
        entry = dict(row)
        entry["details"] = store.loads(entry["details"])
        out.append(entry)
    return out


def write_audit(
    conn: sqlite3.Connection,
    *,
    ts: str,
    model: str,
    version: int | None,
    action: str,
    actor: str,
    alias: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit entry (must run inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO audit (ts, model, version, action, alias, actor, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ts, model, version, action, alias, actor, store.dumps(details or {})),
    )
