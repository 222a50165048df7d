"""Fixtures of the fault-injection suite: a small real registry, a small tmpfs, one-line checks.

Every test here injects one fault (a corrupt or truncated file, a full disk, a hostile
config, a killed process, a locked or absent store, a client hogging sockets) and asserts
the three things issue 23 asks of each: nothing acknowledged is lost, nobody else is
hurt, and the error names the cause in one line (no traceback).
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops.registry import Registry

sys.path.insert(0, str(Path(__file__).parent))  # fault_tools (importlib mode)


@pytest.fixture(scope="session")
def tiny_model():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


@pytest.fixture
def registered(tmp_path, tiny_model):
    """A home with model ``m`` version 1 (artefact and reference file) registered."""
    home = tmp_path / "home"
    reference = tmp_path / "reference.npz"
    reference.write_bytes(b"reference statistics" * 10)
    reg = Registry(home)
    reg.register("m", tiny_model, metadata={"metrics": {"roc_auc": 0.9}}, reference_file=reference)
    reg.database.close()
    return home


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size) -> Path``: a fresh tmpfs of ``size`` (e.g. ``"200k"``), unmounted after
    the test. Skipped with one line where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
                              capture_output=True, text=True) if os.geteuid() == 0 else None
        if done is None or done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the injected-ENOSPC "
                        "tests cover the same paths")
        mounted.append(point)
        return point
    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
