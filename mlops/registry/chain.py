"""The registry's hash chain: every state change is an event linked to the one before.

Each row of the ``audit`` table is an event ``(id, ts, model, version, action, alias,
actor, details)`` plus ``prev_hash`` (the previous event's hash; 64 zeros for the first)
and ``hash = sha256(prev_hash + "\\n" + canonical JSON of the event)``. Changing,
inserting or deleting any event breaks every link after it; rewriting the whole tail
consistently is caught by ``expect_head`` (a head hash kept somewhere else).

Aliases are *derived* from the chain (the last promote/rollback event per alias), so an
edited ``aliases`` table changes nothing that is served, and verification reports it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from mlops.errors import ConfigError, RegistryError
from mlops.registry import store
from mlops.registry.signing import canonical

GENESIS = "0" * 64
ALIAS_MOVES = ("promote", "rollback")
_ACTION = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Event:
    """One chain event as stored (``details`` decoded)."""

    id: int
    ts: str
    model: str
    version: int | None
    action: str
    alias: str | None
    actor: str
    details: dict
    details_text: str
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """What the hash covers: every field but the hashes, details as stored text."""
        return {"id": self.id, "ts": self.ts, "model": self.model, "version": self.version,
                "action": self.action, "alias": self.alias, "actor": self.actor,
                "details": self.details_text}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for reports and ``Registry.audit_log``."""
        return {"id": self.id, "ts": self.ts, "model": self.model, "version": self.version,
                "action": self.action, "alias": self.alias, "actor": self.actor,
                "details": self.details, "prev_hash": self.prev_hash, "hash": self.hash}


def event_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """sha256 over the previous hash and the canonical JSON of the event's content."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(content)).hexdigest()


def row_hash(row: Any) -> str:
    """sha256 of a ``versions`` row (every column), recorded in its register event.

    ``policy`` (schema 3) is left out while it is NULL, so a row registered under schema 2
    hashes as it did then; a new row always stores a policy (``{}`` at least)."""
    values = dict(row)
    if values.get("policy", "") is None:
        del values["policy"]
    return hashlib.sha256(canonical(values)).hexdigest()


def head(conn: Any) -> str:
    """Hash of the last event (GENESIS for an empty registry)."""
    found = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    return GENESIS if found is None else found[0]


def append(conn: Any, *, ts: str, model: str, version: int | None, action: str,
           actor: str, alias: str | None = None, details: dict[str, Any] | None = None) -> Event:
    """Append one event (inside the caller's write transaction, which serialises appends)."""
    if not isinstance(action, str) or not _ACTION.match(action):
        raise ConfigError(f"must match {_ACTION.pattern}; got {action!r} instead", key="action")
    text = store.dumps(details or {})
    prev = head(conn)
    # ids continue the high-water mark (sqlite_sequence or audit_sequence), never MAX(id) + 1:
    # an event deleted from the end must leave a gap that verify reports
    (next_id,) = conn.execute(f"SELECT COALESCE(({conn.AUDIT_SEQUENCE}), 0) + 1").fetchone()
    content = {"id": next_id, "ts": ts, "model": model, "version": version, "action": action,
               "alias": alias, "actor": actor, "details": text}
    digest = event_hash(prev, content)
    conn.execute(
        "INSERT INTO audit (id, ts, model, version, action, alias, actor, details, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (next_id, ts, model, version, action, alias, actor, text, prev, digest))
    return Event(next_id, ts, model, version, action, alias, actor, details or {}, text, prev, digest)


def _event(row: Any) -> Event:
    text = row["details"]
    try:
        details = store.loads(text)
    except ValueError:  # a hand-edited row: the hash check reports it
        details = {"unreadable": text}
    return Event(row["id"], row["ts"], row["model"], row["version"], row["action"], row["alias"],
                 row["actor"], details if isinstance(details, dict) else {"value": details}, text,
                 row["prev_hash"], row["hash"])


def events(conn: Any, model: str | None = None, actions: tuple[str, ...] = ()) -> list[Event]:
    """Events oldest first (optionally of one model and of some actions only)."""
    where, args = [], []
    if model is not None:
        where, args = ["model = ?"], [model]
    if actions:
        where.append(f"action IN ({', '.join('?' * len(actions))})")
        args += list(actions)
    sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
    return [_event(r) for r in conn.execute(sql + " ORDER BY id", args)]


def first_broken_link(chain: list[Event]) -> dict[str, Any] | None:
    """The first event whose link or content does not check out, described; None if intact."""
    prev, expected_id = GENESIS, 1
    for e in chain:
        where = f"event #{e.id} ({e.action} {e.model}" + (f" v{e.version}" if e.version else "") + ")"
        if e.id != expected_id:
            return {"event": e.id, "problem": f"events #{expected_id}..#{e.id - 1} are missing before {where}"}
        expected_id += 1
        if e.prev_hash != prev:
            return {"event": e.id, "problem": f"{where} does not link to the event before it: "
                    "an event was deleted, inserted or reordered"}
        if e.hash != event_hash(prev, e.content()):
            return {"event": e.id, "problem": f"{where} was changed after it was written "
                    "(its hash does not match its content)"}
        prev = e.hash
    return None


def alias_state(chain: list[Event], model: str) -> dict[str, list[int]]:
    """``{alias: stack of versions}`` replayed from the chain: promote pushes, rollback pops.

    The last element of each stack is where the alias points; the one before is where
    a rollback goes.
    """
    stacks: dict[str, list[int]] = {}
    for e in chain:
        if e.model != model or e.action not in ALIAS_MOVES or e.alias is None:
            continue
        stack = stacks.setdefault(e.alias, [])
        if e.action == "promote":
            stack.append(e.version)
        else:
            if stack:
                stack.pop()
            if not stack or stack[-1] != e.version:
                raise RegistryError(f"the chain's history of alias '{e.alias}' of model '{model}' is "
                                    f"inconsistent at event #{e.id}",
                                    fix="run `python run.py action=verify` to see what was changed")
    return stacks


def alias_map(chain: list[Event], model: str) -> dict[str, int]:
    """``{alias: version}`` as the chain says, sorted by alias."""
    return {a: s[-1] for a, s in sorted(alias_state(chain, model).items()) if s}
