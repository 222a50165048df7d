"""``action=monitor``: data drift, prediction drift, performance with delayed labels, detectors.

The pipeline is :func:`mlops.monitoring.run.run_monitor` over the rows of
:mod:`mlops.monitoring.sources` against the reference ``monitoring.reference`` chooses.
Exit code 3 when drift is found and ``alert`` is among ``monitoring.on_drift``, so cron/CI
notice. ``retrain`` registers a candidate trained on the recent window as ``staging``
(continuous training); ``trip_breaker`` opens the serving circuit breaker of every server
(shared state in the online store, which servers poll).
"""
from __future__ import annotations

import time
from contextlib import closing
from dataclasses import replace
from datetime import datetime
from functools import cache

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import MlopsError
from mlops.monitoring.alerts import append_alert
from mlops.monitoring.concept import IN_WINDOW
from mlops.monitoring.estimated_performance import estimated_performance
from mlops.monitoring.history import record_run
from mlops.monitoring.reference_choice import chosen_reference, parse_reference_choice
from mlops.monitoring.run import ModelFacts, MonitorResult, run_monitor
from mlops.monitoring.sources import current_frame, prediction_log_frame
from mlops.registry.policy import decision_policy
from mlops.reports.views.monitor import estimation_display, monitor_display, over_time
from mlops.reports.views.train import model_card
from mlops.serving.breaker.shared import trip_breaker
from mlops.training.run import stage_candidate, train


def run(ctx: RunContext) -> ActionResult:
    """Monitor the model under ``monitoring.alias`` on the current window."""
    t0, mc = time.perf_counter(), ctx.cfg.monitoring
    model, mv = ctx.load_model(mc.alias)
    threshold = decision_policy(mv).threshold  # a regressor's error stream never reads it
    settings = mc.monitor(threshold=0.5 if threshold is None else threshold)
    plan, choice = ctx.model_plan(mv), parse_reference_choice(mc.reference)
    table = cache(lambda: ctx.feature_table(plan))  # built once, only when a source needs it
    stream, info = current_frame(
        mc, plan, model, table=table, fitted_until=(mv.split_bounds or [None, None])[1],
        log=lambda: prediction_log_frame(str(ctx.log_dir), plan, ctx.scan_events(),
                                         version=mv.version, event_id=ctx.event_id,
                                         label_wait_days=mc.window.label_wait_days))
    reference, ref_info = chosen_reference(
        choice, plan, model, stored=str(ctx.registry().reference_path(mv.name, mv.version)),
        stream=stream, table=table, n_bins=settings.policy.n_bins, window=mc.window,
        max_rows=ctx.cfg.training.reference.max_rows, window_start=info.get("start"))
    facts = ModelFacts(name=mv.name, version=mv.version, alias=mc.alias, task=mv.task,
                       metrics=dict(mv.metrics or {}))
    result = run_monitor(reference, stream, settings, model=facts, timestamp=plan.timestamp,
                         label=plan.label.column, current_info=info, reference_info=ref_info)
    result.estimated = estimated_performance(
        mc.estimation, plan, model, mv, stream.filter(pl.col(IN_WINDOW)), table=table,
        threshold=settings.concept.threshold, performance_chunk=mc.performance.chunk,
        seed=ctx.cfg.seed)
    if result.found:
        result.actions = [_act(ctx, action, result) for action in settings.on_drift]
    result.duration_s = round(time.perf_counter() - t0, 3)
    out = result.to_json()
    records, skipped = record_run(ctx.home, out, series=f"monitor:{mv.name}", kind="monitor",
                                  run_dir=str(ctx.output_dir), last=mc.history_runs,
                                  window=result.current,
                                  alerted=any(a["action"] == "alert" for a in result.actions))
    max_charts = ctx.cfg.report.max_chart_features
    history = over_time(records, skipped, out, max_panels=max_charts)
    write_report(ctx, "monitor", out, title=f"Monitoring: {mv.name} v{mv.version}",
                 context={**monitor_display(out, max_charts, history), "history_runs": mc.history_runs,
                          **estimation_display(out["performance"]["estimated"])})
    return ActionResult(result=out, exit_code=3 if result.found and "alert" in settings.on_drift else 0,
                        metrics={"drift_share": out["drift_share"], "n_drifted": out["n_drifted"]})


def _act(ctx: RunContext, action: str, result: MonitorResult) -> dict:
    """Carry out one ``monitoring.on_drift`` action: alert, trip the serving breaker, retrain."""
    name, version, reasons = result.model.name, result.model.version, result.reasons()
    if action == "alert":
        path = append_alert(ctx.home, model=name, version=version, reasons=reasons,
                            run=str(ctx.output_dir), series=f"monitor:{name}")
        return {"action": "alert", "detail": "; ".join(reasons), "record": path}
    if action == "trip_breaker":  # shared state in the online store: servers poll it
        with closing(ctx.store()) as store:
            record = trip_breaker(store, "; ".join(reasons), model=name, version=version,
                                  source="monitor")
        ctx.registry().record_event(name, "breaker_trip", version=version, actor="monitor",
                                    details={"reason": "; ".join(reasons), "source": "monitor"})
        return {"action": "trip_breaker", "detail": "; ".join(reasons),
                "store": ctx.cfg.serving.store.type, "state": record}
    return _retrain(ctx, result.current)


def _retrain(ctx: RunContext, window: dict) -> dict:
    """A candidate trained on the last ``monitoring.retrain_days`` before the window's end,
    registered and staged through the staging gates (promotion stays a gated step)."""
    mc = ctx.cfg.monitoring
    end = datetime.fromisoformat(window.get("labels_known_by") or window.get("end"))
    settings = ctx.cfg.training.recent_window(
        end, mc.retrain_days, compare_with=mc.alias,
        description=f"continuous training after drift ({ctx.output_dir.name})")
    sub = replace(ctx, output_dir=ctx.output_dir / "retrain")
    sub.output_dir.mkdir(exist_ok=True)
    try:
        res, outcome = train(sub.training_job(settings))
        for w in res.warnings:
            print(f"warning: {w}")
        write_report(sub, "train", res.to_json(), title=f"Model card: {res.model.name}",
                     context=model_card(res, outcome, ctx.cfg.report.class_names))
    except MlopsError as exc:
        return {"action": "retrain", "detail": f"candidate training failed: {exc}", "staged": False}
    return stage_candidate(res, ctx.registry(), report="retrain/train.html")
