"""Per-unit outcomes of an A/B test from live traffic: simulated or logged.

Simulated (:func:`simulate_units`): each unit of a time window is assigned by the
experiment's hash; its rows are scored by its variant's model with the feature plan
THAT model carries (variants may be trained on different specs); a row's ``decision``
is 1 at or above that variant's own decision threshold (its version's policy). Logged
(:func:`logged_units`): what the server did (the prediction log of
``action=serve|replay experiment=...``), joined with the source rows. Either way the
per-unit outcomes are the ones the :class:`OutcomeSpec` declares; covariates come from
the pre-period. Shadow variants score the same traffic; their
decisions are counted, never applied. Frames and typed values in, frames out: the
action layer reads the config, the registry and the feature tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

import polars as pl

from mlops.errors import DataError, ExperimentError
from mlops.experiments.outcomes import DECISION, SCORE, OutcomeSpec, unit_covariates, unit_outcomes
from mlops.experiments.routing import assign_units
from mlops.experiments.spec import ExperimentSpec
from mlops.features.compile import FeaturePlan
from mlops.training.task import model_scores


@dataclass
class SimulationSettings:
    """``experiment.simulation``: live traffic from the configured data, scored by each
    variant's model: the traffic window, the pre-period and an optional threshold override."""

    start_day: Optional[float] = None     # null = the last `days` of the data
    days: float = 21.0
    threshold: Optional[float] = None     # null = each variant's own decision threshold (override)
    pre_days: float = 28.0                # pre-period for the CUPED covariates


@dataclass(frozen=True)
class VariantModel:
    """A variant's fitted model, its registry identity, the plan it carries and the
    decision threshold it decides at (its version's policy, or a run's override)."""

    model: object
    name: str
    version: int
    plan: FeaturePlan
    threshold: float | None = 0.5   # None: a regressor (no decision: ``decision`` is null)


def simulation_window(first: datetime, last: datetime, s: SimulationSettings
                      ) -> tuple[datetime, datetime]:
    """``[start, end)``: the last ``days`` of the data, or ``days`` from ``start_day``."""
    start = (last - timedelta(days=s.days)) if s.start_day is None else \
        first + timedelta(days=float(s.start_day))
    return start, start + timedelta(days=s.days)


def kept_columns(spec: ExperimentSpec, timestamp: str, outcomes: OutcomeSpec,
                 schema: dict) -> list[str]:
    """Source columns a served row keeps: the unit, the timestamp, what outcomes read."""
    return list(dict.fromkeys([spec.unit, timestamp, *outcomes.source_columns(schema)]))


def _served_rows(spec: ExperimentSpec, variants: dict[str, VariantModel],
                 tables: dict[str, pl.DataFrame], keep: list[str]) -> tuple[pl.DataFrame, dict]:
    """Each served unit's rows scored by its variant's model; shadow decisions counted."""
    unit = spec.unit
    window = tables[variants[spec.control].plan.spec_hash]
    units = window.get_column(unit).unique(maintain_order=True)
    assigned = pl.DataFrame({unit: units, "variant": assign_units(spec, units.cast(pl.String))})
    scored, shadow = [], {}
    for v in spec.variants:
        vm = variants[v.name]
        rows = tables[vm.plan.spec_hash].join(assigned, on=unit, how="left")
        rows = rows if v.shadow else rows.filter(pl.col("variant") == v.name)
        if rows.height == 0:
            continue
        p = model_scores(vm.model, rows.select(vm.plan.feature_names))
        if vm.threshold is None:  # a regressor decides nothing
            decided = pl.repeat(None, p.size, dtype=pl.Int64, eager=True).alias(DECISION)
        else:
            decided = pl.Series(DECISION, (p >= vm.threshold).astype("int64"))
        if v.shadow:  # scored and logged, never applied
            shadow[v.name] = {"version": vm.version, "plan": vm.plan.name, "rows": rows.height,
                              "decisions": int(decided.sum() or 0)}
            continue
        scored.append(rows.select(*keep, "variant").with_columns(pl.Series(SCORE, p), decided))
    return pl.concat(scored), shadow


def simulate_units(spec: ExperimentSpec, events: pl.LazyFrame, outcomes: OutcomeSpec,
                   variants: dict[str, VariantModel], tables: dict[str, pl.DataFrame],
                   settings: SimulationSettings) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(per-unit outcomes, per-unit-per-day outcomes, description).

    ``tables`` maps each plan hash to its feature table (the unit, timestamp and outcome
    source columns kept); ``events`` are the raw events (window span, pre-period).
    """
    unit, schema = spec.unit, dict(events.collect_schema())
    ts = variants[spec.control].plan.timestamp
    span = events.select(pl.col(ts).min().alias("lo"), pl.col(ts).max().alias("hi")).collect()
    start, end = simulation_window(span["lo"][0], span["hi"][0], settings)
    keep = kept_columns(spec, ts, outcomes, schema)
    windows = {h: t.filter((pl.col(ts) >= start) & (pl.col(ts) < end)) for h, t in tables.items()}
    window = windows[variants[spec.control].plan.spec_hash]
    if window.height == 0:
        raise ExperimentError("the simulation window has no traffic",
                              key="experiment.simulation.start_day", fix="move it inside the data")
    served, shadow = _served_rows(spec, variants, windows, keep)
    per_unit, per_day = per_unit_outcomes(served, events, outcomes, unit=unit, ts=ts, start=start,
                                          pre_days=settings.pre_days)
    info = {"start": start.isoformat(), "end": end.isoformat(), "days": settings.days,
            "units": per_unit.height, "rows": served.height,
            "thresholds": {n: vm.threshold for n, vm in variants.items()},
            "models": {n: f"{vm.name} v{vm.version}" for n, vm in variants.items()},
            "plans": {n: f"{vm.plan.name} {vm.plan.short_hash}" for n, vm in variants.items()},
            "shadow": shadow,
            "daily_units": float(window.group_by(pl.col(ts).dt.date()).agg(
                pl.col(unit).n_unique()).get_column(unit).mean())}
    return per_unit, per_day, info


def served_log(log: pl.LazyFrame | None, spec: ExperimentSpec, where: str) -> pl.DataFrame:
    """The experiment's model-served rows of a prediction log (score and 0/1 decision)."""
    served = [v.name for v in spec.served_variants]
    rows = (log.filter((pl.col("served_by") == "model") & pl.col("variant").is_in(served))
            .select("request_id", "entity", "event_ts", "variant",
                    pl.col("probability").alias(SCORE),
                    (pl.col("prediction") == 1).cast(pl.Int64).alias(DECISION))
            .collect()) if log is not None else None
    if rows is None or rows.height == 0:
        raise DataError(f"no experiment traffic in the prediction log under {where}",
                        key="experiment.outcomes.source",
                        fix="serve traffic with experiment=... first (action=serve or replay)")
    return rows


def _join_log(log: pl.DataFrame, events: pl.LazyFrame, keep: list[str], *, plan: FeaturePlan,
              event_id: str | None) -> pl.DataFrame:
    """Logged requests joined with their source rows: by request id = event id, or
    without one by (entity, timestamp)."""
    ts, schema = plan.timestamp, events.collect_schema()
    if event_id and event_id in schema:
        src = events.select(pl.col(event_id).cast(pl.String).alias("request_id"), *keep)
        return log.drop("entity", "event_ts").join(src.collect(), on="request_id", how="inner")
    rest = [c for c in keep if c not in (plan.entity, ts)]
    src = events.select(pl.col(plan.entity).cast(pl.String).alias("entity"),
                        pl.col(ts).cast(pl.Datetime("us")).alias("event_ts"), *rest).collect()
    rows = log.join(src.unique(subset=["entity", "event_ts"], keep="first"),
                    on=["entity", "event_ts"], how="inner")
    return rows.with_columns(pl.col("event_ts").alias(ts), *(
        [pl.col("entity").alias(plan.entity)] if plan.entity in keep else []))


def logged_units(spec: ExperimentSpec, log: pl.DataFrame, events: pl.LazyFrame,
                 outcomes: OutcomeSpec, *, plan: FeaturePlan, event_id: str | None,
                 pre_days: float, log_path: str) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Outcomes of what the server actually did: ``log`` (:func:`served_log`) joined with
    the source rows (labels and other outcome columns). ``plan`` names the entity and
    timestamp columns."""
    keep = kept_columns(spec, plan.timestamp, outcomes, dict(events.collect_schema()))
    rows = _join_log(log, events, keep, plan=plan, event_id=event_id)
    if rows.height == 0:
        raise DataError("no logged request matches an event of the data source",
                        key="data.event_id", fix="serve with the event id as request_id")
    ts = plan.timestamp
    start = rows[ts].min()
    per_unit, per_day = per_unit_outcomes(rows, events, outcomes, unit=spec.unit, ts=ts,
                                          start=start, pre_days=pre_days)
    days = (rows[ts].max() - start).total_seconds() / 86400
    info = {"source": "prediction_log", "path": log_path, "logged": log.height, "joined": rows.height,
            "start": str(start), "days": round(days, 2), "units": per_unit.height,
            "daily_units": per_unit.height / max(days, 1.0)}
    return per_unit, per_day, info


def per_unit_outcomes(rows: pl.DataFrame, events: pl.LazyFrame, outcomes: OutcomeSpec, *,
                      unit: str, ts: str, start, pre_days: float
                      ) -> tuple[pl.DataFrame, pl.DataFrame]:
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
