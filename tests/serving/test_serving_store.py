"""Online store contract, run against SQLite and a real redis-server."""
from __future__ import annotations

import sqlite3

import pytest

from mlops.errors import ConfigError, ServingError
from mlops.features.online import SQLiteStore, open_store


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "online.sqlite")
    else:
        from mlops.features.online.redis import RedisStore
        url = request.getfixturevalue("redis_url")
        s = RedisStore(url, namespace=f"t{abs(hash(request.node.name))}")
    yield s
    s.close()


def test_events_are_read_back_per_entity_in_insertion_order_and_bounded_by_since(store):
    store.append_events(["a", "b", "a", "a"], [10, 20, 30, 30], ["a1", "b1", "a2", "a3"])
    store.append_events(["a"], [5], ["a0-late"])  # arrives late: kept, insertion order
    got = store.read_events(["a", "b", "zz"], since_us=10)
    by_entity = {}
    for e, t, p in got:
        by_entity.setdefault(e, []).append((t, p))
    assert by_entity == {"a": [(10, "a1"), (30, "a2"), (30, "a3")], "b": [(20, "b1")]}
    assert [(e, t, p) for e, t, p in store.read_events(["a"], 0)][-1] == ("a", 5, "a0-late")
    assert store.read_events(["zz"], 0) == []


def test_identical_events_are_stored_once_unless_their_ids_differ(store):
    # without an event id, the same entity, time and payload is the same event (issue 12)
    assert store.append_events(["a", "a"], [1, 1], ["same", "same"]) == 1
    assert [p for _, _, p in store.read_events(["a"], 0)] == ["same"]
    assert store.append_events(["b", "b"], [1, 1], ["same", "same"], ["e1", "e2"]) == 2
    assert [p for _, _, p in store.read_events(["b"], 0)] == ["same", "same"]


def test_prune_removes_only_old_events(store):
    store.append_events(["a", "a", "b"], [1, 100, 2], ["x", "y", "z"])
    assert store.prune_events(before_us=50) == 2
    assert store.read_events(["a", "b"], 0) == [("a", 100, "y")]


def test_prune_keeps_older_events_stored_since_the_cutoff(store):
    # a backfill of old events (times 1..3) stored at server time 1000: kept by a cutoff of
    # 500 (today's clock minus the longest window), removed once the cutoff passes 1000
    store.append_events(["a", "a", "b"], [1, 2, 3], ["x", "y", "z"], now_us=1000)
    store.append_events(["c"], [4], ["w"], now_us=4)  # stored when it happened: the old rule
    assert store.prune_events(before_us=500) == 1
    assert sorted(t for _, t, _ in store.read_events(["a", "b", "c"], 0)) == [1, 2, 3]
    assert store.prune_events(before_us=1001) == 3
    assert store.read_events(["a", "b"], 0) == []
    # a pruned event is forgotten with its identity: stored again, it counts again
    assert store.append_events(["a"], [1], ["x"], now_us=2000) == 1


def test_features_upsert_and_batch_read(store):
    store.write_features(["a", "b"], 1000, ['{"x":1.0}', '{"x":2.0}'])
    store.write_features(["a"], [2000], ['{"x":3.0}'])
    assert store.read_features(["a", "b", "c"]) == {"a": (2000, '{"x":3.0}'),
                                                    "b": (1000, '{"x":2.0}')}
    assert store.read_features(["b"]) == {"b": (1000, '{"x":2.0}')}


def test_key_values_replace_expire_and_keep_the_first_when_asked(store):
    assert store.get(["k"]) == {}
    assert store.put({"k": "v", "j": "w"}) == 2
    assert store.put({"k": "v2"}) == 1 and store.get(["k", "j", "nope"]) == {"k": "v2", "j": "w"}
    # only_new keeps a live value (an Idempotency-Key's first answer)
    assert store.put({"k": "v3"}, only_new=True) == 0 and store.get(["k"]) == {"k": "v2"}
    assert store.put({"t": "first"}, ttl_seconds=0.05, only_new=True) == 1
    assert store.get(["t"]) == {"t": "first"}
    import time
    time.sleep(0.12)  # expired (Redis by its own clock, SQLite by now_us or the wall clock)
    assert store.get(["t"]) == {}
    assert store.put({"t": "second"}, ttl_seconds=60, only_new=True) == 1
    assert store.get(["t"]) == {"t": "second"}
    assert store.ping()


def test_sqlite_expiry_follows_the_callers_clock(tmp_path):
    store = SQLiteStore(tmp_path / "kv.sqlite")
    store.put({"a": "1"}, ttl_seconds=10, now_us=0)
    assert store.get(["a"], now_us=9_999_999) == {"a": "1"}
    assert store.get(["a"], now_us=10_000_000) == {}
    assert store.put({"a": "2"}, ttl_seconds=10, only_new=True, now_us=10_000_000) == 1


def test_an_older_sqlite_file_is_migrated(tmp_path):
    """A store file written before the split: its metadata moves into kv, its events get
    their retention time (their own time), the caches go."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE events (ns TEXT NOT NULL, entity TEXT NOT NULL, ts INTEGER NOT NULL,
                             payload TEXT NOT NULL, event_id TEXT);
        CREATE INDEX events_by_ts ON events(ns, ts);
        CREATE TABLE meta (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                           PRIMARY KEY (ns, key)) WITHOUT ROWID;
        CREATE TABLE predictions (ns TEXT, entity TEXT, ts INTEGER, payload TEXT);
        INSERT INTO events VALUES ('mlops', 'a', 5, '{}', NULL), ('mlops', 'a', 50, '{}', NULL);
        INSERT INTO meta VALUES ('mlops', 'breaker.state.m.v1', '{"state": "tripped"}');
    """)
    db.close()
    store = SQLiteStore(path)
    assert store.get(["breaker.state.m.v1"]) == {"breaker.state.m.v1": '{"state": "tripped"}'}
    assert store.prune_events(before_us=10) == 1
    assert store.read_events(["a"], 0) == [("a", 50, "{}")]
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "meta" not in tables and "predictions" not in tables and "events_by_ts" not in tables


def test_bulk_write_of_many_entities_reads_back(store):
    n = 5000  # above SQLite's bound-parameter chunk and Redis' pipeline chunk
    ents = [f"u{i:06d}" for i in range(n)]
    store.write_features(ents, list(range(n)), [f'{{"i":{i}}}' for i in range(n)])
    got = store.read_features(ents)
    assert len(got) == n and got["u004321"] == (4321, '{"i":4321}')


def test_time_count_mismatch_is_an_error(store):
    with pytest.raises(ServingError, match="2 as_of times for 1 entities"):
        store.write_features(["a"], [1, 2], ["{}"])


def test_sqlite_uses_wal_and_is_shared_between_connections(tmp_path):
    path = tmp_path / "s.sqlite"
    s1 = SQLiteStore(path)
    s1.write_features(["a"], 1, ["{}"])
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s2 = SQLiteStore(path)
    assert s2.read_features(["a"]) == {"a": (1, "{}")}
    other_ns = SQLiteStore(path, namespace="other")
    assert other_ns.read_features(["a"]) == {}


def test_open_store_redis_alias(redis_url):
    r = open_store("redis", url=redis_url)
    assert r.ping() and r.describe()["type"] == "redis"


def test_open_store_aliases_and_errors(tmp_path):
    assert open_store("sqlite", path=str(tmp_path / "x.sqlite")).describe()["type"] == "sqlite"
    with pytest.raises(ConfigError, match="serving.store.type"):
        open_store("memcached")
    with pytest.raises(ConfigError, match="serving.store.path"):
        open_store("sqlite")


def test_unreachable_redis_is_not_ready():
    from mlops.features.online.redis import RedisStore
    s = RedisStore("redis://127.0.0.1:1/0", timeout_ms=200)
    assert s.ping() is False
