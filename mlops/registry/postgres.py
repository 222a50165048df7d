"""PostgreSQL dialect of the registry index (psycopg 3, the optional ``postgres`` extra).

Writes are serialised exactly as SQLite's ``BEGIN IMMEDIATE`` serialises them: every
write transaction starts by taking one transaction-scoped advisory lock
(``pg_advisory_xact_lock``), under READ COMMITTED, so each statement after the lock sees
every commit made before it: the next version number and the chain head are read by
one writer at a time, on every machine. The lock goes with the transaction: at COMMIT,
at ROLLBACK, and when the server sees the connection of a killed writer close, so a
killed writer never blocks the others and leaves no half-written state. Reads run in
REPEATABLE READ READ ONLY transactions: one snapshot across several queries.

Retried with backoff for up to a minute: a server starting up or out of connection
slots, a lock wait past ``lock_timeout``, a serialization failure or deadlock while
beginning a write. Not retried: a refused connection or a failed login (a one-line
RegistryError naming the URL, never the password).

A connection is kept per thread and process (opening one costs a login); a forked
child opens its own and never touches its parent's.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from mlops.errors import RegistryError
from mlops.registry.store import utc_now

try:
    import psycopg
    from psycopg.pq import TransactionStatus
    from psycopg.types.json import Jsonb
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise RegistryError("registry.url names a PostgreSQL database but psycopg is not installed",
                        key="registry.url", fix='pip install "mlops[postgres]" (psycopg 3)') from exc

BUSY_TIMEOUT_MS = 60_000
WRITE_LOCK = 0x6D6C6F7073_7265  # the registry's advisory-lock key (per database)
# starting up, shutting down, too many connections, out of memory, serialization
# failure, deadlock, lock timeout
_TRANSIENT = {"57P03", "57P01", "53300", "53400", "40001", "40P01", "55P03"}
_TRANSIENT_TEXT = ("the database system is starting up", "too many clients", "remaining connection slots")
_FORKED_AWAY: list[Any] = []  # a parent's connections, kept alive in a child so they are never closed there


class Row:
    """A result row indexable by position and by column name, like ``sqlite3.Row``."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]):
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._index[key]]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values))!r})"


def _row_factory(cursor: Any) -> Any:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


@lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """``?`` placeholders (sqlite3's) as psycopg's ``%s``; a literal ``%`` doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    """A psycopg connection with the sqlite3 interface and the dialect hooks the shared
    queries use."""

    dialect = "postgresql"
    AUDIT_SEQUENCE = "SELECT seq FROM audit_sequence WHERE name = 'audit'"

    def __init__(self, raw: Any):
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if params:
            return self.raw.execute(_placeholders(sql), tuple(params))
        return self.raw.execute(sql)

    @staticmethod
    def loose(value: Any) -> Any:
        """A value for a JSONB column that keeps an int an int and a string a string."""
        return None if value is None else Jsonb(value)

    @staticmethod
    def health() -> None:
        """No page check from a client (the server's data checksums do that)."""
        return None

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def usable(self) -> bool:
        return not (self.raw.closed or self.raw.broken)


def _transient(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    return state in _TRANSIENT or (state is None and any(t in str(exc) for t in _TRANSIENT_TEXT))


class PostgresDatabase:
    """A registry index in PostgreSQL (see the module docstring)."""

    dialect = "postgresql"
    auto_migrate = False

    def __init__(self, conninfo: str, *, password: str | None = None):
        self.conninfo = conninfo
        self.display = conninfo  # parse_url refused any password in it
        self._password = password
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.display!r})"

    def _error(self, exc: BaseException, what: str) -> RegistryError:
        """``what`` names the database as ``{db}``; the driver's message follows, never the password."""
        text = " ".join(str(exc).split())
        if self._password:
            text = text.replace(self._password, "<redacted>")
        return RegistryError(f"{what.format(db=self.display)}: {text}", key="registry.url",
                             fix="check the server is up and the URL, and the password in PGPASSWORD, "
                                 "~/.pgpass or registry.password_file")

    def connect(self) -> PostgresConnection:
        """A new autocommit connection (transactions are explicit), retried while transient."""
        extra = {"password": self._password} if self._password is not None else {}
        deadline, delay = time.monotonic() + BUSY_TIMEOUT_MS / 1000, 0.05
        while True:
            try:
                raw = psycopg.connect(self.conninfo, autocommit=True, row_factory=_row_factory,
                                      connect_timeout=10, application_name="mlops-registry", **extra)
                return PostgresConnection(raw)
            except psycopg.OperationalError as exc:
                if not _transient(exc) or time.monotonic() > deadline:
                    raise self._error(exc, "cannot connect to the registry database {db}") from None
            time.sleep(delay)
            delay = min(2 * delay, 1.0)

    def _connection(self) -> PostgresConnection:
        """This thread's connection in this process, opened or reopened as needed."""
        conn, pid = getattr(self._local, "conn", None), getattr(self._local, "pid", None)
        if conn is not None and pid != os.getpid():
            _FORKED_AWAY.append(conn)  # closing it here would end the parent's session
            conn = None
        if conn is None or not conn.usable:
            conn = self._local.conn = self.connect()
            self._local.pid = os.getpid()
        return conn

    def _finish(self, conn: PostgresConnection, statement: str) -> None:
        try:
            if conn.usable and conn.in_transaction:
                conn.execute(statement)
        except psycopg.Error:
            self.close()

    @contextmanager
    def read(self) -> Iterator[PostgresConnection]:
        """One REPEATABLE READ READ ONLY transaction: one consistent snapshot."""
        for attempt in (1, 2):  # a kept connection may have died with a server restart: reopen once
            conn = self._connection()
            try:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                break
            except psycopg.OperationalError as exc:
                self.close()
                if attempt == 2 or conn.usable:
                    raise self._error(exc, "cannot read the registry database {db}") from None
        try:
            yield conn
        finally:
            self._finish(conn, "ROLLBACK")

    @contextmanager
    def write(self) -> Iterator[PostgresConnection]:
        """A write transaction holding the registry's write lock; rolled back on any exception."""
        conn = self._begin_write()
        try:
            yield conn
        except BaseException:
            self._finish(conn, "ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            self.close()
            raise self._error(exc, "the commit to the registry database {db} failed and its outcome is unknown "
                                           "(action=verify shows what was kept)") from None

    def _begin_write(self) -> PostgresConnection:
        deadline, delay = time.monotonic() + BUSY_TIMEOUT_MS / 1000, 0.05
        while True:
            conn = self._connection()
            try:
                conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
                conn.execute(f"SET LOCAL lock_timeout = '{BUSY_TIMEOUT_MS}ms'")
                conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
                return conn
            except psycopg.Error as exc:
                self._finish(conn, "ROLLBACK")
                retry = _transient(exc) or not conn.usable  # a dead kept connection: reopen
                if not retry or time.monotonic() > deadline:
                    raise self._error(exc, "cannot take the write lock of the registry database {db}") from None
            time.sleep(delay)
            delay = min(2 * delay, 1.0)

    def prepare(self) -> None:
        """Nothing to prepare: the server holds the files."""

    def schema_version(self, conn: PostgresConnection) -> int:
        """The newest applied migration (0 for a database without the registry schema)."""
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return 0
        return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])

    def set_schema_version(self, conn: PostgresConnection, version: int, description: str) -> None:
        """Record an applied migration (inside its transaction)."""
        conn.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                     (int(version), description, utc_now()))

    def close(self) -> None:
        """Close this thread's connection (the next operation opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            try:
                conn.raw.close()
            except psycopg.Error:
                pass
