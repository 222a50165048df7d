"""What ``action=monitor`` and ``action=drift`` add to the per-feature verdicts: the
multivariate (domain-classifier) test and the drift history under ``paths.home``."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.monitor_view import history_view
from mlops.errors import ConfigError
from mlops.home import open_private
from mlops.monitoring import history
from mlops.monitoring.multivariate import domain_classifier


def multivariate_check(mc, reference: pl.DataFrame | None, current: pl.DataFrame,
                       numeric: list[str], categorical: list[str]) -> dict | None:
    """The ``multivariate`` block, None when disabled; a note when there are no reference rows."""
    cfg = mc.multivariate
    if not bool(cfg.enabled):
        return None
    if reference is None:
        return {"status": "insufficient_data", "drift": False, "auc": None, "acts": bool(cfg.act),
                "note": "the reference holds no row sample (a reference saved before the "
                        "multivariate test existed): retrain, or compare data files with action=drift"}
    try:
        out = domain_classifier(
            reference, current, numeric=numeric, categorical=categorical,
            max_rows=int(cfg.max_rows), folds=int(cfg.folds), permutations=int(cfg.permutations),
            alpha=float(cfg.alpha), min_auc=float(cfg.min_auc), top_features=int(cfg.top_features),
            seed=int(cfg.seed), min_rows=int(mc.min_rows_dataset))
    except ConfigError as exc:
        raise exc.under("monitoring") from None
    out["acts"] = bool(cfg.act)  # False: reported beside the verdicts, no on_drift action
    return out


def record_run(ctx: RunContext, result: dict, *, series: str, kind: str,
               window: dict | None = None, alerted: bool = False) -> dict:
    """Append this run to the history and return the drift-over-time view of its series."""
    runs = int(ctx.cfg.monitoring.history_runs)
    if runs < 1:
        raise ConfigError(f"must be an int >= 1; got {runs}", key="monitoring.history_runs")
    path = ctx.home / history.HISTORY_FILE
    perf = result.get("performance") or {}
    record = history.run_record(
        result, series=series, kind=kind, run_id=uuid.uuid4().hex[:12],
        run_dir=str(ctx.output_dir), time=datetime.now(timezone.utc).isoformat(),
        window=window, alerted=alerted, multivariate=result.get("multivariate"),
        performance=_performance(perf) if perf else None)
    history.append(path, record)
    records, bad = history.read(path, series=series, last=runs)
    view = history_view(records, max_panels=int(ctx.cfg.report.max_chart_features),
                        drift_share=result["policy"]["drift_share"],
                        performance_label=str(perf.get("metric", "performance")))
    view["skipped_lines"] = bad
    return view


def append_alert(ctx: RunContext, record: dict) -> str:
    """Append one alert record to ``paths.home/alerts.jsonl``; return its path."""
    path = ctx.home / "alerts.jsonl"
    with open_private(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return str(path)


def _performance(perf: dict) -> dict:
    """Realized chunks, and estimated ones when an estimator filled ``performance.estimated``."""
    metric = perf.get("metric")
    realized = [{"start": c.get("start"), "value": c.get("value")} for c in perf.get("chunks") or []]
    estimated = []
    block = perf.get("estimated")
    if isinstance(block, dict):
        for c in block.get("chunks") or []:
            value = c.get("estimated")
            value = value.get(metric) if isinstance(value, dict) else value
            estimated.append({"start": c.get("start"), "value": value})
    return {"metric": metric, "realized": realized, "estimated": estimated}
