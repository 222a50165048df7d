"""Busy and absent stores: a SQLite store locked by another process, a Redis server that
is stopped, stalled or killed, a prediction log whose commit fails. Each request that
cannot be served is answered 503 with Retry-After within ``serving.store.timeout_ms``
(the client's own timeout is the bound: before, the answer was a 500 after 2-5 s),
leaves no prediction-log row, and its retry is logged once."""
from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
from fault_tools import log_row, request_records, start_server, stop_server

from mlops.serving.prediction_log import scan_prediction_log


def SQLiteStore(path, **kwargs):  # noqa: N802 - the class, imported late (see ConnectionLimit)
    from mlops.features.online.sqlite import SQLiteStore
    return SQLiteStore(path, **kwargs)

TIMEOUT_MS = 300


def _post(client, record: dict, rid: str):
    started = time.perf_counter()
    answer = client.post("/predict", json={"records": [dict(record, request_id=rid)]})
    return answer, time.perf_counter() - started


def _logged(workdir) -> list[str]:
    log = scan_prediction_log(workdir / "plog")
    return [] if log is None else log.collect()["request_id"].to_list()


def test_a_sqlite_store_locked_by_another_process_is_unavailable_within_the_timeout(tmp_path):
    from mlops.errors import StoreUnavailableError
    store = SQLiteStore(tmp_path / "s.sqlite", timeout_ms=TIMEOUT_MS)
    store.append_events(["u1"], [1], ["{}"])
    other = sqlite3.connect(tmp_path / "s.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write lock
    with pytest.raises(StoreUnavailableError, match="serving.store.timeout_ms") as caught:
        store.append_events(["u1"], [2], ["{}"])
    assert caught.value.retry_after >= 1
    assert [r[1] for r in store.read_events(["u1"], 0)] == [1]  # readers are not blocked (WAL)
    other.execute("ROLLBACK")
    assert store.append_events(["u1"], [2], ["{}"]) == 1
    store.close()


def test_a_store_held_by_a_stuck_request_is_unavailable_to_the_others(tmp_path):
    from mlops.errors import StoreUnavailableError
    store = SQLiteStore(tmp_path / "s.sqlite", timeout_ms=TIMEOUT_MS)
    release = threading.Event()

    def stuck():
        with store._lock:  # a request inside the store that does not come back
            release.wait(10)
    holder = threading.Thread(target=stuck)
    holder.start()
    time.sleep(0.05)
    try:
        with pytest.raises(StoreUnavailableError, match="busy"):
            store.read_events(["u1"], 0)
        assert store.ping() is False
    finally:
        release.set()
        holder.join()
    assert store.read_events(["u1"], 0) == [] and store.ping()
    store.close()


def test_an_unreachable_redis_is_unavailable_not_a_raw_error():
    pytest.importorskip("redis")
    from mlops.errors import StoreUnavailableError
    from mlops.features.online.redis import RedisStore
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisStore(f"redis://:secret-pw@127.0.0.1:{port}/0", timeout_ms=TIMEOUT_MS)
    with pytest.raises(StoreUnavailableError) as caught:
        store.read_events(["u1"], 0)
    assert f"127.0.0.1:{port}" in str(caught.value) and "secret-pw" not in str(caught.value)


def test_a_failed_log_commit_leaves_no_row(tmp_path, monkeypatch):
    """The journal write of a batch fails (a full disk at fsync): its requests are answered
    503, so its records must never become log rows, even though their bytes were written."""
    import polars as pl

    from mlops.features.compile import compile_plan
    from mlops.serving.prediction_log import PredictionLog, journal
    plan = compile_plan({"name": "t", "entity": "uid", "timestamp": "ts", "raw": ["x", "z"],
                         "label": {"column": "y"}},
                        {"uid": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64, "z": pl.Float64,
                         "y": pl.Int8})
    log = PredictionLog(tmp_path / "plog", plan, flush_records=10**6)
    log.append_rows([log_row(0, log.schema)]).result(timeout=10)  # acknowledged
    real = journal.Segment.sync

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(journal.Segment, "sync", full)
    failed = log.append_rows([log_row(1, log.schema)])
    with pytest.raises(OSError):
        failed.result(timeout=10)
    monkeypatch.setattr(journal.Segment, "sync", real)
    log.append_rows([log_row(2, log.schema)]).result(timeout=10)
    log.close()
    assert sorted(scan_prediction_log(tmp_path / "plog").collect()["request_id"].to_list()) == \
        ["r0000", "r0002"]


@pytest.mark.slow
def test_a_locked_sqlite_store_answers_503_logs_nothing_and_the_retry_is_logged_once(tmp_path):
    import httpx
    records = request_records(3)
    proc, base = start_server(tmp_path, {"log_flush_records": 100_000, "store": {"timeout_ms": TIMEOUT_MS}})
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert _post(client, records[0], "before")[0].status_code == 200
            other = sqlite3.connect(tmp_path / "online.sqlite", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another process holds the store's write lock
            answer, took = _post(client, records[1], "while-locked")
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1" and "timeout_ms" in answer.json()["detail"]
            assert client.get("/health").status_code == 200  # the server stays responsive
            other.execute("ROLLBACK")
            other.close()
            assert _post(client, records[1], "while-locked")[0].status_code == 200  # the client's retry
    finally:
        stop_server(proc)
    assert sorted(_logged(tmp_path)) == ["before", "while-locked"]  # the retry once, the 503 never
    print(f"503 of a locked SQLite store after {took * 1000:.0f} ms (timeout_ms {TIMEOUT_MS})")


class OwnRedis:
    """A redis-server of this test on a fixed port: stop, stall, kill and start again."""

    def __init__(self, tmp_path):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir, self.proc = tmp_path, None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)

    def signal(self, sig) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)


@pytest.mark.slow
def test_a_redis_store_stalled_or_down_answers_503_and_logs_nothing(tmp_path):
    import httpx
    redis = OwnRedis(tmp_path)
    records = request_records(6)
    settings = {"log_flush_records": 100_000,
                "store": {"type": "redis", "url": f"redis://127.0.0.1:{redis.port}/0", "timeout_ms": TIMEOUT_MS}}
    proc, base = start_server(tmp_path, settings)
    took = {}
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert _post(client, records[0], "up")[0].status_code == 200
            redis.signal(signal.SIGSTOP)  # stalled: accepts nothing, answers nothing
            answer, took["stalled"] = _post(client, records[1], "stalled")
            assert answer.status_code == 503 and answer.headers["retry-after"] == "1", answer.text
            redis.signal(signal.SIGCONT)
            assert _post(client, records[1], "stalled")[0].status_code == 200
            redis.stop()  # down
            answer, took["down"] = _post(client, records[2], "down")
            assert answer.status_code == 503 and answer.headers["retry-after"] == "1", answer.text
            assert "Redis online store" in answer.json()["detail"]
            redis.start()
            assert _post(client, records[2], "down")[0].status_code == 200
    finally:
        stop_server(proc)
        redis.stop()
    assert sorted(_logged(tmp_path)) == ["down", "stalled", "up"]
    print("503 of a Redis store: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in took.items()))
