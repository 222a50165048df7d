"""Where an experiment's outcomes come from: ``experiment.outcomes.source``.

``units`` / ``sufficient``: a file (:func:`mlops.experiments.inputs.file_outcomes`).
``simulate``: each variant's model scores its units with the feature table of the plan it
carries (:func:`mlops.experiments.simulation.simulate_units`). ``prediction_log``: what the
server did, joined with the source rows by event id
(:func:`mlops.experiments.simulation.logged_units`). The run's data, registry and feature
tables come in a :class:`LiveTraffic`, each opened only when the source needs it.

Example:
    >>> o = experiment_outcomes(spec, traffic)  # doctest: +SKIP
    >>> o.stats["control"].n  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from mlops.experiments.inputs import Outcomes, check_unit, file_outcomes
from mlops.experiments.outcome_stats import unit_stats
from mlops.experiments.simulation import VariantModel, kept_columns, logged_units, served_log, simulate_units
from mlops.experiments.spec import ExperimentSpec
from mlops.features.compile import FeaturePlan
from mlops.registry import ModelVersion

LIVE_SOURCES = ("simulate", "prediction_log")


@dataclass
class LiveTraffic:
    """What outcomes of live traffic read from the run (callables: opened when used)."""

    events: Callable[[], pl.LazyFrame]                    # the event source
    prediction_log: Callable[[], pl.LazyFrame | None]     # every logged record, None if none
    log_path: str                                         # where the log is, for messages
    models: Callable[[], dict[str, tuple[object, ModelVersion]]]  # variant -> (model, version)
    plan: Callable[[ModelVersion, dict], FeaturePlan]     # the plan a version carries
    threshold: Callable[[ModelVersion], float | None]     # a version's decision threshold
    feature_table: Callable[[FeaturePlan, Sequence[str]], pl.DataFrame]
    event_id: str | None                                  # data.event_id


def experiment_outcomes(spec: ExperimentSpec, traffic: LiveTraffic) -> Outcomes:
    """Statistics (overall and per period) from ``spec.outcomes.source``."""
    o = spec.outcomes
    if o.source not in LIVE_SOURCES:
        return file_outcomes(spec, source=o.source, path=o.path, variant_col=o.variant_col,
                             period_col=o.period_col, days=spec.days_elapsed)
    log = served_log(traffic.prediction_log(), spec, traffic.log_path) \
        if o.source == "prediction_log" else None  # parquet parts + journal
    events = traffic.events()
    schema = dict(events.collect_schema())
    check_unit(spec.unit, schema)
    outcomes = o.spec(list(schema))
    models = traffic.models()
    if log is not None:  # what the server did, joined with the source rows by event id
        plan = traffic.plan(models[spec.control][1], schema)  # entity and timestamp names
        per_unit, per_day, info = logged_units(
            spec, log, events, outcomes, plan=plan, event_id=traffic.event_id,
            pre_days=spec.simulation.pre_days, log_path=traffic.log_path)
    else:  # each variant scores its units with the feature table of the plan it carries
        variants = {name: VariantModel(model, mv.name, mv.version, traffic.plan(mv, schema),
                                       threshold=traffic.threshold(mv))
                    for name, (model, mv) in models.items()}
        keep = kept_columns(spec, variants[spec.control].plan.timestamp, outcomes, schema)
        plans = {vm.plan.spec_hash: vm.plan for vm in variants.values()}
        tables = {h: traffic.feature_table(plan, keep) for h, plan in plans.items()}
        per_unit, per_day, info = simulate_units(spec, events, outcomes, variants, tables,
                                                 spec.simulation)
    stats, per_period = unit_stats(per_unit, per_day, spec)
    return Outcomes(stats, per_period, info["days"], info)
