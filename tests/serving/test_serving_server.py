"""A real uvicorn server in a subprocess on 127.0.0.1: HTTP in, graceful shutdown out."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import polars as pl
from serving_world import free_port, record
from support import wait_until_healthy

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def test_uvicorn_subprocess_serves_and_flushes_the_log_on_shutdown(world, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(HERE / "serving_server_main.py"), str(port),
                             str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, output=lambda: proc.stdout.read().decode())
        recs = [record(r, world.plan) for r in world.events.head(30).to_dicts()]
        with httpx.Client(base_url=base, timeout=10) as client:
            r = client.post("/predict", json={"records": recs[:20]})
            assert r.status_code == 200 and len(r.json()["probabilities"]) == 20
            bad = client.post("/predict", json={"records": [{"user_id": "u1"}]})
            assert bad.status_code == 422
            r2 = client.post("/invocations", json={"dataframe_records": recs[20:]})
            assert r2.status_code == 200 and len(r2.json()["predictions"]) == 10
            assert client.get("/ready").json()["ready"] is True
            ids = r.json()["request_ids"]
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown: -SIGTERM is a clean exit
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    # graceful shutdown flushed the buffered log (flush thresholds were far away)
    log = pl.read_parquet(tmp_path / "plog" / "server" / "*.parquet")
    assert log.height == 30 and set(ids) <= set(log["request_id"].to_list())
