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


# Tests that start processes, servers, browsers or whole actions: `slow`, so that
# `python -m pytest -m "not slow"` is a quick inner loop; CI runs everything.
SLOW_DIRS = {"e2e", "project", "monitoring_actions", "serving_actions", "experiment_actions"}
SLOW_FILES = {"test_app_cli.py", "test_registry_concurrency.py", "test_registry_cli_trust.py",
              "test_serving_server.py", "test_serving_durability.py", "test_serving_docs.py",
              "test_serving_hostile_connections.py", "test_training_flow.py",
              "test_training_labels.py", "test_features_shards.py", "test_reports_render.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.parent.name in SLOW_DIRS or path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
