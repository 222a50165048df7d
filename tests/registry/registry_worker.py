"""Launcher for the registry concurrency and crash tests (run as a script; not collected).

It imports scikit-learn and the registry once, then ``os.fork``s the writers, so the
tests pay one interpreter start instead of one per writer. The launcher never opens
the registry itself: every child opens its own SQLite connection after the fork.

    python registry_worker.py concurrent HOME N        # N children register at once
    python registry_worker.py crash DIE_HOME LOOP_HOME ROUNDS SEED
        # 1) a child SIGKILLs itself between artefact write and DB insert (DIE_HOME)
        # 2) ROUNDS children register in a loop and are SIGKILLed at random times (LOOP_HOME)

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
        version = _register(Registry(home), seed).version
        os.write(out_w, f"{seed} {os.getpid()} {version}\n".encode())

    pids = [_fork(lambda s=seed: child(s)) for seed in range(n)]
    os.close(go_w)
    os.close(out_w)
    statuses = [_status(pid) for pid in pids]
    with os.fdopen(out_r) as fh:
        rows = [line.split() for line in fh.read().splitlines()]
    return {"statuses": statuses, "results": [[int(v) for v in row] for row in rows]}


def crash(die_home: Path, loop_home: Path, rounds: int, seed: int) -> dict:
    def die() -> None:
        reg = Registry(die_home)
        reg._after_artifact_write = lambda: os.kill(os.getpid(), signal.SIGKILL)
        _register(reg, seed)

    die_status = _status(_fork(die))
    rnd = random.Random(seed)
    loop_statuses = []
    for round_ in range(rounds):
        ready_r, ready_w = os.pipe()

        def loop(r=round_, ready_w=ready_w) -> None:
            reg = Registry(loop_home)
            pause = random.Random(r)
            reg._after_artifact_write = lambda: time.sleep(pause.uniform(0, 0.02))
            for i in range(100_000):
                _register(reg, (r + 1) * 100_000 + i)
                if i == 0:
                    os.write(ready_w, b"x")  # at least one version per round, then kill at random

        pid = _fork(loop)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        time.sleep(rnd.uniform(0.05, 0.5))
        os.kill(pid, signal.SIGKILL)
        loop_statuses.append(_status(pid))
    return {"die_status": die_status, "loop_statuses": loop_statuses}


def main() -> None:
    mode = sys.argv[1]
    if mode == "concurrent":
        result = concurrent(Path(sys.argv[2]), int(sys.argv[3]))
    elif mode == "crash":
        result = crash(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
