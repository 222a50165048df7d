"""``action=analyze`` (decide an A/B test) and ``action=plan`` (sample size and duration).

The outcomes come from ``experiment.outcomes.source``: ``simulate`` / ``prediction_log``
(per-unit outcomes of live traffic: each variant's model scores with the plan it carries,
:mod:`mlops.experiments.simulation`), ``units`` or ``sufficient`` (a file,
:mod:`mlops.experiments.inputs`), read by :func:`mlops.experiments.sources.experiment_outcomes`;
the statistics are :func:`mlops.experiments.analyze`.
"""
from __future__ import annotations

import time

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import ConfigError
from mlops.experiments import analyze
from mlops.experiments.analysis import AnalyzeResult
from mlops.experiments.inputs import Outcomes, guard_weights, variant_models
from mlops.experiments.power import experiment_plan
from mlops.experiments.sources import LiveTraffic, experiment_outcomes
from mlops.reports.views.analyze import analyze_display, plan_cards
from mlops.serving.prediction_log import scan_prediction_log

SIMULATION_KEY = "experiment.simulation.threshold"


def run(ctx: RunContext) -> ActionResult:
    """``action=analyze`` decides the experiment; ``action=plan`` sizes it."""
    spec = ctx.cfg.experiment
    if spec is None:
        raise ConfigError("no experiment selected", key="experiment",
                          fix="pass experiment=<name> (see conf/experiment/)")
    return _plan(ctx, spec) if ctx.action == "plan" else _analyze(ctx, spec)


def _analyze(ctx: RunContext, spec) -> ActionResult:
    """Analyse the experiment and decide: ship, do not ship, keep running."""
    t0 = time.perf_counter()
    guard = guard_weights(ctx.home / "experiments", spec)
    o = _outcomes(ctx, spec)
    analysis = analyze(spec, o.stats, per_period=o.per_period or None, days_elapsed=o.days)
    result = AnalyzeResult(analysis, spec.primary_metric.name, o.info, guard,
                           round(time.perf_counter() - t0, 3))
    out = result.to_json()
    write_report(ctx, "analyze", out, title=f"Experiment: {spec.name or spec.key}",
                 context=analyze_display(out, spec))
    return ActionResult(result=out, metrics={"decision_ship": float(result.decision == "ship")})


def _plan(ctx: RunContext, spec) -> ActionResult:
    """Units per arm and days needed for the declared MDE, from the control's variance."""
    o = _outcomes(ctx, spec)
    daily = float(spec.daily_units or o.info.get("daily_units") or 0)
    out = {**experiment_plan(spec, o.stats, daily_units=daily), "estimated_from": o.info}
    print(out["headline"])
    write_report(ctx, "plan", out, title=f"Experiment plan: {spec.name or spec.key}",
                 context={"cards": plan_cards(out)})
    return ActionResult(result=out, report="plan.html")


def _outcomes(ctx: RunContext, spec) -> Outcomes:
    """Statistics from the configured outcome source (the run's data, registry, log)."""
    return experiment_outcomes(spec, LiveTraffic(
        events=ctx.scan_events, prediction_log=lambda: scan_prediction_log(ctx.log_dir),
        log_path=str(ctx.log_dir), event_id=ctx.event_id,
        models=lambda: variant_models(ctx.registry(), spec, model_name=ctx.model_name,
                                      trusted=ctx.trusted_types),
        plan=ctx.model_plan, feature_table=lambda plan, keep: ctx.feature_table(plan, extra=keep),
        threshold=lambda mv: ctx.decision(mv, spec.simulation.threshold,
                                          key=SIMULATION_KEY).threshold))
