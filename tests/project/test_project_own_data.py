"""A new user's project, start to finish, outside this repository.

``mlops init`` writes a starter project in a temp folder; the test then puts its own
data there (its own entity, timestamp, label and id column names) and runs
features -> train -> approve -> promote -> serve (/predict) -> monitor -> drift,
once with a classifier and once with a regressor. The commands are the README's
"Your own data" walkthrough (a test below checks they stay identical).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from own_project import ROOT, mlops, mlops_cmd, shop_sales, write_user_files
from support import wait_until_healthy

pytestmark = pytest.mark.e2e

# The README walkthrough, verbatim (after `mlops init myproject && cd myproject`).
WALKTHROUGH = [
    "mlops action=features",
    "mlops action=train",
    "mlops action=keygen registry.approver=alice",
    "mlops action=approve registry.version=1 registry.approver=alice",
    "mlops action=promote registry.version=1 registry.alias=production",
    "mlops action=monitor",
    "mlops action=drift monitoring.reference='drift/first_half.csv' monitoring.current='drift/second_half.csv'",
]


def _args(line: str) -> list[str]:
    import shlex
    return shlex.split(line)[1:]


def _report(out: str, name: str) -> Path:
    m = re.search(rf"report: (\S*{name}\.html)", out)
    assert m, out
    return Path(m.group(1))


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _predict_via_server(project: Path) -> dict:
    port = _free_port()
    import os
    proc = subprocess.Popen([*mlops_cmd(), "action=serve", f"serving.port={port}"], cwd=project,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, timeout=90, output=lambda: proc.stdout.read().decode())
        rec = shop_sales().tail(1).drop("big_return", "margin_eur").to_dicts()[0]
        rec["sold_at"] = rec["sold_at"].isoformat()
        r = httpx.post(f"{base}/predict", json={"records": [rec]}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_own_project_from_init_to_drift(tmp_path, task):
    project = tmp_path / "myproject"
    r = mlops(["init", str(project)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (project / "conf" / "project.yaml").exists() and (project / "data" / "orders.csv").exists()
    write_user_files(project, task=task)

    out = {}
    for line in WALKTHROUGH:
        r = mlops(_args(line), cwd=project)
        action = _args(line)[0].split("=")[1]
        allowed = (0, 3) if action in ("monitor", "drift") else (0,)
        assert r.returncode in allowed, f"{line}\n{r.stdout}\n{r.stderr}"
        out[action] = _report(r.stdout, {"approve": "registry", "promote": "registry"}.get(action,
                                                                                    action))
    assert not (ROOT / "conf" / "data" / "sales.yaml").exists()  # nothing written into the repo

    card = json.loads(out["train"].with_suffix(".json").read_text())
    assert card["task"] == task
    assert card["plan"]["name"] == "shop_sales"
    assert card["model"]["name"] == f"shop_{task}"
    test = card["evaluation"]["test"]
    if task == "classification":
        assert 0.6 < test["roc_auc"] < 0.999
    else:  # margin = 0.3 basket + 5 north + noise(3): a linear model explains most of it
        assert test["r2"] > 0.8 and test["rmse"] < 4.5
    features = json.loads(out["features"].with_suffix(".json").read_text())
    assert features["plan"]["entity"] == "shop_id"

    answer = _predict_via_server(project)
    assert answer["model"]["name"] == f"shop_{task}"
    assert answer["decisions"] == ["model"]
    if task == "classification":  # decided at the version's own threshold (fixed 0.5 here)
        value = answer["probabilities"][0]
        assert 0.0 <= value <= 1.0 and answer["predictions"][0] == int(value >= 0.5)
    else:  # a regressor's value is the prediction, never a probability
        assert "probabilities" not in answer and abs(answer["predictions"][0]) < 1e4

    monitor = json.loads(out["monitor"].with_suffix(".json").read_text())
    assert monitor["task"] == task
    assert monitor["performance"]["metric"] == ("roc_auc" if task == "classification" else "rmse")
    drift = json.loads(out["drift"].with_suffix(".json").read_text())
    assert drift["features"]["basket"]["drift"] is True      # baskets scaled by 1.8
    assert drift["features"]["region"]["drift"] is False


def test_readme_walkthrough_is_what_the_test_runs():
    section = (ROOT / "docs" / "getting-started.md").read_text()
    for line in WALKTHROUGH:
        assert line in section, f"README's walkthrough lacks: {line}"
    assert "mlops init myproject" in section
