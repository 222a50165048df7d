"""Hostile connections against a real uvicorn on 127.0.0.1 (raw sockets): a chunked
body over the limit is cut off while reading, slow clients are timed out."""
from __future__ import annotations

import json
import select
import socket
import time

from live_server import live_server, read_until_closed
from serving_world import record

HEAD = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def test_a_chunked_body_over_the_limit_is_cut_off_while_reading(make_state):
    limit = 20_000
    state = make_state(max_body_bytes=limit)
    chunk = b"x" * 4096
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    with live_server(state) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        opening = b'{"records": ["'
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                     + b"%x\r\n%s\r\n" % (len(opening), opening))
        sent, answered = 0, b""
        # a client that would upload 200 MB: the server answers and closes long before
        while sent < 200_000_000:
            ready, _, _ = select.select([sock], [], [], 0)
            if ready:
                answered = sock.recv(65536)
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answered += read_until_closed(sock)
    assert _status(answered) == 413, answered[:300]
    assert b"max_body_bytes" in answered and b"connection: close" in answered.lower()
    # the server stopped reading at the limit: what was sent is the limit plus what the
    # kernel's socket buffers absorbed, not the 200 MB the client meant to send
    assert sent < 20_000_000


def test_a_declared_length_over_the_limit_is_refused_before_reading(make_state):
    state = make_state(max_body_bytes=20_000)
    with live_server(state) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(HEAD + b"Content-Length: 300000000\r\n\r\n{")
        answered = read_until_closed(sock)
    assert _status(answered) == 413 and b'"body"' in answered


def test_a_client_trickling_its_headers_is_cut_off(make_state):
    state = make_state(header_timeout_seconds=1.0)
    head = HEAD + b"X-Padding: " + b"a" * 200 + b"\r\n\r\n"
    with live_server(state) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sent = 0
        closed = False
        for byte in head:  # one byte every 50 ms: the whole head would take ~18 s
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sent += 1
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                closed = True
                break
        rest = read_until_closed(sock)
    assert closed and sent < len(head)
    assert rest == b"" or _status(rest) == 408


def test_a_client_that_connects_and_sends_nothing_is_disconnected(make_state):
    state = make_state(header_timeout_seconds=1.0)
    with live_server(state) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        answered = read_until_closed(sock)
    assert _status(answered) == 408


def test_a_client_trickling_its_body_gets_408(make_state, world):
    state = make_state(body_timeout_seconds=1.0)
    with live_server(state) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(HEAD + b"Content-Length: 5000\r\n\r\n" + b'{"records": [')
        time.sleep(0.3)
        sock.sendall(b" ")
        answered = read_until_closed(sock)
        # the server still serves well-behaved clients
        body = json.dumps({"records": [record(world.events.row(500, named=True),
                                              world.plan)]}).encode()
        with socket.create_connection(("127.0.0.1", port)) as ok:
            ok.sendall(HEAD + b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                       % (len(body), body))
            good = read_until_closed(ok)
    assert _status(answered) == 408 and b"body_timeout_seconds" in answered
    assert _status(good) == 200


def test_idle_keep_alive_connections_are_closed(make_state):
    state = make_state(keep_alive_seconds=1.0, header_timeout_seconds=30.0)
    with live_server(state) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answered = read_until_closed(sock)  # returns only once the server closes
    assert _status(answered) == 200 and b'"ok"' in answered
