"""Our side of ``bench_alarms.py``: the judgments as a user gets them from a project folder.

Every call is an ``mlops`` run (``mlops action=... overrides``) composed and dispatched in
this process with the project's ``conf/`` in front, exactly as the ``mlops`` command does
(``mlops.cli.hydra_main``), minus a process start per window. The judgments are read from
what a user reads: ``monitor.json`` and ``replay.json``.

Each monitor judgment is one small adapter below (``data_drift``, ``concept_drift``,
``detectors``) that turns one run's result into True (alarm), False (quiet) or None (no
verdict: too few rows, no labels); the breaker's is a trip within the window
(:func:`replay_window`).
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from datetime import datetime
from pathlib import Path

import polars as pl

# ---- the four adapters: one run's result -> alarm / quiet / no verdict ----------------


def data_drift(monitor: dict) -> bool | None:
    """Data drift as ``action=monitor`` decides it (what alerts and exits 3)."""
    if monitor.get("dataset_status") == "insufficient_data":
        return None
    return bool(monitor["data_drift"])


def concept_drift(monitor: dict) -> bool | None:
    """A performance drop against the model's baseline in any chunk of the window."""
    perf = monitor["performance"]
    if not perf.get("chunks"):
        return None
    return bool(perf["concept_drift"])


def detectors(monitor: dict) -> bool | None:
    """Any streaming detector firing in the window, as its report shows it (``first_detection``
    is the first one in the window; one in the burn-in before it belongs to the previous window)."""
    found = monitor.get("detectors") or {}
    if not found:
        return None
    return any(d.get("first_detection") is not None for d in found.values())


MONITOR_JUDGMENTS = {"data_drift": data_drift, "concept_drift": concept_drift,
                     "detectors": detectors}

# ---- running mlops in process ---------------------------------------------------------


@contextlib.contextmanager
def in_project(root: Path):
    """``cd root`` with only ``root/conf`` in front of the built-in configs (as ``mlops`` in a
    fresh process: one bench process runs several projects, and the search path is global)."""
    from mlops.config import register
    from mlops.project import searchpath
    saved, here = list(searchpath._PROJECT_DIRS), Path.cwd()
    searchpath._PROJECT_DIRS.clear()
    searchpath.use_project_conf(root / "conf")
    register()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(here)
        searchpath._PROJECT_DIRS[:] = saved


class Project:
    """A user project folder on disk, run with ``mlops`` overrides."""

    def __init__(self, root: Path):
        self.root = root
        self.runs = 0

    def run(self, *overrides: str) -> tuple[int, dict]:
        """``cd root && mlops <overrides>``: (exit code, the action's result dict)."""
        from hydra import compose, initialize_config_dir

        from mlops.actions.dispatch import run_step
        from mlops.project.searchpath import BUILTIN_CONF
        self.runs += 1
        out = self.root / "outputs" / "bench" / f"{self.runs:04d}"
        with in_project(self.root):
            with initialize_config_dir(config_dir=str(BUILTIN_CONF), version_base="1.3"):
                cfg = compose(config_name="config",
                              overrides=[f"paths.output_dir={out}", *overrides])
            with contextlib.redirect_stdout(io.StringIO()):
                code, res = run_step(cfg, overrides=list(overrides))
        return code, (res.result if res is not None else {})

    def must(self, *overrides: str) -> dict:
        code, result = self.run(*overrides)
        if code not in (0, 3):
            raise RuntimeError(f"mlops {' '.join(overrides)} exited {code}: "
                               f"{result.get('headline')}")
        return result


def train_and_promote(project: Project) -> dict:
    """``mlops action=train`` then ``action=promote`` of version 1 to production."""
    trained = project.must("action=train")
    project.must("action=promote", f"registry.version={trained['registry']['version']}",
                  "registry.alias=production")
    return trained


def day_offset(t: datetime, first: datetime) -> float:
    return (t - first).total_seconds() / 86400


def monitor_window(project: Project, data_path: str, lo: datetime, hi: datetime,
                   first: datetime, extra: tuple[str, ...] = ()) -> dict:
    """``mlops action=monitor`` on ``[lo, hi)`` of ``data_path`` (plus ``extra`` overrides,
    e.g. ``monitoring.reference={previous: 3}``); the judgments and the run's headline (why)."""
    res = project.must("action=monitor", f"data.path={data_path}",
                       f"monitoring.window.start_day={day_offset(lo, first)}",
                       f"monitoring.window.days={day_offset(hi, lo)}",
                       "monitoring.multivariate.enabled=false",  # reported, never acts by default
                       *extra)
    return {**{name: fn(res) for name, fn in MONITOR_JUDGMENTS.items()}, "why": res.get("headline")}


def replay_window(project: Project, data_path: str, lo: datetime, hi: datetime,
                  first: datetime, home_snapshot: Path, warm_from: datetime | None = None) -> dict:
    """``mlops action=replay`` of ``[warm_from, hi)`` from a fresh copy of the trained home;
    the window's verdict is a trip at or after ``lo``.

    The breaker judges a sliding window of the last records; in production it enters a
    period already holding the traffic before it. ``warm_from`` (the previous window's start)
    replays that traffic first, so a period with fewer records than the breaker's calibrated
    minimum is still judged. A trip during the warm-up belongs to the previous window. A fresh
    home per window: no trip is inherited from the window before.
    """
    home = project.root / "outputs" / "bench-home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(home_snapshot, home)
    start = warm_from or lo
    res = project.must("action=replay", f"data.path={data_path}", f"paths.home={home}",
                       f"serving.replay.start_day={day_offset(start, first)}",
                       f"serving.replay.days={day_offset(hi, start)}")
    return trips_in_window(res.get("trips") or [], lo)


def trips_in_window(trips: list[dict], lo: datetime) -> dict:
    """The breaker's verdict on a window replayed after a warm-up: a trip at or after ``lo``.

    >>> trips_in_window([{"time": "2013-05-01 06:00:00"}], datetime(2013, 1, 1))["breaker"]
    True
    >>> trips_in_window([{"time": "2012-11-01 06:00:00"}], datetime(2013, 1, 1))["tripped_in_warm_up"]
    True
    """
    inside = [t for t in trips if datetime.fromisoformat(str(t["time"])) >= lo]
    return {"breaker": bool(inside), "trips": inside, "tripped_in_warm_up": bool(trips) and not inside}


def scored_rows(project: Project, data_path: str) -> tuple[pl.DataFrame, list[str], str]:
    """Every labelled row of ``data_path`` with the production model's features and score.

    What the peers judge: the same rows, features and predictions our monitor sees.
    Returns (rows, feature names, timestamp column).
    """
    from hydra import compose, initialize_config_dir

    from mlops.actions.context import RunContext
    from mlops.project.searchpath import BUILTIN_CONF
    from mlops.training.table import feature_table
    from mlops.training.task import score_frame
    with in_project(project.root):
        with initialize_config_dir(config_dir=str(BUILTIN_CONF), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[
                f"paths.output_dir={project.root / 'outputs' / 'bench' / 'scored'}",
                f"data.path={data_path}", "action=monitor"])
        ctx = RunContext.from_config(cfg, action="monitor")
        model, mv = ctx.load_model("production")
        plan = ctx.model_plan(mv)
        table = feature_table(plan, ctx.scan_events(), event_id=ctx.event_id)
    label = plan.label.column
    rows = table.select(plan.timestamp, *plan.feature_names, label).with_columns(
        pl.Series("prediction", score_frame(model, plan, table)))
    return rows, list(plan.feature_names), plan.timestamp
