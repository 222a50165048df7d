"""Replay a window of historical events through the HTTP app, in process.

The same FastAPI app as a server (httpx over ASGI in process, no socket): real request
validation, online-store history, micro-batching, circuit breaker and prediction log; the
server's clock follows the replayed traffic. The lifecycle "goes live" this way on the
post-change period, and a user can dry-run a model on recent traffic before exposing it::

    result = replay_window(state, events, days=14, start_day=None, records_per_request=40)
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import numpy as np
import polars as pl

from mlops.errors import DataError
from mlops.serving.state import ServingState


def replay_window(state: ServingState, events: pl.DataFrame, *, days: float,
                  start_day: float | None, records_per_request: int,
                  event_id: str | None = None) -> dict:
    """Serve ``days`` of ``events`` (from ``start_day`` after the first event; None: the
    last ``days``) in requests of ``records_per_request``, after the history before them
    is stored; the result says what was answered and whether the breaker tripped."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    sim = {"now": None}
    state.clock = lambda: sim["now"]
    events = events.sort(state.plan.timestamp)
    start, end, history, window = _window(events, state.plan, days, start_day)
    eid = event_id if event_id in events.columns else None
    sim["now"] = start
    _preload(state, history)
    cols = [c for c in dict.fromkeys([*([eid] if eid else []), *state.plan.source_columns])
            if c in events.columns]
    sent, ready, metrics_text = asyncio.run(_serve(state, window, cols, eid,
                                                   int(records_per_request), sim))
    return _result(state, sent, start, end, window.height, ready, metrics_text)


def _records(df: pl.DataFrame, cols: list[str], ts: str, event_id: str | None) -> list[dict]:
    """Request records; the event id (``data.event_id``), when there is one, is sent as
    the request id so late labels join the prediction log on it."""
    out = df.select(cols).with_columns(pl.col(ts).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"))
    if event_id is not None and event_id in out.columns:
        # the request id joins late labels to the log; the event id makes a second
        # replay of the same window store nothing twice
        out = out.with_columns(pl.col(event_id).cast(pl.String).alias("request_id"))
    return out.to_dicts()


def _window(events: pl.DataFrame, plan, days: float, start_day: float | None) -> tuple:
    """(start, end, history before the window, the window's events)."""
    ts = plan.timestamp
    first, last = events[ts].min(), events[ts].max()
    start = (last - timedelta(days=float(days))) if start_day is None else \
        first + timedelta(days=float(start_day))
    end = start + timedelta(days=float(days))
    history = events.filter((pl.col(ts) < start)
                            & (pl.col(ts) >= start - timedelta(seconds=plan.max_period_seconds)))
    window = events.filter((pl.col(ts) >= start) & (pl.col(ts) < end))
    if window.height == 0:
        raise DataError("the replay window has no events", key="serving.replay.start_day",
                        fix="move it inside the data")
    return start, end, history, window


def _preload(state, history: pl.DataFrame) -> None:
    """The store first learns the history before the window (what production would hold),
    as the server stores events (the plan's rules and identity)."""
    from mlops.features.online.events import append_history
    append_history(state.plan, state.store, history.select(list(state.plan.source_columns)),
                   now_us=state.now_us())


async def _serve(state, window: pl.DataFrame, cols: list[str], eid: str | None, step: int,
                 sim: dict) -> tuple[dict, dict, str]:
    """The app with its lifespan (start-up, shutdown), spoken to over ASGI in this process."""
    import httpx

    from mlops.serving import create_app
    app = create_app(state)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replay") as client:
            sent = await _send(client, state, window, cols, eid, step, sim)
            ready = (await client.get("/ready")).json()
            metrics_text = (await client.get("/metrics")).text
    return sent, ready, metrics_text


async def _send(client, state, window: pl.DataFrame, cols: list[str], eid: str | None, step: int,
                sim: dict) -> dict:
    """POST the window in requests of ``step`` records; note the breaker's first trip."""
    ts = state.plan.timestamp
    out = {"statuses": {}, "latencies": [], "trips": [], "flagged": 0, "served_default": 0,
           "decisions": {}, "step": step}
    for i in range(0, window.height, step):
        chunk = window.slice(i, step)
        sim["now"] = chunk[ts].max()
        t = time.perf_counter()
        resp = await client.post("/predict", json={"records": _records(chunk, cols, ts, eid)})
        out["latencies"].append((time.perf_counter() - t) * 1000)
        out["statuses"][resp.status_code] = out["statuses"].get(resp.status_code, 0) + 1
        if resp.status_code == 200:
            body = resp.json()
            for d in body["decisions"]:
                out["decisions"][d] = out["decisions"].get(d, 0) + 1
            if "probabilities" in body:  # a classifier: a prediction is a 0/1 decision
                out["flagged"] += sum(p for p in body["predictions"] if p is not None)
            out["served_default"] += sum(1 for w in body["warnings"]
                                         if any("breaker" in x for x in w))
        st = state.breaker.status() if state.breaker else None
        if st is not None and st.state == "tripped" and not out["trips"]:
            out["trips"].append({"at_event": i + chunk.height, "time": str(chunk[ts][-1]),
                                 "reason": st.reason, "feature_psi": st.feature_psi,
                                 "feature_limits": st.feature_limits,
                                 "prediction_psi": st.prediction_psi,
                                 "prediction_limit": st.prediction_limit,
                                 "window_records": st.window_records, "drifting": st.drifting})
    return out


def _closed(breaker: dict) -> str:
    """Why a breaker that did not trip did not: it judged and found nothing, or never armed."""
    if breaker.get("state") == "absent":
        return "no circuit breaker"
    if breaker.get("armed") is False:
        return (f"circuit breaker never armed ({breaker.get('window_records', 0):,} of the "
                f"{breaker.get('min_records', 0):,} records it needs)")
    return "circuit breaker stayed closed"


def _result(state, sent: dict, start, end, n_events: int, ready: dict, metrics_text: str) -> dict:
    breaker = state.breaker.status().as_dict() if state.breaker else {"state": "absent"}
    trips = sent["trips"]
    tripped = bool(trips)
    lat = np.array(sent["latencies"])
    return {
        "status": "warn" if tripped else "ok",
        "headline": (f"circuit breaker tripped after {trips[0]['at_event']:,} of {n_events:,} "
                     f"live events: {trips[0]['reason']}" if tripped else
                     f"served {n_events:,} live events; " + _closed(breaker)),
        "window": {"start": start.isoformat(), "end": end.isoformat(), "events": n_events},
        "model": state.info.as_dict(), "decision": state.info.extra.get("decision"),
        "requests": len(sent["latencies"]),
        "statuses": sent["statuses"], "flagged": int(sent["flagged"]),
        "decisions": sent["decisions"],
        "records_with_breaker_warning": int(sent["served_default"]),
        "breaker_tripped": tripped, "trips": trips, "breaker": breaker, "ready": ready,
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                       "records_per_request": sent["step"]},
        "prediction_log": state.settings.log_dir,
        "metrics_excerpt": [line for line in metrics_text.splitlines()
                            if line.startswith("mlops_breaker")][:40],
    }
