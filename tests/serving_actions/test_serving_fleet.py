"""A fleet: 3 ``action=serve`` replicas of one model behind round-robin, sharing one real
redis-server (the online store, the breaker state) and one prediction log directory.

What must hold (issue 25, "A fleet of replicas"):
- an entity's window counts grow across replicas (each sees the events the others stored);
- an Idempotency-Key retry on another replica replays the first answer, logged once;
- a trip on one replica makes the others answer per ``breaker.on_trip`` (abstain) once
  they poll the shared state (``breaker.poll_seconds``);
- kill -9 of one replica under load loses no acknowledged prediction: every request id a
  200 answered is in the merged logs (the killed replica's journal included), once;
- ``action=monitor monitoring.source=prediction_log`` counts every replica's records once:
  as many rows as predictions were acknowledged.
Run with ``-s`` to see the measured figures.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from support import ROOT, SMALL, redis_server, wait_until_healthy

from mlops.serving.prediction_log import default_replica_id, replica_dirs, scan_prediction_log

POLL = 0.25  # serving.breaker.poll_seconds of the fleet
ENTITY = "fleet-entity-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    """A private redis-server in a temp dir on a free 127.0.0.1 port, stopped after the test."""
    (tmp_path / "redis").mkdir()
    with redis_server(tmp_path / "redis") as url:
        yield url


class Fleet:
    """Three ``python run.py action=serve serving=fleet`` processes on free ports."""

    def __init__(self, tmp_path: Path, redis_url: str):
        self.ports = [_free_port() for _ in range(3)]
        self.bases = [f"http://127.0.0.1:{p}" for p in self.ports]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("MLOPS_HOME", None)
        self.procs, self.logs = [], []
        for k, port in enumerate(self.ports):
            out = open(tmp_path / f"replica{k}.out", "wb")  # a file: an unread pipe can fill up
            self.logs.append(tmp_path / f"replica{k}.out")
            self.procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "action=serve", "serving=fleet", *SMALL,
                 f"paths.home={tmp_path / 'home'}", f"hydra.run.dir={tmp_path / f'run{k}'}",
                 f"serving.port={port}", "serving.alias=1", f"serving.store.url={redis_url}",
                 f"serving.breaker.poll_seconds={POLL}", "serving.breaker.window=200",
                 "serving.breaker.min_requests=100", "serving.log_flush_records=200"],
                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT))
            out.close()

    def wait(self) -> None:
        for base, proc, log in zip(self.bases, self.procs, self.logs):
            wait_until_healthy(base, proc, timeout=90, output=log.read_text)

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown compacts the log), then SIGKILL after 30 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _template(base: str) -> tuple[dict, str, str]:
    """(an example record of the served plan, its entity field, its timestamp field)."""
    doc = httpx.get(f"{base}/openapi.json", timeout=10).json()
    meta = httpx.get(f"{base}/metadata", timeout=10).json()
    return doc["components"]["schemas"]["Record"]["example"], meta["plan"]["entity"], \
        meta["plan"]["timestamp"]


def _post(client: httpx.Client, base: str, records: list[dict]) -> httpx.Response:
    return client.post(f"{base}/predict", json={"records": records}, timeout=10)


def test_three_replicas_share_windows_breaker_and_logs(run_action, redis_url, tmp_path):
    assert run_action("action=train", *SMALL, out="train")[0] == 0
    fleet = Fleet(tmp_path, redis_url)
    acked: list[str] = []
    try:
        fleet.wait()
        example, entity, ts = _template(fleet.bases[0])
        t0 = datetime(2024, 6, 1)

        def rec(i: int, who: str, rid: str, **extra) -> dict:
            return {**example, entity: who, ts: (t0 + timedelta(minutes=i)).isoformat(),
                    "request_id": rid, **extra}

        readies = [httpx.get(f"{b}/ready", timeout=10).json() for b in fleet.bases]
        assert [r["replica"] for r in readies] == [default_replica_id(p) for p in fleet.ports]
        with httpx.Client() as client:
            # 1. one entity's events, round-robin: each replica sees what the others stored
            for i in range(9):
                r = _post(client, fleet.bases[i % 3], [rec(i, ENTITY, f"w{i}")])
                assert r.status_code == 200, r.text
                acked += r.json()["request_ids"]
            # Idempotency-Key answers are shared: a retry on another replica is the first
            # answer, scored and logged once (the log's ids are checked unique below)
            body = {"records": [rec(50, "idem-entity", "idem-1")]}
            answers = [client.post(f"{b}/predict", json=body, timeout=10,
                                   headers={"Idempotency-Key": "fleet-key-1"}) for b in fleet.bases]
            assert [a.status_code for a in answers] == [200] * 3, answers[0].text
            assert answers[0].json() == answers[1].json() == answers[2].json()
            acked += answers[0].json()["request_ids"]
            # 2. a trip on one replica (its own window drifts) reaches the others
            waited = _trip_one_and_watch_the_others(client, fleet, rec, acked)
        # 3. kill -9 of one replica under load, round-robin over all three
        killed_at, during = _load_and_kill(fleet, rec, acked)
    finally:
        fleet.stop()
    log_dir = tmp_path / "home" / "predictions"
    log = scan_prediction_log(log_dir).collect()
    _check_windows(log, ENTITY)
    _check_logs(log, acked, fleet, log_dir)
    code, d = run_action("action=monitor", *SMALL, "monitoring.source=prediction_log",
                         "monitoring.alias=1", out="monitor")
    monitored = _monitored_rows(d)
    # every logged record once: the acknowledged ones, plus at most the records in flight
    # on the killed replica (durable before answered; their answers never left)
    assert code in (0, 3) and monitored == log.height, (monitored, log.height)
    assert 0 <= log.height - len(acked) <= 6 * 3, (log.height, len(acked))
    print(f"\nfleet: {len(acked)} predictions acknowledged, {log.height} logged records, "
          f"{log['request_id'].is_in(acked).sum()} acknowledged ids found, monitor counted "
          f"{monitored}; trip propagation {', '.join(f'{w * 1000:.0f} ms' for w in waited)} "
          f"(poll {POLL * 1000:.0f} ms); killed after {killed_at} acks, {during} more acked after")


def _trip_one_and_watch_the_others(client, fleet: Fleet, rec, acked: list[str]) -> list[float]:
    """Drifted traffic (amounts far beyond training, one record per new entity) to replica 0
    until it abstains; then seconds until each other replica abstains too."""
    tripped_at, i = None, 0
    while tripped_at is None:
        assert i < 2000, "replica 0 never tripped on drifted traffic"
        batch = [rec(100 + i + j, f"drift-{i + j}", f"d{i + j}", amount=250_000.0) for j in range(20)]
        i += 20
        r = _post(client, fleet.bases[0], batch)
        assert r.status_code == 200, r.text
        acked += r.json()["request_ids"]
        if "abstain" in r.json()["decisions"]:
            tripped_at = time.monotonic()
    waited = []
    for k in (1, 2):
        n = 0
        while True:
            r = _post(client, fleet.bases[k], [rec(5000 + n, f"probe-{k}", f"p{k}-{n}")])
            assert r.status_code == 200, r.text
            acked += r.json()["request_ids"]
            if r.json()["decisions"] == ["abstain"]:
                assert any("breaker" in w for w in r.json()["warnings"][0])  # names the reason
                waited.append(time.monotonic() - tripped_at)
                break
            assert time.monotonic() - tripped_at < 30, f"replica {k} never saw the trip"
            n += 1
            time.sleep(0.02)
    return waited


def _load_and_kill(fleet: Fleet, rec, acked: list[str]) -> tuple[int, int]:
    """6 clients round-robin over the replicas; replica 2 gets SIGKILL after 300 acks (with
    requests in flight), the others keep serving 1 s more."""
    lock, stop = threading.Lock(), threading.Event()

    def client(k: int) -> None:
        n = 0
        with httpx.Client() as c:
            while not stop.is_set():
                n += 1
                batch = [rec(10_000 + n, f"load-{k}-{n % 40}", f"c{k}-{n}-{j}") for j in range(1 + n % 3)]
                try:
                    r = _post(c, fleet.bases[(n + k) % 3], batch)
                except httpx.TransportError:
                    continue  # the killed replica: not acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.extend(r.json()["request_ids"])

    start = len(acked)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while len(acked) - start < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        fleet.procs[2].send_signal(signal.SIGKILL)
        fleet.procs[2].wait(timeout=10)
        killed_at = len(acked) - start
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert killed_at >= 300 and fleet.procs[2].returncode == -signal.SIGKILL
    return killed_at, len(acked) - start - killed_at


def _check_windows(log: pl.DataFrame, who: str) -> None:
    """The k-th event of the entity (replica k % 3) counted the k events before it,
    whichever replica stored them."""
    mine = log.filter(pl.col("entity") == who).sort("event_ts").unnest("features")
    assert mine["replica"].n_unique() == 3
    counts = [c for c in mine.columns if c.startswith("count_") or "_count_" in c]
    assert counts, mine.columns
    for c in counts:
        assert mine[c].to_list() == [float(k) for k in range(mine.height)], c


def _check_logs(log: pl.DataFrame, acked: list[str], fleet: Fleet, log_dir: Path) -> None:
    """Every acknowledged id once, from all three replicas (the killed one's journal too)."""
    ids = log["request_id"].to_list()
    assert len(ids) == len(set(ids)), "a record counted twice"
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged predictions lost"
    killed = default_replica_id(fleet.ports[2])
    assert set(log["replica"].unique()) == {default_replica_id(p) for p in fleet.ports}
    assert [r for r, _ in replica_dirs(log_dir)] == sorted(log["replica"].unique())
    # nobody compacted the killed replica's journal: its acknowledged records were read there
    assert list((log_dir / killed / "journal").glob("*.wal"))


def _monitored_rows(out_dir: Path) -> int:
    import json
    result = json.loads((out_dir / "monitor.json").read_text())
    return int(result["current"]["rows"])
