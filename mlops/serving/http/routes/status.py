"""``GET /health`` (alive), ``/ready`` (model, plan hash, feature backends, store,
breaker, log; 503 when not ready), ``/metadata`` (what is served and how) and ``/metrics`` (Prometheus text)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mlops.errors import SkewError
from mlops.features.online import check_materialized
from mlops.serving.http.routes.common import serving_state
from mlops.serving.metrics import CONTENT_TYPE
from mlops.serving.skew import check_plan
from mlops.serving.state import ServingState

router = APIRouter()


@router.get("/health")
async def health():
    """Alive (says nothing about the model or the store: that is ``/ready``)."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request):
    """200 when :func:`readiness` finds no problem, else 503 with the problems; names the
    replica (``serving.replica_id``) that answered."""
    state = serving_state(request)
    checks, problems = await run_in_threadpool(readiness, state)
    body = {"ready": not problems, "replica": state.replica_id, "checks": checks,
            "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/metadata")
async def metadata(request: Request):
    """The served model (and fallback), its plan, the mode, the store and the limits."""
    state = serving_state(request)
    s, plan = state.settings, state.plan
    _, info = state.active
    fb = state.fallback[1].as_dict() if state.fallback else None
    return {"model": info.as_dict(), "fallback": fb,
            "plan": {"name": plan.name, "version": plan.version, "hash": plan.spec_hash,
                     "entity": plan.entity, "timestamp": plan.timestamp,
                     "features": plan.feature_names,
                     "request_fields": state.request_schema.kinds},
            "mode": s.mode, "store": state.store.describe(), "variant": s.variant,
            "limits": {"max_records": s.max_records, "max_body_bytes": s.max_body_bytes},
            "micro_batch": {"wait_ms": s.batch_wait_ms, "max_batch": s.max_batch},
            "freshness": {"ttl_seconds": s.ttl_seconds, "stale_policy": s.stale_policy},
            "replica": state.replica_id, "started_at": state.started_at}


@router.get("/metrics")
async def metrics(request: Request):
    """Prometheus text; the breaker and log gauges are read now."""
    state = serving_state(request)
    m = state.metrics
    if state.breaker is not None:
        st = state.breaker.status()
        m.breaker_tripped.set(1.0 if st.state == "tripped" else 0.0)
    if state.connections is not None:
        m.connections_open.set(float(len(state.connections.open)))
        m.connections_refused.set(float(state.connections.refused))
        m.connections_evicted.set(float(state.connections.evicted))
    if state.prediction_log is not None:
        log = state.prediction_log
        m.log_pending.set(float(log.pending()))
        m.log_commits.set(float(log.commits))
        m.log_damaged_regions.set(float(log.damage.damaged_regions))
        m.log_damaged_bytes.set(float(log.damage.damaged_bytes))
        m.log_recovered_records.set(float(log.recovered.rows))
    return Response(m.render(), media_type=CONTENT_TYPE)


def readiness(state: ServingState) -> tuple[dict, list[str]]:
    """(checks, problems): the body of ``GET /ready``; ready when ``problems`` is empty."""
    checks: dict = {}
    problems: list[str] = []
    for check in (_model, _features, _store, _breaker, _prediction_log):
        check(state, checks, problems)
    return checks, problems


def _features(state: ServingState, checks: dict, problems: list[str]) -> None:
    """Which backends compute the features, and what the start-up probe found (a refused
    rows backend is no problem: frames answer, the same features)."""
    b = state.backends
    checks["features"] = {"plan_backends": list(state.plan.backends), "serving_with": list(b.usable),
                          **({"forced": b.forced} if b.forced else {}), "checks": b.checks}


def _model(state: ServingState, checks: dict, problems: list[str]) -> None:
    model, info = state.active
    checks["model"] = {"name": info.name, "version": str(info.version),
                       "loaded": model is not None}
    if model is None:
        problems.append("no model loaded")
    try:
        check_plan(info.plan_hash, state.plan, model=info)
        checks["plan_hash"] = {"ok": True, "hash": state.plan.spec_hash}
    except SkewError as exc:
        checks["plan_hash"] = {"ok": False, "hash": state.plan.spec_hash}
        problems.append(str(exc))


def _store(state: ServingState, checks: dict, problems: list[str]) -> None:
    ok = state.store.ping()
    checks["store"] = {"ok": ok, **state.store.describe()}
    if not ok:
        problems.append("the online store does not answer")
    elif state.settings.mode == "hybrid":
        why = check_materialized(state.plan, state.store)
        checks["materialized"] = {"ok": why is None}
        if why:
            problems.append(why)


def _breaker(state: ServingState, checks: dict, problems: list[str]) -> None:
    if state.breaker is None:
        checks["breaker"] = {"state": "absent"}
        return
    st = state.breaker.status()
    checks["breaker"] = st.as_dict()
    if st.state == "tripped" and st.on_trip == "refuse":
        problems.append(f"circuit breaker tripped ({st.reason}) and on_trip=refuse")


def _prediction_log(state: ServingState, checks: dict, problems: list[str]) -> None:
    log = state.prediction_log
    if log is not None:
        checks["prediction_log"] = {"directory": log.directory, "pending": log.pending(),
                                    "files": log.written_files,
                                    "last_error": log.last_error,
                                    "recovered": log.recovered.as_dict(),  # at start: a crash's journal
                                    "damage": log.damage.as_dict()}       # skipped bytes, quarantined
