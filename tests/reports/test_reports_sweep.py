"""Sweep report: leaderboard from per-job result.json files, and the Hydra callback."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from mlops.reports.sweep import SweepReportCallback, build_sweep_report, find_job_dirs

ROOT = Path(__file__).resolve().parents[2]


def write_job(sweep: Path, name: str, *, status="ok", value=None, direction="maximize", error=None,
              metrics=None, report=None, overrides=None) -> Path:
    job = sweep / name
    job.mkdir(parents=True)
    if status is None:  # crashed before writing result.json
        return job
    (job / "result.json").write_text(json.dumps({
        "action": "train", "status": status, "error": error, "overrides": overrides or [f"model.lr={name}"],
        "metrics": metrics or ({"val_auc": value, "val_logloss": 0.3} if value is not None else {}),
        "objective": {"name": "val_auc", "value": value, "direction": direction},
        "registry": {"model": "fraud", "version": int(name) if name.isdigit() else 1} if status == "ok" else None,
        "duration_s": 12.5, "report": report, "job_num": int(name) if name.isdigit() else 0}))
    return job


def test_leaderboard_ok_failed_missing(tmp_path, xss, parse):
    values = {"0": 0.81, "1": 0.93, "2": 0.88}
    for name, v in values.items():
        write_job(tmp_path, name, value=v)
    (tmp_path / "1" / "train.html").write_text("<html></html>")
    data = json.loads((tmp_path / "1" / "result.json").read_text()) | {"report": "train.html"}
    (tmp_path / "1" / "result.json").write_text(json.dumps(data))
    write_job(tmp_path, "3", status="failed", error=f"ValueError: bad lr {xss}")
    write_job(tmp_path, "4", status=None)
    (tmp_path / "5").mkdir()  # numbered dir, nothing written at all
    summary = build_sweep_report(tmp_path)

    jobs = summary["jobs"]
    expected = sorted(values, key=values.get, reverse=True)  # maximize: highest first
    assert [j["job"] for j in jobs] == expected + ["3", "4", "5"]
    assert [j["status"] for j in jobs] == ["ok"] * 3 + ["failed", "missing", "missing"]
    assert [j["rank"] for j in jobs[:3]] == [1, 2, 3] and jobs[0]["best"] and not jobs[1]["best"]
    assert summary["best"]["job"] == "1" and summary["best"]["registry"] == {"model": "fraud", "version": 1}
    assert summary["counts"] == {"total": 6, "ok": 3, "failed": 1, "missing": 2}
    assert summary["status"] == "warn" and summary["objective"] == {"name": "val_auc", "direction": "maximize"}
    assert summary["metric_names"] == ["val_logloss"]
    assert jobs[4]["error"].startswith("no result.json")

    on_disk = json.loads((tmp_path / "sweep.json").read_text())
    assert on_disk["best"]["job"] == "1" and on_disk["action"] == "sweep"
    html = (tmp_path / "sweep.html").read_text()
    best_row = html.split('<tr class="hl">')[1].split("</tr>")[0]
    assert '<a href="1/train.html">1</a>' in best_row and html.count('<tr class="hl">') == 1
    assert xss not in html and "script" not in parse(html).tags
    assert f"ValueError: bad lr {xss}" in "".join(parse(html).text)  # error listed, as text
    assert "Jobs without a result (2)" in html and "Failed jobs (1)" in html


def test_minimize_sorts_ascending_and_unvalued_ok_jobs_rank_last(tmp_path):
    for name, v in {"0": 0.40, "1": 0.25, "2": 0.31}.items():
        write_job(tmp_path, name, value=v, direction="minimize")
    write_job(tmp_path, "3", value=None, direction="minimize")
    summary = build_sweep_report(tmp_path)
    assert [j["job"] for j in summary["jobs"]] == ["1", "2", "0", "3"]
    assert summary["jobs"][3]["rank"] is None and summary["best"]["objective"] == 0.25
    assert any("no objective value" in r for r in summary["reasons"])


def test_all_failed_and_empty_sweeps_fail(tmp_path):
    empty = build_sweep_report(tmp_path / "nothing")
    assert empty["status"] == "fail" and empty["jobs"] == []
    write_job(tmp_path / "s", "0", status="failed", error="boom")
    summary = build_sweep_report(tmp_path / "s")
    assert summary["status"] == "fail" and summary["best"] is None
    assert "boom" in (tmp_path / "s" / "sweep.html").read_text()


def test_unreadable_result_is_reported_failed(tmp_path):
    job = tmp_path / "0"
    job.mkdir()
    (job / "result.json").write_text('{"status": "ok", ')  # torn write
    (job / ".hydra").mkdir()
    (job / ".hydra" / "overrides.yaml").write_text("- model.lr=0.1\n- seed=3\n")
    row = build_sweep_report(tmp_path)["jobs"][0]
    assert row["status"] == "failed" and "unreadable" in row["error"]
    assert row["overrides"] == ["model.lr=0.1", "seed=3"]


def test_finds_custom_subdir_layouts(tmp_path):
    write_job(tmp_path, "trial_0", value=0.5)                      # custom subdir with result.json
    (tmp_path / "trial_1" / ".hydra").mkdir(parents=True)          # started, never finished
    write_job(tmp_path / "lr=0.1", "0", value=0.7)                 # nested pattern
    (tmp_path / "notes").mkdir()                                   # unrelated folder
    found = sorted(p.relative_to(tmp_path).as_posix() for p in find_job_dirs(tmp_path))
    assert found == ["lr=0.1/0", "trial_0", "trial_1"]
    statuses = {j["job"]: j["status"] for j in build_sweep_report(tmp_path)["jobs"]}
    assert statuses == {"lr=0.1/0": "ok", "trial_0": "ok", "trial_1": "missing"}


def test_concurrent_rebuilds_never_corrupt_sweep_json(tmp_path):
    for i in range(6):
        write_job(tmp_path, str(i), value=i / 10)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: build_sweep_report(tmp_path, final=False), range(12)))
    assert all(r["best"]["job"] == "5" for r in results)
    assert json.loads((tmp_path / "sweep.json").read_text())["counts"]["total"] == 6
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["sweep.html", "sweep.json"]


def _config(sweep: Path, job_dir: Path | None = None, mode: str = "MULTIRUN"):
    hydra = {"mode": mode, "sweep": {"dir": str(sweep), "subdir": job_dir.name if job_dir else "0"},
             "job": {"num": 7}, "overrides": {"task": ["model.lr=9"]}}
    if job_dir is not None:
        hydra["runtime"] = {"output_dir": str(job_dir)}
    return OmegaConf.create({"action": "train", "hydra": hydra})


def test_callback_methods_called_directly(tmp_path):
    write_job(tmp_path, "0", value=0.9)
    job_dir = tmp_path / "7"
    job_dir.mkdir()
    cb = SweepReportCallback()
    cfg = _config(tmp_path, job_dir)
    cb.on_job_start(cfg, task_function=lambda c: None)
    ret = JobReturn(overrides=["model.lr=9"], status=JobStatus.FAILED)
    ret.return_value = ValueError("learning rate must be < 1; got 9")
    cb.on_job_end(cfg, ret)
    recorded = json.loads((job_dir / "result.json").read_text())
    assert recorded["status"] == "failed" and recorded["job_num"] == 7 and recorded["action"] == "train"
    assert recorded["error"] == "ValueError: learning rate must be < 1; got 9"
    assert recorded["overrides"] == ["model.lr=9"] and recorded["duration_s"] >= 0
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["final"] is False and summary["counts"] == {"total": 2, "ok": 1, "failed": 1, "missing": 0}
    assert "sweep in progress" in summary["headline"]

    cb.on_multirun_end(_config(tmp_path))
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert summary["final"] is True and summary["best"]["job"] == "0"
    assert "learning rate must be" in (tmp_path / "sweep.html").read_text()


def test_callback_keeps_a_job_own_result_and_skips_single_runs(tmp_path):
    job = write_job(tmp_path, "0", status="failed", error="DataError: column 'amount' missing")
    ret = JobReturn(status=JobStatus.FAILED)
    ret.return_value = RuntimeError("other")
    SweepReportCallback().on_job_end(_config(tmp_path, job), ret)
    assert json.loads((job / "result.json").read_text())["error"] == "DataError: column 'amount' missing"

    single = tmp_path / "single"
    SweepReportCallback().on_job_end(_config(single, mode="RUN"), JobReturn(status=JobStatus.COMPLETED))
    assert not single.exists()


@pytest.mark.e2e
def test_real_multirun_with_a_failing_job(tmp_path):
    """A real `-m` run: job 1 raises, Hydra aborts the sweep, the report still lists every job."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent("""
        import json, os
        import hydra
        from hydra.core.hydra_config import HydraConfig

        @hydra.main(version_base="1.3", config_path=None, config_name=None)
        def main(cfg):
            if cfg.lr > 1:
                raise ValueError(f"lr must be <= 1; got {cfg.lr}")
            out = HydraConfig.get().runtime.output_dir
            with open(os.path.join(out, "result.json"), "w") as f:
                json.dump({"action": "train", "status": "ok", "error": None,
                           "overrides": list(HydraConfig.get().overrides.task),
                           "metrics": {"auc": 1 - cfg.lr}, "objective": {"name": "auc",
                           "value": 1 - cfg.lr, "direction": "maximize"}, "registry": None,
                           "duration_s": 0.1, "report": None, "job_num": HydraConfig.get().job.num}, f)
        main()
    """))
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(app), "-m", "+lr=0.1,5,0.3", f"hydra.sweep.dir={sweep}",
           "+hydra.callbacks.report._target_=mlops.reports.sweep.SweepReportCallback"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode != 0  # the basic sweeper re-raises the failed job
    summary = json.loads((sweep / "sweep.json").read_text())
    assert [(j["job"], j["status"]) for j in summary["jobs"]] == [("0", "ok"), ("2", "ok"), ("1", "failed")]
    assert summary["jobs"][2]["error"] == "ValueError: lr must be <= 1; got 5"
    assert summary["best"]["overrides"] == ["+lr=0.1"]
