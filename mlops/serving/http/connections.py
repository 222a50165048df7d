"""A bound on open connections that one client cannot use to lock others out.

Every accepted socket costs a file descriptor; at the open-file limit the server can no
longer accept, open its store or write its log, and every client's connections reset.
:class:`ConnectionLimit` keeps the server's connections at ``serving.max_connections``
(by default the soft ``RLIMIT_NOFILE`` minus a reserve for the store, the log and the
model). When a new connection arrives at the limit:

- the oldest idle connection (no request in progress: never sent one, or between
  keep-alive requests) of the client holding the most connections is closed to make
  room, so a client hoarding idle sockets loses its own, not others' service;
- if every connection is busy with a request, the new one is answered ``503`` with
  ``Retry-After`` and closed (it never reaches the app, and holds its descriptor for at
  most a second while its request is drained).

:func:`guarded_protocol` wraps uvicorn's HTTP protocol class with the check.
"""
from __future__ import annotations

import resource
import time
from collections import Counter

RESERVE_FDS = 64  # descriptors left for the store, the prediction log, the model and libraries
_BUSY_BODY = (b'{"detail": "the server is at serving.max_connections with every connection busy; '
              b'retry shortly"}')
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                 b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
                 % (len(_BUSY_BODY), _BUSY_BODY))
_LINGER_S = 1.0  # a refused connection is drained this long, so its client reads the 503


def default_max_connections() -> int:
    """The soft open-file limit minus :data:`RESERVE_FDS` (at least 16)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 65536
    return max(16, int(soft) - RESERVE_FDS)


class ConnectionLimit:
    """The open connections of one server and what the limit did (for ``/metrics``)."""

    def __init__(self, maximum: int | None = None):
        self.maximum = int(maximum) if maximum else default_max_connections()
        self.open: set = set()
        self.refused = 0   # answered 503: at the limit with every connection busy
        self.evicted = 0   # idle connections closed to admit a new one

    def admit(self, conn) -> bool:
        """Room for ``conn`` (closing an idle connection if needed), else False."""
        if len(self.open) >= self.maximum:
            victim = self._idle_victim()
            if victim is None:
                self.refused += 1
                return False
            self.open.discard(victim)
            self.evicted += 1
            victim.evict()
        self.open.add(conn)
        return True

    def release(self, conn) -> None:
        self.open.discard(conn)

    def _idle_victim(self):
        """The oldest idle connection of the peer holding the most connections."""
        idle = [c for c in self.open if c.idle()]
        if not idle:
            return None
        held = Counter(c.peer for c in self.open)
        return min(idle, key=lambda c: (-held[c.peer], c.active_at))


class ConnectionGuard:
    """Mixin for a uvicorn HTTP protocol class (outermost): admission by ``limit``."""

    limit: ConnectionLimit
    peer = None
    active_at = 0.0
    _refused = None  # the transport of a connection answered 503

    def connection_made(self, transport):
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else peer
        self.active_at = time.monotonic()
        if not self.limit.admit(self):
            self._refuse(transport)
            return
        super().connection_made(transport)

    def _refuse(self, transport) -> None:
        """503 now; drain what the client sends for a moment so it reads the answer
        (closing on unread data would reset the connection instead)."""
        import asyncio
        self._refused = transport
        transport.write(BUSY_RESPONSE)
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # drained
        self.active_at = time.monotonic()
        super().data_received(data)

    def eof_received(self):
        if self._refused is not None:
            self._refused.close()
            return None
        return super().eof_received()

    def connection_lost(self, exc):
        if self._refused is not None:
            return  # never reached uvicorn
        self.limit.release(self)
        super().connection_lost(exc)

    def idle(self) -> bool:
        """No request in progress: none sent yet, or between keep-alive requests."""
        cycle = getattr(self, "cycle", None)
        return cycle is None or cycle.response_complete

    def evict(self) -> None:
        """Close this idle connection to make room (allowed between HTTP requests)."""
        transport = getattr(self, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.close()


def guarded_protocol(base: type, limit: ConnectionLimit) -> type:
    """A subclass of the uvicorn protocol class ``base`` admitted by ``limit``."""
    return type(f"Guarded{base.__name__}", (ConnectionGuard, base), {"limit": limit})
