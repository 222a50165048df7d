"""``Idempotency-Key``: a retried request gets the first answer, scored and logged once.

A client may send the header ``Idempotency-Key: <up to 200 visible ASCII chars>``.
The first request with a key is scored as usual; its answer (status and JSON body,
for 200 and 422 only: a 503 is transient and may be retried for real) is stored in
the online store for ``serving.idempotency_ttl_seconds``, together with the sha256 of
the request body. A later request with the same key and the same body gets that
answer without scoring (so no second prediction-log record and no second event in
the store); the same key with a different body is a 422 naming the header.
Concurrent requests with one key wait for the first one in this process.

Example:
    >>> async with once.guard(request, path="/predict") as slot:   # doctest: +SKIP
    ...     if slot.replay is not None:
    ...         return slot.replay
    ...     response = ...; slot.keep(response); return response
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlops.errors import StoreUnavailableError
from mlops.serving.http.validation import RequestValidationError, error

HEADER = "idempotency-key"
_MAX_KEY = 200
_CACHEABLE = (200, 422)


@dataclass
class Slot:
    """One guarded request: ``replay`` is the stored answer (or None: compute it)."""

    key: str | None
    digest: str
    replay: JSONResponse | None = None
    response: JSONResponse | None = None

    def keep(self, response: JSONResponse) -> JSONResponse:
        """Remember ``response`` as this key's answer (when cacheable)."""
        self.response = response
        return response


def _check_key(raw: str) -> str:
    if not (0 < len(raw) <= _MAX_KEY) or not raw.isascii() or not raw.isprintable():
        raise RequestValidationError([error(["header", "Idempotency-Key"], "must be 1 to "
                                            f"{_MAX_KEY} visible ASCII characters (e.g. a "
                                            "UUID)", "value_error")], status=400)
    return raw


class IdempotentAnswers:
    """Stores and replays answers per ``Idempotency-Key`` (see the module docstring)."""

    def __init__(self, store, *, ttl_seconds: float, now_us):
        self.store, self.ttl_seconds, self.now_us = store, ttl_seconds, now_us
        self._inflight: dict[str, asyncio.Lock] = {}

    def _lookup(self, key: str) -> dict | None:
        raw = self.store.get([key], now_us=self.now_us()).get(key)
        return None if raw is None else json.loads(raw)

    def _save(self, key: str, digest: str, response: JSONResponse) -> None:
        value = json.dumps({"sha256": digest, "status": response.status_code,
                            "body": response.body.decode("utf-8")})
        self.store.put({key: value}, ttl_seconds=self.ttl_seconds, only_new=True,
                       now_us=self.now_us())

    @asynccontextmanager
    async def guard(self, request, *, path: str):
        """Yield a :class:`Slot`; on exit store the kept response under the key."""
        header = request.headers.get(HEADER)
        raw = getattr(request.state, "raw_body", b"")
        digest = hashlib.sha256(raw).hexdigest()
        if header is None:
            yield Slot(None, digest)
            return
        key = f"answer:{path}:{_check_key(header.strip())}"
        lock = self._inflight.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                found = await run_in_threadpool(self._lookup, key)
                slot = Slot(key, digest)
                if found is not None:
                    if found["sha256"] != digest:
                        raise RequestValidationError([error(
                            ["header", "Idempotency-Key"], "was already used with a different "
                            "request body: use a new key for a new request", "conflict")])
                    slot.replay = JSONResponse(json.loads(found["body"]),
                                               status_code=found["status"],
                                               headers={"idempotent-replay": "true"})
                yield slot
                if slot.replay is None and slot.response is not None \
                        and slot.response.status_code in _CACHEABLE:
                    try:
                        await run_in_threadpool(self._save, key, digest, slot.response)
                    except StoreUnavailableError:  # answered and logged already: the answer stands
                        pass
        finally:
            if not lock.locked():
                self._inflight.pop(key, None)
