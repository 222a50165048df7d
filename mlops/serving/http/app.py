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
that batch only; the server stays up. The endpoints are APIRouters by concern in
:mod:`mlops.serving.http.routes`; this module assembles them around the state.
"""
from __future__ import annotations

import gc
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from mlops.serving.http.connections import ConnectionLimit, guarded_protocol
from mlops.serving.http.idempotency import IdempotentAnswers
from mlops.serving.http.limits import http_protocol
from mlops.serving.http.openapi import install_docs
from mlops.serving.http.routes import admin, predict, status
from mlops.serving.http.routes.predict import ARRIVING, SCORING_PATHS
from mlops.serving.pipeline import process_batch
from mlops.serving.pipeline.micro_batch import MicroBatcher
from mlops.serving.pipeline.scores import compiled_model
from mlops.serving.state import ServingState

_PATHS = {"/predict", "/invocations", "/health", "/ready", "/metadata", "/metrics",
          "/admin/reload", "/admin/breaker/reset", "/docs", "/openapi.json"}


class _RequestMetrics:
    """Pure ASGI middleware: request counts by path/status and a latency histogram."""

    def __init__(self, app, state: ServingState):
        self.app, self.state = app, state

    async def _announced(self, scope, receive, send):
        """Scoring requests are announced to the micro-batcher while they are parsed,
        so it waits for them only when one is really on its way."""
        batcher = self.state.batcher
        if batcher is None or scope["path"] not in SCORING_PATHS:
            return await self.app(scope, receive, send)
        with batcher.arriving_request() as done:
            scope[ARRIVING] = done
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


def create_app(state: ServingState) -> FastAPI:
    """Build the FastAPI app around a :class:`ServingState`.

    The state gets its micro-batcher and its Idempotency-Key answers here; the routers
    find the state on ``app.state.serving``.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> with TestClient(create_app(state)) as client:        # doctest: +SKIP
        ...     client.post("/predict", json={"records": [event]}).json()["probabilities"]
    """
    s = state.settings
    batcher = state.batcher = MicroBatcher(lambda reqs: process_batch(state, reqs),
                                           max_wait_s=s.batch_wait_ms / 1000.0,
                                           max_batch=s.max_batch)
    state.answers = IdempotentAnswers(state.store, ttl_seconds=s.idempotency_ttl_seconds,
                                      now_us=state.now_us)

    @asynccontextmanager
    async def lifespan(app):
        if s.mode != "batch":  # compile the model's small-batch form before the first request
            await run_in_threadpool(compiled_model, state, state.active[0])
        freeze_startup_heap()
        yield
        await batcher.close()
        await run_in_threadpool(state.close)

    app = FastAPI(title="mlops serving", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.serving = state
    for routes in (predict, status, admin):
        app.include_router(routes.router)
    install_docs(app, state)  # /openapi.json with the plan's schemas, /docs without a CDN
    app.add_middleware(_RequestMetrics, state=state)
    return app


def freeze_startup_heap() -> None:
    """Move everything allocated at start-up (model, plan, frames, libraries) out of the
    garbage collector's reach. Requests allocate many small objects, and each full
    collection otherwise walks the whole start-up heap: ~100 ms pauses, about one request
    in a hundred, which set the p99 (measured in benchmarks/bench_hot_entity.py)."""
    gc.collect()
    gc.freeze()


def build_server(state: ServingState, host: str | None = None, port: int | None = None, *,
                 log_level: str = "warning"):
    """A configured ``uvicorn.Server`` for the app (uvloop/httptools when installed).

    Slow clients are cut off: each request head must arrive within
    ``settings.header_timeout_seconds`` (else 408 and close), idle keep-alive
    connections are closed after ``settings.keep_alive_seconds``; the body deadline
    (``body_timeout_seconds``) is enforced while reading it. Open connections stay within
    ``settings.max_connections`` (:mod:`mlops.serving.http.connections`): at the limit an idle
    connection of the client holding most is closed, else the new one gets 503.
    """
    import importlib.util

    import uvicorn

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    s = state.settings
    state.connections = ConnectionLimit(s.max_connections)
    protocol = guarded_protocol(http_protocol(http, s.header_timeout_seconds), state.connections)
    config = uvicorn.Config(create_app(state), host=host or s.host,
                            port=int(port if port is not None else s.port),
                            loop=loop, http=protocol,
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
