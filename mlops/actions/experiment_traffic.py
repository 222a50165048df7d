"""Simulated live traffic for an A/B test: real events, real models, per-unit outcomes.

Each unit (user) of a time window is assigned by the experiment's hash; its
transactions are scored by its variant's model (a registry version or alias);
a transaction is declined at ``threshold``. Outcomes per unit: ``fraud_loss``
(amount of fraud let through), ``fraud_caught``, ``declines``, ``false_declines``,
``false_decline_rate`` (legit transactions declined / legit transactions) and
``cost`` = fraud_loss + false_decline_cost x false_declines (what the business pays);
``pre_spend`` (spend before the window) is the CUPED covariate. Shadow variants
score the same traffic; their decisions are counted, never applied.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl

from mlops.actions.context import RunContext
from mlops.errors import ExperimentError
from mlops.experiments import ExperimentSpec, assign_units
from mlops.features.compile import FeaturePlan

METRICS = ("cost", "fraud_loss", "fraud_caught", "declines", "false_declines", "false_decline_rate")


def resolve_models(ctx: RunContext, spec: ExperimentSpec) -> dict[str, tuple]:
    """variant name -> (model, ModelVersion); ``model`` is an alias, ``3``, ``v3`` or ``name@alias``."""
    from mlops.actions.registry_ops import model_name, open_registry, trusted_types
    reg, out = open_registry(ctx), {}
    for v in spec.variants:
        ref = str(v.model)
        name, _, target = ref.rpartition("@") if "@" in ref else (model_name(ctx), "", ref)
        target = target[1:] if target[:1] == "v" and target[1:].isdigit() else target
        try:
            out[v.name] = reg.load_model(name, int(target) if target.isdigit() else target,
                                         trusted_types(ctx))
        except Exception as exc:
            if not hasattr(exc, "exit_code"):
                raise
            raise ExperimentError(f"variant {v.name!r} names model {ref!r}: {exc}",
                                  key="experiment.variants",
                                  fix="point it at an existing version or alias") from None
    return out


def simulate_units(ctx: RunContext, spec: ExperimentSpec, plan: FeaturePlan,
                   table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(per-unit outcomes, per-unit-per-day outcomes, description)."""
    sim = ctx.cfg.experiment.simulation
    ts, unit = plan.timestamp, spec.unit
    if unit not in table.columns:
        raise ExperimentError(f"unit column {unit!r} is not in the data", key="experiment.unit",
                              fix=f"use one of {table.columns[:8]}")
    first, last = table[ts].min(), table[ts].max()
    days = float(sim.days)
    start = (last - timedelta(days=days)) if sim.start_day is None else \
        first + timedelta(days=float(sim.start_day))
    end = start + timedelta(days=days)
    window = table.filter((pl.col(ts) >= start) & (pl.col(ts) < end))
    if window.height == 0:
        raise ExperimentError("the simulation window has no traffic",
                              key="experiment.simulation.start_day", fix="move it inside the data")
    models = resolve_models(ctx, spec)
    units = window.get_column(unit).unique(maintain_order=True)
    assigned = pl.DataFrame({unit: units, "variant": assign_units(spec, units.cast(pl.String))})
    window = window.join(assigned, on=unit, how="left")
    scored, shadow = [], {}
    for v in spec.variants:
        model, mv = models[v.name]
        rows = window if v.shadow else window.filter(pl.col("variant") == v.name)
        if rows.height == 0:
            continue
        p = model.predict_proba(rows.select(plan.feature_names))[:, 1]
        if v.shadow:  # scored and logged, never applied
            shadow[v.name] = {"version": mv.version, "rows": rows.height,
                              "declines": int((p >= sim.threshold).sum())}
            continue
        scored.append(rows.with_columns(pl.Series("score", p)))
    tx = pl.concat(scored).with_columns(
        (pl.col("score") >= float(sim.threshold)).alias("declined"))
    per_unit, per_day = unit_outcomes(tx, table, plan, unit=unit, start=start, sim=sim)
    info = {"start": start.isoformat(), "end": end.isoformat(), "days": days,
            "units": per_unit.height, "transactions": tx.height, "threshold": float(sim.threshold),
            "models": {n: f"{mv.name} v{mv.version}" for n, (_, mv) in models.items()},
            "shadow": shadow,
            "daily_units": float(window.group_by(pl.col(ts).dt.date()).agg(
                pl.col(unit).n_unique()).get_column(unit).mean())}
    return per_unit, per_day, info


def logged_units(ctx: RunContext, spec: ExperimentSpec, plan: FeaturePlan,
                 table: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Outcomes of what the server actually did: the prediction log of an experiment
    (``action=serve|replay experiment=...``) joined with the late outcome events
    (labels and amounts, by request id = transaction id)."""
    import glob

    from mlops.errors import DataError
    log_dir = ctx.cfg.serving.log_dir or str(ctx.home / "predictions")
    files = sorted(glob.glob(f"{log_dir}/*.parquet"))
    served = [v.name for v in spec.served_variants]
    log = (pl.scan_parquet(files).filter((pl.col("served_by") == "model")
                                         & pl.col("variant").is_in(served))
           .select("request_id", pl.col("entity").alias(spec.unit), "variant",
                   (pl.col("prediction") == 1).alias("declined")).collect()) if files else None
    if log is None or log.height == 0:
        raise DataError(f"no experiment traffic in the prediction log under {log_dir}",
                        key="experiment.outcomes.source",
                        fix="serve traffic with experiment=... first (action=serve or replay)")
    ts, label = plan.timestamp, plan.label["column"]
    events = table.select(pl.col("transaction_id").alias("request_id"), ts, label, "amount")
    tx = log.join(events, on="request_id", how="inner")
    start = tx[ts].min()
    per_unit, per_day = unit_outcomes(tx, table, plan, unit=spec.unit, start=start,
                                      sim=ctx.cfg.experiment.simulation)
    days = (tx[ts].max() - start).total_seconds() / 86400
    info = {"source": "prediction_log", "path": log_dir, "logged": log.height,
            "joined": tx.height, "start": str(start), "days": round(days, 2),
            "units": per_unit.height, "daily_units": per_unit.height / max(days, 1.0)}
    return per_unit, per_day, info


def unit_outcomes(tx: pl.DataFrame, table: pl.DataFrame, plan: FeaturePlan, *, unit: str,
                  start, sim) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-unit and per-unit-per-day outcomes from decided transactions.

    ``tx`` needs the unit, ``variant``, ``declined``, ``amount``, the label and the
    timestamp; ``table`` (all events) gives the pre-period spend (CUPED covariate).
    """
    ts, label = plan.timestamp, plan.label["column"]
    tx = tx.with_columns(((pl.col(ts) - pl.lit(start)).dt.total_days()).alias("day"))
    fraud = pl.col(label) == 1
    outcome = [
        pl.when(fraud & ~pl.col("declined")).then(pl.col("amount")).otherwise(0.0).sum()
        .alias("fraud_loss"),
        (fraud & pl.col("declined")).sum().cast(pl.Float64).alias("fraud_caught"),
        pl.col("declined").sum().cast(pl.Float64).alias("declines"),
        (~fraud & pl.col("declined")).sum().cast(pl.Float64).alias("false_declines"),
        ((~fraud & pl.col("declined")).sum() / (~fraud).sum().clip(1)).cast(pl.Float64)
        .alias("false_decline_rate"),
    ]
    cost = (pl.col("fraud_loss") + float(sim.false_decline_cost) * pl.col("false_declines"))
    pre = (table.filter((pl.col(ts) >= start - timedelta(days=float(sim.pre_days)))
                        & (pl.col(ts) < start))
           .group_by(plan.entity).agg(pl.col("amount").sum().alias("pre_spend"))
           .rename({plan.entity: unit}))
    per_unit = (tx.group_by([unit, "variant"]).agg(outcome).with_columns(cost.alias("cost"))
                .join(pre, on=unit, how="left").with_columns(pl.col("pre_spend").fill_null(0.0))
                .sort(unit))
    per_day = (tx.group_by([unit, "variant", "day"]).agg(outcome)
               .with_columns(cost.alias("cost")).sort(["day", unit]))
    return per_unit, per_day


def stats_per_period(per_day: pl.DataFrame, spec: ExperimentSpec, metrics: list[str],
                     period_col: str = "day", period_days: int = 7) -> dict:
    """Weekly sufficient statistics (units active that week) for the novelty check."""
    from mlops.experiments import aggregate_units
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


def metric_names(spec: ExperimentSpec) -> list[str]:
    names = [spec.primary_metric.name, *[m.name for m in spec.secondary_metrics],
             *[g.name for g in spec.guardrails]]
    return list(dict.fromkeys(names))


def check_metrics(names: list[str], available: list[str]) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        raise ExperimentError(f"metric(s) {missing} are not in the outcomes; available: "
                              f"{sorted(available)}", key="experiment.primary_metric",
                              fix="name metrics the outcome data has")
