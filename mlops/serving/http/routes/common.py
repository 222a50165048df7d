"""What every router shares: the state of the app a request reached, JSON error answers."""
from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from mlops.serving.http.validation import RequestValidationError
from mlops.serving.state import ServingState


def serving_state(request: Request) -> ServingState:
    """The :class:`ServingState` of the app that received ``request``."""
    return request.app.state.serving


def error(status: int, detail, headers: dict | None = None) -> JSONResponse:
    """``{"detail": ...}`` with ``status`` (and ``headers``, e.g. Retry-After)."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def unprocessable(exc: RequestValidationError) -> JSONResponse:
    """The answer to a request that failed validation (422, or 408/413 while reading it)."""
    resp = error(exc.status, exc.details)
    if exc.status in (408, 413):  # the rest of the body is never read: close
        resp.headers["connection"] = "close"
    return resp
