"""The registry schema, written once for both dialects, and its versioned migrations.

One table layout (``versions``, ``aliases``, ``approvals``, ``audit``) is rendered for
SQLite and PostgreSQL from one text: only a few column types differ (``{key}`` text
columns sort bytewise on both; ``{loose}`` keeps an int as an int and a string as a
string; ``{event_id}`` is the audit's primary key). What each dialect adds:

- SQLite: ``AUTOINCREMENT`` keeps the audit's high-water mark in ``sqlite_sequence``;
  triggers that ``RAISE(ABORT)`` on UPDATE/DELETE of the append-only tables; the schema
  version in ``PRAGMA user_version``.
- PostgreSQL: one PL/pgSQL function raised by BEFORE UPDATE/DELETE row triggers and
  BEFORE TRUNCATE statement triggers (TRUNCATE skips row triggers); ``audit_sequence``,
  kept by a trigger, plays ``sqlite_sequence`` (a real sequence would leave gaps on
  rollback, and the chain's ids have none); ``schema_migrations`` records each version.

:func:`migrate` applies what is missing inside the registry's write lock (DDL is
transactional on both), so concurrent processes may all call it. SQLite databases are
migrated when opened; PostgreSQL ones by ``action=migrate`` (a team decides when its
shared schema changes). :func:`trigger_problems` is what ``verify`` checks.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops.errors import RegistryError

APPEND_ONLY = ("versions", "approvals", "audit")

_TYPES = {
    "sqlite": {"key": "TEXT", "loose": "", "big": "INTEGER", "event_id": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {"key": 'TEXT COLLATE "C"', "loose": "JSONB", "big": "BIGINT", "event_id": "BIGINT PRIMARY KEY"},
}

_TABLES = """
CREATE TABLE IF NOT EXISTS versions (
    name                 {key}   NOT NULL,
    version              INTEGER NOT NULL CHECK (version >= 1),
    created_at           TEXT    NOT NULL,
    who                  TEXT    NOT NULL,
    code_version         TEXT,
    parent               INTEGER,
    artifact_sha256      TEXT    NOT NULL,
    artifact_path        TEXT    NOT NULL,
    artifact_size        {big}   NOT NULL,
    model_class          TEXT    NOT NULL,
    reference_sha256     TEXT,
    reference_path       TEXT,
    training_data_hash   TEXT,
    feature_plan_hash    TEXT,
    feature_plan_name    TEXT,
    feature_plan_version {loose},
    description          TEXT,
    config               TEXT    NOT NULL,
    hyperparameters      TEXT    NOT NULL,
    metrics              TEXT    NOT NULL,
    fairness             TEXT    NOT NULL,
    tags                 TEXT    NOT NULL,
    PRIMARY KEY (name, version),
    FOREIGN KEY (name, parent) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name       {key}   NOT NULL,
    alias      {key}   NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS approvals (
    name     {key}   NOT NULL,
    version  INTEGER NOT NULL,
    approver {key}   NOT NULL,
    alias    {key}   NOT NULL,
    ts       TEXT    NOT NULL,
    comment  TEXT,
    public_key TEXT  NOT NULL,
    signature  TEXT  NOT NULL,
    PRIMARY KEY (name, version, approver, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS audit (
    id      {event_id},
    ts      TEXT    NOT NULL,
    model   {key}   NOT NULL,
    version INTEGER,
    action  TEXT    NOT NULL,
    alias   {key},
    actor   TEXT    NOT NULL,
    details TEXT    NOT NULL,
    prev_hash TEXT  NOT NULL,
    hash    TEXT    NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_by_model ON audit (model, id)
"""

# --------------------------------------------------------------------------- SQLite
SQLITE_TRIGGERS = {
    f"{table}_no_{op.lower()}": (
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} is not allowed'); END")
    for table in APPEND_ONLY for op in ("UPDATE", "DELETE")
}

# ----------------------------------------------------------------------- PostgreSQL
PG_FUNCTION = "registry_append_only"
PG_FUNCTION_BODY = "\nBEGIN RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP; END\n"
PG_TRIGGERS = {
    **{f"{table}_no_{op.lower()}": (f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                                    f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()")
       for table in APPEND_ONLY for op in ("UPDATE", "DELETE")},
    **{f"{table}_no_truncate": (f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                                f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()")
       for table in APPEND_ONLY},
    "audit_sequence_bump": ("CREATE TRIGGER audit_sequence_bump AFTER INSERT ON audit "
                            "FOR EACH ROW EXECUTE FUNCTION audit_sequence_bump()"),
}
_PG_BEFORE = [
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
    "applied_at TEXT NOT NULL)",
]
_PG_AFTER = [
    'CREATE TABLE IF NOT EXISTS audit_sequence (name TEXT COLLATE "C" PRIMARY KEY, seq BIGINT NOT NULL)',
    "CREATE OR REPLACE FUNCTION audit_sequence_bump() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN INSERT INTO audit_sequence (name, seq) VALUES ('audit', NEW.id) ON CONFLICT (name) "
    "DO UPDATE SET seq = GREATEST(audit_sequence.seq, EXCLUDED.seq); RETURN NEW; END\n$$",
    f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $${PG_FUNCTION_BODY}$$",
]


def render_tables(dialect: str) -> list[str]:
    """The shared table layout as statements for ``dialect``."""
    text = _TABLES.format(**_TYPES[dialect])
    return [s.strip() for s in text.split(";") if s.strip()]


def _v2(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return render_tables(dialect) + [sql.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1)
                                         for sql in SQLITE_TRIGGERS.values()]
    return _PG_BEFORE + render_tables(dialect) + _PG_AFTER + list(PG_TRIGGERS.values())


@dataclass(frozen=True)
class Migration:
    """One schema version: what it adds, as statements per dialect."""

    version: int
    description: str
    statements: Callable[[str], list[str]]


# Version 1 (SQLite only, before the hash chain) is refused, never migrated: its
# history cannot be made tamper-evident after the fact.
def _v3(dialect: str) -> list[str]:
    # a nullable column: no row is rewritten, and a NULL policy is left out of the row
    # hash (chain.row_hash), so versions registered under 2 still verify
    return ["ALTER TABLE versions ADD COLUMN policy TEXT"]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "hash-chained audit, signed approvals, aliases derived from the chain", _v2),
    Migration(3, "versions.policy: the decision policy a version carries", _v3),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def check_version(found: int, where: str) -> None:
    """A schema from before the chain, or newer than this code, is refused."""
    if 0 < found < MIGRATIONS[0].version:
        raise RegistryError(f"registry database {where} has schema version {found}, from before the hash chain; "
                            "its history cannot be made tamper-evident after the fact",
                            fix="move the old registry home aside and register the models again")
    if found > SCHEMA_VERSION:
        raise RegistryError(f"registry database {where} has schema version {found}, newer than this code "
                            f"understands ({SCHEMA_VERSION})", fix="upgrade the mlops package")


def current_version(db: Any) -> int:
    """The schema version of ``db`` (0: empty), read without taking the write lock."""
    with db.read() as conn:
        return db.schema_version(conn)


def migrate(db: Any) -> dict[str, Any]:
    """Bring ``db`` to :data:`SCHEMA_VERSION`; returns ``{from, to, applied: [...]}``."""
    db.prepare()
    before = current_version(db)
    check_version(before, db.display)
    if before == SCHEMA_VERSION:
        return {"from": before, "to": before, "applied": []}
    applied = []
    with db.write() as conn:
        before = db.schema_version(conn)  # again, under the lock: another process may have done it
        check_version(before, db.display)
        for step in MIGRATIONS:
            if step.version > before:
                for statement in step.statements(conn.dialect):
                    conn.execute(statement)
                db.set_schema_version(conn, step.version, step.description)
                applied.append({"version": step.version, "description": step.description})
    return {"from": before, "to": SCHEMA_VERSION, "applied": applied}


def require_current(db: Any) -> None:
    """RegistryError unless ``db`` is at :data:`SCHEMA_VERSION` (databases not migrated on open)."""
    found = current_version(db)
    check_version(found, db.display)
    if found != SCHEMA_VERSION:
        state = "has no registry schema yet" if found == 0 else f"is at schema version {found}"
        raise RegistryError(f"registry database {db.display} {state} (this code needs {SCHEMA_VERSION})",
                            key="registry.url", fix="run `python run.py action=migrate` with the same registry.url")


def _norm(sql: str, schema: str = "") -> str:
    sql = sql.replace("IF NOT EXISTS ", "")
    if schema:
        sql = sql.replace(f" {schema}.", " ")
    return re.sub(r"\s+", " ", sql).strip()


def _problem(kind: str, text: str, trigger: str) -> dict[str, Any]:
    return {"kind": kind, "problem": text, "trigger": trigger}


def trigger_problems(conn: Any) -> list[dict[str, Any]]:
    """Every append-only trigger exists, enabled, with its original definition."""
    if conn.dialect == "sqlite":
        expected = SQLITE_TRIGGERS
        found = {r[0]: (r[1], "O") for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")}
        schema = ""
    else:
        expected = PG_TRIGGERS
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        found = {r[0]: (r[1], r[2]) for r in conn.execute(
            "SELECT t.tgname, pg_get_triggerdef(t.oid), t.tgenabled FROM pg_trigger t JOIN pg_class c "
            "ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace")}
    out = []
    for name, sql in expected.items():
        if name not in found:
            out.append(_problem("missing_trigger", f"trigger {name} is missing: someone dropped it, so the table "
                                "it guards could have been edited", name))
        elif _norm(found[name][0], schema) != _norm(sql):
            out.append(_problem("changed_trigger", f"trigger {name} was redefined: {found[name][0]!r}", name))
        elif str(found[name][1]) != "O":
            out.append(_problem("disabled_trigger", f"trigger {name} is disabled (ALTER TABLE ... DISABLE "
                                "TRIGGER), so the table it guards could have been edited", name))
    return out + (_function_problems(conn) if conn.dialect == "postgresql" else [])


def _function_problems(conn: Any) -> list[dict[str, Any]]:
    """The triggers' function still raises (a body replaced by ``RETURN NEW`` disarms all of them)."""
    row = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = ? AND pronamespace = "
                       "current_schema()::regnamespace", (PG_FUNCTION,)).fetchone()
    if row is None:
        return [_problem("missing_trigger", f"function {PG_FUNCTION}() of the append-only triggers is missing",
                         PG_FUNCTION)]
    if row[0].strip() != PG_FUNCTION_BODY.strip():
        return [_problem("changed_trigger", f"function {PG_FUNCTION}() of the append-only triggers was "
                         f"redefined: {row[0].strip()!r}", PG_FUNCTION)]
    return []
