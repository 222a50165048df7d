"""``action=analyze`` (decide an A/B test) and ``action=plan`` (sample size and duration)."""
from __future__ import annotations

import json
import time
from dataclasses import fields

from mlops.actions.context import RunContext
from mlops.actions.experiment_traffic import check_metrics, logged_units, metric_names, simulate_units, stats_per_period
from mlops.actions.outputs import ActionResult, write_report
from mlops.config.validate import plain
from mlops.data.files import scan_files
from mlops.errors import ConfigError, ExperimentError
from mlops.experiments import (
    ExperimentSpec,
    SufficientStats,
    aggregate_units,
    analyze,
    check_weights_unchanged,
    duration_days,
    sample_size,
)
from mlops.home import private_dir, private_file


def experiment_spec(ctx: RunContext) -> ExperimentSpec:
    e = ctx.cfg.experiment
    if e is None:
        raise ConfigError("no experiment selected", key="experiment",
                          fix="pass experiment=<name> (see conf/experiment/)")
    values = plain(e)
    try:
        # the spec's own fields; the rest of the group (outcomes, simulation) is for actions
        return ExperimentSpec(**{f.name: values[f.name] for f in fields(ExperimentSpec)})
    except ExperimentError as exc:
        raise exc.under("experiment") from None


def guard_weights(ctx: RunContext, spec: ExperimentSpec) -> dict:
    """Refuse re-weighting under the same seed; remember the first (seed, weights) seen."""
    path = ctx.home / "experiments" / f"{spec.key}.json"
    if path.exists():
        check_weights_unchanged(json.loads(path.read_text()), spec)
        return {"state": str(path), "first_run": False}
    private_dir(path.parent)
    private_file(path).write_text(json.dumps(spec.assignment_state(), indent=2))
    return {"state": str(path), "first_run": True}


def _outcomes(ctx: RunContext, spec: ExperimentSpec):
    """(stats, per_period, days_elapsed, description) from the configured source."""
    e = ctx.cfg.experiment
    source, metrics = str(e.outcomes.source), metric_names(spec)
    cov = spec.cuped_covariate
    if source in ("simulate", "prediction_log"):
        # each variant scores with the plan its model carries; outcomes are declared
        per_unit, per_day, info = (simulate_units if source == "simulate" else logged_units)(
            ctx, spec)
        check_metrics(metrics, per_unit.columns)
        if cov is not None:
            check_metrics([cov], per_unit.columns, key="experiment.cuped_covariate")
        stats = aggregate_units(per_unit, variant_col="variant", metric_cols=metrics,
                                covariate_col=cov)
        return stats, stats_per_period(per_day, spec, metrics), info["days"], info
    if not e.outcomes.path:
        raise ConfigError(f"outcomes.source={source} needs a path", key="experiment.outcomes.path",
                          fix="pass experiment.outcomes.path=<parquet/csv glob>")
    df = scan_files(str(e.outcomes.path), key="experiment.outcomes.path").collect()
    vcol = str(e.outcomes.variant_col)
    if vcol not in df.columns:
        raise ExperimentError(f"column {vcol!r} not in the outcomes; columns: {df.columns}",
                              key="experiment.outcomes.variant_col")
    info = {"source": source, "path": str(e.outcomes.path), "rows": df.height}
    if source == "units":
        check_metrics(metrics, df.columns)
        stats = aggregate_units(df, variant_col=vcol, metric_cols=metrics, covariate_col=cov)
        per_period = None
        pcol = e.outcomes.period_col
        if pcol and pcol in df.columns:
            per_period = stats_per_period(df.rename({vcol: "variant"}), spec, metrics,
                                          period_col=pcol)
        return stats, per_period, e.days_elapsed, info
    if source == "sufficient":
        need = {"metric", "n", "sum", "sum_sq"}
        if not need <= set(df.columns):
            raise ExperimentError(f"sufficient statistics need columns {sorted(need)} (+ "
                                  f"sum_pre, sum_sq_pre, sum_cross for CUPED); got {df.columns}",
                                  key="experiment.outcomes.path")
        stats: dict = {}
        for row in df.iter_rows(named=True):
            fields = {k: row[k] for k in ("n", "sum", "sum_sq", "sum_pre", "sum_sq_pre",
                                          "sum_cross") if k in row and row[k] is not None}
            stats.setdefault(str(row[vcol]), {})[str(row["metric"])] = SufficientStats(**fields)
        return stats, None, e.days_elapsed, info
    raise ConfigError(f"must be simulate, prediction_log, units or sufficient; got {source!r}",
                      key="experiment.outcomes.source")


def run(ctx: RunContext, action: str) -> ActionResult:
    spec = experiment_spec(ctx)
    return run_plan(ctx, spec) if action == "plan" else run_analyze(ctx, spec)


def run_analyze(ctx: RunContext, spec: ExperimentSpec) -> ActionResult:
    t0 = time.perf_counter()
    guard = guard_weights(ctx, spec)
    stats, per_period, days, info = _outcomes(ctx, spec)
    result = analyze(spec, stats, per_period=per_period or None, days_elapsed=days)
    decision = result["decision"]
    status = {"ship": "ok", "do_not_ship": "fail", "keep_running": "warn"}[decision]
    headline = f"{decision.replace('_', ' ')}: " + (result["reasons"][0] if result["reasons"]
                                                   else spec.primary_metric.name)
    out = {**result, "status": status, "headline": headline, "outcomes": info,
           "weights_guard": guard, "duration_s": round(time.perf_counter() - t0, 3)}
    from mlops.actions.analyze_view import display
    write_report(ctx, "analyze", out, title=f"Experiment: {spec.name or spec.key}",
                 context=display(out, spec))
    return ActionResult(result=out, metrics={"decision_ship": float(decision == "ship")})


def run_plan(ctx: RunContext, spec: ExperimentSpec) -> ActionResult:
    """Units per arm and days needed for the declared MDE, from the control's variance."""
    e = ctx.cfg.experiment
    stats, _, _, info = _outcomes(ctx, spec)
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


