"""Resources a client or a full disk can exhaust: file descriptors held by idle sockets,
connections all busy, descriptors and files leaked by failed log writes. The server
keeps serving everyone else, answers 503 beyond its limit, and leaks nothing."""
from __future__ import annotations

import collections
import os
import socket
import subprocess
import threading
import time

import pytest
from fault_tools import request_records, start_server, stop_server


def ConnectionLimit(*args):  # noqa: N802 - the class, imported late so the server tests run on any code
    from mlops.serving.http.connections import ConnectionLimit
    return ConnectionLimit(*args)


class FakeConnection:
    def __init__(self, peer: str, active_at: float, busy: bool = False):
        self.peer, self.active_at, self.busy, self.evicted = peer, active_at, busy, False

    def idle(self) -> bool:
        return not self.busy

    def evict(self) -> None:
        self.evicted = True


def test_at_the_limit_the_oldest_idle_connection_of_the_biggest_holder_goes():
    limit = ConnectionLimit(4)
    hog = [FakeConnection("10.0.0.9", t) for t in (1.0, 2.0, 3.0)]
    other = FakeConnection("10.0.0.1", 0.5)  # older, but its client holds one connection
    for conn in (*hog, other):
        assert limit.admit(conn)
    newcomer = FakeConnection("10.0.0.2", 9.0)
    assert limit.admit(newcomer)
    assert [c.evicted for c in hog] == [True, False, False] and not other.evicted
    assert limit.open == {hog[1], hog[2], other, newcomer} and limit.evicted == 1


def test_at_the_limit_with_every_connection_busy_the_new_one_is_refused():
    limit = ConnectionLimit(2)
    busy = [FakeConnection("a", 1.0, busy=True), FakeConnection("b", 2.0, busy=True)]
    assert all(limit.admit(c) for c in busy)
    assert not limit.admit(FakeConnection("c", 3.0)) and limit.refused == 1
    limit.release(busy[0])
    assert limit.admit(FakeConnection("c", 4.0))


def test_the_default_limit_leaves_room_below_the_open_file_limit():
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ConnectionLimit().maximum == max(16, soft - 64)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _clients(base: str, records: list, n_clients: int, per_client: int, tag: str):
    """``n_clients`` threads posting ``per_client`` requests each, a new connection per
    request; returns (status counts, acknowledged request ids)."""
    import httpx
    codes, acked, lock = collections.Counter(), [], threading.Lock()

    def client(k: int) -> None:
        for i in range(per_client):
            rid = f"{tag}{k}-{i}"
            rec = dict(records[(k * per_client + i) % len(records)], request_id=rid)
            try:
                code = httpx.post(f"{base}/predict", json={"records": [rec]}, timeout=10).status_code
            except httpx.TransportError as exc:
                code = type(exc).__name__
            with lock:
                codes[code] += 1
                if code == 200:
                    acked.append(rid)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes, acked


@pytest.mark.slow
def test_one_client_hogging_sockets_does_not_lock_the_others_out(tmp_path):
    """The issue's probe at a 256 open-file limit: one client holds 400 idle sockets."""
    import httpx
    records = request_records(200)
    proc, base = start_server(tmp_path, {"log_flush_records": 100_000}, open_files=256)
    port = int(base.rsplit(":", 1)[1])
    hog = []
    try:
        for _ in range(400):
            try:
                hog.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        time.sleep(0.3)
        codes, _ = _clients(base, records, 8, 20, "o")
        fds = _fds(proc.pid)
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        for s in hog:
            s.close()
        stop_server(proc)
    assert len(hog) == 400 and codes == {200: 160}, codes
    assert fds < 256
    evicted = [line for line in metrics.splitlines() if line.startswith("mlops_connections_evicted ")]
    assert evicted and float(evicted[0].split()[1]) >= 400 - (256 - 64), evicted


def _busy(port: int) -> socket.socket:
    """A connection with a request in progress: its head sent, its body never finished."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"content-length: 1000\r\n\r\n{\"records\": [")
    return s


@pytest.mark.slow
def test_beyond_max_connections_all_busy_a_new_client_gets_503_with_retry_after(tmp_path):
    import httpx
    records = request_records(2)
    proc, base = start_server(tmp_path, {"max_connections": 4, "body_timeout_seconds": 20})
    port = int(base.rsplit(":", 1)[1])
    busy = []
    try:
        busy = [_busy(port) for _ in range(4)]
        time.sleep(0.3)
        refused = httpx.post(f"{base}/predict", json={"records": [records[0]]}, timeout=10)
        for s in busy:
            s.close()
        time.sleep(0.3)
        served = httpx.post(f"{base}/predict", json={"records": [records[1]]}, timeout=10)
    finally:
        for s in busy:
            s.close()
        stop_server(proc)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
    assert "max_connections" in refused.json()["detail"]
    assert served.status_code == 200


@pytest.mark.slow
def test_a_full_disk_under_the_log_leaks_no_descriptor_or_file_and_service_resumes(tmp_path, tmpfs):
    mount = tmpfs("2m")
    work = mount.parent / "work"
    work.mkdir()
    (work / "plog").symlink_to(mount)  # the prediction log on the small filesystem
    records = request_records(200)
    proc, base = start_server(work, {"log_flush_records": 50})
    try:
        before = _fds(proc.pid)
        filler = mount / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
        full_codes, acked_while_full = _clients(base, records, 4, 50, "f")
        during = _fds(proc.pid)
        wal_files = len(list(mount.glob("*/journal/*.wal")))  # the replica's journal
        filler.unlink()
        codes, acked = _clients(base, records, 8, 50, "g")
    finally:
        stop_server(proc)
    assert full_codes == {503: 200} and acked_while_full == [], full_codes
    assert during <= before + 4 and wal_files == 0, (before, during, wal_files)
    assert codes == {200: 400}, codes
    logged = _logged_ids(mount)
    assert sorted(logged) == sorted(acked)  # nothing a 503 answered, everything a 200 did


def _logged_ids(log_dir) -> list[str]:
    from mlops.serving.prediction_log import scan_prediction_log
    log = scan_prediction_log(log_dir)
    return [] if log is None else log.collect()["request_id"].to_list()
