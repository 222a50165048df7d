"""The circuit breaker's shared state, kept in the online store (SQLite or Redis).

One JSON record per served model version, in the store's key-value part under
``breaker.state.<model name>.v<version>`` (:func:`scope_key`; a replay adds its own run
to the key, so a dry run never shares a trip with production nor with the next replay)::

    {"state": "tripped" | "closed", "reason": "...", "source": "monitor" | "window" | "admin",
     "at": <unix time, float>, "version": "<model version the trip is about>" | null}

A trip is about one version: a new version (or a server switched to it by a reload)
starts closed, and a trip on drift of v1 never opens the breaker of servers serving v2.

Monitoring (``on_drift: trip_breaker``) and every server publish trips and resets here;
servers poll it (at most every ``breaker.poll_seconds``) and apply a record newer than
the last one they saw. A server started later reads a standing trip at its first poll.

Example:
    >>> shared = SharedBreakerState(SQLiteStore(":memory:"), key=scope_key("fraud", 3))  # doctest: +SKIP
    >>> shared.publish("tripped", "data drift in 3 features", "monitor")  # doctest: +SKIP
"""
from __future__ import annotations

import json
import time

from mlops.features.online import KeyValueStore

PREFIX = "breaker.state"
STATES = ("tripped", "closed")


def scope_key(model: str, version, run: str | None = None) -> str:
    """The store key of the breaker state of ``model`` ``version`` (and of one replay run).

    >>> scope_key("fraud", 3), scope_key("fraud", "3", run="replay-ab12")
    ('breaker.state.fraud.v3', 'breaker.state.fraud.v3.replay-ab12')
    """
    key = f"{PREFIX}.{model}.v{version}"
    return key if run is None else f"{key}.{run}"


class SharedBreakerState:
    """Read and publish the shared breaker record of one online store namespace."""

    def __init__(self, store: KeyValueStore, *, key: str, clock=time.time,
                 version: str | None = None):
        self.store, self.key, self.clock = store, key, clock
        self.version = version  # the served model version (None: every record applies)

    def applies(self, rec: dict) -> bool:
        """Whether a record concerns this server's model version."""
        v = rec.get("version")
        return v is None or self.version is None or str(v) == str(self.version)

    def read(self) -> dict | None:
        """The current record, or None (none yet, or unreadable: then it is ignored)."""
        try:
            raw = self.store.get([self.key]).get(self.key)
        except Exception:  # store unreachable: keep the local state, /ready says why
            return None
        if raw is None:
            return None
        try:
            rec = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(rec, dict) or rec.get("state") not in STATES \
                or not isinstance(rec.get("at"), (int, float)):
            return None
        return rec

    def publish(self, state: str, reason: str | None, source: str,
                version: str | None = None) -> float:
        """Write a new record (its ``at`` is later than the previous one); return ``at``.
        ``version`` defaults to this server's model version."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}; got {state!r}")
        prev = self.read()
        at = max(float(self.clock()), (prev["at"] + 1e-6) if prev else 0.0)
        version = self.version if version is None else version
        self.store.put({self.key: json.dumps({
            "state": state, "reason": reason, "source": source, "at": at,
            "version": None if version is None else str(version)})})
        return at


def trip_breaker(store: KeyValueStore, reason: str, *, model: str, version,
                 source: str = "monitor") -> dict:
    """Open the breaker of every server reading ``store`` that serves ``model`` ``version``
    (monitoring's ``trip_breaker``)."""
    shared = SharedBreakerState(store, key=scope_key(model, version), version=str(version))
    shared.publish("tripped", reason, source)
    return shared.read()


def reset_breaker(store: KeyValueStore, *, model: str, version, source: str = "admin",
                  reason: str = "reset by an operator") -> dict:
    """Close the breaker of every server reading ``store`` that serves ``model`` ``version``
    (``action=breaker_reset``; they apply it at their next poll)."""
    shared = SharedBreakerState(store, key=scope_key(model, version), version=str(version))
    shared.publish("closed", reason, source)
    return shared.read()
