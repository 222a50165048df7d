"""``serving.store.type`` as a dotted class path (the Feast-style escape hatch): a store
class defined right here serves the realtime app exactly like the built-in SQLite store;
bad paths are ConfigErrors naming the key; config may name only trusted classes."""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from omegaconf import OmegaConf
from serving_world import record
from support import compose_cfg

from mlops.actions.context import RunContext
from mlops.errors import ConfigError
from mlops.features.offline import compute_at
from mlops.features.online import OnlineStore, open_store, store_class
from mlops.serving.http.app import create_app
from mlops.serving.settings import ServingSettings


class DictStore:
    """An online store in plain dicts. It does not subclass OnlineStore: the protocols are
    structural, so having the methods is enough."""

    def __init__(self, namespace: str = "mlops", max_events_per_entity: int | None = None):
        self.namespace, self.cap = namespace, max_events_per_entity
        # entity -> (ts, identity, payload, kept from)
        self.events: dict[str, list[tuple[int, str, str, int]]] = {}
        self.features, self.values = {}, {}
        self.lock = threading.Lock()

    def append_events(self, entities, ts_us, payloads, event_ids=None, *, now_us=None) -> int:
        ids = event_ids if event_ids is not None else [None] * len(entities)
        added = 0
        with self.lock:
            for e, t, p, i in zip(entities, ts_us, payloads, ids, strict=True):
                key = f"id:{i}" if i is not None else f"p:{t}|{p}"
                rows = self.events.setdefault(e, [])
                if all(r[1] != key for r in rows):
                    rows.append((int(t), key, p, max(int(t), now_us if now_us is not None else t)))
                    added += 1
                if self.cap is not None and len(rows) > self.cap:  # newest by time, then arrival
                    keep = sorted(range(len(rows)), key=lambda j: (rows[j][0], j))[-self.cap:]
                    rows[:] = [rows[j] for j in sorted(keep)]
        return added

    def read_events(self, entities, since_us):
        with self.lock:
            return [(e, t, p) for e in dict.fromkeys(entities) for t, _, p, _ in self.events.get(e, [])
                    if t >= since_us]

    def prune_events(self, before_us) -> int:
        n = 0
        with self.lock:
            for rows in self.events.values():
                kept = [r for r in rows if r[3] >= before_us]
                n += len(rows) - len(kept)
                rows[:] = kept
        return n

    def write_features(self, entities, as_of_us, payloads) -> None:
        times = [as_of_us] * len(entities) if isinstance(as_of_us, int) else list(as_of_us)
        self.features.update({e: (t, p) for e, t, p in zip(entities, times, payloads, strict=True)})

    def read_features(self, entities):
        return {e: self.features[e] for e in entities if e in self.features}

    def put(self, items, *, ttl_seconds=None, only_new=False, now_us=None) -> int:
        now = time.time_ns() // 1000 if now_us is None else now_us
        stored = 0
        for k, v in items.items():
            if only_new and self.get([k], now_us=now):
                continue
            self.values[k] = (None if ttl_seconds is None else now + ttl_seconds * 1e6, v)
            stored += 1
        return stored

    def get(self, keys, *, now_us=None):
        now = time.time_ns() // 1000 if now_us is None else now_us
        hits = {k: self.values[k] for k in keys if k in self.values}
        return {k: v for k, (until, v) in hits.items() if until is None or until > now}

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"type": "dict", "namespace": self.namespace}


DOTTED = f"{DictStore.__module__}.{DictStore.__qualname__}"


def test_open_store_builds_the_class_with_the_arguments_it_accepts():
    store = open_store(DOTTED, path="ignored.sqlite", namespace="ns1", max_events_per_entity=7)
    assert type(store) is DictStore and isinstance(store, OnlineStore)
    assert (store.namespace, store.cap) == ("ns1", 7)  # `path` is not one of its parameters


def test_a_class_path_store_serves_like_the_sqlite_store(world, make_state):
    # one busy entity's events, one request each in time order: each request's windows see
    # exactly the earlier requests (truth: the batch path over the same events)
    plan = world.plan
    busiest = world.events.group_by(plan.entity).len().sort("len").row(-1)[0]
    pts = world.events.filter(world.events[plan.entity] == busiest).sort(plan.timestamp).head(12)
    want = world.model.predict_proba(compute_at(plan, pts, pts).collect()
                                     .select(plan.feature_names))[:, 1]
    recs = [record(r, plan) for r in pts.to_dicts()]
    got = {}
    for name, store in (("dict", open_store(DOTTED)), ("sqlite", None)):
        with TestClient(create_app(make_state(store=store))) as client:
            got[name] = [client.post("/predict", json={"records": [r]}).json()["probabilities"][0]
                         for r in recs]
    assert np.allclose(got["dict"], want, rtol=0, atol=1e-12)
    assert got["dict"] == got["sqlite"]
    with TestClient(create_app(make_state(store=open_store(DOTTED)))) as client:
        assert client.get("/metadata").json()["store"] == {"type": "dict", "namespace": "mlops"}


@pytest.mark.parametrize("path,needle", [
    ("memcached", "or a dotted class path"),
    ("no_such_package_xyz.Store", "cannot import store class"),
    (f"{__name__}.NoSuchStore", "cannot import store class"),
    ("json.dumps", "is not a class"),
    ("collections.OrderedDict", "does not implement the online store protocol"),
])
def test_bad_class_paths_are_config_errors_naming_the_key(path, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        open_store(path)
    assert err.value.key == "serving.store.type" and err.value.fix
    assert err.value.exit_code == 2


class Half:
    """Only part of the protocol."""

    def ping(self):
        return True


def test_store_class_names_the_missing_methods():
    with pytest.raises(ConfigError, match="read_events") as err:
        store_class(f"{__name__}.Half")
    assert "append_events" in str(err.value)


def test_settings_accept_a_class_path_but_not_garbage():
    ServingSettings(store=dataclasses.replace(ServingSettings().store, type=DOTTED)).validate()
    with pytest.raises(ConfigError, match="serving.store.type"):
        ServingSettings(store=dataclasses.replace(ServingSettings().store, type="a b")).validate()


def _ctx(tmp_path, *overrides):
    return RunContext.from_config(compose_cfg(list(overrides), tmp_path))


def test_config_may_name_only_a_trusted_store_class(tmp_path):
    with pytest.raises(ConfigError, match="registry.trusted_types") as err:
        _ctx(tmp_path, f"serving.store.type={DOTTED}").store()
    assert err.value.key == "serving.store.type"
    store = _ctx(tmp_path, f"serving.store.type={DOTTED}", f"registry.trusted_types=[{DOTTED}]").store()
    assert type(store) is DictStore


def test_the_serving_config_is_the_engines_serving_settings(tmp_path):
    cfg = compose_cfg(["serving=hybrid", "serving.breaker.window=321",
                       "+serving.feature_defaults.amount_mean_1d=2.5"], tmp_path)
    s = RunContext.from_config(cfg).cfg.serving
    assert isinstance(s, ServingSettings)
    raw = OmegaConf.to_container(cfg.serving, resolve=True)  # truth: the resolved YAML
    for f in dataclasses.fields(ServingSettings):
        want = raw[f.name]
        got = getattr(s, f.name)
        assert (dataclasses.asdict(got) if dataclasses.is_dataclass(got) else got) == want, f.name
    assert s.mode == "hybrid" and s.breaker.window == 321
    assert s.feature_defaults == {"amount_mean_1d": 2.5}
