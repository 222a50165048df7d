"""-m multirun with the joblib launcher: one job fails, the sweep report still lists every job."""
from __future__ import annotations

import json

from support import SMALL, run_cli


def test_joblib_sweep_with_a_failing_job_still_writes_the_leaderboard(tmp_path):
    sweep = tmp_path / "sweep"
    p = run_cli(["-m", "action=train", *SMALL, "model=logreg,hgb",
                 "model.params.max_iter=50,-1",   # -1 is invalid for both: a failed job
                 "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                env={"MLOPS_HOME": str(tmp_path / "home")}, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((sweep / "sweep.json").read_text())
    jobs = report["jobs"]
    assert len(jobs) == 4
    failed = [j for j in jobs if j["status"] == "failed"]
    ok = [j for j in jobs if j["status"] == "ok"]
    assert len(failed) == 2 and len(ok) == 2
    assert all("max_iter" in (j["error"] or "") for j in failed)
    best = [j for j in jobs if j.get("best")]
    assert len(best) == 1 and best[0]["objective"] == max(j["objective"] for j in ok)
    versions = sorted(j["registry"]["version"] for j in ok)
    assert versions == [1, 2]  # parallel jobs registered without losing a version
    html = (sweep / "sweep.html").read_text()
    assert "failed" in html and "model=hgb" in html
