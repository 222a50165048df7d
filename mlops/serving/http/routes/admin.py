"""``POST /admin/reload`` and ``POST /admin/breaker/reset``, behind a bearer token.

The token comes from ``settings.admin_token`` or env ``MLOPS_ADMIN_TOKEN``; none
configured -> 403, wrong or missing -> 401. A reload serves only a version that passes
the served alias's promotion gates (``state.gate_check``), else 409 naming the failing
gates, unless ``{"force": true, "reason": "..."}``; every reload (and refusal) and every
breaker reset is an audit event.
"""
from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlops.errors import MlopsError, NotFoundError, SkewError
from mlops.serving.http.limits import read_json_body
from mlops.serving.http.routes.common import error, serving_state, unprocessable
from mlops.serving.http.validation import RequestValidationError
from mlops.serving.http.validation import error as field_error
from mlops.serving.state import ServingState

router = APIRouter()


def _admin_state(request: Request) -> ServingState | JSONResponse:
    """The app's state for an admin call, or the refusal to answer instead."""
    state = serving_state(request)
    return _denied(state, request) or state


def _denied(state: ServingState, request: Request) -> JSONResponse | None:
    token = state.settings.resolved_admin_token()
    if not token:
        return error(403, "admin endpoints are disabled: no admin token is configured "
                          "(set serving.admin_token or MLOPS_ADMIN_TOKEN)")
    auth = request.headers.get("authorization", "")
    scheme, _, given = auth.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        return JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    return None


def _reload_request(body) -> tuple[str, bool, str | None] | JSONResponse:
    """(version, force, reason) of a reload body, or the 422 answer naming the field."""
    version = body.get("version") if isinstance(body, dict) else None
    if version is None or isinstance(version, (dict, list, bool)):
        return error(422, [field_error(["version"], "field required: the model version or "
                                       "alias to load", "missing")])
    force, reason = body.get("force", False), body.get("reason")
    if not isinstance(force, bool):
        return error(422, [field_error(["force"], "must be true or false", "type_error")])
    if force and (not isinstance(reason, str) or not reason.strip()):
        return error(422, [field_error(["reason"], "a forced reload needs a reason (why the "
                                       "gates are bypassed): send {\"force\": true, \"reason\": "
                                       "\"...\"}", "missing")])
    return str(version), force, reason


async def _reload(state: ServingState, version: str, force: bool, reason: str | None):
    """Load ``version``, check its gates, swap it in; the answer (a dict or an error)."""
    try:
        model, info = await run_in_threadpool(state.reload_fn, version)
        failed = [] if state.gate_check is None else \
            await run_in_threadpool(state.gate_check, str(info.version))
        details = {"requested": version, "to": str(info.version), "failed_gates": failed,
                   "forced": bool(force and failed), "reason": reason if force else None}
        if failed and not force:
            await run_in_threadpool(state.record_event, "serving_reload_refused", details)
            return error(409, f"version {info.version} does not pass the promotion gates: "
                              f"{'; '.join(failed)}. Promote it through the gates, or send "
                              "{\"force\": true, \"reason\": \"...\"} (audited)")
        previous = await run_in_threadpool(state.swap_model, model, info)
    except SkewError as exc:
        return error(409, str(exc))
    except NotFoundError as exc:
        return error(404, str(exc))
    except MlopsError as exc:
        return error(400, str(exc))
    await run_in_threadpool(state.record_event, "serving_reload",
                            {**details, "from": str(previous.version)})
    return {"model": info.as_dict(), "previous": previous.as_dict(),
            "forced": details["forced"], "failed_gates": failed}


@router.post("/admin/reload")
async def reload(request: Request):
    """``{"version": "4"}`` (optionally ``"force": true, "reason": "..."``): serve it."""
    state = _admin_state(request)
    if isinstance(state, JSONResponse):  # refused: no token configured, or a wrong one
        return state
    try:
        body = await read_json_body(request, 10_000, state.settings.body_timeout_seconds)
    except RequestValidationError as exc:
        return unprocessable(exc)
    parsed = _reload_request(body)
    if isinstance(parsed, JSONResponse):
        return parsed
    if state.reload_fn is None:
        return error(501, "this server has no reload function configured")
    return await _reload(state, *parsed)


@router.post("/admin/breaker/reset")
async def breaker_reset(request: Request):
    """Close the circuit breaker (shared with every server on the store; audited)."""
    state = _admin_state(request)
    if isinstance(state, JSONResponse):  # refused: no token configured, or a wrong one
        return state
    if state.breaker is None:
        return error(404, "this server has no circuit breaker (no reference statistics)")
    status = await run_in_threadpool(state.breaker.reset, "admin")
    state.metrics.clear_gauge("mlops_breaker_feature_psi")
    state.metrics.gauge("mlops_breaker_tripped", "1 when the circuit breaker is tripped.", 0.0)
    return {"breaker": status.as_dict()}
