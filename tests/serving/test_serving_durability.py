"""Durable prediction log: the journal format, crash recovery, and a real kill -9 under load.

An acknowledged prediction (a 200 answer) must be in the log even when the server is
SIGKILLed a moment later: the journal is fsynced (one group commit per micro-batch)
before the answer leaves.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import polars as pl
from serving_world import free_port, record

from mlops.serving.prediction_log import PredictionLog, journal, scan_prediction_log

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _frame(log: PredictionLog, ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"request_id": ids, "probability": [0.5] * len(ids),
                         "served_at": [datetime.now(timezone.utc)] * len(ids)}).select(
        [(pl.col(c) if c in ("request_id", "probability", "served_at") else pl.lit(None))
         .cast(t).alias(c) for c, t in log.schema.items()])


def test_torn_tail_is_ignored_and_complete_records_survive(world, tmp_path):
    log = PredictionLog(tmp_path / "plog", world.plan, flush_records=10**6, durable=True)
    seg = journal.Segment.create(tmp_path / "j", "0001-test-000001")
    for k in range(3):
        seg.append(_frame(log, [f"r{k}a", f"r{k}b"]))
    seg.sync()
    whole = seg.path.read_bytes()
    seg.close()
    log.close()
    assert journal.read_segment(seg.path)["request_id"].to_list() == \
        ["r0a", "r0b", "r1a", "r1b", "r2a", "r2b"]
    # a crash in the middle of the 4th write: header + half a payload
    extra = journal._HEADER.pack(journal.MAGIC, 123, 10_000) + b"x" * 500
    seg.path.write_bytes(whole + extra)
    assert journal.read_segment(seg.path).height == 6
    # a flipped byte in the last record: its crc fails, the first two records remain
    broken = bytearray(whole)
    broken[-3] ^= 0xFF
    seg.path.write_bytes(bytes(broken))
    assert journal.read_segment(seg.path)["request_id"].to_list() == ["r0a", "r0b", "r1a", "r1b"]


def test_acknowledged_records_are_readable_before_compaction_and_once_after(world, tmp_path):
    d = tmp_path / "plog"
    log = PredictionLog(d, world.plan, flush_records=5, flush_seconds=3600)
    log.append_frame(_frame(log, ["a", "b", "c"])).result(timeout=10)  # durable now
    assert list(d.glob("*.parquet")) == []          # still only in the journal
    assert sorted(scan_prediction_log(d).collect()["request_id"]) == ["a", "b", "c"]
    log.append_frame(_frame(log, ["d", "e", "f"])).result(timeout=10)  # 6 >= 5: compaction
    log.flush()
    assert len(list(d.glob("*.parquet"))) == 1 and log.pending() == 0
    assert {p.stat().st_mode & 0o777 for p in d.glob("*.parquet")} == {0o600}
    assert list((d / "journal").glob("*.wal")) == []
    got = scan_prediction_log(d).collect()["request_id"].to_list()
    assert sorted(got) == ["a", "b", "c", "d", "e", "f"]
    log.close()


def test_startup_recovers_a_crashed_servers_journal_but_not_a_live_one(world, tmp_path):
    d = tmp_path / "plog"
    proto = PredictionLog(tmp_path / "proto", world.plan)
    proto.close()
    # a crashed writer: a segment on disk nobody holds
    dead = journal.Segment.create(d / "journal", "0001-dead-000001")
    dead.append(_frame(proto, ["x1", "x2"]))
    dead.sync()
    dead.close()
    # a live writer in "another server": its segment is locked
    live = journal.Segment.create(d / "journal", "0002-live-000001")
    live.append(_frame(proto, ["y1"]))
    live.sync()
    log = PredictionLog(d, world.plan)
    assert (log.recovered.segments, log.recovered.rows) == (1, 2)
    assert not dead.path.exists() and live.path.exists()
    assert pl.read_parquet(d / journal.part_name("0001-dead-000001"))["request_id"].to_list() \
        == ["x1", "x2"]
    # the reader sees both, each once
    assert sorted(scan_prediction_log(d).collect()["request_id"]) == ["x1", "x2", "y1"]
    log.close()
    fcntl.flock(live.fd, fcntl.LOCK_UN)
    live.close()


def test_buffered_mode_is_what_durable_false_means(world, tmp_path):
    log = PredictionLog(tmp_path, world.plan, flush_records=100, flush_seconds=3600,
                        durable=False)
    assert log.append_frame(_frame(log, ["a"])) is None  # nothing to wait for
    assert log.pending() == 1 and not (tmp_path / "journal").exists()
    log.close()
    assert pl.read_parquet(tmp_path / "*.parquet")["request_id"].to_list() == ["a"]


def _start(tmp_path: Path, flush_records: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    err = open(tmp_path / "server.stderr", "wb")  # a file: an unread pipe can fill up
    proc = subprocess.Popen([sys.executable, str(HERE / "serving_server_main.py"), str(port),
                             str(tmp_path), str(flush_records)], env=env,
                            stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (tmp_path / "server.stderr").read_text()
        assert time.monotonic() < deadline, "server did not start within 60 s"
        time.sleep(0.1)


def test_sigkill_under_load_loses_no_acknowledged_prediction(world, tmp_path):
    """8 concurrent clients; SIGKILL once 400 records are acknowledged, requests in flight."""
    recs = [record(r, world.plan) for r in world.events.tail(3000).to_dicts()]
    proc, base = _start(tmp_path, flush_records=150)  # compactions happen during the load
    acked: list[str] = []
    sent: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        i = k
        with httpx.Client(base_url=base, timeout=10) as c:
            while not stop.is_set():
                batch = [dict(recs[(i + j) % len(recs)], request_id=f"c{k}-{i}-{j}")
                         for j in range(1 + i % 3)]
                i += 8
                with lock:
                    sent.extend(r["request_id"] for r in batch)
                try:
                    r = c.post("/predict", json={"records": batch})
                except httpx.TransportError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.extend(r.json()["request_ids"])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 400 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 400, f"only {len(acked)} acknowledged before the deadline"
    log_dir = tmp_path / "plog" / "server"  # the replica's own directory
    assert list((log_dir / "journal").glob("*.wal")), "kill -9 should leave a journal behind"
    logged = scan_prediction_log(log_dir).collect()["request_id"].to_list()
    missing = set(acked) - set(logged)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged predictions lost"
    assert len(logged) == len(set(logged))   # nothing counted twice
    assert set(logged) <= set(sent)
    # the next server's startup folds the journal into parquet: same records, once
    log = PredictionLog(log_dir, world.plan)
    log.close()
    assert not list((log_dir / "journal").glob("*.wal"))
    parts = pl.read_parquet(log_dir / "*.parquet")["request_id"].to_list()
    assert sorted(parts) == sorted(logged)
