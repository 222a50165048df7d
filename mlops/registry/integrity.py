"""Registry verification: the chain, the triggers, every table against the chain, the
signatures, every artefact against its sha256, and orphan files.

:func:`verify` returns a report; ``ok`` is False when anything is wrong, and
``problems`` names each finding (``kind`` + a sentence). ``head`` is the chain head:
keep it somewhere else and pass it back as ``expect_head`` to prove that the history
up to it was not rewritten since.
"""
from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlops.errors import RegistryError
from mlops.registry import artifacts, chain, queries, store
from mlops.registry.approvals import payload
from mlops.registry.lineage import ModelVersion
from mlops.registry.signing import fingerprint, verify_signature


def _problem(kind: str, text: str, **where: Any) -> dict[str, Any]:
    return {"kind": kind, "problem": text, **where}


def _norm(sql: str) -> str:
    return re.sub(r"\s+", " ", sql.replace("IF NOT EXISTS ", "")).strip()


def check_triggers(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every append-only trigger exists with its original definition."""
    found = {r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
    out = []
    for name, sql in store.TRIGGERS.items():
        if name not in found:
            out.append(_problem("missing_trigger", f"trigger {name} is missing: someone dropped it, so "
                                "the table it guards could have been edited", trigger=name))
        elif _norm(found[name]) != _norm(sql):
            out.append(_problem("changed_trigger", f"trigger {name} was redefined: {found[name]!r}",
                                trigger=name))
    return out


def check_files(mv: ModelVersion) -> list[dict[str, Any]]:
    """A version's artefact (and reference file) exist and match their recorded sha256."""
    files = [("artifact", mv.artifact_path, mv.artifact_sha256)]
    if mv.reference_path is not None and mv.reference_sha256 is not None:
        files.append(("reference", mv.reference_path, mv.reference_sha256))
    out = []
    for kind, path, sha in files:
        try:
            artifacts.read_verified(path, expected_sha256=sha, what=f"model '{mv.name}' version {mv.version}")
        except RegistryError as exc:
            out.append(_problem(kind, exc.message, model=mv.name, version=mv.version, file=str(path)))
    return out


def check_version(conn: sqlite3.Connection, root: Path, name: str, version: int,
                  events: list[chain.Event]) -> list[dict[str, Any]]:
    """One version: its row matches its register event, its files match their sha256."""
    row = conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
    regs = [e for e in events if e.action == "register" and e.model == name and e.version == version]
    where = {"model": name, "version": version}
    if row is None:
        return [_problem("version_missing", f"model '{name}' version {version} has a register event but "
                         "no row", **where)] if regs else []
    if len(regs) != 1:
        return [_problem("version_without_event", f"model '{name}' version {version} has {len(regs)} "
                         "register events (expected 1): the row was inserted by hand", **where)]
    out = []
    if regs[0].details.get("row_sha256") != chain.row_hash(row):
        out.append(_problem("version_changed", f"model '{name}' version {version}: its row (config, "
                            "metrics, artefact sha, ...) differs from what was registered", **where))
    return out + check_files(queries.row_to_version(row, root))


def _check_aliases(conn, events) -> list[dict[str, Any]]:
    out = []
    table: dict[tuple[str, str], int] = {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT name, alias, version FROM aliases")}
    models = {e.model for e in events} | {m for m, _ in table}
    for model in sorted(models):
        try:
            derived = chain.alias_map(events, model)
        except RegistryError as exc:
            out.append(_problem("alias_history", exc.message, model=model))
            continue
        for alias in sorted(set(derived) | {a for m, a in table if m == model}):
            have, want = table.get((model, alias)), derived.get(alias)
            if have != want:
                out.append(_problem("alias_without_event", f"alias '{alias}' of model '{model}' points at "
                                    f"version {have} in the aliases table but the chain says {want}: "
                                    "it was moved without an event", model=model, alias=alias))
    return out


def _check_approvals(conn, events, declared: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    ev = {(e.model, e.version, e.actor, e.alias): e for e in events if e.action == "approve"}
    rows = {(r["name"], r["version"], r["approver"], r["alias"]): r for r in conn.execute("SELECT * FROM approvals")}
    for key in sorted(set(rows) - set(ev), key=str):
        out.append(_problem("approval_without_event", f"approval of model '{key[0]}' version {key[1]} by "
                            f"'{key[2]}' for '{key[3]}' has no approve event: inserted by hand",
                            model=key[0], version=key[1]))
    shas = {(r[0], r[1]): r[2] for r in conn.execute("SELECT name, version, artifact_sha256 FROM versions")}
    for (model, version, who, alias), e in sorted(ev.items(), key=lambda kv: kv[1].id):
        where = {"model": model, "version": version, "event": e.id}
        if (model, version, who, alias) not in rows:
            out.append(_problem("approval_missing", f"approve event #{e.id} has no approvals row", **where))
        expected = payload(model=model, version=version, artifact_sha256=shas.get((model, version), ""),
                           alias=alias or "", approver=who, ts=e.details.get("ts"))
        key = e.details.get("public_key") or ""
        if e.details.get("payload") != expected or not verify_signature(key, expected,
                                                                         e.details.get("signature") or ""):
            out.append(_problem("forged_approval", f"approval by '{who}' (event #{e.id}) does not carry a "
                                "valid signature of this version's content", **where))
        elif who not in declared:
            out.append(_problem("undeclared_approver", f"approval by '{who}' (event #{e.id}) is from a name "
                                "that is not a declared approver (retired approvers stay declared so their "
                                "signatures keep verifying)", **where))
        elif declared[who] != key.strip():
            out.append(_problem("undeclared_key", f"approval by '{who}' (event #{e.id}) was signed by key "
                                f"{fingerprint(key)}, not by '{who}''s declared key "
                                f"{fingerprint(declared[who])}", **where))
    return out


def orphans(directory: Path, used: Iterable[Path]) -> list[Path]:
    """Files under ``directory`` that no version references (killed registrations)."""
    if not directory.exists():
        return []
    keep = {Path(p) for p in used}
    return [p for p in sorted(directory.rglob("*")) if p.is_file() and p not in keep]


def used_files(conn: sqlite3.Connection, root: Path) -> list[Path]:
    """Every file a version row references."""
    return [root / p for (p,) in conn.execute(
        "SELECT artifact_path FROM versions UNION SELECT reference_path FROM versions "
        "WHERE reference_path IS NOT NULL")]


def verify(conn: sqlite3.Connection, root: Path, artifacts_dir: Path, *, declared: Mapping[str, str],
           expect_head: str | None = None) -> dict[str, Any]:
    """Full verification (see the module docstring); reads one consistent snapshot."""
    database = conn.execute("PRAGMA quick_check").fetchone()[0]
    problems = [] if database == "ok" else [_problem("database", f"SQLite quick_check: {database}")]
    problems += check_triggers(conn)
    events = chain.events(conn)
    broken = chain.first_broken_link(events)
    if broken is not None:
        problems.append(_problem("broken_link", broken["problem"], event=broken["event"]))
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
    if seq is not None and events and seq[0] > events[-1].id:
        problems.append(_problem("truncated", f"events #{events[-1].id + 1}..#{seq[0]} were deleted "
                                 "from the end of the chain"))
    head = events[-1].hash if events else chain.GENESIS
    if expect_head is not None and expect_head != head:
        upto = next((e for e in events if e.hash == expect_head), None)
        if upto is None or (broken is not None and broken["event"] <= upto.id):
            problems.append(_problem("rewritten", f"expected head {expect_head} is not in an intact chain: "
                                     "history up to it was rewritten or truncated"))
    versions = [(r[0], r[1]) for r in conn.execute("SELECT name, version FROM versions ORDER BY name, version")]
    for e in events:
        if e.action == "register" and (e.model, e.version) not in versions:
            problems.append(_problem("version_missing", f"register event #{e.id} has no version row",
                                     model=e.model, version=e.version))
    for name, version in versions:
        problems += check_version(conn, root, name, version, events)
    problems += _check_aliases(conn, events)
    problems += _check_approvals(conn, events, declared)
    for path in orphans(artifacts_dir, used_files(conn, root)):
        age = time.time() - path.stat().st_mtime
        problems.append(_problem("orphan", f"file {path} belongs to no version (a killed registration?, "
                                 f"{age:.0f} s old); remove it with action=gc", file=str(path)))
    return {"ok": not problems, "head": head, "events": len(events), "versions_checked": len(versions),
            "database": database, "first_broken_link": broken, "problems": problems}


def remove_orphans(directory: Path, used: Iterable[Path], *, min_age_seconds: float, dry_run: bool) -> list[Path]:
    """Delete orphan files older than ``min_age_seconds`` (younger ones may be registrations
    in progress: written, not yet recorded)."""
    now, removed = time.time(), []
    for path in orphans(directory, used):
        try:
            old_enough = now - path.stat().st_mtime >= min_age_seconds
        except FileNotFoundError:  # removed concurrently
            continue
        if old_enough:
            if not dry_run:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
