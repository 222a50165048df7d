"""Shared fixtures (helpers live in support.py so tests can import them)."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import compose_cfg


@pytest.fixture
def run_action(tmp_path, monkeypatch):
    """Run an action in-process; returns (exit code, output dir)."""
    monkeypatch.delenv("MLOPS_HOME", raising=False)

    def _run(*overrides: str, out: str = "out") -> tuple[int, Path]:
        from mlops.app import execute
        cfg = compose_cfg(list(overrides), tmp_path)
        cfg.paths.output_dir = str(tmp_path / out)
        code, _ = execute(cfg)
        return code, tmp_path / out
    return _run
