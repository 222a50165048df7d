"""Registry verification: the chain, the triggers, every table against the chain, the
signatures, every artefact against its sha256, and interrupted writes.

:func:`verify` returns a report; ``ok`` is False when a recorded fact was edited or is
missing, and ``problems`` names each one (``kind`` + a sentence). ``notes`` lists what a
killed writer leaves behind and is not tampering: an artefact stored by a registration
that never committed its row, or a partial temp file (``action=gc`` removes both once
they are older than ``registry.gc_min_age_seconds``). ``head`` is the chain head: keep
it somewhere else and pass it back as ``expect_head`` to prove that the history up to
it was not rewritten since.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mlops.errors import ArtifactIntegrityError, RegistryError
from mlops.registry import chain, migrations
from mlops.registry.approvals import payload
from mlops.registry.signing import fingerprint, verify_signature


def _problem(kind: str, text: str, **where: Any) -> dict[str, Any]:
    return {"kind": kind, "problem": text, **where}


def check_files(files: Any, row: Any) -> list[dict[str, Any]]:
    """A version's artefact (and reference file) exist and match their recorded sha256."""
    name, version = row["name"], row["version"]
    recorded = [("artifact", row["artifact_path"], row["artifact_sha256"], row["artifact_size"])]
    if row["reference_path"] is not None and row["reference_sha256"] is not None:
        recorded.append(("reference", row["reference_path"], row["reference_sha256"], None))  # size not recorded
    out = []
    for kind, rel, sha, size in recorded:
        try:
            files.read(rel, expected_sha256=sha, what=f"model '{name}' version {version}", expected_size=size)
        except ArtifactIntegrityError as exc:  # missing or changed; a store that cannot answer raises
            out.append(_problem(kind, exc.message, model=name, version=version, file=str(files.locate(rel))))
    return out


def check_version(conn: Any, files: Any, name: str, version: int,
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
    return out + check_files(files, row)


def _check_aliases(conn: Any, events: list[chain.Event]) -> list[dict[str, Any]]:
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


def used_files(conn: Any) -> set[str]:
    """Every artefact path (``artifacts/ab/...``) a version row references."""
    return {p for (p,) in conn.execute(
        "SELECT artifact_path FROM versions UNION SELECT reference_path FROM versions "
        "WHERE reference_path IS NOT NULL")}


def interrupted_writes(files: Any, used: Iterable[str]) -> list[Any]:
    """Files of the store no version references: registrations killed before their row
    was committed (or still running), and partial temp files."""
    keep = set(used)
    return [f for f in files.files() if f.partial or f.rel not in keep]


def _note(found: Any) -> dict[str, Any]:
    what = "a partial write (temp file)" if found.partial else "an artefact no version references"
    return {"kind": "interrupted_write", "file": str(found.location), "age_seconds": round(found.age_seconds, 1),
            "note": f"{found.location} is {what}: a registration that was killed before it committed "
                    f"(or is still running), {found.age_seconds:.0f} s old; action=gc removes it"}


def _chain_problems(conn: Any, events: list[chain.Event], broken: dict | None,
                    expect_head: str | None) -> list[dict[str, Any]]:
    problems = []
    if broken is not None:
        problems.append(_problem("broken_link", broken["problem"], event=broken["event"]))
    seq = conn.execute(conn.AUDIT_SEQUENCE).fetchone()
    if seq is not None and events and seq[0] > events[-1].id:
        problems.append(_problem("truncated", f"events #{events[-1].id + 1}..#{seq[0]} were deleted "
                                 "from the end of the chain"))
    head = events[-1].hash if events else chain.GENESIS
    if expect_head is not None and expect_head != head:
        upto = next((e for e in events if e.hash == expect_head), None)
        if upto is None or (broken is not None and broken["event"] <= upto.id):
            problems.append(_problem("rewritten", f"expected head {expect_head} is not in an intact chain: "
                                     "history up to it was rewritten or truncated"))
    return problems


def verify(conn: Any, files: Any, *, declared: Mapping[str, str], expect_head: str | None = None) -> dict[str, Any]:
    """Full verification (see the module docstring); reads one consistent snapshot of the
    index, then lists the artefact store ``files``."""
    database = conn.health()
    problems = [] if database in (None, "ok") else [_problem("database", f"SQLite quick_check: {database}")]
    problems += migrations.trigger_problems(conn)
    events = chain.events(conn)
    broken = chain.first_broken_link(events)
    problems += _chain_problems(conn, events, broken, expect_head)
    versions = [(r[0], r[1]) for r in conn.execute("SELECT name, version FROM versions ORDER BY name, version")]
    for e in events:
        if e.action == "register" and (e.model, e.version) not in versions:
            problems.append(_problem("version_missing", f"register event #{e.id} has no version row",
                                     model=e.model, version=e.version))
    for name, version in versions:
        problems += check_version(conn, files, name, version, events)
    problems += _check_aliases(conn, events)
    problems += _check_approvals(conn, events, declared)
    notes = [_note(f) for f in interrupted_writes(files, used_files(conn))]
    return {"ok": not problems, "head": events[-1].hash if events else chain.GENESIS, "events": len(events),
            "versions_checked": len(versions), "database": database or "server", "first_broken_link": broken,
            "problems": problems, "notes": notes}


def remove_interrupted(files: Any, used: Callable[[], set[str]], *, min_age_seconds: float,
                       dry_run: bool) -> list[Any]:
    """Remove what killed writers left (see :func:`interrupted_writes`) once older than
    ``min_age_seconds`` (younger ones may be registrations in progress, on any machine).
    Returns their locations.

    Two looks at the index: candidates are hidden first (renamed out of sight), then
    the index is read again and any file a registration committed meanwhile is put
    back; :meth:`Registry.register` checks its artefact after its commit and writes it
    again if it is gone, so a registration racing ``gc`` never loses its file.
    """
    candidates = [f for f in interrupted_writes(files, used()) if f.age_seconds >= min_age_seconds]
    if dry_run:
        return [f.location for f in candidates]
    hidden = [(f, files.hide(f)) for f in candidates]
    used_now = used()
    removed = []
    for found, handle in hidden:
        if handle is None:
            continue  # gone meanwhile (another gc)
        if not found.partial and found.rel in used_now:
            files.restore(handle)
        else:
            files.drop(handle)
            removed.append(found.location)
    return removed


def integrity_headline(integrity: dict, removed: list[str] | None = None) -> str:
    """One line on a verification (:meth:`Registry.verify`'s dict); ``removed``: the
    interrupted writes ``gc`` deleted first (None: a plain verification)."""
    notes = len(integrity.get("notes", []))
    if removed is not None:
        state = "verified" if integrity["ok"] else "FAILS verification"
        return f"removed {len(removed)} interrupted write(s); registry {state}"
    if not integrity["ok"]:
        return (f"registry verification failed: {len(integrity['problems'])} problem(s), first: "
                f"{integrity['problems'][0]['problem']}")
    left = f"; {notes} interrupted write(s) left by killed writers (action=gc removes them)" if notes else ""
    return f"registry verified: {integrity['events']} events, head {integrity['head'][:16]}{left}"
