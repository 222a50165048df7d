"""A real uvicorn server in a thread of the test process, on 127.0.0.1 and an ephemeral
port, stopped when the ``with`` block ends (for the raw-socket hostile-client tests)."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

from mlops.serving.http.app import build_server


@contextmanager
def live_server(state):
    """Yield the port of a running server for ``state``; stop it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = build_server(state, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def read_until_closed(sock: socket.socket, limit_s: float = 20.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit_s``)."""
    sock.settimeout(limit_s)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    except ConnectionResetError:
        return out
    except socket.timeout:
        raise AssertionError(f"the server kept the connection open; got {out[:200]!r}") from None
