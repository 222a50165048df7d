"""Sweep report: a leaderboard of every job of a Hydra multirun, read from disk.

Each job writes ``<job dir>/result.json`` (action, status ok|failed, error, overrides,
metrics, objective {name, value, direction}, registry {model, version} | null,
duration_s, report, job_num). :func:`build_sweep_report` reads them all and writes
``sweep.json`` + ``sweep.html`` into the sweep dir. :class:`SweepReportCallback` calls it
after every job (inside the job process: launchers share no memory, and a failing job
stops Hydra's basic sweeper before ``on_multirun_end``) and once more at the end.

Enable it in ``conf/hydra/...``::

    hydra:
      callbacks:
        sweep_report:
          _target_: mlops.reports.sweep.SweepReportCallback

This is the only reports module that imports Hydra.
"""
from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlops.registry.redact import redact_overrides, redact_text, redact_yaml_file
from mlops.reports import svg
from mlops.reports.display import fmt
from mlops.reports.index import safe_href
from mlops.reports.jsonio import write_json
from mlops.reports.render import render_report

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
DIRECTIONS = ("maximize", "minimize")
_GROUP = {"ok": 1, "failed": 2, "missing": 3}


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a sweep: numbered subdirs (Hydra's default ``${hydra.job.num}``)
    and any subdir, up to 3 levels deep, holding ``result.json`` or Hydra's ``.hydra/``
    (custom ``hydra.sweep.subdir`` patterns, Optuna trials)."""
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if ((child / RESULT_FILE).exists() or (child / ".hydra").is_dir()
                    or (depth == 0 and child.name.isdigit())):
                found.append(child)
            elif depth < 2:
                walk(child, depth + 1)

    if Path(sweep_dir).is_dir():
        walk(Path(sweep_dir), 0)
    return found


def _leading_int(name: str) -> int | None:
    digits = ""
    for ch in name:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def _hydra_overrides(job_dir: Path) -> list[str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        return redact_overrides(OmegaConf.to_container(OmegaConf.load(path)))  # type: ignore[arg-type]
    except Exception:  # absent or unreadable: the overrides are just unknown
        return []


def _finite(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def read_job(job_dir: Path, sweep_dir: Path, *, final: bool = True) -> dict:
    """One leaderboard row from ``job_dir/result.json`` (status ``missing`` when absent)."""
    rel = job_dir.relative_to(sweep_dir).as_posix()
    row: dict[str, Any] = {
        "job": rel, "job_num": _leading_int(job_dir.name), "dir": rel, "status": "missing",
        "error": None, "action": None, "overrides": _hydra_overrides(job_dir),
        "objective_name": None, "objective": None, "direction": None, "metrics": {},
        "registry": None, "duration_s": None, "report": None, "rank": None, "best": False,
    }
    path = job_dir / RESULT_FILE
    if not path.exists():
        row["error"] = ("no result.json: the job crashed or was killed before writing it" if final
                        else "no result.json yet: the job is still running, or crashed before writing it")
        return row
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    except (OSError, ValueError) as exc:
        row.update(status="failed", error=f"result.json is unreadable: {exc}")
        return row
    objective = data.get("objective") if isinstance(data.get("objective"), dict) else {}
    status = data.get("status")
    row.update(
        status=status if status in ("ok", "failed") else "failed",
        error=data.get("error") if status in ("ok", "failed") else
        f"result.json has status {status!r}; expected 'ok' or 'failed'",
        action=data.get("action"),
        overrides=redact_overrides(data.get("overrides") or row["overrides"]),
        objective_name=objective.get("name"), objective=_finite(objective.get("value")),
        direction=objective.get("direction"),
        metrics={str(k): _finite(v) for k, v in (data.get("metrics") or {}).items()},
        registry=data.get("registry") if isinstance(data.get("registry"), dict) else None,
        duration_s=_finite(data.get("duration_s")),
    )
    if isinstance(data.get("job_num"), int):
        row["job_num"] = data["job_num"]
    report = safe_href(data.get("report"))
    if report and (job_dir / report).exists():
        row["report"] = f"{rel}/{report}"
    return row


def summarize_sweep(sweep_dir: Path, *, final: bool = True) -> dict:
    """The sweep report as a dict (what ``sweep.json`` holds), without writing anything."""
    sweep_dir = Path(sweep_dir)
    rows = [read_job(d, sweep_dir, final=final) for d in find_job_dirs(sweep_dir)]
    ok = [r for r in rows if r["status"] == "ok"]
    name = _majority(r["objective_name"] for r in ok)
    direction = _majority(r["direction"] for r in ok if r["direction"] in DIRECTIONS) or "maximize"
    ranked = _rank(rows, direction)
    reasons = _warnings(rows, ok, ranked, final=final, name=name, direction=direction)
    best = ranked[0] if ranked else None
    counts = Counter(r["status"] for r in rows)
    if not rows:
        status, headline = "fail", f"No job directories found in {sweep_dir}"
    elif best is None:
        status, headline = "fail", f"No job produced an objective value ({len(rows)} job(s))"
    else:
        status = "warn" if reasons else "ok"
        over = ", ".join(best["overrides"]) or "no overrides"
        headline = f"Best: job {best['job']} with {name} = {fmt(best['objective'])} ({over})"
    if not final:
        headline += " [sweep in progress]"
    return {
        "action": "sweep", "status": status, "headline": headline, "reasons": reasons,
        "final": final, "sweep_dir": str(sweep_dir), "objective": {"name": name, "direction": direction},
        "best": best, "counts": {"total": len(rows), "ok": counts["ok"], "failed": counts["failed"],
                                 "missing": counts["missing"]},
        "metric_names": sorted({m for r in rows for m in r["metrics"]} - {name}), "jobs": rows,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _rank(rows: list[dict], direction: str) -> list[dict]:
    """Sort ``rows`` in place (best objective first, then jobs without a value, failed,
    missing; ties by job number and directory), number the valued ones (``rank``), mark
    the first ``best`` and return the valued ones in order."""
    sign = -1.0 if direction == "maximize" else 1.0

    def key(r: dict) -> tuple:
        valued = r["status"] == "ok" and r["objective"] is not None
        group = 0 if valued else _GROUP[r["status"]]
        return (group, sign * r["objective"] if valued else 0.0,
                r["job_num"] if r["job_num"] is not None else math.inf, r["dir"])

    rows.sort(key=key)
    ranked = [r for r in rows if r["status"] == "ok" and r["objective"] is not None]
    for i, r in enumerate(ranked, start=1):
        r["rank"] = i
    if ranked:
        ranked[0]["best"] = True
    return ranked


def _warnings(rows: list[dict], ok: list[dict], ranked: list[dict], *, final: bool, name: Any,
              direction: str) -> list[str]:
    """Why the sweep result deserves a second look: failed, missing or unvalued jobs, and
    jobs that disagree on the objective."""
    counts = Counter(r["status"] for r in rows)
    reasons = []
    if counts["failed"]:
        reasons.append(f"{counts['failed']} job(s) failed (errors listed below)")
    if counts["missing"]:
        reasons.append(f"{counts['missing']} job dir(s) have no result.json "
                       + ("(crashed before writing it)" if final else "(still running, or crashed)"))
    unvalued = len(ok) - len(ranked)
    if unvalued:
        reasons.append(f"{unvalued} ok job(s) reported no objective value; ranked last")
    if len({r["direction"] for r in ok if r["direction"]}) > 1 or len({r["objective_name"] for r in ok}) > 1:
        reasons.append(f"jobs disagree on the objective; ranking by the majority: {name} ({direction})")
    return reasons


def _majority(values: Any) -> Any:
    common = Counter(v for v in values if v is not None).most_common(1)
    return common[0][0] if common else None


def _charts(summary: dict) -> dict:
    ranked = [r for r in summary["jobs"] if r["rank"] is not None]
    name = summary["objective"]["name"] or "objective"
    if len(ranked) < 2:
        return {}
    direction = summary["objective"]["direction"]
    by_num = sorted((r for r in ranked if r["job_num"] is not None), key=lambda r: r["job_num"])
    best_so_far, pts, best_pts = None, [], []
    for r in by_num:
        v = r["objective"]
        better = best_so_far is None or (v > best_so_far if direction == "maximize" else v < best_so_far)
        best_so_far = v if better else best_so_far
        pts.append((r["job_num"], v))
        best_pts.append((r["job_num"], best_so_far))
    if len(by_num) < 2:
        return {}
    return {"progress_chart": svg.line_chart({name: pts, "best so far": best_pts},
                                             xlabel="job number", ylabel=f"{name} ({direction})")}


def build_sweep_report(sweep_dir: Path, *, final: bool = True,
                       templates_dir: Path | None = None) -> dict:
    """Read every job of ``sweep_dir`` and (re)write ``sweep.json`` and ``sweep.html``
    atomically; return the summary dict.

    >>> build_sweep_report(Path("multirun/2024-03-01/12-00-00"))["best"]["overrides"]  # doctest: +SKIP
    ['model.max_depth=6']
    """
    sweep_dir = Path(sweep_dir)
    summary = summarize_sweep(sweep_dir, final=final)
    write_json(summary, sweep_dir / "sweep.json")
    context = {**summary, **_charts(summary)}
    render_report("sweep.html", context, sweep_dir / "sweep.html",
                  title=f"Sweep report: {sweep_dir.name}", templates_dir=templates_dir)
    return summary


def _sweep_dir(config: DictConfig) -> Path:
    """The sweep dir, derived from the job's own output dir when possible (a ``${now:}``
    in ``hydra.sweep.dir`` could resolve differently in a launcher's worker process)."""
    out = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
    sub = OmegaConf.select(config, "hydra.sweep.subdir", default=None)
    if out and sub is not None:
        out_path, sub_parts = Path(str(out)), Path(str(sub)).parts
        if sub_parts and out_path.parts[-len(sub_parts):] == sub_parts:
            return Path(*out_path.parts[: -len(sub_parts)])
    return Path(str(config.hydra.sweep.dir))


class SweepReportCallback(Callback):
    """Hydra callback that keeps ``sweep.json`` + ``sweep.html`` up to date during a multirun.

    ``on_job_end`` also writes ``result.json`` for a job that raised before writing its
    own, so the failure and its error show in the leaderboard.
    """

    def __init__(self, templates_dir: str | None = None) -> None:
        self.templates_dir = Path(templates_dir) if templates_dir else None
        self._started: float | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        mode = OmegaConf.select(config, "hydra.mode", default=None)
        if getattr(mode, "name", str(mode)) == "RUN":
            return  # single runs have no sweep
        redact_yaml_file(_sweep_dir(config) / "multirun.yaml")  # Hydra saved it before the first job
        out = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
        if out and job_return is not None and job_return.status == JobStatus.FAILED:
            self._record_failure(Path(str(out)), config, job_return)
        summary = build_sweep_report(_sweep_dir(config), final=False, templates_dir=self.templates_dir)
        log.info("Sweep report (%d jobs so far): %s", summary["counts"]["total"],
                 Path(summary["sweep_dir"]) / "sweep.html")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        build_sweep_report(sweep_dir, final=True, templates_dir=self.templates_dir)
        log.info("Sweep report: %s", sweep_dir / "sweep.html")

    def _record_failure(self, job_dir: Path, config: DictConfig, job_return: JobReturn) -> None:
        if (job_dir / RESULT_FILE).exists():
            return  # the job wrote its own account of the failure
        exc = job_return._return_value  # .return_value would re-raise it
        elapsed = time.perf_counter() - self._started if self._started is not None else None
        write_json({
            "action": OmegaConf.select(config, "action", default=None),
            "status": "failed",
            "error": redact_text(f"{type(exc).__name__}: {exc}") if exc is not None else "job failed",
            "overrides": redact_overrides(job_return.overrides),
            "metrics": {},
            "objective": {"name": None, "value": None, "direction": None},
            "registry": None,
            "duration_s": elapsed,
            "report": None,
            "job_num": OmegaConf.select(config, "hydra.job.num", default=None),
        }, job_dir / RESULT_FILE)
