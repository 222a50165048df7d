"""Online stores: what the serving path reads at request time.

A store holds three things per entity, each as opaque JSON text (the caller encodes and
decodes them; :mod:`mlops.features.online.request` does so with vectorized polars):

- recent **events** (realtime mode): appended as requests are scored, read back for a
  batch of entities in one call (``since`` bounds the history to the longest window).
  An event is stored once: the same event id (when the caller has one), else the same
  (entity, time, payload), is ignored on a second append (client retries, replays run
  twice). At most ``max_events_per_entity`` newest events are kept per entity, so one
  hot entity cannot slow down the reads of its batch-mates;
- materialized **feature rows** with their ``as_of`` time (hybrid mode);
- precomputed **predictions** with their scoring time (batch mode cache).

Times are integer microseconds since the Unix epoch (UTC). Two backends share one
interface: :class:`SQLiteStore` (default; one file, WAL mode) and
:class:`mlops.features.online.redis.RedisStore`. :func:`open_store` maps the short
``type`` names of the config to classes (Feast style).

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
from abc import ABC, abstractmethod
from collections.abc import Sequence

from mlops.errors import ConfigError, ServingError
from mlops.home import private_dir, private_file

# SQLite limits bound parameters per statement (32766 in modern builds); stay well below
_CHUNK = 900
# put_answer deletes expired answers once per this many puts (a full scan: keep it rare)
_ANSWER_SWEEP_EVERY = 1000


class OnlineStore(ABC):
    """Interface of the online stores. Thread-safe; payloads are JSON text."""

    # (a) recent events, realtime mode
    @abstractmethod
    def append_events(self, entities: Sequence[str], ts_us: Sequence[int],
                      payloads: Sequence[str],
                      event_ids: Sequence[str | None] | None = None) -> int:
        """Append one event per (entity, ts, payload) triple unless already stored
        (same event id, or without one the same entity, ts and payload); return how
        many were new. Trims each touched entity to its newest ``max_events_per_entity``."""

    @abstractmethod
    def read_events(self, entities: Sequence[str], since_us: int) -> list[tuple[str, int, str]]:
        """Events of ``entities`` with ``ts >= since_us`` as (entity, ts, payload), in
        insertion order per entity."""

    @abstractmethod
    def prune_events(self, before_us: int) -> int:
        """Delete events older than ``before_us`` (the caller passes a cutoff from the
        server clock, never from client times); return how many were removed."""

    # (b) materialized feature rows, hybrid mode
    @abstractmethod
    def write_features(self, entities: Sequence[str], as_of_us: int | Sequence[int],
                       payloads: Sequence[str]) -> None:
        """Upsert one feature row per entity (bulk: one transaction / pipeline)."""

    @abstractmethod
    def read_features(self, entities: Sequence[str]) -> dict[str, tuple[int, str]]:
        """``{entity: (as_of_us, payload)}`` for the entities that have a row."""

    # (c) precomputed predictions, batch mode
    @abstractmethod
    def write_predictions(self, entities: Sequence[str], scored_at_us: int | Sequence[int],
                          payloads: Sequence[str]) -> None:
        """Upsert the latest prediction per entity."""

    @abstractmethod
    def read_predictions(self, entities: Sequence[str]) -> dict[str, tuple[int, str]]:
        """``{entity: (scored_at_us, payload)}`` for the entities that have one."""

    # small key/value metadata (e.g. which feature plan materialized the rows)
    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Store one metadata string."""

    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """Read one metadata string (None when absent)."""

    # answers replayed for a repeated Idempotency-Key (bounded by a time to live)
    @abstractmethod
    def put_answer(self, key: str, value: str, *, now_us: int, ttl_seconds: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl_seconds`` unless a live one exists;
        True when stored."""

    @abstractmethod
    def get_answer(self, key: str, now_us: int) -> str | None:
        """The live (not expired at ``now_us``) answer stored under ``key``, or None."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the store answers (used by ``/ready``)."""

    def close(self) -> None:  # noqa: B027 - a no-op default: stores without connections need nothing
        """Release connections."""

    def describe(self) -> dict:
        """A JSON-able description for ``/metadata`` (no secrets)."""
        return {"type": type(self).__name__}


def _times(value: int | Sequence[int], n: int, what: str) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    out = [int(v) for v in value]
    if len(out) != n:
        raise ServingError(f"got {len(out)} {what} times for {n} entities", key=what,
                           fix="pass one time per entity or a single int")
    return out


class SQLiteStore(OnlineStore):
    """SQLite backend: one file, WAL journal, one connection guarded by a lock.

    ``path=":memory:"`` gives a private in-memory store (tests).
    """

    def __init__(self, path: str | os.PathLike, *, namespace: str = "mlops",
                 max_events_per_entity: int | None = None):
        self.path = str(path)
        self.namespace = namespace
        self.max_events_per_entity = max_events_per_entity
        if self.path != ":memory:":
            private_dir(os.path.dirname(os.path.abspath(self.path)))
            private_file(self.path)  # SQLite gives -wal/-shm the same mode: 0600
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise ServingError(f"cannot open the SQLite online store at {self.path!r}: {exc}",
                               key="serving.store.path",
                               fix="point it at a writable file") from None
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: survives an app crash; an OS crash may lose the last commits
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS events (
                    ns TEXT NOT NULL, entity TEXT NOT NULL, ts INTEGER NOT NULL,
                    payload TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS events_by_entity ON events(ns, entity, ts);
                CREATE INDEX IF NOT EXISTS events_by_ts ON events(ns, ts);
                CREATE TABLE IF NOT EXISTS features (
                    ns TEXT NOT NULL, entity TEXT NOT NULL, as_of INTEGER NOT NULL,
                    payload TEXT NOT NULL, PRIMARY KEY (ns, entity)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS predictions (
                    ns TEXT NOT NULL, entity TEXT NOT NULL, ts INTEGER NOT NULL,
                    payload TEXT NOT NULL, PRIMARY KEY (ns, entity)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS answers (
                    ns TEXT NOT NULL, key TEXT NOT NULL, expires INTEGER NOT NULL,
                    value TEXT NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS meta (
                    ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                    PRIMARY KEY (ns, key)) WITHOUT ROWID;
            """)
            self._migrate_events()

    def _migrate_events(self) -> None:
        """Give ``events`` its event-id column and the indexes that store an event once
        (older files lack them; duplicates they hold are dropped first)."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(events)")}
        if "event_id" not in cols:
            self._db.execute("ALTER TABLE events ADD COLUMN event_id TEXT")
            self._db.execute("DELETE FROM events WHERE rowid NOT IN (SELECT min(rowid) FROM "
                             "events GROUP BY ns, entity, ts, payload)")
        self._db.executescript("""
            CREATE UNIQUE INDEX IF NOT EXISTS events_once_by_id ON events(ns, entity, event_id)
                WHERE event_id IS NOT NULL;
            CREATE UNIQUE INDEX IF NOT EXISTS events_once_by_payload
                ON events(ns, entity, ts, payload) WHERE event_id IS NULL;
        """)

    def _write(self, sql: str, rows) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
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

    def append_events(self, entities, ts_us, payloads, event_ids=None) -> int:
        ns = self.namespace
        ids = event_ids if event_ids is not None else [None] * len(entities)
        rows = [(ns, e, int(t), p, i)
                for e, t, p, i in zip(entities, ts_us, payloads, ids, strict=True)]
        cap = self.max_events_per_entity
        with self._lock:
            self._db.execute("BEGIN")
            try:
                before = self._db.total_changes
                # OR IGNORE: the unique indexes turn a second copy of an event into a no-op
                self._db.executemany("INSERT OR IGNORE INTO events(ns, entity, ts, payload, "
                                     "event_id) VALUES (?, ?, ?, ?, ?)", rows)
                added = self._db.total_changes - before
                if cap is not None:
                    for e in dict.fromkeys(entities):
                        self._trim(e, cap)
                self._db.execute("COMMIT")
            except BaseException:
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
            cur = self._db.execute("DELETE FROM events WHERE ns = ? AND ts < ?",
                                   (self.namespace, int(before_us)))
            return cur.rowcount

    def write_features(self, entities, as_of_us, payloads) -> None:
        times = _times(as_of_us, len(entities), "as_of")
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

    def write_predictions(self, entities, scored_at_us, payloads) -> None:
        times = _times(scored_at_us, len(entities), "scored_at")
        ns = self.namespace
        self._write("INSERT OR REPLACE INTO predictions(ns, entity, ts, payload) "
                    "VALUES (?, ?, ?, ?)",
                    [(ns, e, t, p) for e, t, p in zip(entities, times, payloads, strict=True)])

    def read_predictions(self, entities):
        rows = self._select_in("SELECT entity, ts, payload FROM predictions WHERE ns = ? AND "
                               "entity IN ({marks})", entities)
        return {e: (t, p) for e, t, p in rows}

    def put_answer(self, key, value, *, now_us, ttl_seconds) -> bool:
        with self._lock:
            self._puts = getattr(self, "_puts", 0) + 1
            self._db.execute("BEGIN")
            try:
                sweep = self._puts % _ANSWER_SWEEP_EVERY == 0
                # expired answers go (this key's always; all of them now and then)
                self._db.execute("DELETE FROM answers WHERE ns = ? AND expires <= ?"
                                 + ("" if sweep else " AND key = ?"),
                                 (self.namespace, int(now_us), *(() if sweep else (key,))))
                cur = self._db.execute("INSERT OR IGNORE INTO answers(ns, key, expires, value) "
                                       "VALUES (?, ?, ?, ?)", (self.namespace, key,
                                                               int(now_us + ttl_seconds * 1e6),
                                                               value))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return cur.rowcount == 1

    def get_answer(self, key, now_us):
        with self._lock:
            row = self._db.execute("SELECT value FROM answers WHERE ns = ? AND key = ? AND "
                                   "expires > ?", (self.namespace, key, int(now_us))).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key, value) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta(ns, key, value) VALUES (?, ?, ?)",
                             (self.namespace, key, value))

    def get_meta(self, key):
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE ns = ? AND key = ?",
                                   (self.namespace, key)).fetchone()
        return None if row is None else row[0]

    def ping(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
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


def open_store(type: str = "sqlite", *, path: str | None = None, url: str | None = None,
               namespace: str = "mlops", key: str = "serving.store",
               max_events_per_entity: int | None = None) -> OnlineStore:
    """Open an online store by its config alias (``sqlite`` or ``redis``).

    Example:
        >>> open_store("sqlite", path=":memory:").ping()
        True
    """
    if type == "sqlite":
        if not path:
            raise ConfigError("the sqlite store needs a file path", key=f"{key}.path",
                              fix="set it, e.g. .mlops/online_store.sqlite")
        return SQLiteStore(path, namespace=namespace, max_events_per_entity=max_events_per_entity)
    if type == "redis":
        from mlops.features.online.redis import RedisStore
        return RedisStore(url or "redis://127.0.0.1:6379/0", namespace=namespace,
                          max_events_per_entity=max_events_per_entity)
    raise ConfigError(f"must be 'sqlite' or 'redis'; got {type!r}", key=f"{key}.type",
                      fix="use serving.store.type=sqlite or serving.store.type=redis")
