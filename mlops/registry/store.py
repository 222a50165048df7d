"""SQLite index of the registry: schema, connections and write transactions.

One file (``<home>/registry/registry.db``) in WAL mode so readers never block the
writer and parallel sweep jobs can register at the same time. Every write runs in
a ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so two writers
never both read ``MAX(version)`` and pick the same number. Versions, approvals and the
audit log (the hash chain, :mod:`mlops.registry.chain`) are append-only, enforced by
triggers that raise on UPDATE/DELETE; ``aliases`` is only an index of what the chain says.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops.errors import RegistryError
from mlops.home import private_dir, private_file

# 2: hash-chained audit, signed approvals, aliases derived from the chain
# 3: versions.policy (the decision policy a version carries); a 2 is migrated in place
SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 60_000

# Columns without a declared type keep whatever Python type was stored (int or str),
# which matters for feature_plan_version.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name                 TEXT    NOT NULL,
    version              INTEGER NOT NULL CHECK (version >= 1),
    created_at           TEXT    NOT NULL,
    who                  TEXT    NOT NULL,
    code_version         TEXT,
    parent               INTEGER,
    artifact_sha256      TEXT    NOT NULL,
    artifact_path        TEXT    NOT NULL,
    artifact_size        INTEGER NOT NULL,
    model_class          TEXT    NOT NULL,
    reference_sha256     TEXT,
    reference_path       TEXT,
    training_data_hash   TEXT,
    feature_plan_hash    TEXT,
    feature_plan_name    TEXT,
    feature_plan_version,
    description          TEXT,
    config               TEXT    NOT NULL,
    hyperparameters      TEXT    NOT NULL,
    metrics              TEXT    NOT NULL,
    fairness             TEXT    NOT NULL,
    tags                 TEXT    NOT NULL,
    policy               TEXT,
    PRIMARY KEY (name, version),
    FOREIGN KEY (name, parent) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name       TEXT    NOT NULL,
    alias      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS approvals (
    name     TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    approver TEXT    NOT NULL,
    alias    TEXT    NOT NULL,
    ts       TEXT    NOT NULL,
    comment  TEXT,
    public_key TEXT  NOT NULL,
    signature  TEXT  NOT NULL,
    PRIMARY KEY (name, version, approver, alias),
    FOREIGN KEY (name, version) REFERENCES versions (name, version)
);
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      TEXT    NOT NULL,
    model   TEXT    NOT NULL,
    version INTEGER,
    action  TEXT    NOT NULL,
    alias   TEXT,
    actor   TEXT    NOT NULL,
    details TEXT    NOT NULL,
    prev_hash TEXT  NOT NULL,
    hash    TEXT    NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_by_model ON audit (model, id);
"""

_APPEND_ONLY = ("versions", "approvals", "audit")

# name -> CREATE TRIGGER statement; verification checks each one is still there, unchanged.
TRIGGERS = {
    f"{table}_no_{op.lower()}": (
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} is not allowed'); END")
    for table in _APPEND_ONLY for op in ("UPDATE", "DELETE")
}


def _statements() -> list[str]:
    statements = [s.strip() for s in _SCHEMA.split(";") if s.strip()]
    statements += [sql.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1) for sql in TRIGGERS.values()]
    return statements


def utc_now() -> str:
    """Current time as UTC ISO 8601 with microseconds, e.g. ``2025-01-31T12:00:00.000001+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def connect(db_path: Path) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit) with a busy timeout."""
    conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a commit survives power loss, not only a killed process; writes are rare.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def initialize(db_path: Path) -> None:
    """Create the database (WAL mode, tables, append-only triggers) if needed.

    Safe to call from many processes at once: switching to WAL can briefly report
    "locked" while another process does the same, so it is retried.
    """
    private_dir(db_path.parent)
    private_file(db_path)  # SQLite gives -wal and -shm the database file's mode: 0600
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        conn = connect(db_path)
        try:
            _set_up(conn, db_path)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise RegistryError(f"cannot open the registry database {db_path}: {exc}") from exc
            time.sleep(0.05)
        finally:
            conn.close()


def _set_up(conn: sqlite3.Connection, db_path: Path) -> None:
    """Switch to WAL and create the schema unless it is already current."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RegistryError(
            f"could not switch {db_path} to WAL journal mode (got {mode!r})",
            fix="put the registry home on a local filesystem that supports SQLite WAL",
        )
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return  # already set up: no write lock needed
    with transaction(conn):
        # read again under the write lock: another process may have set it up meanwhile
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        _check_schema_version(found, db_path)
        if found == 2:  # adding a nullable column rewrites no row: old rows keep their hash
            conn.execute("ALTER TABLE versions ADD COLUMN policy TEXT")
        # executescript() would COMMIT first, so statements run one by one.
        for statement in _statements():
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _check_schema_version(found: int, db_path: Path) -> None:
    """A database from before the chain (1) or from a newer schema is refused, not
    migrated; 2 is migrated (one nullable column)."""
    if 0 < found < 2:
        raise RegistryError(
            f"registry database {db_path} has schema version {found}, from before the "
            "hash chain; its history cannot be made tamper-evident after the fact",
            fix="move the old registry home aside and register the models again",
        )
    if found > SCHEMA_VERSION:
        raise RegistryError(
            f"registry database {db_path} has schema version {found}, newer than "
            f"this code understands ({SCHEMA_VERSION})",
            fix="upgrade the mlops package",
        )


def dumps(value: Any) -> str:
    """JSON text for a metadata column (keys sorted so equal dicts give equal text)."""
    return json.dumps(value, sort_keys=True, allow_nan=True)


def loads(text: str | None) -> Any:
    """Inverse of :func:`dumps`; ``None`` stays ``None``."""
    return None if text is None else json.loads(text)
