"""monitoring/responses.py (what action=monitor does on drift) and training/run.py's
retrain_and_stage, on their own: each response's record and its effect (the alerts file,
the shared breaker state, the registry event, the retrain window's end)."""
from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

from mlops.errors import DataError
from mlops.features.online.sqlite import SQLiteStore
from mlops.monitoring.responses import DriftResponder
from mlops.monitoring.run import ModelFacts
from mlops.serving.breaker.shared import SharedBreakerState, scope_key
from mlops.training.run import retrain_and_stage


class _Registry:
    def __init__(self):
        self.events = []

    def record_event(self, name, action, **kw):
        self.events.append((name, action, kw))


def _result(current):
    return SimpleNamespace(model=ModelFacts("fraud", 2, "production"), current=current,
                           reasons=lambda: ["data drift in 2 features", "performance drop"])


def test_each_response_in_on_drift_order(tmp_path):
    registry, ends = _Registry(), []
    responder = DriftResponder(tmp_path, "runs/r1", store=lambda: SQLiteStore(tmp_path / "s.db"),
                               registry=lambda: registry, store_type="sqlite",
                               retrain=lambda end: ends.append(end) or {"action": "retrain"})
    window = {"end": "2024-03-01T00:00:00", "labels_known_by": "2024-02-20T00:00:00"}
    out = responder.respond(_result(window), ["trip_breaker", "alert", "retrain"])
    assert [o["action"] for o in out] == ["trip_breaker", "alert", "retrain"]
    detail = "data drift in 2 features; performance drop"
    alert = json.loads((tmp_path / "alerts.jsonl").read_text().splitlines()[-1])
    assert (alert["model"], alert["version"], alert["run"], alert["series"]) == \
        ("fraud", 2, "runs/r1", "monitor:fraud")
    assert alert["reasons"] == ["data drift in 2 features", "performance drop"]
    assert out[1] == {"action": "alert", "detail": detail, "record": str(tmp_path / "alerts.jsonl")}
    shared = SharedBreakerState(SQLiteStore(tmp_path / "s.db"), key=scope_key("fraud", 2))
    assert out[0]["state"] == shared.read() and out[0]["store"] == "sqlite"
    assert registry.events == [("fraud", "breaker_trip", {
        "version": 2, "actor": "monitor", "details": {"reason": detail, "source": "monitor"}})]
    assert ends == [datetime(2024, 2, 20)]  # labels known by, before the window's end


def test_retrain_without_delayed_labels_ends_at_the_window_end(tmp_path):
    ends = []
    responder = DriftResponder(tmp_path, "r", store=None, registry=None, store_type="sqlite",
                               retrain=lambda end: ends.append(end) or {"action": "retrain"})
    responder.respond(_result({"end": "2024-03-01T00:00:00"}), ["retrain"])
    assert ends == [datetime(2024, 3, 1)] and not (tmp_path / "alerts.jsonl").exists()


def test_a_candidate_that_fails_to_train_is_a_record_not_an_error():
    def job():
        raise DataError("no rows in the window", key="training.window")
    cards = []
    out = retrain_and_stage(job, registry=lambda: 1 / 0, card=cards.append, report="x.html")
    assert out == {"action": "retrain", "staged": False,
                   "detail": "candidate training failed: " + str(DataError(
                       "no rows in the window", key="training.window"))}
    assert cards == []
