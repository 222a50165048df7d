"""Live traffic for an A/B test: real events, real models, per-unit outcomes.

Simulated: each unit of a time window is assigned by the experiment's hash; its
rows are scored by its variant's model (a registry version or alias) with the
feature plan THAT model carries (variants may be trained on different specs); a
row's ``decision`` is 1 at or above ``simulation.threshold``. Logged: what the
server did (``action=serve|replay experiment=...``), joined with the late outcomes.
Either way the per-unit outcomes are the ones ``experiment.outcomes`` declares
(:mod:`mlops.experiments.outcomes`); covariates come from the pre-period. Shadow
variants score the same traffic; their decisions are counted, never applied.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl

from mlops.actions.context import RunContext
from mlops.config.validate import plain
from mlops.errors import ExperimentError
from mlops.experiments import ExperimentSpec, assign_units
from mlops.experiments.outcomes import DECISION, SCORE, OutcomeSpec, unit_covariates, unit_outcomes
from mlops.training.task import model_scores


def resolve_models(ctx: RunContext, spec: ExperimentSpec) -> dict[str, tuple]:
    """variant name -> (model, ModelVersion); ``model`` is an alias, ``3``, ``v3`` or ``name@alias``."""
    from mlops.actions.registry_access import model_name, open_registry, trusted_types
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


def outcome_spec(ctx: RunContext, schema: dict) -> OutcomeSpec:
    """The declared outcomes, every expression checked against the source columns."""
    out = OutcomeSpec.from_dict(plain(ctx.cfg.experiment.outcomes), key="experiment.outcomes")
    out.check(list(schema))
    return out


def _check_unit(unit: str, schema) -> None:
    if unit not in schema:
        raise ExperimentError(f"unit column {unit!r} is not in the data; columns: "
                              f"{list(schema)[:12]}", key="experiment.unit",
                              fix="name the column that identifies a unit (a user, a shop...)")


def _inputs(ctx: RunContext, spec: ExperimentSpec):
    """(events, their schema, the declared outcomes, each variant's (model, version))."""
    events = ctx.scan_events()
    schema = dict(events.collect_schema())
    _check_unit(spec.unit, schema)
    return events, schema, outcome_spec(ctx, schema), resolve_models(ctx, spec)


def simulate_units(ctx: RunContext, spec: ExperimentSpec
                   ) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(per-unit outcomes, per-unit-per-day outcomes, description)."""
    from mlops.actions.train import feature_table
    sim = ctx.cfg.experiment.simulation
    events, schema, outcomes, models = _inputs(ctx, spec)
    unit = spec.unit
    plans = {name: ctx.model_plan(mv, schema) for name, (_, mv) in models.items()}
    ts = plans[spec.control].timestamp
    span = events.select(pl.col(ts).min().alias("lo"), pl.col(ts).max().alias("hi")).collect()
    first, last = span["lo"][0], span["hi"][0]
    days = float(sim.days)
    start = (last - timedelta(days=days)) if sim.start_day is None else \
        first + timedelta(days=float(sim.start_day))
    end = start + timedelta(days=days)
    keep = list(dict.fromkeys([unit, ts, *outcomes.source_columns(schema)]))
    tables: dict[str, pl.DataFrame] = {}  # plan hash -> window rows with that plan's features
    for plan in plans.values():
        if plan.spec_hash not in tables:
            t = feature_table(ctx, plan, extra=keep)
            tables[plan.spec_hash] = t.filter((pl.col(ts) >= start) & (pl.col(ts) < end))
    window = tables[plans[spec.control].spec_hash]
    if window.height == 0:
        raise ExperimentError("the simulation window has no traffic",
                              key="experiment.simulation.start_day", fix="move it inside the data")
    units = window.get_column(unit).unique(maintain_order=True)
    assigned = pl.DataFrame({unit: units, "variant": assign_units(spec, units.cast(pl.String))})
    threshold = float(sim.threshold)
    scored, shadow = [], {}
    for v in spec.variants:
        model, mv = models[v.name]
        plan = plans[v.name]
        rows = tables[plan.spec_hash].join(assigned, on=unit, how="left")
        rows = rows if v.shadow else rows.filter(pl.col("variant") == v.name)
        if rows.height == 0:
            continue
        p = model_scores(model, rows.select(plan.feature_names))
        if v.shadow:  # scored and logged, never applied
            shadow[v.name] = {"version": mv.version, "plan": plan.name, "rows": rows.height,
                              "decisions": int((p >= threshold).sum())}
            continue
        scored.append(rows.select(*keep, "variant").with_columns(
            pl.Series(SCORE, p), pl.Series(DECISION, (p >= threshold).astype("int64"))))
    served = pl.concat(scored)
    per_unit, per_day = _per_unit(served, events, outcomes, unit=unit, ts=ts, start=start,
                                  pre_days=float(sim.pre_days))
    info = {"start": start.isoformat(), "end": end.isoformat(), "days": days,
            "units": per_unit.height, "rows": served.height, "threshold": threshold,
            "models": {n: f"{mv.name} v{mv.version}" for n, (_, mv) in models.items()},
            "plans": {n: f"{p.name} {p.short_hash}" for n, p in plans.items()},
            "shadow": shadow,
            "daily_units": float(window.group_by(pl.col(ts).dt.date()).agg(
                pl.col(unit).n_unique()).get_column(unit).mean())}
    return per_unit, per_day, info


def logged_units(ctx: RunContext, spec: ExperimentSpec) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Outcomes of what the server actually did: the prediction log of an experiment
    (``action=serve|replay experiment=...``) joined with the source rows (labels and
    other outcome columns) by request id = event id (``data.event_id``), or without
    one by (entity, timestamp)."""
    from mlops.errors import DataError
    from mlops.serving.prediction_log import scan_prediction_log
    log_dir = ctx.cfg.serving.log_dir or str(ctx.home / "predictions")
    scan = scan_prediction_log(log_dir)  # parquet parts + journal not yet compacted
    served = [v.name for v in spec.served_variants]
    log = (scan.filter((pl.col("served_by") == "model") & pl.col("variant").is_in(served))
           .select("request_id", "entity", "event_ts", "variant",
                   pl.col("probability").alias(SCORE),
                   (pl.col("prediction") == 1).cast(pl.Int64).alias(DECISION))
           .collect()) if scan is not None else None
    if log is None or log.height == 0:
        raise DataError(f"no experiment traffic in the prediction log under {log_dir}",
                        key="experiment.outcomes.source",
                        fix="serve traffic with experiment=... first (action=serve or replay)")
    events, schema, outcomes, models = _inputs(ctx, spec)
    unit = spec.unit
    plan = ctx.model_plan(models[spec.control][1], schema)  # entity and timestamp names
    ts, eid = plan.timestamp, ctx.event_id
    keep = list(dict.fromkeys([unit, ts, *outcomes.source_columns(schema)]))
    if eid and eid in schema:
        src = events.select(pl.col(eid).cast(pl.String).alias("request_id"), *keep)
        rows = log.drop("entity", "event_ts").join(src.collect(), on="request_id", how="inner")
    else:  # no event id: the event is its (entity, timestamp)
        rest = [c for c in keep if c not in (plan.entity, ts)]
        src = events.select(pl.col(plan.entity).cast(pl.String).alias("entity"),
                            pl.col(ts).cast(pl.Datetime("us")).alias("event_ts"), *rest).collect()
        rows = log.join(src.unique(subset=["entity", "event_ts"], keep="first"),
                        on=["entity", "event_ts"], how="inner")
        rows = rows.with_columns(pl.col("event_ts").alias(ts), *(
            [pl.col("entity").alias(plan.entity)] if plan.entity in keep else []))
    if rows.height == 0:
        raise DataError("no logged request matches an event of the data source",
                        key="data.event_id", fix="serve with the event id as request_id")
    start = rows[ts].min()
    per_unit, per_day = _per_unit(rows, events, outcomes, unit=unit, ts=ts, start=start,
                                  pre_days=float(ctx.cfg.experiment.simulation.pre_days))
    days = (rows[ts].max() - start).total_seconds() / 86400
    info = {"source": "prediction_log", "path": log_dir, "logged": log.height,
            "joined": rows.height, "start": str(start), "days": round(days, 2),
            "units": per_unit.height, "daily_units": per_unit.height / max(days, 1.0)}
    return per_unit, per_day, info


def _per_unit(rows: pl.DataFrame, events: pl.LazyFrame, outcomes: OutcomeSpec, *, unit: str,
              ts: str, start, pre_days: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-unit and per-unit-per-day outcomes, with the pre-period covariates per unit."""
    rows = rows.with_columns(((pl.col(ts) - pl.lit(start)).dt.total_days()).alias("day"))
    per_unit = unit_outcomes(rows, outcomes, by=[unit, "variant"])
    if outcomes.covariates:
        pre = events.filter((pl.col(ts) >= start - timedelta(days=pre_days))
                            & (pl.col(ts) < start))
        cov = unit_covariates(pre, outcomes, by=[unit]).with_columns(
            pl.col(unit).cast(per_unit.schema[unit]))  # a logged unit id may be a string
        names = [c.name for c in outcomes.covariates]
        per_unit = (per_unit.join(cov, on=unit, how="left")
                    .with_columns([pl.col(n).fill_null(0.0) for n in names]).sort(unit))
    per_day = unit_outcomes(rows, outcomes, by=[unit, "variant", "day"]).sort(["day", unit])
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


def check_metrics(names: list[str], available: list[str],
                  key: str = "experiment.primary_metric") -> None:
    """Every metric the analysis needs is a column of the per-unit outcomes."""
    missing = [n for n in names if n not in available]
    if missing:
        raise ExperimentError(f"metric(s) {missing} are not in the outcomes; available: "
                              f"{sorted(available)}", key=key,
                              fix="name metrics the outcome data has (experiment.outcomes."
                                  "metrics / derived / covariates declare them)")
