"""``action=analyze`` (decide an A/B test) and ``action=plan`` (sample size and duration).

The outcomes come from ``experiment.outcomes.source``: ``simulate`` / ``prediction_log``
(per-unit outcomes of live traffic, :mod:`mlops.actions.experiment_inputs`), ``units``
(a file of per-unit rows) or ``sufficient`` (a file of sufficient statistics); the
statistics are :func:`mlops.experiments.analyze` and :mod:`mlops.experiments.outcome_stats`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from mlops.actions.context import RunContext
from mlops.actions.experiment_inputs import experiment_spec, guard_weights, logged_units, simulated_units
from mlops.actions.outputs import ActionResult, write_report
from mlops.data.files import scan_files
from mlops.errors import ConfigError, ExperimentError
from mlops.experiments import ExperimentSpec, analyze, duration_days, sample_size
from mlops.experiments.outcome_stats import sufficient_stats_table, unit_stats

STATUS = {"ship": "ok", "do_not_ship": "fail", "keep_running": "warn"}


@dataclass
class Outcomes:
    """Sufficient statistics of an experiment, per period, its age, and where they came from."""

    stats: dict
    per_period: dict | None
    days: float | None
    info: dict


@dataclass
class AnalyzeResult:
    """``action=analyze``'s result; :meth:`to_json` is ``analyze.json``."""

    analysis: dict        # mlops.experiments.analyze's dict (decision, winner, reasons, ...)
    primary_metric: str
    outcomes: dict
    weights_guard: dict
    duration_s: float

    @property
    def decision(self) -> str:
        return self.analysis["decision"]

    def to_json(self) -> dict:
        reasons = self.analysis["reasons"]
        headline = f"{self.decision.replace('_', ' ')}: " + (reasons[0] if reasons
                                                             else self.primary_metric)
        return {**self.analysis, "status": STATUS[self.decision], "headline": headline,
                "outcomes": self.outcomes, "weights_guard": self.weights_guard,
                "duration_s": self.duration_s}


def _outcomes(ctx: RunContext, spec: ExperimentSpec) -> Outcomes:
    """Statistics from the configured outcome source."""
    o = ctx.cfg.experiment.outcomes
    source = str(o.source)
    if source in ("simulate", "prediction_log"):
        # each variant scores with the plan its model carries; outcomes are declared
        per_unit, per_day, info = (simulated_units if source == "simulate" else logged_units)(
            ctx, spec)
        stats, per_period = unit_stats(per_unit, per_day, spec)
        return Outcomes(stats, per_period, info["days"], info)
    if source not in ("units", "sufficient"):
        raise ConfigError(f"must be simulate, prediction_log, units or sufficient; got {source!r}",
                          key="experiment.outcomes.source")
    if not o.path:
        raise ConfigError(f"outcomes.source={source} needs a path", key="experiment.outcomes.path",
                          fix="pass experiment.outcomes.path=<parquet/csv glob>")
    df = scan_files(str(o.path), key="experiment.outcomes.path").collect()
    vcol = str(o.variant_col)
    if vcol not in df.columns:
        raise ExperimentError(f"column {vcol!r} not in the outcomes; columns: {df.columns}",
                              key="experiment.outcomes.variant_col")
    info = {"source": source, "path": str(o.path), "rows": df.height}
    days = ctx.cfg.experiment.days_elapsed
    if source == "units":
        stats, per_period = unit_stats(df, df, spec, variant_col=vcol, period_col=o.period_col)
        return Outcomes(stats, per_period, days, info)
    return Outcomes(sufficient_stats_table(df, variant_col=vcol), None, days, info)


def run(ctx: RunContext) -> ActionResult:
    spec = experiment_spec(ctx)
    return run_plan(ctx, spec) if ctx.action == "plan" else run_analyze(ctx, spec)


def run_analyze(ctx: RunContext, spec: ExperimentSpec) -> ActionResult:
    """Analyse the experiment and decide: ship, do not ship, keep running."""
    t0 = time.perf_counter()
    guard = guard_weights(ctx, spec)
    o = _outcomes(ctx, spec)
    analysis = analyze(spec, o.stats, per_period=o.per_period or None, days_elapsed=o.days)
    result = AnalyzeResult(analysis, spec.primary_metric.name, o.info, guard,
                           round(time.perf_counter() - t0, 3))
    out = result.to_json()
    from mlops.actions.analyze_view import display
    write_report(ctx, "analyze", out, title=f"Experiment: {spec.name or spec.key}",
                 context=display(out, spec))
    return ActionResult(result=out, metrics={"decision_ship": float(result.decision == "ship")})


def run_plan(ctx: RunContext, spec: ExperimentSpec) -> ActionResult:
    """Units per arm and days needed for the declared MDE, from the control's variance."""
    e = ctx.cfg.experiment
    o = _outcomes(ctx, spec)
    stats, info = o.stats, o.info
    ctrl = stats[spec.control][spec.primary_metric.name]
    mde_abs = spec.mde * abs(ctrl.mean) if spec.mde_type == "relative" else spec.mde
    if mde_abs <= 0:
        raise ExperimentError("the MDE is 0 in metric units (control mean is 0?)",
                              key="experiment.mde", fix="use mde_type: absolute")
    served = spec.served_variants
    n = sample_size(mde_abs, spec.alpha, spec.power, ctrl.variance ** 0.5)
    daily = float(e.daily_units or info.get("daily_units") or 0)
    days = duration_days(n, daily, weights=[v.weight for v in served]) if daily > 0 else None
    days = max(days, spec.min_duration_days) if days is not None else None
    headline = (f"{n:,} units per arm to detect a {spec.mde:g}"
                f"{' relative' if spec.mde_type == 'relative' else ''} change in "
                f"{spec.primary_metric.name} (alpha {spec.alpha}, power {spec.power})"
                + (f": about {days:g} days at {daily:,.0f} units/day" if days else ""))
    print(headline)
    out = {"status": "ok", "headline": headline, "experiment": spec.key,
           "metric": spec.primary_metric.name, "control_mean": ctrl.mean,
           "control_sd": ctrl.variance ** 0.5, "mde": spec.mde, "mde_type": spec.mde_type,
           "mde_abs": mde_abs, "alpha": spec.alpha, "power": spec.power,
           "units_per_arm": n, "daily_units": daily, "days": days,
           "min_duration_days": spec.min_duration_days, "estimated_from": info}
    write_report(ctx, "plan", out, title=f"Experiment plan: {spec.name or spec.key}",
                 context={"cards": [{"label": "units per arm", "value": n},
                                    {"label": "days", "value": days},
                                    {"label": "control mean", "value": ctrl.mean},
                                    {"label": "control sd", "value": ctrl.variance ** 0.5}]})
    return ActionResult(result=out, report="plan.html")


