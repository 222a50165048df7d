"""action=monitor monitoring.source=prediction_log on a user's project whose timestamp column is
not the prediction log's ``event_ts`` (issue 20): served traffic of any project can be monitored."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from own_project import mlops, write_user_files

pytestmark = pytest.mark.e2e


def _ok(r, *codes):
    assert r.returncode in (codes or (0,)), f"{r.stdout}\n{r.stderr}"
    return r


def test_prediction_log_of_an_own_project_is_monitored(tmp_path):
    project = tmp_path / "p"
    _ok(mlops(["init", str(project)], cwd=tmp_path))
    write_user_files(project, task="regression")            # timestamp column: sold_at
    for args in (["action=train"], ["action=keygen", "registry.approver=alice"],
                 ["action=approve", "registry.version=1", "registry.approver=alice"],
                 ["action=promote", "registry.version=1"],
                 ["action=replay", "serving.replay.start_day=80", "serving.replay.days=15"]):
        _ok(mlops(args, cwd=project))
    r = _ok(mlops(["action=monitor", "monitoring.source=prediction_log"], cwd=project), 0, 3)
    report = Path(re.search(r"report: (\S*monitor\.html)", r.stdout).group(1))
    m = json.loads(report.with_suffix(".json").read_text())
    assert m["current"]["source"] == "prediction_log" and m["current"]["rows"] > 100
    assert m["task"] == "regression" and "basket" in m["features"]
    assert m["performance"]["labelled_rows"] > 100            # labels joined on the sale id
