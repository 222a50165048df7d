"""``action=monitor``: data drift, prediction drift, performance with delayed labels, detectors.

The pipeline is :func:`mlops.monitoring.run.run_monitor`; this adapter loads the model and
its reference, gathers the current rows, acts on drift and writes the report.
Exit code 3 when drift is found and ``alert`` is among ``monitoring.on_drift``,
so cron/CI notice. ``retrain`` registers a candidate trained on the recent window
as ``staging`` (continuous training); ``trip_breaker`` opens the serving circuit
breaker (state file under ``paths.home``).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.drift_checks import append_alert, monitor_settings, record_run
from mlops.actions.monitor_sources import chosen_reference, current_frame, window_table
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.performance_estimate import estimated_performance, estimation_display
from mlops.actions.registry_access import model_name, open_registry, trusted_types
from mlops.monitoring.reference_choice import parse_reference_choice
from mlops.monitoring.run import ModelFacts, MonitorResult, run_monitor
from mlops.registry.policy import decision_policy


def run(ctx: RunContext) -> ActionResult:
    """Monitor the model under ``monitoring.alias`` on the current window."""
    t0 = time.perf_counter()
    mc = ctx.cfg.monitoring
    monitor_settings(mc)  # config errors first, before any model is loaded
    reg, name = open_registry(ctx), model_name(ctx)
    model, mv = reg.load_model(name, str(mc.alias), trusted_types(ctx))
    settings = monitor_settings(mc, threshold=decision_threshold(mv))
    plan = ctx.model_plan(mv)  # the model carries its plan (features= is for training)
    choice = parse_reference_choice(mc.reference)
    table = window_table(ctx, plan) if choice.kind in ("range", "previous") else None
    stream, info = current_frame(ctx, plan, model, version=mv.version, fitted_until=_train_end(mv),
                                 table=table)
    reference, ref_info = chosen_reference(ctx, choice, plan, model, stored=str(reg.reference_path(
        name, mv.version)), stream=stream, table=table, n_bins=settings.policy.n_bins,
        window_start=info.get("start"))
    facts = ModelFacts(name=name, version=mv.version, alias=str(mc.alias),
                       task=(mv.tags or {}).get("task") or "classification",
                       metrics=dict(mv.metrics or {}))
    result = run_monitor(reference, stream, settings, model=facts, timestamp=plan.timestamp,
                         label=plan.label["column"], current_info=info, reference_info=ref_info)
    result.estimated = estimated_performance(ctx, plan, model, mv,
                                             stream.filter(pl.col("__in_window")),
                                             threshold=settings.concept.threshold)
    if result.found:
        result.actions = _act(ctx, result, settings.on_drift, mv)
    result.duration_s = round(time.perf_counter() - t0, 3)
    return _report(ctx, result, settings.on_drift)


def _train_end(mv) -> datetime | None:
    """The end of the version's train window (its recorded split), if recorded."""
    bounds = (((mv.tags or {}).get("split") or {}).get("bounds")) or []
    return datetime.fromisoformat(bounds[1]) if len(bounds) > 1 else None


def decision_threshold(mv) -> float:
    """The monitored version's own decision threshold (its policy, else its training config;
    :func:`mlops.registry.policy.decision_policy`). A regressor has none: its error stream
    never reads this number."""
    threshold = decision_policy(mv).threshold
    return 0.5 if threshold is None else float(threshold)


def _report(ctx: RunContext, result: MonitorResult, on_drift: tuple[str, ...]) -> ActionResult:
    from mlops.actions.monitor_view import display
    out, name = result.to_json(), result.model.name
    mc = ctx.cfg.monitoring
    over_time = record_run(ctx, out, series=f"monitor:{name}", kind="monitor",
                           window=result.current,
                           alerted=any(a["action"] == "alert" for a in result.actions))
    write_report(ctx, "monitor", out, title=f"Monitoring: {name} v{result.model.version}",
                 context={**display(out, int(ctx.cfg.report.max_chart_features), over_time),
                          "history_runs": int(mc.history_runs),
                          **estimation_display(out["performance"]["estimated"])})
    code = 3 if result.found and "alert" in on_drift else 0
    return ActionResult(result=out, exit_code=code,
                        metrics={"drift_share": out["drift_share"], "n_drifted": out["n_drifted"]})


def _act(ctx: RunContext, result: MonitorResult, on_drift: tuple[str, ...], mv) -> list[dict]:
    """Carry out ``monitoring.on_drift``: alert, trip the serving breaker, retrain."""
    actions, name = [], result.model.name
    reasons = "; ".join(result.reasons())
    for action in on_drift:
        if action == "alert":
            path = append_alert(ctx, {"time": datetime.now(timezone.utc).isoformat(),
                                      "model": name, "version": mv.version,
                                      "reasons": result.reasons(), "run": str(ctx.output_dir),
                                      "series": f"monitor:{name}"})
            actions.append({"action": "alert", "detail": reasons, "record": path})
        elif action == "trip_breaker":  # shared state in the online store: servers poll it
            from mlops.actions.serving_support import trip_serving_breaker
            actions.append(trip_serving_breaker(ctx, name, mv.version, reasons))
        elif action == "retrain":
            from mlops.actions.retrain import retrain_candidate
            actions.append(retrain_candidate(ctx, result.current))
    return actions
