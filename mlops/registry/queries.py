"""Read-side helpers over an open registry connection: resolve names, build ModelVersions.

Kept apart from the :class:`~mlops.registry.registry.Registry` facade so both the
write paths (inside a transaction) and the read paths share one definition of
"what does ``fraud@production`` mean" and one wording for not-found errors.
"""
from __future__ import annotations

import difflib
import re
from typing import Any

from mlops.errors import ConfigError, NotFoundError
from mlops.registry import chain, store
from mlops.registry.lineage import ModelVersion

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ALIAS_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
LATEST = "latest"

_JSON_COLUMNS = ("config", "hyperparameters", "metrics", "fairness", "tags", "policy")


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


def row_to_version(row: Any, files: Any) -> ModelVersion:
    """Build a ModelVersion from a ``versions`` row; the recorded artefact paths
    (``artifacts/ab/...``) become locations in the artefact store ``files``."""
    values = dict(row)
    for column in _JSON_COLUMNS:
        values[column] = store.loads(values.get(column))
    values["policy"] = values.get("policy") or {}  # NULL: registered before policies
    values["artifact_path"] = files.locate(values["artifact_path"])
    if values["reference_path"] is not None:
        values["reference_path"] = files.locate(values["reference_path"])
    return ModelVersion(**values)


def version_numbers(conn: Any, name: str) -> list[int]:
    """All version numbers of ``name`` in ascending order (empty if unknown)."""
    rows = conn.execute("SELECT version FROM versions WHERE name = ? ORDER BY version", (name,))
    return [r[0] for r in rows]


def alias_map(conn: Any, name: str) -> dict[str, int]:
    """``{alias: version}`` for ``name``, sorted by alias, derived from the hash chain
    (never from the ``aliases`` index table, which a direct SQL edit could change)."""
    return chain.alias_map(chain.events(conn, name, chain.ALIAS_MOVES), name)


def model_names(conn: Any) -> list[str]:
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


def describe(conn: Any, name: str) -> str:
    """``model 'fraud' has versions [1, 2]; aliases: production -> 2`` (for error messages)."""
    aliases = alias_map(conn, name)
    shown = ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none"
    return f"model '{name}' has versions {_short(version_numbers(conn, name))}; aliases: {shown}"


def require_model(conn: Any, name: str) -> list[int]:
    """Version numbers of ``name``; NotFoundError listing the registered models if there are none."""
    check_model_name(name)
    numbers = version_numbers(conn, name)
    if not numbers:
        known = model_names(conn)
        raise NotFoundError(
            f"model '{name}' is not registered; registered models: {known}{_did_you_mean(name, known)}"
        )
    return numbers


def resolve(conn: Any, name: str, version_or_alias: int | str) -> int:
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


def get(conn: Any, name: str, version: int, files: Any) -> ModelVersion:
    """The ModelVersion row for an existing ``(name, version)``."""
    row = conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
    if row is None:  # callers resolve first; reaching this is a bug or a concurrent wipe
        raise NotFoundError(f"model '{name}' has no version {version}; {describe(conn, name)}")
    return row_to_version(row, files)


def approvals(conn: Any, name: str, version: int) -> list[dict[str, Any]]:
    """Approval events of a version as the chain records them, oldest first."""
    out = []
    for e in chain.events(conn, name, ("approve",)):
        if e.version == version:
            out.append({"approver": e.actor, "alias": e.alias, "ts": e.details.get("ts", e.ts),
                        "comment": e.details.get("comment"), "event": e.id,
                        "public_key": e.details.get("public_key"),
                        "signature": e.details.get("signature"),
                        "payload": e.details.get("payload")})
    return out


def history(conn: Any, name: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Alias moves of ``name`` (optionally one alias) from the chain, oldest first."""
    out = []
    for e in chain.events(conn, name, chain.ALIAS_MOVES):
        if alias is None or e.alias == alias:
            out.append({"id": e.id, "ts": e.ts, "alias": e.alias, "version": e.version,
                        "previous": e.details.get("from"), "action": e.action, "actor": e.actor})
    return out


def audit_rows(conn: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Chain events (optionally of one model), oldest first, ``details`` decoded."""
    return [e.to_dict() for e in chain.events(conn, name)]
