"""``action=replay``: send a window of historical events through the HTTP app, in process.

The same FastAPI app as ``action=serve`` (httpx over ASGI in process, no socket): real
request validation, online-store history, micro-batching, circuit breaker and
prediction log. This is how the lifecycle "goes live" on the post-change period,
and how a user can dry-run a model on recent traffic before exposing it.
"""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import numpy as np
import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import DataError


def _records(df: pl.DataFrame, cols: list[str], ts: str, event_id: str | None) -> list[dict]:
    """Request records; the event id (``data.event_id``), when there is one, is sent as
    the request id so late labels join the prediction log on it."""
    out = df.select(cols).with_columns(pl.col(ts).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"))
    if event_id is not None and event_id in out.columns:
        # the request id joins late labels to the log; the event id makes a second
        # replay of the same window store nothing twice
        out = out.with_columns(pl.col(event_id).cast(pl.String).alias("request_id"))
    return out.to_dicts()


def run(ctx: RunContext) -> ActionResult:
    """Replay ``serving.replay`` days of events through the app; report the breaker."""
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    t0 = time.perf_counter()
    rc = ctx.cfg.serving.replay
    # the breaker state of a dry run is its own: it neither inherits a trip (of
    # production or of an earlier replay) nor leaves one behind
    state = ctx.serving_state(breaker_scope=f"replay-{ctx.output_dir.name}")
    # the server's clock follows the replayed traffic (retention, future-time checks)
    sim = {"now": None}
    state.clock = lambda: sim["now"]
    events = ctx.scan_events().collect().sort(state.plan.timestamp)
    start, end, history, window = _window(events, state.plan, rc)
    eid = ctx.event_id if ctx.event_id in events.columns else None
    sim["now"] = start
    _preload(state, history)
    cols = [c for c in dict.fromkeys([*([eid] if eid else []), *state.plan.source_columns])
            if c in events.columns]
    sent, ready, metrics_text = asyncio.run(_serve(state, window, cols, eid,
                                                   int(rc.records_per_request), sim))
    result = _result(state, sent, start, end, window.height, ready, metrics_text)
    result["duration_s"] = round(time.perf_counter() - t0, 3)
    _write(ctx, state, result)
    return ActionResult(result=result, metrics={"breaker_tripped": float(result["breaker_tripped"])})


def _window(events: pl.DataFrame, plan, rc) -> tuple:
    """(start, end, history before the window, the window's events)."""
    ts = plan.timestamp
    first, last = events[ts].min(), events[ts].max()
    start = (last - timedelta(days=float(rc.days))) if rc.start_day is None else \
        first + timedelta(days=float(rc.start_day))
    end = start + timedelta(days=float(rc.days))
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


def _result(state, sent: dict, start, end, n_events: int, ready: dict, metrics_text: str) -> dict:
    breaker = state.breaker.status().as_dict() if state.breaker else {"state": "absent"}
    trips = sent["trips"]
    tripped = bool(trips)
    lat = np.array(sent["latencies"])
    return {
        "status": "warn" if tripped else "ok",
        "headline": (f"circuit breaker tripped after {trips[0]['at_event']:,} of {n_events:,} "
                     f"live events: {trips[0]['reason']}" if tripped else
                     f"served {n_events:,} live events; circuit breaker stayed closed"),
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


def _write(ctx: RunContext, state, result: dict) -> None:
    from mlops.reports import svg
    trips, breaker = result["trips"], result["breaker"]
    seen = trips[0] if trips else breaker
    psi, limits = seen.get("feature_psi") or {}, seen.get("feature_limits") or {}
    # each feature against its own (calibrated) limit: 1.0 is the limit for every bar
    ratios = [(k, v / limits[k]) for k, v in psi.items() if v is not None and limits.get(k)]
    chart = svg.bar_chart(sorted(ratios, key=lambda kv: -kv[1])[:25],
                          xlabel="PSI over the breaker window / the feature's limit",
                          ylabel="feature", threshold=(1.0, "limit"))
    write_report(ctx, "replay", result, title=f"Live traffic: {state.info.name} v{state.info.version}",
                 context={"psi_chart": chart, "cards": [
                     {"label": "live events", "value": result["window"]["events"]},
                     {"label": "breaker", "value": breaker.get("state"),
                      "status": "warn" if result["breaker_tripped"] else "ok"},
                     {"label": "p99 latency per request", "value": result["latency_ms"]["p99"],
                      "unit": "ms", "hint": f"{result['latency_ms']['records_per_request']} records per request"},
                     *_answer_cards(result, state.plan.label["column"])]})


def _answer_cards(result: dict, label: str) -> list[dict]:
    """Predicted positives (a classifier) and abstentions of the tripped breaker."""
    cards = [{"label": "abstained (no value)", "value": result["decisions"].get("abstain", 0)}]
    if (result.get("decision") or {}).get("task") != "regression":
        cards.insert(0, {"label": f"predicted positive ({label})", "value": int(result["flagged"])})
    return cards
