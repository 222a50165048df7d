"""Launcher for the registry concurrency and crash tests (run as a script; not collected).

It imports scikit-learn and the registry once, then ``os.fork``s the writers, so the
tests pay one interpreter start instead of one per writer. The launcher never opens
the registry itself: every child opens its own SQLite connection after the fork.

    python registry_worker.py concurrent HOME N     # N children register at once
    python registry_worker.py die HOME SEED         # a child SIGKILLs itself between artefact and row
    python registry_worker.py loop HOME ROUNDS SEED # ROUNDS children register in a loop, SIGKILLed at random
    python registry_worker.py team BASE N KILLED ROUNDS SEED  # N writers on 2 "machines", KILLED SIGKILLed

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


def _open(home: Path, **kwargs) -> Registry:
    """The registry under ``home``; REGISTRY_URL/REGISTRY_ARTIFACTS (and PGPASSWORD) point it
    at a shared index and artefact store, as on a team's machines."""
    return Registry(home, url=os.environ.get("REGISTRY_URL") or None,
                    artifacts=os.environ.get("REGISTRY_ARTIFACTS") or None, **kwargs)


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


def _team_member(i: int, home: Path, rounds: int, ready_w: int, out_w: int, key_pem: bytes) -> None:
    """One writer of the team: register, approve (as the declared approver), promote,
    and every third round roll back; each acknowledged step is reported on ``out_w``."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from mlops.errors import RegistryError
    key = load_pem_private_key(key_pem, password=None)
    reg = _open(home, approvers=_declared(key), policies={"production": [{"approvals": 1}]})
    pause = random.Random(i)  # widens the window between artefact and row, where a kill hurts most
    reg._after_artifact_write = lambda: time.sleep(pause.uniform(0, 0.05))
    for r in range(rounds):
        seed = i * 1000 + r
        version = _register(reg, seed).version
        os.write(out_w, f"registered {i} {seed} {version}\n".encode())
        if r == 0:
            os.write(ready_w, b"x")
        reg.approve("fraud", version, "alice", private_key=key)
        reg.promote("fraud", version, "production", actor=f"worker-{seed}")
        os.write(out_w, f"promoted {i} {seed} {version}\n".encode())
        if r % 3 == 2:
            try:
                reg.rollback("fraud", actor=f"worker-{seed}")
            except RegistryError:
                pass  # another member's rollback got there first: nothing earlier to go back to


def _declared(key) -> dict:
    """The team's approvers: alice, with the key the launcher made."""
    from mlops.registry.signing import public_key_text
    return {"alice": public_key_text(key.public_key())}


def team(base: Path, n: int, killed: int, rounds: int, seed: int) -> dict:
    """``n`` writers as two machines (homes ``machine-0``/``machine-1`` under ``base``,
    sharing only REGISTRY_URL and REGISTRY_ARTIFACTS); ``killed`` of them SIGKILLed at
    random points after their first registration, the others stop after ``rounds``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    rnd = random.Random(seed)
    # half of the killed writers on each machine
    doomed = sorted(rnd.sample(range(0, n, 2), killed // 2) + rnd.sample(range(1, n, 2), killed - killed // 2))
    out_r, out_w = os.pipe()
    readies, pids = [], []
    for i in range(n):
        ready_r, ready_w = os.pipe()
        home = base / f"machine-{i % 2}"
        pids.append(_fork(lambda i=i, home=home, ready_w=ready_w: _team_member(
            i, home, 100_000 if i in doomed else rounds, ready_w, out_w, pem)))
        os.close(ready_w)
        readies.append(ready_r)
    os.close(out_w)
    for i in doomed:
        os.read(readies[i], 1)
        time.sleep(rnd.uniform(0.0, 0.4))
        os.kill(pids[i], signal.SIGKILL)
    statuses = [_status(pid) for pid in pids]
    with os.fdopen(out_r) as fh:
        lines = [line.split() for line in fh.read().splitlines()]
    public = _declared(key)["alice"]
    return {"statuses": statuses, "doomed": doomed, "alice": public,
            "registered": [[int(x) for x in line[1:]] for line in lines if line[0] == "registered"],
            "promoted": [[int(x) for x in line[1:]] for line in lines if line[0] == "promoted"]}


def main() -> None:
    mode = sys.argv[1]
    if mode == "concurrent":
        result = concurrent(Path(sys.argv[2]), int(sys.argv[3]))
    elif mode == "die":
        result = die(Path(sys.argv[2]), int(sys.argv[3]))
    elif mode == "loop":
        result = loop(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "team":
        result = team(Path(sys.argv[2]), *map(int, sys.argv[3:7]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
