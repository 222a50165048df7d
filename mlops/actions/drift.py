"""``action=drift``: compare two datasets without a model or a registry.

    python run.py action=drift monitoring.reference='ref/*.parquet' monitoring.current='new/*.csv'

Runs the statistics, deciding tests, thresholds and per-feature overrides of
``action=monitor`` over the columns both datasets share (or ``monitoring.columns``), plus
the multivariate test, and writes ``drift.json`` + ``drift.html``. Exit code 3 on dataset
drift when ``alert`` is in ``monitoring.on_drift`` (the alert goes to
``paths.home/alerts.jsonl``, as for monitor). ``monitoring.reference`` ending in ``.npz`` is a
fitted reference (e.g. a model's) instead of data files.
"""
from __future__ import annotations

import glob
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.drift_checks import append_alert, multivariate_check, record_run
from mlops.actions.monitor import ON_DRIFT, _progress, drift_headline, drift_reasons, policy_from
from mlops.actions.monitor_view import drift_display
from mlops.actions.outputs import ActionResult, write_report
from mlops.config.validate import plain
from mlops.data.files import scan_files
from mlops.errors import ConfigError, DataError
from mlops.monitoring.compare import ColumnPlan, compare_frames, plan_columns
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.reference import Reference


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    mc = ctx.cfg.monitoring
    for key in ("reference", "current"):
        if not mc.get(key):
            raise ConfigError("is required for action=drift", key=f"monitoring.{key}",
                              fix=f"pass monitoring.{key}=<parquet or csv glob>")
    on_drift = plain(mc.on_drift)
    bad = [a for a in on_drift if a not in ON_DRIFT]
    if bad:
        raise ConfigError(f"unknown action(s) {bad}; valid: {list(ON_DRIFT)}",
                          key="monitoring.on_drift", fix="use alert (the others need a model)")
    policy = policy_from(mc)
    ref_spec, cur_spec = str(mc.reference), str(mc.current)
    current = _read(cur_spec, "monitoring.current")
    try:
        if ref_spec.endswith(".npz"):
            reference = Reference.load(ref_spec)
            plan = ColumnPlan(numeric=list(reference.numeric), categorical=list(reference.categorical))
            ref_rows = reference.sample_frame()
            drift = detect_drift(reference, current.select(_require(current, plan.columns)),
                                 policy, progress=_progress if _big(current, plan) else None)
            ref_info = {"path": ref_spec, "kind": "fitted reference (.npz)", "files": 1,
                        "rows": max((f.rows for f in [*reference.numeric.values(),
                                                      *reference.categorical.values()]), default=0)}
        else:
            ref_rows = _read(ref_spec, "monitoring.reference")
            plan = plan_columns(ref_rows.schema, current.schema,
                                columns=plain(mc.columns), column_types=plain(mc.column_types))
            drift = compare_frames(ref_rows, current, plan, policy,
                                   progress=_progress if _big(current, plan) else None)
            ref_info = {"path": ref_spec, "kind": "data", "files": _count(ref_spec),
                        "rows": ref_rows.height}
    except (ConfigError, DataError) as exc:
        if exc.key and exc.key.startswith("monitoring."):
            raise
        raise type(exc)(exc.message, key=f"monitoring.{exc.key}" if exc.key else "monitoring",
                        fix=exc.fix) from None
    drift.setdefault("skipped", {})
    drift["multivariate"] = multivariate_check(mc, ref_rows, current, plan.numeric,
                                               plan.categorical)
    series = f"drift:{ref_spec}"
    reasons = drift_reasons(drift, bool(mc.multivariate.act))
    found = bool(reasons)
    actions = []
    if found and "alert" in on_drift:
        path = append_alert(ctx, {"time": datetime.now(timezone.utc).isoformat(), "series": series,
                                  "reference": ref_spec, "current": cur_spec,
                                  "reasons": reasons, "run": str(ctx.output_dir)})
        actions.append({"action": "alert", "detail": "; ".join(reasons), "record": path})
    for skipped in sorted(set(on_drift) - {"alert"}):
        actions.append({"action": skipped, "detail": "skipped: it needs a model (action=monitor)"})
    headline = drift_headline(drift)
    status = "fail" if found else ("warn" if drift["dataset_status"] == "insufficient_data"
                                   else "ok")
    result = {"status": status, "headline": headline, "reference": ref_info,
              "current": {"path": cur_spec, "files": _count(cur_spec), "rows": current.height},
              **drift, "actions": actions, "duration_s": round(time.perf_counter() - t0, 3)}
    over_time = record_run(ctx, result, series=series, kind="drift",
                           alerted=any(a["action"] == "alert" for a in actions))
    context = {**drift_display(result, int(ctx.cfg.report.max_chart_features), over_time),
               "history_runs": int(mc.history_runs)}
    write_report(ctx, "drift", result, title="Drift: reference vs current data", context=context)
    code = 3 if found and "alert" in on_drift else 0
    return ActionResult(result=result, exit_code=code,
                        metrics={"drift_share": drift["drift_share"], "n_drifted": drift["n_drifted"]})


def _read(spec: str, key: str) -> pl.DataFrame:
    """All rows of the files matching ``spec``; a file that cannot be read is named."""
    try:  # polars reads schemas while scanning: a bad file can fail either step
        return scan_files(spec, key=key).collect()
    except DataError as exc:  # the file checks name the file under data.path: use our key
        raise DataError(exc.message, key=key, fix=exc.fix) from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        bad = _unreadable(sorted(glob.glob(spec, recursive=True)))
        where = f"{bad!r} is not a readable parquet/csv file" if bad else \
            f"the files matching {spec!r} cannot be read together"
        raise DataError(f"{where} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                        key=key, fix="fix or remove that file") from None


def _unreadable(files: list[str]) -> str | None:
    for f in files:
        try:
            if Path(f).suffix.lower() in (".parquet", ".pq"):
                pl.read_parquet(f, n_rows=1)
            else:
                pl.read_csv(f, n_rows=100)
        except (pl.exceptions.PolarsError, OSError):
            return f
    return None


def _require(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"the current data lacks column(s) {missing} of the reference; it has "
                        f"{frame.columns}", key="current",
                        fix="compare data with the columns the reference was fitted on")
    return columns


def _count(spec: str) -> int:
    return len(glob.glob(spec, recursive=True))


def _big(frame: pl.DataFrame, plan: ColumnPlan) -> bool:
    return frame.height * len(plan.columns) > 5_000_000  # show progress on long runs
