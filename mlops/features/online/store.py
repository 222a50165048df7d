"""The online store: an event/feature store and a small key-value store, and :func:`open_store`.

Two protocols, one per job:

- :class:`FeatureStore` (the Feast-sized part): each entity's recent **events**
  (realtime mode: appended as requests are scored, read back for a batch of entities in
  one call, ``since`` bounding the history to the longest window) and materialized
  **feature rows** with their ``as_of`` time (hybrid mode). An event is stored once: the
  same event id (when the caller has one), else the same (entity, time, payload), is
  ignored on a second append (client retries, replays run twice). At most
  ``max_events_per_entity`` newest events are kept per entity, so one hot entity cannot
  slow down the reads of its batch-mates. Retention is by the server's clock: an event
  is kept at least until the longest window has passed since it was stored *and* since
  its own time, so history loaded for a replay of older data is not wiped by today's
  clock, and no client time decides what others keep;
- :class:`KeyValueStore`: small values under string keys, optionally with a time to live
  and only when absent: the shared breaker state, Idempotency-Key answers, the batch
  mode's prediction cache and metadata (which plan materialized the rows).

:class:`OnlineStore` is both: what ``serving.store.type`` names. The built-in backends
implement it (``sqlite``: :class:`~mlops.features.online.sqlite.SQLiteStore`, the default;
``redis``: :class:`~mlops.features.online.redis.RedisStore`); as an escape hatch (Feast
style) ``type`` may be the dotted path ``package.module.Class`` of a class implementing
both protocols. Config never runs code it was not told to trust: the action layer
accepts a dotted path only when it is listed in ``registry.trusted_types``.

Payloads and values are JSON text (the caller encodes and decodes them;
:mod:`mlops.features.online.codec` does so with vectorized polars). Times are integer
microseconds since the Unix epoch (UTC).

Example:
    >>> store = open_store("sqlite", path=":memory:")
    >>> store.put({"k": "v"}), store.get(["k", "missing"])
    (1, {'k': 'v'})
"""
from __future__ import annotations

import importlib
import inspect
import re
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from mlops.errors import ConfigError, ServingError

ALIASES = ("sqlite", "redis")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


@runtime_checkable
class FeatureStore(Protocol):
    """Events (realtime) and materialized feature rows (hybrid). Thread-safe."""

    @abstractmethod
    def append_events(self, entities: Sequence[str], ts_us: Sequence[int],
                      payloads: Sequence[str], event_ids: Sequence[str | None] | None = None,
                      *, now_us: int | None = None) -> int:
        """Append one event per (entity, ts, payload) triple unless already stored
        (same event id, or without one the same entity, ts and payload); return how
        many were new. ``now_us`` is the server's clock (None: the events' own times);
        retention keeps each event until ``max(ts, now_us)`` is older than the cutoff
        :meth:`prune_events` is given. Trims each touched entity to its newest
        ``max_events_per_entity``."""

    @abstractmethod
    def read_events(self, entities: Sequence[str], since_us: int) -> list[tuple[str, int, str]]:
        """Events of ``entities`` with ``ts >= since_us`` as (entity, ts, payload), in
        insertion order per entity."""

    @abstractmethod
    def prune_events(self, before_us: int) -> int:
        """Delete events whose time and storage time are both before ``before_us`` (the
        caller passes a cutoff from the server clock, never from client times); return
        how many were removed."""

    @abstractmethod
    def write_features(self, entities: Sequence[str], as_of_us: int | Sequence[int],
                       payloads: Sequence[str]) -> None:
        """Upsert one feature row per entity (bulk: one transaction / pipeline)."""

    @abstractmethod
    def read_features(self, entities: Sequence[str]) -> dict[str, tuple[int, str]]:
        """``{entity: (as_of_us, payload)}`` for the entities that have a row."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the store answers (used by ``/ready``)."""

    def close(self) -> None:  # noqa: B027 - a no-op default: stores without connections need nothing
        """Release connections."""

    def describe(self) -> dict:
        """A JSON-able description for ``/metadata`` (no secrets)."""
        return {"type": type(self).__name__}


@runtime_checkable
class KeyValueStore(Protocol):
    """Small string values under string keys. Thread-safe.

    ``now_us`` (the server's clock; None: the store's own) decides what has expired.
    """

    @abstractmethod
    def put(self, items: Mapping[str, str], *, ttl_seconds: float | None = None,
            only_new: bool = False, now_us: int | None = None) -> int:
        """Store every item (bulk: one transaction / pipeline), each for ``ttl_seconds``
        (None: until replaced); with ``only_new``, a key that holds a live value keeps it.
        Returns how many items were stored."""

    @abstractmethod
    def get(self, keys: Sequence[str], *, now_us: int | None = None) -> dict[str, str]:
        """``{key: value}`` of the keys that hold a live value."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the store answers."""


@runtime_checkable
class OnlineStore(FeatureStore, KeyValueStore, Protocol):
    """Both protocols: what ``serving.store.type`` names (see the module docstring)."""


# the data operations (not ping, close or describe)
STORE_OPERATIONS = ("append_events", "read_events", "prune_events", "write_features",
                    "read_features", "put", "get")


def per_entity_times(value: int | Sequence[int], n: int, what: str) -> list[int]:
    """One time per entity: an int repeated ``n`` times, or ``n`` given times."""
    if isinstance(value, int):
        return [value] * n
    out = [int(v) for v in value]
    if len(out) != n:
        raise ServingError(f"got {len(out)} {what} times for {n} entities", key=what,
                           fix="pass one time per entity or a single int")
    return out


def is_store_type(value: object) -> bool:
    """True for a built-in alias or a syntactically valid ``package.module.Class`` path."""
    return isinstance(value, str) and (value in ALIASES or bool(_DOTTED.match(value)))


def check_trusted(type: str, trusted: Iterable[str], *, key: str = "serving.store") -> None:
    """Refuse a dotted store class that is not listed in ``trusted`` (aliases always pass)."""
    if type in ALIASES or type in {str(t) for t in trusted}:
        return
    raise ConfigError(f"{type!r} is not a trusted store class", key=f"{key}.type",
                      fix=f"use one of {list(ALIASES)}, or add '{type}' to "
                          "registry.trusted_types if you trust that code")


def open_store(type: str = "sqlite", *, path: str | None = None, url: str | None = None,
               namespace: str = "mlops", key: str = "serving.store",
               max_events_per_entity: int | None = None, timeout_ms: float = 1000.0) -> OnlineStore:
    """Open an online store by its config alias (``sqlite``, ``redis``) or dotted class path.

    ``timeout_ms`` bounds each operation of the built-in stores: a lock held longer, or a
    server that does not answer within it, is StoreUnavailableError (a 503 with
    Retry-After). A dotted-path class is built with the keyword arguments its constructor
    accepts among ``path``, ``url``, ``namespace``, ``max_events_per_entity`` and ``timeout_ms``.

    Example:
        >>> open_store("sqlite", path=":memory:").ping()
        True
    """
    if type == "sqlite":
        if not path:
            raise ConfigError("the sqlite store needs a file path", key=f"{key}.path",
                              fix="set it, e.g. .mlops/online_store.sqlite")
        from mlops.features.online.sqlite import SQLiteStore
        return SQLiteStore(path, namespace=namespace, max_events_per_entity=max_events_per_entity,
                           timeout_ms=timeout_ms)
    if type == "redis":
        from mlops.features.online.redis import RedisStore
        return RedisStore(url or "redis://127.0.0.1:6379/0", namespace=namespace,
                          max_events_per_entity=max_events_per_entity, timeout_ms=timeout_ms)
    cls = store_class(type, key=f"{key}.type")
    offered = {"path": path, "url": url, "namespace": namespace,
               "max_events_per_entity": max_events_per_entity, "timeout_ms": timeout_ms}
    return cls(**_accepted(cls, offered))


def store_class(path: str, *, key: str = "serving.store.type") -> type:
    """Import the class named by a dotted ``path`` and check it implements the protocol."""
    if not is_store_type(path):
        raise ConfigError(f"must be one of {list(ALIASES)} or a dotted class path "
                          f"'package.module.Class'; got {path!r}", key=key,
                          fix="use serving.store.type=sqlite, redis, or e.g. mypkg.stores.MyStore")
    module_name, _, attr = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import store class {path!r} ({exc})", key=key,
                          fix="check the spelling of the class path, or install its package") from None
    if not inspect.isclass(cls):
        raise ConfigError(f"{path!r} is not a class", key=key,
                          fix="name a class implementing the OnlineStore protocol")
    missing = [m for m in _REQUIRED if not callable(getattr(cls, m, None))]
    if missing:
        raise ConfigError(f"{path!r} does not implement the online store protocol: it lacks "
                          f"{missing}", key=key,
                          fix="implement every method of mlops.features.online.store.FeatureStore "
                              "and of KeyValueStore")
    return cls


def _accepted(cls: type, offered: dict) -> dict:
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return offered
    return {k: v for k, v in offered.items() if k in params}


# what a store must have (close/describe have defaults only for subclasses)
_REQUIRED = (*STORE_OPERATIONS, "ping", "close", "describe")
