"""The command line freezes its objects at exit (``gc.freeze`` in an atexit handler, so the
interpreter's last garbage collections skip them), and the exit still does what an exit
does: the run's files are complete, handlers registered during the run run first, a file
left open is flushed, the exit code is the run's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# hydra_main with a task that leaves a file open and registers an atexit handler, as a run might
PROBE = """\
import atexit, gc, sys
import mlops.app
from mlops.cli import hydra_main
out, code = sys.argv[1], int(sys.argv[2])  # hydra_main rewrites sys.argv
left_open = open(out + "/left_open.txt", "w")

def at_exit():  # registered during the run: runs before the freeze
    with open(out + "/at_exit.json", "w") as fh:
        fh.write(str(gc.get_freeze_count()))

def task(cfg):
    left_open.write("written, never closed")
    atexit.register(at_exit)
    print("task ran")
    sys.exit(code)

def last():  # registered before the run: runs after the freeze
    print(f"frozen at exit: {gc.get_freeze_count() > 0}", flush=True)

atexit.register(last)
mlops.app.run = task
hydra_main(["action=drift", f"hydra.run.dir={out}/run"])
"""


def _probe(tmp_path: Path, code: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), str(code)], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MLOPS_HOME": str(tmp_path / "home")})


def test_the_exit_freezes_after_the_runs_own_handlers_and_flushes_what_was_left_open(tmp_path):
    proc = _probe(tmp_path, 0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["task ran", "frozen at exit: True"]
    assert json.loads((tmp_path / "at_exit.json").read_text()) == 0  # the run's handler ran before the freeze
    assert (tmp_path / "left_open.txt").read_text() == "written, never closed"


def test_the_exit_code_is_the_runs(tmp_path):
    proc = _probe(tmp_path, 3)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "frozen at exit: True"


def test_a_real_run_writes_every_file_before_it_exits(tmp_path):
    import polars as pl
    ref = pl.DataFrame({"x": [float(i % 97) for i in range(400)], "c": ["a", "b"] * 200})
    ref.write_parquet(tmp_path / "ref.parquet")
    ref.with_columns(pl.col("x") + 200.0).write_parquet(tmp_path / "cur.parquet")
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "action=drift",
                           f"monitoring.reference={tmp_path / 'ref.parquet'}",
                           f"monitoring.current={tmp_path / 'cur.parquet'}", f"hydra.run.dir={tmp_path / 'out'}"],
                          cwd=tmp_path, text=True, capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MLOPS_HOME": str(tmp_path / "home")})
    assert proc.returncode == 3, proc.stderr[-3000:]  # drift, alerted (monitoring.on_drift: [alert])
    assert proc.stdout.strip() == f"report: {tmp_path / 'out' / 'drift.html'}"
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["features"]["x"]["ks_stat"] == 1.0
    assert json.loads((tmp_path / "out" / "result.json").read_text())["status"] == "ok"
    assert (tmp_path / "out" / "drift.html").read_text().rstrip().endswith("</html>")
    alert = json.loads((tmp_path / "home" / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["run"] == str(tmp_path / "out")
