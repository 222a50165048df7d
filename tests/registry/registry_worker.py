"""Launcher for the registry concurrency and crash tests (run as a script; not collected).

It imports scikit-learn and the registry once, then ``os.fork``s the writers, so the
tests pay one interpreter start instead of one per writer. The launcher never opens
the registry itself: every child opens its own SQLite connection after the fork.

    python registry_worker.py concurrent HOME N     # N children register at once
    python registry_worker.py die HOME SEED         # a child SIGKILLs itself between artefact and row
    python registry_worker.py loop HOME ROUNDS SEED # ROUNDS children register in a loop, SIGKILLed at random

REGISTRY_URL / REGISTRY_ARTIFACTS (and PGPASSWORD) in the environment choose the backend.

Prints one JSON object on stdout.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from mlops.registry import Registry


def fitted(seed: int) -> LogisticRegression:
    """The model registered for ``seed`` (the tests rebuild it to compare coefficients)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 2))
    return LogisticRegression().fit(x, (x[:, 0] + rng.normal(0, 0.5, 40) > 0).astype(int))


def _open(home: Path) -> Registry:
    """The registry under ``home``; REGISTRY_URL/REGISTRY_ARTIFACTS (and PGPASSWORD) point it
    at a shared index and artefact store, as on a team's machines."""
    return Registry(home, url=os.environ.get("REGISTRY_URL") or None,
                    artifacts=os.environ.get("REGISTRY_ARTIFACTS") or None)


def _register(reg: Registry, seed: int):
    meta = {"metrics": {"seed": seed}, "code_version": None}
    return reg.register("fraud", fitted(seed), metadata=meta, actor=f"worker-{seed}")


def _fork(body) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def _status(pid: int) -> int:
    """Exit code, or minus the signal number (like subprocess.returncode)."""
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def concurrent(home: Path, n: int) -> dict:
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()

    def child(seed: int) -> None:
        os.close(go_w)
        os.read(go_r, 1)  # returns when the launcher closes its end: everyone starts together
        version = _register(_open(home), seed).version
        os.write(out_w, f"{seed} {os.getpid()} {version}\n".encode())

    pids = [_fork(lambda s=seed: child(s)) for seed in range(n)]
    os.close(go_w)
    os.close(out_w)
    statuses = [_status(pid) for pid in pids]
    with os.fdopen(out_r) as fh:
        rows = [line.split() for line in fh.read().splitlines()]
    return {"statuses": statuses, "results": [[int(v) for v in row] for row in rows]}


def die(home: Path, seed: int) -> dict:
    def body() -> None:
        reg = _open(home)
        reg._after_artifact_write = lambda: os.kill(os.getpid(), signal.SIGKILL)
        _register(reg, seed)

    return {"die_status": _status(_fork(body))}


def loop(home: Path, rounds: int, seed: int) -> dict:
    rnd = random.Random(seed)
    statuses = []
    for round_ in range(rounds):
        ready_r, ready_w = os.pipe()

        def body(r=round_, ready_w=ready_w) -> None:
            reg = _open(home)
            pause = random.Random(r)
            reg._after_artifact_write = lambda: time.sleep(pause.uniform(0, 0.02))
            for i in range(100_000):
                _register(reg, (r + 1) * 100_000 + i)
                if i == 0:
                    os.write(ready_w, b"x")  # at least one version per round, then kill at random

        pid = _fork(body)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        time.sleep(rnd.uniform(0.05, 0.5))
        os.kill(pid, signal.SIGKILL)
        statuses.append(_status(pid))
    return {"loop_statuses": statuses}


def main() -> None:
    mode = sys.argv[1]
    if mode == "concurrent":
        result = concurrent(Path(sys.argv[2]), int(sys.argv[3]))
    elif mode == "die":
        result = die(Path(sys.argv[2]), int(sys.argv[3]))
    elif mode == "loop":
        result = loop(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
