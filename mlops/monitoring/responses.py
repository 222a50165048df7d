"""What ``action=monitor`` does once drift is found: the ``monitoring.on_drift`` responses.

``alert`` appends a record to ``paths.home/alerts.jsonl`` (the one alerts writer);
``trip_breaker`` opens the serving circuit breaker of every server reading the online store
(shared state they poll) and records the trip in the registry's audit log; ``retrain``
trains a candidate on the data before the window's end and stages it, through the caller's ``retrain`` (it
needs the run's training job and writes a model card).

Example:
    >>> responder = DriftResponder(home, run_dir, store=open_store, registry=open_registry,
    ...                            store_type="sqlite", retrain=retrain)  # doctest: +SKIP
    >>> result.actions = responder.respond(result, ["alert", "trip_breaker"])  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlops.features.online.store import OnlineStore
from mlops.monitoring.alerts import append_alert
from mlops.monitoring.run import MonitorResult
from mlops.registry import Registry
from mlops.serving.breaker.shared import trip_breaker


@dataclass
class DriftResponder:
    """Carries out ``monitoring.on_drift`` for one monitoring run."""

    home: Path                                   # paths.home: alerts.jsonl lives there
    run_dir: str                                 # the run that raised the alert
    store: Callable[[], OnlineStore]             # opens the online store (closed after use)
    registry: Callable[[], Registry]
    store_type: str                              # serving.store.type, for the record
    retrain: Callable[[datetime], dict]          # the window's end -> the retrain record

    def respond(self, result: MonitorResult, on_drift) -> list[dict]:
        """One record per response in ``on_drift`` order (call only when drift was found)."""
        return [self.respond_once(action, result) for action in on_drift]

    def respond_once(self, action: str, result: MonitorResult) -> dict:
        """Carry out one response: ``alert``, ``trip_breaker`` or ``retrain``."""
        name, version, reasons = result.model.name, result.model.version, result.reasons()
        detail = "; ".join(reasons)
        if action == "alert":
            path = append_alert(self.home, model=name, version=version, reasons=reasons,
                                run=self.run_dir, series=f"monitor:{name}")
            return {"action": "alert", "detail": detail, "record": path}
        if action == "trip_breaker":  # shared state in the online store: servers poll it
            with closing(self.store()) as store:
                record = trip_breaker(store, detail, model=name, version=version,
                                      source="monitor")
            self.registry().record_event(name, "breaker_trip", version=version, actor="monitor",
                                         details={"reason": detail, "source": "monitor"})
            return {"action": "trip_breaker", "detail": detail, "store": self.store_type,
                    "state": record}
        # the candidate learns from what was known at the window's end: its labels, if delayed
        window = result.current
        return self.retrain(datetime.fromisoformat(window.get("labels_known_by") or window.get("end")))
