"""Checks shared by the fault-injection tests (imported by name: conftest puts this folder on
sys.path)."""
from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import resource
import select
import signal
import subprocess
import sys
import time
from pathlib import Path


def one_line_error(stderr: str) -> str:
    """The run's stderr is exactly one ``error: ...`` line (plus report/notes lines on stdout
    elsewhere): no traceback. Returns that line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def finishes(fn, seconds: float = 20.0, memory: int = 1 << 30):
    """Run ``fn`` in a forked child limited to ``memory`` more bytes of address space;
    fail (instead of hanging the suite or exhausting the machine's memory, which is what
    reading ``/dev/zero`` or a FIFO without a check does) when it is not done in time.
    Returns ``(result, exception)`` as the child saw them (pickled back)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no return from here
        os.close(read_end)
        try:
            used = _address_space()
            resource.setrlimit(resource.RLIMIT_AS, (used + memory, used + memory))
            try:
                outcome = (fn(), None)
            except BaseException as exc:  # noqa: BLE001 - handed back to the test
                outcome = (None, exc)
            try:
                data = pickle.dumps(outcome)
            except Exception:  # noqa: BLE001
                data = pickle.dumps((None, RuntimeError(repr(outcome))))
            with os.fdopen(write_end, "wb") as fh:
                fh.write(data)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + seconds
    with os.fdopen(read_end, "rb") as fh:
        while True:
            ready, _, _ = select.select([fh], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"still running after {seconds:g} s (hung, or reading without end)")
            chunk = os.read(fh.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    assert chunks, "the child died without an answer (killed for memory?)"
    return pickle.loads(b"".join(chunks))


def _address_space() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


HERE = Path(__file__).resolve().parent


def start_server(workdir: Path, settings: dict | None = None, *, env: dict | None = None,
                 open_files: int | None = None):
    """``fault_server.py`` in a subprocess on a free port; returns (process, base URL) once
    ``/health`` answers. Its stderr goes to ``workdir/server.stderr`` (a file: an unread
    pipe can fill up). ``open_files``: the server's soft RLIMIT_NOFILE."""
    sys.path.insert(0, str(HERE.parent / "serving"))
    from serving_world import free_port
    from support import wait_until_healthy
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "server.stderr", "ab") as err:
        proc = subprocess.Popen([sys.executable, str(HERE / "fault_server.py"), str(port), str(workdir),
                                 json.dumps(settings or {})],
                                env={**os.environ, "PYTHONPATH": str(HERE.parents[1]), **(env or {})},
                                stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=None if open_files is None else lambda: resource.setrlimit(
                                    resource.RLIMIT_NOFILE, (open_files, resource.getrlimit(
                                        resource.RLIMIT_NOFILE)[1])))
    base = f"http://127.0.0.1:{port}"
    wait_until_healthy(base, proc, timeout=90, output=lambda: (workdir / "server.stderr").read_text())
    return proc, base


def stop_server(proc) -> None:
    """SIGTERM, then SIGKILL if it has not gone within 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def request_records(n: int) -> list[dict]:
    """``n`` request records of the serving tests' world (its last events)."""
    sys.path.insert(0, str(HERE.parent / "serving"))
    from serving_world import SPEC, record

    from mlops.data.synthetic import SyntheticParams, generate
    from mlops.features.compile import compile_plan
    events = generate(SyntheticParams(n_users=80, days=30, seed=7))
    plan = compile_plan(SPEC, events.schema)
    return [record(r, plan) for r in events.tail(n).to_dicts()]


def tiny_plan():
    """A two-feature plan: what a prediction log's schema needs, nothing more."""
    import polars as pl

    from mlops.features.compile import compile_plan
    return compile_plan({"name": "t", "entity": "uid", "timestamp": "ts", "raw": ["x", "z"],
                         "label": {"column": "y"}},
                        {"uid": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64, "z": pl.Float64,
                         "y": pl.Int8})


def log_row(i: int, schema: dict) -> list:
    """One logged prediction as the single-record fast path writes it (schema column order)."""
    now = int(_dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc).timestamp() * 1e6) + i
    values = {"request_id": f"r{i:04d}", "entity": f"u{i % 7}", "event_ts": now, "prediction": 1,
              "probability": 0.25, "model_name": "m", "model_version": "1", "plan_hash": "h",
              "variant": None, "served_by": "model", "warnings": [], "breaker_state": "closed",
              "served_at": now, "features": [float(i), 0.5]}
    return [values.get(c) for c in schema]
