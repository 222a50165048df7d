"""``action=monitor``: data drift, prediction drift, performance with delayed labels, detectors.

The pipeline is :func:`mlops.monitoring.run.run_monitor` over the rows of
:mod:`mlops.monitoring.sources` against the reference ``monitoring.reference`` chooses.
Exit code 3 when drift is found and ``alert`` is among ``monitoring.on_drift``, so cron/CI
notice. The ``monitoring.on_drift`` responses are :class:`mlops.monitoring.responses.DriftResponder`:
``retrain`` registers a candidate trained on the recent window as ``staging`` (continuous
training, :func:`mlops.training.run.retrain_and_stage`); ``trip_breaker`` opens the serving
circuit breaker of every server (shared state in the online store, which servers poll).
"""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from functools import cache

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.monitoring.concept import IN_WINDOW
from mlops.monitoring.estimated_performance import estimated_performance
from mlops.monitoring.history import record_run
from mlops.monitoring.reference_choice import chosen_reference, parse_reference_choice
from mlops.monitoring.responses import DriftResponder
from mlops.monitoring.run import ModelFacts, run_monitor
from mlops.monitoring.sources import current_frame, prediction_log_frame
from mlops.registry.policy import decision_policy
from mlops.reports.views.monitor import monitor_page
from mlops.reports.views.train import model_card
from mlops.training.run import retrain_and_stage


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
    result = run_monitor(reference, stream, settings, model=ModelFacts.of(mv, mc.alias),
                         timestamp=plan.timestamp, label=plan.label.column, current_info=info,
                         reference_info=ref_info)
    result.estimated = estimated_performance(
        mc.estimation, plan, model, mv, stream.filter(pl.col(IN_WINDOW)), table=table,
        threshold=settings.concept.threshold, performance_chunk=mc.performance.chunk,
        seed=ctx.cfg.seed)
    if result.found:
        result.actions = DriftResponder(
            ctx.home, str(ctx.output_dir), store=ctx.store, registry=ctx.registry,
            store_type=ctx.cfg.serving.store.type, retrain=lambda end: _retrain(ctx, end),
        ).respond(result, settings.on_drift)
    result.duration_s = round(time.perf_counter() - t0, 3)
    out = result.to_json()
    records, skipped = record_run(ctx.home, out, series=f"monitor:{mv.name}", kind="monitor",
                                  run_dir=str(ctx.output_dir), last=mc.history_runs,
                                  window=result.current,
                                  alerted=any(a["action"] == "alert" for a in result.actions))
    write_report(ctx, "monitor", out, title=f"Monitoring: {mv.name} v{mv.version}",
                 context=monitor_page(out, records, skipped, history_runs=mc.history_runs,
                                      max_charts=ctx.cfg.report.max_chart_features))
    return ActionResult(result=out, exit_code=3 if result.found and "alert" in settings.on_drift else 0,
                        metrics={"drift_share": out["drift_share"], "n_drifted": out["n_drifted"]})


def _retrain(ctx: RunContext, end: datetime) -> dict:
    """A candidate trained on the last ``monitoring.retrain_days`` before ``end``,
    registered and staged through the staging gates (promotion stays a gated step)."""
    mc = ctx.cfg.monitoring
    settings = ctx.cfg.training.recent_window(
        end, mc.retrain_days, compare_with=mc.alias,
        description=f"continuous training after drift ({ctx.output_dir.name})")
    sub = replace(ctx, output_dir=ctx.output_dir / "retrain")
    sub.output_dir.mkdir(exist_ok=True)
    return retrain_and_stage(
        lambda: sub.training_job(settings), ctx.registry, report="retrain/train.html",
        card=lambda res, outcome: write_report(
            sub, "train", res.to_json(), title=f"Model card: {res.model.name}",
            context=model_card(res, outcome, ctx.cfg.report.class_names)))
