"""What ``action=monitor`` and ``action=drift`` share: their typed settings from
``monitoring.*`` (policy, multivariate test, concept drift), the drift history and the
alerts file under ``paths.home`` (a support module, not an action)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mlops.actions.context import RunContext
from mlops.actions.monitor_view import history_view
from mlops.errors import ConfigError
from mlops.home import open_private
from mlops.monitoring import history
from mlops.monitoring.multivariate import MultivariateSettings
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.verdict import check_on_drift

if TYPE_CHECKING:
    from mlops.monitoring.run import MonitorSettings


def policy_from(mc) -> DriftPolicy:
    """The drift policy of ``monitoring.*`` (its errors name ``monitoring.<key>``)."""
    try:
        return DriftPolicy(n_bins=int(mc.n_bins), thresholds=mc.thresholds,
                           small_sample_rows=int(mc.small_sample_rows),
                           overrides=mc.features, drift_share=float(mc.drift_share),
                           min_rows=mc.min_rows,
                           min_reference_rows=int(mc.min_reference_rows),
                           min_rows_dataset=int(mc.min_rows_dataset), method=str(mc.method),
                           std_multiplier=float(mc.std_multiplier), effect_floors=mc.effect_floors,
                           min_chunks=int(mc.min_chunks), max_chunks=int(mc.max_chunks))
    except ConfigError as exc:  # the policy names its own keys; prefix the config group
        raise exc.under("monitoring") from None


def multivariate_settings(mc, *, default_enabled: bool = True) -> MultivariateSettings:
    """``monitoring.multivariate`` as typed settings (errors name ``monitoring.multivariate.*``);
    ``enabled: null`` means ``default_enabled`` (the action's default)."""
    m = mc.multivariate
    try:
        return MultivariateSettings(
            enabled=default_enabled if m.enabled is None else bool(m.enabled),
            max_rows=int(m.max_rows), folds=int(m.folds),
            permutations=int(m.permutations), alpha=float(m.alpha), min_auc=float(m.min_auc),
            top_features=int(m.top_features), seed=int(m.seed), act=bool(m.act))
    except ConfigError as exc:
        raise exc.under("monitoring") from None


def monitor_settings(mc, *, threshold: float = 0.5) -> MonitorSettings:
    """Everything ``monitoring.*`` decides for ``action=monitor``, typed; ``threshold`` is the
    monitored model's decision threshold (from its version, not from monitoring's config)."""
    # here, not at the top: action=drift shares this module and needs no concept drift
    from mlops.monitoring.concept import ConceptSettings
    from mlops.monitoring.run import MonitorSettings
    pc = mc.performance
    concept = ConceptSettings(
        metric=None if pc.metric is None else str(pc.metric), chunk=str(pc.chunk),
        max_change=pc.max_change, min_change=float(pc.min_change),
        std_multiplier=float(mc.std_multiplier), min_chunks=int(mc.min_chunks),
        threshold=float(threshold), detector_stream=str(mc.detector_stream),
        detectors=mc.detectors or {})
    on_drift = tuple(check_on_drift(mc.on_drift))  # checked first, as always
    return MonitorSettings(policy=policy_from(mc), on_drift=on_drift,
                           prediction_drift_acts=bool(mc.prediction_drift_acts),
                           multivariate=multivariate_settings(mc), concept=concept)


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
