"""The request pipeline's own decisions: which backend it trusts (the start-up probe, a
failing batch), what a panic becomes, which records are events, one event id, and
history loaded for a realtime server that retention keeps."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import record

from mlops.errors import ConfigError
from mlops.features.aggregates import AGGREGATES
from mlops.features.offline import compute_at
from mlops.features.online import SQLiteStore, materialize
from mlops.serving.http.app import create_app
from mlops.serving.http.validation import check_records
from mlops.serving.pipeline import ParsedRequest, process_batch
from mlops.serving.pipeline import features as features_stage
from mlops.serving.pipeline.features import recent_history
from mlops.serving.prediction_log import scan_prediction_log

NOW = datetime(2024, 2, 1, 12, 0, 0)  # after every world event


def _truth(world, events: pl.DataFrame, points: pl.DataFrame) -> np.ndarray:
    """The batch path: features of the points over the events, then the model."""
    X = compute_at(world.plan, events, points).collect().select(world.plan.feature_names)
    return world.model.predict_proba(X)[:, 1]


def _wrong_sum(monkeypatch):
    """A rows-backend sum off by one ulp when the window holds two values or more."""
    right = AGGREGATES["sum"].row

    def sum_(values, n, latest, t):
        v = right(values, n, latest, t)
        return np.nextafter(v, np.inf) if v is not None and len(values) > 1 else v
    monkeypatch.setitem(AGGREGATES, "sum", replace(AGGREGATES["sum"], row=sum_))


def test_the_probe_trusts_a_right_rows_backend(world, make_state):
    state = make_state(clock=lambda: NOW)
    state.probe_backends(recent_history(world.plan, world.events, rows=3000))
    assert state.backends.usable == ("frames", "rows")
    assert state.backends.checks["rows"] == {"ok": True, "probed": 200}


def test_a_wrong_rows_aggregate_is_refused_at_start_and_frames_answer(world, make_state,
                                                                      monkeypatch, caplog):
    _wrong_sum(monkeypatch)
    state = make_state(clock=lambda: NOW)
    state.probe_backends(recent_history(world.plan, world.events, rows=3000))
    assert state.backends.usable == ("frames",)
    assert "refused" in caplog.text and "rows" in caplog.text  # logged
    events = world.events.sort("event_ts")
    history, live = events.head(events.height - 30), events.tail(30)
    from mlops.features.online.events import append_history
    append_history(world.plan, state.store, history.select(list(world.plan.source_columns)),
                   now_us=state.now_us())
    with TestClient(create_app(state)) as client:
        ready = client.get("/ready").json()
        got = [client.post("/predict", json={"records": [record(r, world.plan)]}).json()["probabilities"][0]
               for r in live.to_dicts()]
    features = ready["checks"]["features"]
    assert ready["ready"] and features["serving_with"] == ["frames"]
    rows = features["checks"]["rows"]
    assert not rows["ok"] and rows["differences"] > 0 and "sum" in rows["example"]["feature"]
    assert state.metrics.value("mlops_feature_batches_total", backend="frames") == 30
    # every request alone, after the ones before it: the batch path's answers exactly
    want = [_truth(world, events.head(events.height - 30 + i), live.slice(i, 1))[0] for i in range(30)]
    assert np.allclose(got, want, rtol=0, atol=1e-12)


def test_without_the_probe_the_wrong_sum_would_have_answered(world, make_state, monkeypatch):
    """The probe is what caught it: the rows backend itself serves the wrong bits."""
    _wrong_sum(monkeypatch)
    state = make_state(clock=lambda: NOW)
    events = world.events.sort("event_ts")
    from mlops.features.online.events import append_history
    append_history(world.plan, state.store, events.select(list(world.plan.source_columns)).head(600),
                   now_us=state.now_us())
    recs = [record(r, world.plan) for r in events.slice(600, 20).to_dicts()]
    state.backends.forced = "rows"
    rows = _answers(state, recs)
    state.backends.forced = "frames"
    frames = _answers(state, recs)
    assert rows != frames


def _answers(state, recs):
    checked = check_records(recs, state.request_schema, now_us=state.now_us())
    out, = process_batch(state, [ParsedRequest(checked.columns, checked.warnings,
                                               [str(i) for i in range(len(recs))])])
    return out.body["probabilities"]


def test_a_rows_backend_failing_on_a_batch_is_refused_and_frames_answer_it(world, make_state,
                                                                            monkeypatch):
    state = make_state(clock=lambda: NOW)

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(features_stage, "row_features", broken)
    recs = [record(r, world.plan) for r in world.events.slice(100, 3).to_dicts()]
    first = _answers(state, recs)
    assert state.backends.usable == ("frames",)
    assert "ZeroDivisionError" in state.backends.checks["rows"]["reason"]
    pts = world.events.slice(100, 3)
    assert np.allclose(first, _truth(world, pts, pts), rtol=0, atol=1e-12)


def test_a_polars_panic_while_evaluating_is_a_500_for_that_batch(world, make_state, monkeypatch):
    class PanicException(BaseException):  # what pyo3_runtime raises: not an Exception
        pass

    def panics(*a, **k):
        raise PanicException("index out of bounds")
    state = make_state(clock=lambda: NOW)
    monkeypatch.setattr(features_stage, "realtime_features", panics)
    state.backends.forced = "frames"
    recs = [record(r, world.plan) for r in world.events.slice(100, 2).to_dicts()]
    checked = check_records(recs, state.request_schema, now_us=state.now_us())
    out = process_batch(state, [ParsedRequest(checked.columns, checked.warnings, ["a", "b"])])
    assert out[0].status == 500 and "polars panicked" in out[0].detail
    assert "index out of bounds" in out[0].detail
    monkeypatch.undo()
    with TestClient(create_app(state)) as client:  # the server stays up
        assert client.post("/predict", json={"records": recs}).status_code == 200

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(features_stage, "realtime_features", interrupted)
    with pytest.raises(KeyboardInterrupt):  # not ours to swallow
        process_batch(state, [ParsedRequest(checked.columns, checked.warnings, ["a", "b"])])


def _future_pair(world):
    """Two records of one entity dated past the server clock's limit, 5 minutes apart."""
    base = record(world.events.row(50, named=True), world.plan)
    return [{**base, "user_id": "ahead", "event_ts": (NOW + timedelta(hours=h)).isoformat(),
             "request_id": f"f{h}"} for h in (1, 2)]


@pytest.mark.parametrize("backend", ["rows", "frames"])
def test_records_validation_refused_are_never_batch_events(world, make_state, backend):
    """Under invalid_record_policy=default a future-dated record is answered without the
    model and not stored; it is not an event of its batch either, so one request of two
    such records logs the features that two requests of one log (the later record's
    windows do not count the earlier)."""
    logged, states = {}, []
    for split in (False, True):
        state = make_state(clock=lambda: NOW, invalid_record_policy="default", log=True)
        states.append(state)
        state.backends.forced = backend
        recs = [{**r, "request_id": f"{split}-{r['request_id']}"} for r in _future_pair(world)]
        for part in ([recs[:1], recs[1:]] if split else [recs]):
            checked = check_records(part, state.request_schema, now_us=state.now_us(),
                                    max_future_us=300_000_000, policy="default")
            out, = process_batch(state, [ParsedRequest(checked.columns, checked.warnings,
                                                       [r["request_id"] for r in part],
                                                       checked.event_ids, checked.invalid)])
            assert out.status == 200 and set(out.body["decisions"]) == {"abstain"}
            out.durable.result()
        assert state.store.count_events() == 0
    for state in states:
        state.prediction_log.close()
    log = scan_prediction_log(states[0].prediction_log.directory).collect().sort("request_id")
    for split in (False, True):
        logged[split] = log.filter(pl.col("request_id").str.starts_with(f"{split}-"))["features"].to_list()
    assert logged[False] == logged[True] and len(logged[False]) == 2
    assert logged[False][1]["events_count_1h"] == 0.0  # the first is no event of the second


def test_the_data_event_id_and_the_plans_are_one_setting(world, make_state):
    from serving_world import SPEC

    from mlops.features.compile import compile_plan
    plan = compile_plan({**SPEC, "event_id": "transaction_id"}, world.events.schema)
    with pytest.raises(ConfigError, match="event_id") as err:
        make_state(plan=plan, event_id="other_id")
    assert err.value.key == "data.event_id" and "transaction_id" in err.value.fix
    make_state(plan=plan, event_id="transaction_id")  # the same column: fine
    make_state(plan=plan)                             # or only the plan's
    with pytest.raises(ConfigError, match="event_id"):
        materialize(plan, world.events, SQLiteStore(":memory:"), event_id="other_id")


def test_history_loaded_for_a_realtime_server_survives_retention(world, make_state, monkeypatch):
    """action=materialize in realtime mode: the events of the longest window before as_of go
    into the event store, and a server whose clock is today answers requests from as_of
    on exactly as the batch path does, the store pruned meanwhile (before: today's clock
    wiped the backfill at the first prune)."""
    import mlops.serving.pipeline.stages as stages
    monkeypatch.setattr(stages, "PRUNE_EVERY", 5)  # prune after every few requests
    events = world.events.sort("event_ts")
    as_of = events["event_ts"][events.height - 40]
    live = events.filter(pl.col("event_ts") >= as_of).head(40)
    today = datetime(2030, 6, 1)  # years after the data
    state = make_state(clock=lambda: today)
    rep = materialize(world.plan, events.filter(pl.col("event_ts") < as_of), state.store,
                      mode="realtime", as_of=as_of, now_us=state.now_us())
    assert rep.mode == "realtime" and rep.events > 0
    stored = state.store.count_events()
    got = []
    with TestClient(create_app(state)) as client:
        for r in live.to_dicts():
            got.append(client.post("/predict", json={"records": [record(r, world.plan)]}).json()["probabilities"][0])
        assert state.store.count_events() == stored + live.height  # pruned 8 times, nothing lost
        # one longest window of server time later, the backfill goes
        later = today + timedelta(seconds=world.plan.max_period_seconds + 1)
        state.store.prune_events(int((later - datetime(1970, 1, 1)).total_seconds() * 1e6)
                                 - world.plan.max_period_seconds * 1_000_000)
        assert state.store.count_events() == 0
    want = [_truth(world, events.filter(pl.col("event_ts") < as_of).vstack(live.head(i)), live.slice(i, 1))[0]
            for i in range(live.height)]
    assert np.allclose(got, want, rtol=0, atol=1e-12)
