"""Limits that hold against hostile HTTP clients, while the request is being read.

- :func:`read_json_body`: the body is read chunk by chunk (chunked or not) and reading
  stops at ``limit + 1`` bytes (413), or when the body takes longer than ``timeout``
  seconds (408). Then it is parsed as JSON; anything ``json.loads`` chokes on
  (bad UTF-8, deep nesting -> RecursionError, >4300-digit integers) is a 422 naming
  ``body``.
- :func:`head_deadline_protocol`: a uvicorn protocol class whose connections must
  deliver each request head (request line + headers) within ``header_timeout``
  seconds of its first byte (or of connecting); else the server answers 408 and closes.
  uvicorn's own ``timeout_keep_alive`` closes idle keep-alive connections.

Responses to 408/413 carry ``Connection: close`` so the unread rest of the body is
never buffered (uvicorn stops reading once the response is sent and closes).
"""
from __future__ import annotations

import asyncio
import json

from mlops.serving.http.validation import RequestValidationError, error


def _too_large(size: int | str, limit: int) -> RequestValidationError:
    return RequestValidationError([error(["body"], f"payload is {size} bytes or more; the "
                                         f"limit is {limit} bytes (serving.max_body_bytes): "
                                         "split the request", "too_large")], status=413)


async def read_body(request, limit: int, timeout: float) -> bytes:
    """The raw body, at most ``limit`` bytes, read within ``timeout`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _too_large(declared.strip(), limit)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:  # stop reading here: the rest is never buffered
                    raise _too_large(limit + 1, limit)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestValidationError([error(["body"], f"the body did not arrive within "
                                            f"{timeout:g} s (serving.body_timeout_seconds): "
                                            "send it at once", "timeout")], status=408) from None
    return b"".join(chunks)


def parse_json(raw: bytes):
    """``json.loads`` whose failures are client errors naming ``body``."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise RequestValidationError([error(["body"], "invalid JSON: nested too deeply; "
                                            "send flat records", "json_invalid")]) from None
    except (ValueError, UnicodeDecodeError) as exc:  # incl. >4300-digit integers
        raise RequestValidationError([error(["body"], f"invalid JSON: {str(exc)[:200]}",
                                            "json_invalid")]) from None


async def read_json_body(request, limit: int, timeout: float):
    """Read (bounded, with a deadline) and parse the JSON body of ``request``."""
    from starlette.requests import ClientDisconnect
    try:
        raw = await read_body(request, limit, timeout)
    except ClientDisconnect:
        raise RequestValidationError([error(["body"], "the client disconnected while "
                                            "sending the body", "disconnected")],
                                     status=400) from None
    request.state.raw_body = raw  # the idempotency check hashes the exact bytes
    return parse_json(raw)


_TIMEOUT_BODY = (b'{"detail": "request head not received in time '
                 b'(serving.header_timeout_seconds)"}')
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                     b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
                     % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


class HeadDeadline:
    """Mixin for a uvicorn HTTP protocol class: a deadline on each request head.

    The timer is armed when the connection opens and whenever bytes of a new request
    start arriving, and disarmed once the head is parsed (uvicorn then creates the
    request's cycle). Slowloris clients that trickle headers are cut off.
    """

    header_timeout: float = 10.0
    _head_timer = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if before is None or before.response_complete:
            self._arm_head()
        super().data_received(data)
        if self.cycle is not before:  # a new request head was parsed
            self._disarm_head()

    def connection_lost(self, exc):
        self._disarm_head()
        super().connection_lost(exc)

    def _arm_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def head_deadline_protocol(base: type, header_timeout: float) -> type:
    """A subclass of uvicorn's HTTP protocol ``base`` with a request-head deadline
    (:class:`HeadDeadline`) of ``header_timeout`` seconds."""
    return type(f"HeadDeadline{base.__name__}", (HeadDeadline, base),
                {"header_timeout": float(header_timeout)})


def http_protocol(name: str, header_timeout: float) -> type:
    """uvicorn's ``httptools`` or ``h11`` protocol class with the head deadline."""
    if name == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return head_deadline_protocol(base, header_timeout)
