"""Where the registry index lives: SQLite (embedded, the default) or PostgreSQL (a team's).

``registry.url`` chooses it:

- null: ``<paths.home>/registry/registry.db``, SQLite in WAL mode, created and migrated
  automatically (nothing to set up);
- a path or ``sqlite:///<path>`` (a relative path is under ``paths.home``; four slashes,
  ``sqlite:////abs/path.db``, for an absolute one, as SQLAlchemy writes it);
- ``postgresql://user@host:port/dbname`` (``?sslmode=...`` and other libpq parameters
  allowed). The password never goes in the URL: libpq reads ``PGPASSWORD`` or
  ``~/.pgpass``, or ``registry.password_file`` names a file holding it. The schema is
  created and migrated by ``action=migrate`` (see :mod:`mlops.registry.migrations`).

Both dialects run the same queries through a connection with the sqlite3 interface
(``execute(sql, params)`` with ``?`` placeholders, rows indexable by position and by
column name). What differs is small and lives in the dialect classes: how a write
transaction takes the registry's one write lock (``BEGIN IMMEDIATE`` here, an advisory
lock on PostgreSQL, :mod:`mlops.registry.postgres`), the audit sequence, and the
append-only triggers (:mod:`mlops.registry.migrations`).

    >>> db = open_database(None, home=tmp_path)
    >>> db.display
    'sqlite:///.../registry/registry.db'
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlops.errors import ConfigError, RegistryError
from mlops.home import private_dir, private_file

BUSY_TIMEOUT_MS = 60_000
DEFAULT_SQLITE = Path("registry") / "registry.db"
SCHEMES = ("sqlite", "postgresql", "postgres")


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed ``registry.url``: the dialect, and either a file or a libpq URI."""

    dialect: str                 # "sqlite" or "postgresql"
    path: Path | None = None     # sqlite
    conninfo: str | None = None  # postgresql, never with a password

    @property
    def display(self) -> str:
        """The URL as reports show it (there is no password in it to hide)."""
        return f"sqlite:///{self.path}" if self.dialect == "sqlite" else str(self.conninfo)


def _under_home(text: str, home: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else home / path


def parse_url(url: Any, *, home: Path, key: str = "registry.url") -> DatabaseURL:
    """``registry.url`` -> DatabaseURL (see the module docstring for the forms)."""
    if url is None or (isinstance(url, str) and not url.strip()):
        return DatabaseURL("sqlite", path=home / DEFAULT_SQLITE)
    if not isinstance(url, (str, Path)):
        raise ConfigError(f"must be a path or a URL (sqlite:///..., postgresql://...); got {url!r} instead", key=key)
    text = str(url).strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        return DatabaseURL("sqlite", path=_under_home(text, home))
    if scheme == "sqlite":
        rest = text.split("://", 1)[1]
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(f"a SQLite URL is sqlite:///<relative path> or sqlite:////<absolute path>; got {text!r}",
                              key=key)
        return DatabaseURL("sqlite", path=_under_home(rest[1:], home))
    if scheme in ("postgresql", "postgres"):
        return DatabaseURL("postgresql", conninfo=_postgres_uri(text, key))
    raise ConfigError(f"unknown database scheme {scheme!r} in {text!r}; valid: a path, sqlite:///..., "
                      "postgresql://user@host:port/db", key=key)


def _postgres_uri(text: str, key: str) -> str:
    parts = urlsplit(text)
    if parts.password is not None:
        # a password in the URL ends up in shell history, configs and lineage
        raise ConfigError("the URL holds a password; passwords never go in registry.url",
                          key=key, fix="remove it and set PGPASSWORD, use ~/.pgpass, or set registry.password_file")
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError(f"must be postgresql://user@host:port/dbname; got {text!r} instead", key=key)
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError as exc:
        raise ConfigError(f"bad port in {text!r}: {exc}", key=key) from exc
    return "postgresql://" + text.split("://", 1)[1]


def read_password_file(path: Path, *, key: str = "registry.password_file") -> str:
    """The first line of a password file; refused when others can read it (as ssh does)."""
    if not path.is_file():
        raise ConfigError(f"password file {path} does not exist", key=key,
                          fix="create it with the database password on one line, chmod 600")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"password file {path} is readable by other users", key=key, fix=f"chmod 600 {path}")
    lines = path.read_text().splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"password file {path} is empty", key=key)
    return lines[0]


class SQLiteConnection(sqlite3.Connection):
    """sqlite3 connection with the dialect hooks the shared queries use."""

    dialect = "sqlite"
    AUDIT_SEQUENCE = "SELECT seq FROM sqlite_sequence WHERE name = 'audit'"

    @staticmethod
    def loose(value: Any) -> Any:
        """A value for a column without a declared type (kept as int or str)."""
        return value

    def health(self) -> str:
        """``PRAGMA quick_check``: "ok" or the first problem."""
        return str(self.execute("PRAGMA quick_check").fetchone()[0])


class ThreadConnections:
    """One kept connection per thread and process, opened on first use.

    Opening is what costs: a login on PostgreSQL; on SQLite, closing the last connection
    checkpoints the WAL into the database (more fsyncs per operation than the commit).
    A forked child opens its own and never closes its parent's (closing a PostgreSQL
    connection in the child would end the parent's session). A nested operation in the
    same thread (the kept connection is inside a transaction) gets a connection of its
    own, closed afterwards, as every operation had before connections were kept.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def connect(self) -> Any:  # pragma: no cover - each dialect defines it
        raise NotImplementedError

    @staticmethod
    def _usable(conn: Any) -> bool:
        return True

    def _kept(self) -> Any:
        conn, pid = getattr(self._local, "conn", None), getattr(self._local, "pid", None)
        if conn is not None and pid != os.getpid():
            FORKED_AWAY.append(conn)
            conn = None
        if conn is None or not self._usable(conn):
            conn = self._local.conn = self.connect()
            self._local.pid = os.getpid()
        return conn

    @contextmanager
    def _checkout(self) -> Iterator[Any]:
        conn = self._kept()
        if not conn.in_transaction:
            yield conn
            return
        own = self.connect()
        try:
            yield own
        finally:
            close_quietly(own)

    def close(self) -> None:
        """Close this thread's kept connection (the next operation opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            close_quietly(conn)


FORKED_AWAY: list[Any] = []  # a parent's connections, kept referenced in a child so they are never closed there


def close_quietly(conn: Any) -> None:
    try:
        (conn.raw if hasattr(conn, "raw") else conn).close()
    except Exception:  # noqa: BLE001 - a broken connection is closed already
        pass


class SQLiteDatabase(ThreadConnections):
    """The embedded registry index: one SQLite file in WAL mode, migrated on open.

    Every write runs in ``BEGIN IMMEDIATE``: the write lock is taken up front, so two
    writers never both read ``MAX(version)`` and pick the same number.
    """

    dialect = "sqlite"
    auto_migrate = True

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.display = DatabaseURL("sqlite", path=self.path).display

    def connect(self) -> SQLiteConnection:
        """Autocommit connection (transactions are explicit) with a busy timeout."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               factory=SQLiteConnection, check_same_thread=True)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit survives power loss, not only a killed process; writes are rare.
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @contextmanager
    def read(self) -> Iterator[SQLiteConnection]:
        """One deferred transaction: one consistent snapshot across several queries."""
        with self._checkout() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    @contextmanager
    def write(self) -> Iterator[SQLiteConnection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
        with self._checkout() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def prepare(self) -> None:
        """Private file, WAL mode (retried: switching can report "locked" while another
        process does the same)."""
        private_dir(self.path.parent)
        private_file(self.path)  # SQLite gives -wal and -shm the database file's mode: 0600
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            conn = self.connect()
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise RegistryError(f"cannot open the registry database {self.path}: {exc}") from exc
                time.sleep(0.05)
            finally:
                conn.close()
        if str(mode).lower() != "wal":
            raise RegistryError(f"could not switch {self.path} to WAL journal mode (got {mode!r})",
                                fix="put the registry home on a local filesystem that supports SQLite WAL")

    def schema_version(self, conn: SQLiteConnection) -> int:
        """The schema version recorded in the file (0 for a new file)."""
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, conn: SQLiteConnection, version: int, description: str) -> None:
        """Record ``version`` (inside the migration's transaction)."""
        conn.execute(f"PRAGMA user_version = {int(version)}")



def open_database(url: Any = None, *, home: Path | str, password: str | None = None,
                  key: str = "registry.url") -> Any:
    """The database ``url`` names (see :func:`parse_url`); ``password`` only for PostgreSQL."""
    parsed = parse_url(url, home=Path(home), key=key)
    if parsed.dialect == "sqlite":
        return SQLiteDatabase(parsed.path)
    from mlops.registry.postgres import PostgresDatabase  # psycopg is the optional `postgres` extra
    return PostgresDatabase(parsed.conninfo, password=password)
