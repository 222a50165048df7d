"""SQLite backend of the online store (``serving.store.type=sqlite``, the default).

One file in WAL mode (readers never block the writer), one connection guarded by a
lock; tables ``events`` and ``features`` (the :class:`~mlops.features.online.store.FeatureStore`)
and ``kv`` (the :class:`~mlops.features.online.store.KeyValueStore`), each keyed by
namespace. A file written by an older version is migrated when opened: its events get
their retention time, its metadata moves into ``kv``.

Example:
    >>> store = SQLiteStore(":memory:")
    >>> store.write_features(["u1"], 1_700_000_000_000_000, ['{"x": 1.0}'])
    >>> store.read_features(["u1", "u2"])
    {'u1': (1700000000000000, '{"x": 1.0}')}
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence

from mlops.errors import ConfigError, DiskFullError, ServingError, StoreUnavailableError
from mlops.features.online.store import OnlineStore, per_entity_times
from mlops.filesystem import disk_full_detail, sqlite_file_problem
from mlops.home import private_dir, private_file

# SQLite limits bound parameters per statement (32766 in modern builds); stay well below
_CHUNK = 900
# put deletes every expired value once per this many calls (a full scan: keep it rare)
_KV_SWEEP_EVERY = 1000


class _BoundedLock:
    """The store's lock, taken within ``timeout`` seconds; a store operation that cannot
    get it, or that SQLite keeps waiting on another process's lock past the same
    timeout, is StoreUnavailableError (a 503 with Retry-After, never a stalled server)."""

    def __init__(self, timeout: float, path: str):
        self._lock, self.timeout, self.path = threading.Lock(), timeout, path

    def __enter__(self):
        if not self._lock.acquire(timeout=self.timeout):
            raise StoreUnavailableError(f"the SQLite online store {self.path} is busy: another request held "
                                        f"it longer than {self.timeout * 1000:g} ms (serving.store.timeout_ms)")
        return self

    def __exit__(self, kind, exc, tb):
        self._lock.release()
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreUnavailableError(
                    f"the SQLite online store {self.path} is locked by another process beyond "
                    f"{self.timeout * 1000:g} ms (serving.store.timeout_ms): {text}",
                    fix="retry; if it lasts, find the process holding the file (action=materialize?)") from exc
            if disk_full_detail(exc) is not None:
                raise DiskFullError(self.path, disk_full_detail(exc)) from exc
        return False


def _now_us(now_us: int | None) -> int:
    return time.time_ns() // 1000 if now_us is None else int(now_us)


class SQLiteStore(OnlineStore):
    """SQLite backend: one file, WAL journal, one connection guarded by a lock.

    ``path=":memory:"`` gives a private in-memory store (tests). ``timeout_ms`` bounds
    every operation: waiting for this process's lock or another process's SQLite lock.
    """

    def __init__(self, path: str | os.PathLike, *, namespace: str = "mlops",
                 max_events_per_entity: int | None = None, timeout_ms: float = 1000.0):
        self.path = str(path)
        self.namespace = namespace
        self.max_events_per_entity = max_events_per_entity
        self._puts = 0  # put calls, for the periodic sweep of expired values
        if self.path != ":memory:":
            problem = sqlite_file_problem(self.path)
            if problem is not None:  # refused before it is touched: no chmod, no SQLite header written
                raise ConfigError(f"{self.path} {problem}", key="serving.store.path",
                                  fix="point it at the online store's database or at a new file")
            private_dir(os.path.dirname(os.path.abspath(self.path)))
            private_file(self.path)  # SQLite gives -wal/-shm the same mode: 0600
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=timeout_ms / 1000.0)
        except sqlite3.Error as exc:
            raise ServingError(f"cannot open the SQLite online store at {self.path!r}: {exc}",
                               key="serving.store.path",
                               fix="point it at a writable file") from None
        self._lock = _BoundedLock(timeout_ms / 1000.0, self.path)
        try:
            self._create_tables()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if disk_full_detail(exc) is not None:
                raise DiskFullError(self.path, disk_full_detail(exc)) from None
            raise ServingError(f"cannot use the SQLite online store at {self.path!r}: {exc}",
                               key="serving.store.path",
                               fix="restore it from a backup, or move it aside and run "
                                   "action=materialize again") from None

    def _create_tables(self) -> None:
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: survives an app crash; an OS crash may lose the last commits
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS events (
                    ns TEXT NOT NULL, entity TEXT NOT NULL, ts INTEGER NOT NULL,
                    payload TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS events_by_entity ON events(ns, entity, ts);
                CREATE TABLE IF NOT EXISTS features (
                    ns TEXT NOT NULL, entity TEXT NOT NULL, as_of INTEGER NOT NULL,
                    payload TEXT NOT NULL, PRIMARY KEY (ns, entity)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS kv (
                    ns TEXT NOT NULL, key TEXT NOT NULL, expires INTEGER,
                    value TEXT NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
            """)
            self._migrate_events()
            self._migrate_meta()

    def _migrate_events(self) -> None:
        """Give ``events`` its event-id and retention columns and the indexes that store
        an event once and prune it (older files lack them; duplicates they hold are
        dropped first; their events are kept by their own time, as they were)."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(events)")}
        if "event_id" not in cols:
            self._db.execute("ALTER TABLE events ADD COLUMN event_id TEXT")
            self._db.execute("DELETE FROM events WHERE rowid NOT IN (SELECT min(rowid) FROM "
                             "events GROUP BY ns, entity, ts, payload)")
        if "keep_from" not in cols:  # max(event time, storage time): what retention reads
            self._db.execute("ALTER TABLE events ADD COLUMN keep_from INTEGER")
            self._db.execute("UPDATE events SET keep_from = ts")
        self._db.executescript("""
            DROP INDEX IF EXISTS events_by_ts;
            CREATE INDEX IF NOT EXISTS events_by_keep ON events(ns, keep_from);
            CREATE UNIQUE INDEX IF NOT EXISTS events_once_by_id ON events(ns, entity, event_id)
                WHERE event_id IS NOT NULL;
            CREATE UNIQUE INDEX IF NOT EXISTS events_once_by_payload
                ON events(ns, entity, ts, payload) WHERE event_id IS NULL;
        """)

    def _migrate_meta(self) -> None:
        """An older file's ``meta`` rows (breaker state, plan hash) become ``kv`` values;
        its ``predictions`` and ``answers`` are caches, rebuilt by the next action=score
        and the next retries."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            self._db.execute("INSERT OR IGNORE INTO kv(ns, key, expires, value) "
                             "SELECT ns, key, NULL, value FROM meta")
            self._db.executescript("DROP TABLE meta; DROP TABLE IF EXISTS predictions; "
                                   "DROP TABLE IF EXISTS answers;")

    def _write(self, sql: str, rows) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _select_in(self, sql: str, entities: Sequence[str], extra: tuple = ()) -> list:
        out = []
        uniq = list(dict.fromkeys(entities))
        with self._lock:
            for i in range(0, len(uniq), _CHUNK):
                chunk = uniq[i:i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                out.extend(self._db.execute(sql.format(marks=marks),
                                            (self.namespace, *chunk, *extra)).fetchall())
        return out

    def append_events(self, entities, ts_us, payloads, event_ids=None, *, now_us=None) -> int:
        ns = self.namespace
        ids = event_ids if event_ids is not None else [None] * len(entities)
        now = -(2 ** 63) if now_us is None else int(now_us)
        rows = [(ns, e, int(t), p, i, max(int(t), now))
                for e, t, p, i in zip(entities, ts_us, payloads, ids, strict=True)]
        cap = self.max_events_per_entity
        with self._lock:
            self._db.execute("BEGIN")
            try:
                before = self._db.total_changes
                # OR IGNORE: the unique indexes turn a second copy of an event into a no-op
                self._db.executemany("INSERT OR IGNORE INTO events(ns, entity, ts, payload, "
                                     "event_id, keep_from) VALUES (?, ?, ?, ?, ?, ?)", rows)
                added = self._db.total_changes - before
                if cap is not None:
                    for e in dict.fromkeys(entities):
                        self._trim(e, cap)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return added

    def _trim(self, entity: str, cap: int) -> None:
        # the cap-th newest event (by time, then arrival); the scan stops after `cap`
        # index steps, so entities below the cap cost only their own few rows
        edge = self._db.execute("SELECT ts, rowid FROM events WHERE ns = ? AND entity = ? "
                                "ORDER BY ts DESC, rowid DESC LIMIT 1 OFFSET ?",
                                (self.namespace, entity, cap)).fetchone()
        if edge is not None:
            self._db.execute("DELETE FROM events WHERE ns = ? AND entity = ? AND (ts < ? OR "
                             "(ts = ? AND rowid <= ?))",
                             (self.namespace, entity, edge[0], edge[0], edge[1]))

    def read_events(self, entities, since_us):
        if len(entities) == 1:  # the common single-request case: skip the IN (...) build
            with self._lock:
                return self._db.execute(
                    "SELECT entity, ts, payload FROM events WHERE ns = ? AND entity = ? "
                    "AND ts >= ? ORDER BY rowid", (self.namespace, entities[0], int(since_us))
                ).fetchall()
        return self._select_in("SELECT entity, ts, payload FROM events WHERE ns = ? AND entity "
                               "IN ({marks}) AND ts >= ? ORDER BY rowid", entities,
                               (int(since_us),))

    def prune_events(self, before_us: int) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM events WHERE ns = ? AND keep_from < ?",
                                   (self.namespace, int(before_us)))
            return cur.rowcount

    def write_features(self, entities, as_of_us, payloads) -> None:
        times = per_entity_times(as_of_us, len(entities), "as_of")
        ns = self.namespace
        self._write("INSERT OR REPLACE INTO features(ns, entity, as_of, payload) "
                    "VALUES (?, ?, ?, ?)",
                    [(ns, e, t, p) for e, t, p in zip(entities, times, payloads, strict=True)])

    def read_features(self, entities):
        if len(entities) == 1:
            with self._lock:
                row = self._db.execute("SELECT as_of, payload FROM features WHERE ns = ? "
                                       "AND entity = ?", (self.namespace, entities[0])).fetchone()
            return {} if row is None else {entities[0]: (row[0], row[1])}
        rows = self._select_in("SELECT entity, as_of, payload FROM features WHERE ns = ? AND "
                               "entity IN ({marks})", entities)
        return {e: (t, p) for e, t, p in rows}

    def put(self, items, *, ttl_seconds=None, only_new=False, now_us=None) -> int:
        now = _now_us(now_us)
        expires = None if ttl_seconds is None else int(now + ttl_seconds * 1e6)
        rows = [(self.namespace, k, expires, v) for k, v in items.items()]
        verb = "INSERT OR IGNORE" if only_new else "INSERT OR REPLACE"
        with self._lock:
            self._puts += 1
            self._db.execute("BEGIN")
            try:
                before = self._db.total_changes
                # expired values go (these keys' always; every key now and then)
                if self._puts % _KV_SWEEP_EVERY == 0:
                    self._db.execute("DELETE FROM kv WHERE ns = ? AND expires <= ?", (self.namespace, now))
                elif only_new:
                    self._db.executemany("DELETE FROM kv WHERE ns = ? AND key = ? AND expires <= ?",
                                         [(self.namespace, k, now) for k in items])
                swept = self._db.total_changes - before
                self._db.executemany(f"{verb} INTO kv(ns, key, expires, value) VALUES (?, ?, ?, ?)", rows)
                stored = self._db.total_changes - before - swept
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return stored

    def get(self, keys, *, now_us=None):
        now = _now_us(now_us)
        rows = self._select_in("SELECT key, value FROM kv WHERE ns = ? AND key IN ({marks}) "
                               "AND (expires IS NULL OR expires > ?)", keys, (now,))
        return dict(rows)

    def ping(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except (sqlite3.Error, StoreUnavailableError):
            return False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def count_events(self, entity: str | None = None) -> int:
        """How many events are stored (for one entity, or in the namespace)."""
        sql, args = "SELECT count(*) FROM events WHERE ns = ?", (self.namespace,)
        if entity is not None:
            sql, args = sql + " AND entity = ?", (*args, entity)
        with self._lock:
            return int(self._db.execute(sql, args).fetchone()[0])

    def describe(self) -> dict:
        return {"type": "sqlite", "path": self.path, "namespace": self.namespace}
