"""The HTTP app: ``create_app(state)`` and the uvicorn runner ``serve(state)``.

Endpoints:

- ``POST /predict`` ``{"records": [{...event fields...}]}`` -> ``{"predictions",
  "probabilities", "model": {"name", "version"}, "plan_hash", "warnings" (a list per
  record), "request_ids", "served_by"}``; in ``mode="hybrid"`` also ``"features_as_of"``;
  in ``mode="batch"`` also ``"age_seconds"``, ``"scored_at"`` and ``"scored_by"`` (from
  the precomputed prediction cache).
- ``POST /invocations``: MLflow's ``{"dataframe_records": [...]}`` or
  ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` -> ``{"predictions": [...]}``.
- ``GET /health`` (alive), ``GET /ready`` (model, plan hash, store, breaker; 503 when not
  ready), ``GET /metadata``, ``GET /metrics`` (Prometheus text, :mod:`.metrics`),
  ``GET /docs`` (Swagger UI, local assets) and ``GET /openapi.json`` (request and response
  schemas from the plan's source columns, :mod:`.openapi`).
- ``POST /admin/reload`` ``{"version": "4"}``: only a version that passes the served
  alias's promotion gates (``state.gate_check``), else 409 naming the failing gates,
  unless ``{"force": true, "reason": "..."}``; every reload (and refusal) is an audit
  event. ``POST /admin/breaker/reset`` (audited, shared with every server). Both need
  the bearer token from ``settings.admin_token`` or env ``MLOPS_ADMIN_TOKEN``; none
  configured -> 403, wrong or missing -> 401.

Bad requests answer 422 with the field named; errors inside a batch answer 503/500 for
that batch only; the server stays up.
"""
from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from mlops.errors import MlopsError, NotFoundError, SkewError
from mlops.features.online import check_materialized
from mlops.serving.http_limits import http_protocol, read_json_body
from mlops.serving.idempotency import IdempotentAnswers
from mlops.serving.metrics import CONTENT_TYPE
from mlops.serving.micro_batch import MicroBatcher
from mlops.serving.openapi import install_docs
from mlops.serving.predict_path import Outcome, ParsedRequest, answer_from_cache, fast_model, process_batch, request_ids
from mlops.serving.skew import check_plan
from mlops.serving.state import ServingState
from mlops.serving.validation import RequestValidationError, check_entities, check_payload, check_records, error

_SCORING = ("/predict", "/invocations")
_ARRIVING = "mlops.arriving_done"


def _nothing() -> None:
    return None


_PATHS = {"/predict", "/invocations", "/health", "/ready", "/metadata", "/metrics",
          "/admin/reload", "/admin/breaker/reset", "/docs", "/openapi.json"}


class _RequestMetrics:
    """Pure ASGI middleware: request counts by path/status and a latency histogram."""

    def __init__(self, app, state: ServingState):
        self.app, self.state = app, state

    async def _announced(self, scope, receive, send):
        """Scoring requests are announced to the micro-batcher while they are parsed,
        so it waits for them only when one is really on its way."""
        batcher = getattr(self.state, "batcher", None)
        if batcher is None or scope["path"] not in _SCORING:
            return await self.app(scope, receive, send)
        with batcher.arriving_request() as done:
            scope[_ARRIVING] = done
            await self.app(scope, receive, send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
        try:
            await self._announced(scope, receive, send_wrapper)
        finally:
            path = scope["path"] if scope["path"] in _PATHS else "other"
            m = self.state.metrics
            m.http_requests.labels(path=path, status=str(status["code"])).inc()
            m.http_latency.labels(path=path).observe(time.perf_counter() - start)


async def _durable(out: Outcome) -> Outcome:
    """Answer only once the prediction's log record is fsynced (group commit)."""
    if out.durable is None:
        return out
    try:
        await asyncio.wrap_future(out.durable)
    except Exception as exc:  # not durable: the prediction must not be acknowledged
        return Outcome(503, detail=f"{exc}; retry the request")
    return out


def _error(status: int, detail) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _unprocessable(exc: RequestValidationError) -> JSONResponse:
    resp = _error(exc.status, exc.details)
    if exc.status in (408, 413):  # the rest of the body is never read: close
        resp.headers["connection"] = "close"
    return resp


async def _json_body(request: Request, limit: int, timeout: float = 30.0):
    return await read_json_body(request, limit, timeout)


def _check_admin(state: ServingState, request: Request) -> JSONResponse | None:
    token = state.settings.resolved_admin_token()
    if not token:
        return _error(403, "admin endpoints are disabled: no admin token is configured "
                           "(set serving.admin_token or MLOPS_ADMIN_TOKEN)")
    auth = request.headers.get("authorization", "")
    scheme, _, given = auth.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    return None


def _records_from_mlflow(body) -> list:
    if isinstance(body, dict) and "dataframe_records" in body:
        return check_payload(body, max_records=10**9, key="dataframe_records")
    if isinstance(body, dict) and "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
                or not isinstance(split.get("data"), list):
            raise RequestValidationError([error(["dataframe_split"], "must be {\"columns\": "
                                                "[...], \"data\": [[...], ...]}", "type_error")])
        cols = split["columns"]
        out = []
        for i, row in enumerate(split["data"]):
            if not isinstance(row, list) or len(row) != len(cols):
                raise RequestValidationError([error(["dataframe_split", "data", i],
                                                    f"must be a list of {len(cols)} values",
                                                    "type_error")])
            out.append(dict(zip(cols, row)))
        return out
    raise RequestValidationError([error(["body"], "expected MLflow's dataframe_records or "
                                        "dataframe_split format", "missing")])


def create_app(state: ServingState) -> FastAPI:  # noqa: C901 (issue 16 splits the routes out)
    """Build the FastAPI app around a :class:`ServingState`.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> with TestClient(create_app(state)) as client:        # doctest: +SKIP
        ...     client.post("/predict", json={"records": [event]}).json()["probabilities"]
    """
    s = state.settings
    batcher = MicroBatcher(lambda reqs: process_batch(state, reqs),
                           max_wait_s=s.batch_wait_ms / 1000.0, max_batch=s.max_batch)
    state.batcher = batcher
    answers = IdempotentAnswers(state.store, ttl_seconds=s.idempotency_ttl_seconds,
                                now_us=state.now_us)

    @asynccontextmanager
    async def lifespan(app):
        if s.mode != "batch":  # compile the small-batch fast path before the first request
            await run_in_threadpool(fast_model, state, state.active[0])
        yield
        await batcher.close()
        await run_in_threadpool(state.close)

    app = FastAPI(title="mlops serving", lifespan=lifespan, docs_url=None, redoc_url=None)

    async def _score(records: list, request: Request) -> Outcome:
        ids = request_ids(records)
        if s.mode == "batch":
            ents = check_entities(records, state.plan.entity)
            return await run_in_threadpool(answer_from_cache, state, ents, ids)
        checked = check_records(records, state.request_schema, now_us=state.now_us(),
                                known_categories=state.categories,
                                max_future_us=int(s.max_future_seconds * 1_000_000),
                                max_abs=s.max_abs_value, policy=s.invalid_record_policy)
        request.scope.get(_ARRIVING, _nothing)()  # no longer "on its way" to the batcher
        out = await batcher.submit(ParsedRequest(checked.columns, checked.warnings, ids,
                                                 checked.event_ids, checked.invalid), len(ids))
        return await _durable(out)

    @app.post("/predict")
    async def predict(request: Request):
        try:
            body = await _json_body(request, s.max_body_bytes, s.body_timeout_seconds)
            async with answers.guard(request, path="/predict") as slot:
                if slot.replay is not None:  # a retry: the first answer, not re-scored
                    return slot.replay
                records = check_payload(body, max_records=s.max_records)
                out = await _score(records, request)
                return slot.keep(_error(out.status, out.detail) if out.status != 200
                                 else JSONResponse(out.body))
        except RequestValidationError as exc:
            return _unprocessable(exc)

    @app.post("/invocations")
    async def invocations(request: Request):
        try:
            body = await _json_body(request, s.max_body_bytes, s.body_timeout_seconds)
            async with answers.guard(request, path="/invocations") as slot:
                if slot.replay is not None:
                    return slot.replay
                records = _records_from_mlflow(body)
                if len(records) > s.max_records:
                    raise RequestValidationError([error(["records"], f"at most {s.max_records} "
                                                        f"records per request; got "
                                                        f"{len(records)}", "too_long")])
                if not records:
                    raise RequestValidationError([error(["records"], "no records", "too_short")])
                out = await _score(records, request)
                return slot.keep(_error(out.status, out.detail) if out.status != 200 else
                                 JSONResponse({"predictions": out.body["predictions"]}))
        except RequestValidationError as exc:
            return _unprocessable(exc)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        checks, problems = await run_in_threadpool(readiness, state)
        body = {"ready": not problems, "checks": checks, "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metadata")
    async def metadata():
        _, info = state.active
        fb = state.fallback[1].as_dict() if state.fallback else None
        return {"model": info.as_dict(), "fallback": fb,
                "plan": {"name": state.plan.name, "version": state.plan.version,
                         "hash": state.plan.spec_hash, "entity": state.plan.entity,
                         "timestamp": state.plan.timestamp,
                         "features": state.plan.feature_names,
                         "request_fields": state.request_schema.kinds},
                "mode": s.mode, "store": state.store.describe(), "variant": s.variant,
                "limits": {"max_records": s.max_records, "max_body_bytes": s.max_body_bytes},
                "micro_batch": {"wait_ms": s.batch_wait_ms, "max_batch": s.max_batch},
                "freshness": {"ttl_seconds": s.ttl_seconds, "stale_policy": s.stale_policy},
                "started_at": state.started_at}

    @app.get("/metrics")
    async def metrics():
        m = state.metrics
        if state.breaker is not None:
            st = state.breaker.status()
            m.breaker_tripped.set(1.0 if st.state == "tripped" else 0.0)
        if state.prediction_log is not None:
            m.log_pending.set(float(state.prediction_log.pending()))
            m.log_commits.set(float(state.prediction_log.commits))
        return Response(m.render(), media_type=CONTENT_TYPE)

    @app.post("/admin/reload")
    async def reload(request: Request):
        denied = _check_admin(state, request)
        if denied is not None:
            return denied
        try:
            body = await _json_body(request, 10_000, s.body_timeout_seconds)
        except RequestValidationError as exc:
            return _unprocessable(exc)
        version = body.get("version") if isinstance(body, dict) else None
        if version is None or isinstance(version, (dict, list, bool)):
            return _error(422, [error(["version"], "field required: the model version or "
                                      "alias to load", "missing")])
        force, reason = body.get("force", False), body.get("reason")
        if not isinstance(force, bool):
            return _error(422, [error(["force"], "must be true or false", "type_error")])
        if force and (not isinstance(reason, str) or not reason.strip()):
            return _error(422, [error(["reason"], "a forced reload needs a reason (why the "
                                      "gates are bypassed): send {\"force\": true, \"reason\": "
                                      "\"...\"}", "missing")])
        if state.reload_fn is None:
            return _error(501, "this server has no reload function configured")
        try:
            model, info = await run_in_threadpool(state.reload_fn, str(version))
            failed = [] if state.gate_check is None else \
                await run_in_threadpool(state.gate_check, str(info.version))
            details = {"requested": str(version), "to": str(info.version),
                       "failed_gates": failed, "forced": bool(force and failed),
                       "reason": reason if force else None}
            if failed and not force:
                await run_in_threadpool(state.record_event, "serving_reload_refused", details)
                return _error(409, f"version {info.version} does not pass the promotion gates: "
                                   f"{'; '.join(failed)}. Promote it through the gates, or send "
                                   "{\"force\": true, \"reason\": \"...\"} (audited)")
            previous = await run_in_threadpool(state.swap_model, model, info)
        except SkewError as exc:
            return _error(409, str(exc))
        except NotFoundError as exc:
            return _error(404, str(exc))
        except MlopsError as exc:
            return _error(400, str(exc))
        await run_in_threadpool(state.record_event, "serving_reload",
                                {**details, "from": str(previous.version)})
        return {"model": info.as_dict(), "previous": previous.as_dict(),
                "forced": details["forced"], "failed_gates": failed}

    @app.post("/admin/breaker/reset")
    async def breaker_reset(request: Request):
        denied = _check_admin(state, request)
        if denied is not None:
            return denied
        if state.breaker is None:
            return _error(404, "this server has no circuit breaker (no reference statistics)")
        status = await run_in_threadpool(state.breaker.reset, "admin")
        state.metrics.clear_gauge("mlops_breaker_feature_psi")
        state.metrics.gauge("mlops_breaker_tripped", "1 when the circuit breaker is tripped.",
                            0.0)
        return {"breaker": status.as_dict()}

    install_docs(app, state)  # /openapi.json with the plan's schemas, /docs without a CDN
    app.add_middleware(_RequestMetrics, state=state)
    return app


def readiness(state: ServingState) -> tuple[dict, list[str]]:
    """(checks, problems): the body of ``GET /ready``; ready when ``problems`` is empty."""
    model, info = state.active
    checks: dict = {"model": {"name": info.name, "version": str(info.version),
                              "loaded": model is not None}}
    problems: list[str] = []
    if model is None:
        problems.append("no model loaded")
    try:
        check_plan(info.plan_hash, state.plan, model=info)
        checks["plan_hash"] = {"ok": True, "hash": state.plan.spec_hash}
    except SkewError as exc:
        checks["plan_hash"] = {"ok": False, "hash": state.plan.spec_hash}
        problems.append(str(exc))
    ok = state.store.ping()
    checks["store"] = {"ok": ok, **state.store.describe()}
    if not ok:
        problems.append("the online store does not answer")
    elif state.settings.mode == "hybrid":
        why = check_materialized(state.plan, state.store)
        checks["materialized"] = {"ok": why is None}
        if why:
            problems.append(why)
    if state.breaker is not None:
        st = state.breaker.status()
        checks["breaker"] = st.as_dict()
        if st.state == "tripped" and st.action == "refuse":
            problems.append(f"circuit breaker tripped ({st.reason}) and action=refuse")
    else:
        checks["breaker"] = {"state": "absent"}
    log = state.prediction_log
    if log is not None:
        checks["prediction_log"] = {"pending": log.pending(), "files": log.written_files,
                                    "last_error": log.last_error}
    return checks, problems


def build_server(state: ServingState, host: str | None = None, port: int | None = None, *,
                 log_level: str = "warning"):
    """A configured ``uvicorn.Server`` for the app (uvloop/httptools when installed).

    Slow clients are cut off: each request head must arrive within
    ``settings.header_timeout_seconds`` (else 408 and close), idle keep-alive
    connections are closed after ``settings.keep_alive_seconds``; the body deadline
    (``body_timeout_seconds``) is enforced while reading it.
    """
    import importlib.util

    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    s = state.settings
    config = uvicorn.Config(create_app(state), host=host or s.host,
                            port=int(port if port is not None else s.port),
                            loop=loop, http=http_protocol(http, s.header_timeout_seconds),
                            log_level=log_level, access_log=False,
                            timeout_keep_alive=s.keep_alive_seconds,
                            timeout_graceful_shutdown=10)
    return uvicorn.Server(config)


def serve(state: ServingState, host: str | None = None, port: int | None = None, *,
          log_level: str = "warning") -> None:
    """Run the app with uvicorn until SIGINT/SIGTERM (see :func:`build_server`).

    Graceful shutdown stops the micro-batcher, flushes the prediction log and closes
    the store. Binds ``settings.host`` (127.0.0.1 by default) unless ``host`` is given.
    """
    server = build_server(state, host, port, log_level=log_level)
    try:
        server.run()
    finally:
        if state.prediction_log is not None:  # also when startup failed
            state.prediction_log.close()
