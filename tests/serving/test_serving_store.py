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


def test_features_upsert_and_batch_read(store):
    store.write_features(["a", "b"], 1000, ['{"x":1.0}', '{"x":2.0}'])
    store.write_features(["a"], [2000], ['{"x":3.0}'])
    assert store.read_features(["a", "b", "c"]) == {"a": (2000, '{"x":3.0}'),
                                                    "b": (1000, '{"x":2.0}')}
    assert store.read_features(["b"]) == {"b": (1000, '{"x":2.0}')}


def test_predictions_and_meta(store):
    store.write_predictions(["a"], 7, ['{"p":0.5}'])
    assert store.read_predictions(["a", "b"]) == {"a": (7, '{"p":0.5}')}
    assert store.get_meta("k") is None
    store.set_meta("k", "v")
    assert store.get_meta("k") == "v"
    assert store.ping()


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
