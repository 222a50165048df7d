"""One home (issue 22): every piece of state a starter project writes (registry, approver
keys, online store, prediction log, drift history, alerts) follows paths.home, and the one
rule holds: command line > the project's paths.home > MLOPS_HOME > .mlops."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from own_project import ROOT

pytestmark = pytest.mark.e2e
STEPS = [
    ["action=train"],
    ["action=keygen", "registry.approver=alice"],
    ["action=promote", "registry.version=1", "registry.alias=production",
     "registry.policies.production=[]"],                 # no gates: this test is about paths
    ["action=replay", "serving.replay.days=5", "serving.replay.records_per_request=100"],
    ["action=monitor", "monitoring.source=prediction_log", "monitoring.on_drift=[alert]"],
    ["action=drift", "monitoring.reference=drift/a.csv", "monitoring.current=drift/b.csv"],
]


def _mlops(args, cwd: Path, home_env: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_HOME", "HYDRA_FULL_ERROR")}
    env["PYTHONPATH"] = str(ROOT)
    if home_env:
        env["MLOPS_HOME"] = home_env
    p = subprocess.run([sys.executable, "-m", "mlops", *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode in (0, 3), f"{args}\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}"


def _project(tmp_path: Path) -> Path:
    _mlops(["init", "p"], tmp_path, None)
    project = tmp_path / "p"
    (project / "drift").mkdir()
    orders = pl.read_csv(project / "data" / "orders.csv")
    orders.head(2000).write_csv(project / "drift" / "a.csv")
    orders.tail(2000).write_csv(project / "drift" / "b.csv")
    return project


def _state(home: Path) -> dict[str, bool]:
    return {
        "registry": (home / "registry" / "registry.db").is_file(),
        "keys": (home / "keys" / "alice.key").is_file(),
        "online store": (home / "online_store.sqlite").is_file(),
        "prediction log": any((home / "predictions").rglob("*")),
        "drift history": (home / "monitoring" / "history.jsonl").is_file(),
    }


def test_mlops_home_moves_every_piece_of_a_starter_projects_state(tmp_path):
    project, home = _project(tmp_path), tmp_path / "elsewhere"
    for step in STEPS:
        _mlops(step, project, str(home))
    assert _state(home) == dict.fromkeys(_state(home), True), _state(home)
    assert not (project / ".mlops").exists()               # nothing split off into ./.mlops
    history = (home / "monitoring" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2                                # monitor + drift, one home


def test_the_rule_command_line_then_project_then_environment(tmp_path):
    project = _project(tmp_path)
    conf = project / "conf" / "project.yaml"
    conf.write_text(conf.read_text() + "paths:\n  home: pinned\n")
    _mlops(["action=train"], project, str(tmp_path / "env_home"))
    assert _state(project / "pinned")["registry"] and not (tmp_path / "env_home").exists()
    _mlops(["action=train", f"paths.home={tmp_path / 'cli_home'}"], project, str(tmp_path / "env_home"))
    assert _state(tmp_path / "cli_home")["registry"] and not (tmp_path / "env_home").exists()
