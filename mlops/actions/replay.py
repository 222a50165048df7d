"""``action=replay``: send a window of historical events through the HTTP app, in process.

The same FastAPI app as ``action=serve`` (FastAPI's TestClient, no socket): real
request validation, online-store history, micro-batching, circuit breaker and
prediction log. This is how the lifecycle "goes live" on the post-change period,
and how a user can dry-run a model on recent traffic before exposing it.
"""
from __future__ import annotations

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
    import logging

    from fastapi.testclient import TestClient

    from mlops.actions.serving_support import open_serving_state
    from mlops.serving import create_app
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    t0 = time.perf_counter()
    rc = ctx.cfg.serving.replay
    state = open_serving_state(ctx)
    plan = state.plan
    # the server's clock follows the replayed traffic (retention, future-time checks)
    sim = {"now": None}
    state.clock = lambda: sim["now"]
    events = ctx.scan_events().collect().sort(plan.timestamp)
    ts = plan.timestamp
    first, last = events[ts].min(), events[ts].max()
    start = (last - timedelta(days=float(rc.days))) if rc.start_day is None else \
        first + timedelta(days=float(rc.start_day))
    end = start + timedelta(days=float(rc.days))
    # the store first learns the history before the window (what production would hold)
    history = events.filter((pl.col(ts) < start)
                            & (pl.col(ts) >= start - timedelta(seconds=plan.max_period_seconds)))
    window = events.filter((pl.col(ts) >= start) & (pl.col(ts) < end))
    if window.height == 0:
        raise DataError("the replay window has no events", key="serving.replay.start_day",
                        fix="move it inside the data")
    from mlops.features.online import append_events
    eid = ctx.event_id if ctx.event_id in events.columns else None
    sim["now"] = start
    append_events(plan, state.store, history.select(list(plan.source_columns))
                  .cast(state.request_schema.polars_schema(), strict=False),
                  None if eid is None else history[eid].cast(pl.String).to_list())
    cols = [c for c in dict.fromkeys([*([eid] if eid else []), *plan.source_columns])
            if c in events.columns]
    step = int(rc.records_per_request)
    statuses, latencies, trips, flagged, served_default = {}, [], [], 0, 0
    with TestClient(create_app(state)) as client:
        for i in range(0, window.height, step):
            chunk = window.slice(i, step)
            sim["now"] = chunk[ts].max()
            t = time.perf_counter()
            resp = client.post("/predict", json={"records": _records(chunk, cols, ts, eid)})
            latencies.append((time.perf_counter() - t) * 1000)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code == 200:
                body = resp.json()
                flagged += sum(body["predictions"])
                served_default += sum(1 for w in body["warnings"] if any("breaker" in x for x in w))
            st = state.breaker.status() if state.breaker else None
            if st is not None and st.state == "tripped" and not trips:
                trips.append({"at_event": i + chunk.height, "time": str(chunk[ts][-1]),
                              "reason": st.reason, "feature_psi": st.feature_psi,
                              "prediction_psi": st.prediction_psi, "drifting": st.drifting})
        ready = client.get("/ready").json()
        metrics_text = client.get("/metrics").text
    breaker = state.breaker.status().as_dict() if state.breaker else {"state": "absent"}
    tripped = bool(trips)
    lat = np.array(latencies)
    result = {
        "status": "warn" if tripped else "ok",
        "headline": (f"circuit breaker tripped after {trips[0]['at_event']:,} of {window.height:,} "
                     f"live events: {trips[0]['reason']}" if tripped else
                     f"served {window.height:,} live events; circuit breaker stayed closed"),
        "window": {"start": start.isoformat(), "end": end.isoformat(), "events": window.height},
        "model": state.info.as_dict(), "requests": len(latencies), "statuses": statuses,
        "flagged": int(flagged), "records_with_breaker_warning": int(served_default),
        "breaker_tripped": tripped, "trips": trips, "breaker": breaker, "ready": ready,
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                       "records_per_request": step},
        "prediction_log": state.settings.log_dir,
        "metrics_excerpt": [line for line in metrics_text.splitlines()
                            if line.startswith("mlops_breaker")][:40],
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    psi = trips[0]["feature_psi"] if trips else breaker.get("feature_psi") or {}
    from mlops.reports import svg
    chart = svg.bar_chart(sorted(((k, v) for k, v in psi.items() if v is not None),
                                 key=lambda kv: -kv[1])[:25],
                          xlabel="PSI over the breaker window", ylabel="feature",
                          threshold=(float(ctx.cfg.serving.breaker.feature_psi), "trip threshold"))
    write_report(ctx, "replay", result, title=f"Live traffic: {state.info.name} v{state.info.version}",
                 context={"psi_chart": chart, "cards": [
                     {"label": "live events", "value": window.height},
                     {"label": "breaker", "value": breaker.get("state"),
                      "status": "warn" if tripped else "ok"},
                     {"label": "p99 latency per request", "value": result["latency_ms"]["p99"],
                      "unit": "ms", "hint": f"{step} records per request"},
                     {"label": f"predicted positive ({plan.label['column']})", "value": int(flagged)}]})
    return ActionResult(result=result, metrics={"breaker_tripped": float(tripped)})
