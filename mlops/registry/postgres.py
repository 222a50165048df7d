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

A connection is kept per thread and process (opening one costs a login; see
:class:`~mlops.registry.database.ThreadConnections`).
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from mlops.errors import RegistryError
from mlops.registry.database import ThreadConnections, close_quietly
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


class PostgresDatabase(ThreadConnections):
    """A registry index in PostgreSQL (see the module docstring)."""

    dialect = "postgresql"
    auto_migrate = False

    def __init__(self, conninfo: str, *, password: str | None = None):
        super().__init__()
        self.conninfo = conninfo
        self.display = conninfo  # parse_url refused any password in it
        self._password = password

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

    @staticmethod
    def _usable(conn: PostgresConnection) -> bool:
        return conn.usable

    def _discard(self, conn: PostgresConnection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        close_quietly(conn)

    def _finish(self, conn: PostgresConnection, statement: str) -> None:
        try:
            if conn.usable and conn.in_transaction:
                conn.execute(statement)
        except psycopg.Error:
            self._discard(conn)

    @contextmanager
    def read(self) -> Iterator[PostgresConnection]:
        """One REPEATABLE READ READ ONLY transaction: one consistent snapshot."""
        for attempt in (1, 2):  # a kept connection may have died with a server restart: reopen once
            with self._checkout() as conn:
                try:
                    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                except psycopg.OperationalError as exc:
                    died = not conn.usable
                    self._discard(conn)
                    if attempt == 2 or not died:
                        raise self._error(exc, "cannot read the registry database {db}") from None
                    continue
                try:
                    yield conn
                finally:
                    self._finish(conn, "ROLLBACK")
                return

    @contextmanager
    def write(self) -> Iterator[PostgresConnection]:
        """A write transaction holding the registry's write lock; rolled back on any exception."""
        deadline, delay = time.monotonic() + BUSY_TIMEOUT_MS / 1000, 0.05
        while True:
            with self._checkout() as conn:
                failure = self._lock(conn)
                if failure is None:
                    try:
                        yield conn
                    except BaseException:
                        self._finish(conn, "ROLLBACK")
                        raise
                    self._commit(conn)
                    return
            if not failure[1] or time.monotonic() > deadline:
                raise self._error(failure[0], "cannot take the write lock of the registry database {db}")
            time.sleep(delay)
            delay = min(2 * delay, 1.0)

    def _lock(self, conn: PostgresConnection) -> tuple[BaseException, bool] | None:
        """Begin and take the write lock; None, or (the error, whether to retry)."""
        try:
            # one round trip (no parameters: the simple protocol takes several statements)
            conn.execute(f"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '{BUSY_TIMEOUT_MS}ms'; "
                         f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            return None
        except psycopg.Error as exc:
            died = not conn.usable  # a dead kept connection: reopen and retry
            self._finish(conn, "ROLLBACK")
            if died:
                self._discard(conn)
            return exc, _transient(exc) or died

    def _commit(self, conn: PostgresConnection) -> None:
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            self._discard(conn)
            raise self._error(exc, "the commit to the registry database {db} failed and its outcome is "
                                   "unknown (action=verify shows what was kept)") from None

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
