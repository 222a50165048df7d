"""``action=drift``: compare two datasets without a model or a registry.

    python run.py action=drift monitoring.reference='ref/*.parquet' monitoring.current='new/*.csv'

Runs the statistics, deciding tests, thresholds and per-feature overrides of
``action=monitor`` over the columns both datasets share (or ``monitoring.columns``), plus
the multivariate test when asked (``monitoring.multivariate.enabled=true``), and writes
``drift.json`` + ``drift.html``. Every reference value is kept (exact KS and Wasserstein)
unless ``monitoring.reference_max_rows`` declares a sample. Exit code 3 on dataset
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
from mlops.actions.drift_checks import append_alert, multivariate_settings, policy_from, record_run
from mlops.actions.monitor_view import drift_display
from mlops.actions.outputs import ActionResult, write_report
from mlops.data.files import parse_datetime_strings, scan_files
from mlops.errors import ConfigError, DataError
from mlops.monitoring.compare import DatasetDriftResult, compare_datasets
from mlops.monitoring.reference import Reference
from mlops.monitoring.verdict import check_on_drift


def run(ctx: RunContext) -> ActionResult:
    """Compare ``monitoring.current`` with ``monitoring.reference`` (files or a .npz)."""
    t0 = time.perf_counter()
    mc = ctx.cfg.monitoring
    for key in ("reference", "current"):
        if not getattr(mc, key) or getattr(mc, key) == "training":
            raise ConfigError("is required for action=drift", key=f"monitoring.{key}",
                              fix=f"pass monitoring.{key}=<parquet or csv glob>")
    on_drift = check_on_drift(mc.on_drift, fix="use alert (the others need a model)")
    # off by default here: a quick two-file comparison; monitoring.multivariate.enabled=true runs it
    policy, multivariate = policy_from(mc), multivariate_settings(mc, default_enabled=False)
    ref_spec, cur_spec = str(mc.reference), str(mc.current)
    current = _read(cur_spec, "monitoring.current")
    fitted = ref_spec.endswith(".npz")
    try:
        reference = Reference.load(ref_spec) if fitted else _read(ref_spec, "monitoring.reference")
        drift, ref_rows = compare_datasets(reference, current, policy, multivariate=multivariate,
                                           columns=mc.columns, column_types=mc.column_types,
                                           exclude=never_features(ctx),
                                           reference_max_rows=mc.reference_max_rows)
    except (ConfigError, DataError) as exc:
        if exc.key and exc.key.startswith("monitoring."):
            raise
        raise type(exc)(exc.message, key=f"monitoring.{exc.key}" if exc.key else "monitoring",
                        fix=exc.fix) from None
    result = DatasetDriftResult(
        drift=drift, multivariate_acts=multivariate.act,
        reference={"path": ref_spec, "kind": "fitted reference (.npz)" if fitted else "data",
                   "files": 1 if fitted else _count(ref_spec), "rows": ref_rows},
        current={"path": cur_spec, "files": _count(cur_spec), "rows": current.height})
    result.actions = _act(ctx, result, on_drift, ref_spec, cur_spec)
    result.duration_s = round(time.perf_counter() - t0, 3)
    return _report(ctx, result, on_drift, series=f"drift:{ref_spec}")


def _act(ctx: RunContext, result: DatasetDriftResult, on_drift: list[str], ref_spec: str,
         cur_spec: str) -> list[dict]:
    """The alert when drift is found; the other on_drift actions need a model."""
    actions, reasons = [], result.reasons()
    if reasons and "alert" in on_drift:
        path = append_alert(ctx, {"time": datetime.now(timezone.utc).isoformat(),
                                  "series": f"drift:{ref_spec}", "reference": ref_spec,
                                  "current": cur_spec, "reasons": reasons,
                                  "run": str(ctx.output_dir)})
        actions.append({"action": "alert", "detail": "; ".join(reasons), "record": path})
    for skipped in sorted(set(on_drift) - {"alert"}):
        actions.append({"action": skipped, "detail": "skipped: it needs a model (action=monitor)"})
    return actions


def _report(ctx: RunContext, result: DatasetDriftResult, on_drift: list[str], *,
            series: str) -> ActionResult:
    out = result.to_json()
    over_time = record_run(ctx, out, series=series, kind="drift",
                           alerted=any(a["action"] == "alert" for a in result.actions))
    context = {**drift_display(out, int(ctx.cfg.report.max_chart_features), over_time),
               "history_runs": int(ctx.cfg.monitoring.history_runs)}
    write_report(ctx, "drift", out, title="Drift: reference vs current data", context=context)
    code = 3 if result.found and "alert" in on_drift else 0
    return ActionResult(result=out, exit_code=code,
                        metrics={"drift_share": out["drift_share"], "n_drifted": out["n_drifted"]})


def never_features(ctx: RunContext) -> dict[str, str]:
    """Columns the project declares as ids, entity, timestamp or label: never compared."""
    f = getattr(ctx.cfg, "features", None)
    label = getattr(f, "label", None)
    declared = [(ctx.event_id, "the event id (data.event_id)"),
                (getattr(f, "entity", None), "the entity key (features.entity)"),
                (getattr(f, "timestamp", None), "the event timestamp (features.timestamp)"),
                (getattr(label, "column", None), "the label (features.label.column)"),
                (getattr(label, "available_at", None), "when the label arrived (features.label.available_at)")]
    return {str(name): why for name, why in declared if name}


def _read(spec: str, key: str) -> pl.DataFrame:
    """All rows of the files matching ``spec`` (csv date-times parsed); a file that cannot
    be read is named."""
    try:  # polars reads schemas while scanning: a bad file can fail either step
        return parse_datetime_strings(scan_files(spec, key=key).collect())
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


def _count(spec: str) -> int:
    return len(glob.glob(spec, recursive=True))
