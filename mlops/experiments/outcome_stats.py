"""From outcome rows to what :func:`mlops.experiments.analyze` reads: sufficient statistics
per variant and metric, and per period (weeks) for the novelty check.

Three shapes of outcome data: per-unit rows (simulated, logged or a file of units), and
a file of sufficient statistics already reduced elsewhere (a warehouse query).
"""
from __future__ import annotations

import polars as pl

from mlops.errors import ExperimentError
from mlops.experiments.spec import ExperimentSpec
from mlops.experiments.sufficient import SufficientStats, aggregate_units

SUFFICIENT_COLUMNS = ("n", "sum", "sum_sq", "sum_pre", "sum_sq_pre", "sum_cross")


def metric_names(spec: ExperimentSpec) -> list[str]:
    """Every metric the analysis reads: primary, secondary, guardrails (each once)."""
    names = [spec.primary_metric.name, *[m.name for m in spec.secondary_metrics],
             *[g.name for g in spec.guardrails]]
    return list(dict.fromkeys(names))


def check_metrics(names: list[str], available: list[str],
                  key: str = "experiment.primary_metric") -> None:
    """Every metric the analysis needs is a column of the per-unit outcomes."""
    missing = [n for n in names if n not in available]
    if missing:
        raise ExperimentError(f"metric(s) {missing} are not in the outcomes; available: "
                              f"{sorted(available)}", key=key,
                              fix="name metrics the outcome data has (experiment.outcomes."
                                  "metrics / derived / covariates declare them)")


def stats_per_period(per_day: pl.DataFrame, spec: ExperimentSpec, metrics: list[str],
                     period_col: str = "day", period_days: int = 7) -> dict:
    """Weekly sufficient statistics (units active that week) for the novelty check."""
    df = per_day.with_columns((pl.col(period_col) // period_days).alias("__period"))
    out = {}
    for period in sorted(df["__period"].unique().to_list()):
        part = df.filter(pl.col("__period") == period)
        weekly = part.group_by([spec.unit, "variant"]).agg([pl.col(m).sum() for m in metrics])
        if weekly["variant"].n_unique() < 2:
            continue
        out[f"week {int(period) + 1}"] = aggregate_units(weekly, variant_col="variant",
                                                         metric_cols=metrics)
    return out


def unit_stats(per_unit: pl.DataFrame, per_day: pl.DataFrame | None, spec: ExperimentSpec, *,
               variant_col: str = "variant", period_col: str | None = "day"
               ) -> tuple[dict, dict | None]:
    """(stats, per-period stats or None) of per-unit outcome rows.

    ``per_day`` (per unit and ``period_col``) feeds the novelty check when given.
    """
    metrics, cov = metric_names(spec), spec.cuped_covariate
    check_metrics(metrics, per_unit.columns)
    if cov is not None:
        check_metrics([cov], per_unit.columns, key="experiment.cuped_covariate")
    stats = aggregate_units(per_unit, variant_col=variant_col, metric_cols=metrics,
                            covariate_col=cov)
    per_period = None
    if per_day is not None and period_col and period_col in per_day.columns:
        per_period = stats_per_period(per_day.rename({variant_col: "variant"})
                                      if variant_col != "variant" else per_day,
                                      spec, metrics, period_col=period_col)
    return stats, per_period


def sufficient_stats_table(df: pl.DataFrame, *, variant_col: str) -> dict:
    """``{variant: {metric: SufficientStats}}`` from rows ``variant, metric, n, sum, sum_sq``
    (+ ``sum_pre, sum_sq_pre, sum_cross`` for CUPED)."""
    need = {"metric", "n", "sum", "sum_sq"}
    if not need <= set(df.columns):
        raise ExperimentError(f"sufficient statistics need columns {sorted(need)} (+ "
                              f"sum_pre, sum_sq_pre, sum_cross for CUPED); got {df.columns}",
                              key="experiment.outcomes.path")
    stats: dict = {}
    for row in df.iter_rows(named=True):
        given = {k: row[k] for k in SUFFICIENT_COLUMNS if k in row and row[k] is not None}
        stats.setdefault(str(row[variant_col]), {})[str(row["metric"])] = SufficientStats(**given)
    return stats
