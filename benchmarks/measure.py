"""What every benchmark measures the same way: a whole process (wall time, peak memory),
interleaved repeats, load averages, the peers' interpreters, and one JSON row per result.

A whole process is timed from outside (``Popen`` to ``wait4``: imports, reading the files
and writing the output included); its peak memory is its ``VmHWM`` (``/proc/PID/status``),
read while it runs: ``ru_maxrss`` would carry the parent's memory at fork (the parent
holds the data), which made a 10 MB child look like 200 MB.

Peers that need their own pins (NannyML, Evidently, Feast, MLflow) run
in their own virtualenv: ``peer_python("peers")`` reads ``MLOPS_BENCH_PEERS_PYTHON``
(default ``/work/venv-peers/bin/python``), and so on for ``feast`` and ``mlflow``; a missing
one is skipped with one line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PEER_PYTHON = {"peers": "/work/venv-peers/bin/python", "feast": "/work/venv-feast/bin/python",
                       "mlflow": "/work/venv-mlflow/bin/python"}
SETUP = {"peers": "python -m venv /work/venv-peers && /work/venv-peers/bin/pip install nannyml evidently 'pandas<3'",
         "feast": "python -m venv /work/venv-feast && /work/venv-feast/bin/pip install feast",
         "mlflow": "python -m venv /work/venv-mlflow && /work/venv-mlflow/bin/pip install mlflow scikit-learn"}


@dataclass
class Measured:
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str
    returncode: int

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise RuntimeError(f"{what} exited {self.returncode}:\n{self.stderr[-3000:]}")
        return self


def run_process(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None,
                timeout: float = 3600) -> Measured:
    """Run ``cmd`` to its end: wall seconds, peak RSS of the process (MB), output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        peak_kb, status = 0, None
        while status is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            pid, st, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = st
            elif time.perf_counter() - t0 > timeout:
                proc.kill()
            else:
                time.sleep(0.005)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(seconds=seconds, peak_mb=peak_kb / 1024,
                        stdout=out.read().decode(errors="replace"),
                        stderr=err.read().decode(errors="replace"), returncode=proc.returncode)


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident memory so far (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def ours_env(home: str | Path | None = None) -> dict:
    """The environment that runs this checkout's mlops (not an installed one)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    if home is not None:
        env["MLOPS_HOME"] = str(home)
    return env


def peer_python(name: str) -> str | None:
    """The interpreter of a peer's virtualenv, or None (printed: how to make it)."""
    path = os.environ.get(f"MLOPS_BENCH_{name.upper()}_PYTHON", DEFAULT_PEER_PYTHON[name])
    if Path(path).exists():
        return path
    print(f"  skipped: no {name} virtualenv at {path} (make it: {SETUP[name]}; or set "
          f"MLOPS_BENCH_{name.upper()}_PYTHON)")
    return None


def load_average() -> float:
    """The 1-minute load average now (2 cores here: above 2 means waiting for a core)."""
    return round(os.getloadavg()[0], 2)


def best_of(fns: dict, repeat: int) -> dict[str, list[Measured]]:
    """Each zero-argument function ``repeat`` times, interleaved (load hits all alike)."""
    runs: dict[str, list[Measured]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            runs[name].append(fn())
    return runs


@dataclass
class Row:
    """One line of the benchmark table: ours against one peer on one task."""

    benchmark: str
    peer: str
    ours_s: float
    peer_s: float
    timer: str                        # "whole process" | "in process" ...
    ours_peak_mb: float | None = None
    peer_peak_mb: float | None = None
    values: str = ""                  # what was asserted equal
    load: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float:
        """peer time / our time: above 1 we are faster."""
        return self.peer_s / self.ours_s

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def emit(rows: list[Row], path: str | None) -> None:
    """Print the rows; append them to ``path`` (JSON lines) for run_all.py."""
    for r in rows:
        mem = (f", peak {r.ours_peak_mb:,.0f} / {r.peer_peak_mb:,.0f} MB"
               if r.ours_peak_mb and r.peer_peak_mb else "")
        print(f"  {r.benchmark} vs {r.peer}: ours {r.ours_s:.3g} s, peer {r.peer_s:.3g} s, "
              f"peer/ours {r.ratio:.2f}x ({r.timer}{mem}; load {r.load})", flush=True)
    if path:
        with open(path, "a") as fh:
            for r in rows:
                fh.write(json.dumps(r.to_dict()) + "\n")


def python() -> str:
    return sys.executable
