"""Experiment inputs shared by the actions (a support module, not an action): the
experiment spec and its weights guard, each variant's model from the registry, the
declared outcomes, and the per-unit outcomes of live traffic (simulated from the events
or read from the prediction log), computed by :mod:`mlops.experiments.simulation`.
"""
from __future__ import annotations

import json
from dataclasses import fields

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.decision_access import SIMULATION_KEY, version_decision
from mlops.config.validate import as_dict
from mlops.errors import ConfigError, ExperimentError
from mlops.experiments import ExperimentSpec, check_weights_unchanged
from mlops.experiments.outcomes import OutcomeSpec
from mlops.experiments.simulation import SimulationSettings, VariantModel, kept_columns, served_log, simulate_units
from mlops.experiments.simulation import logged_units as logged_outcomes
from mlops.home import private_dir, private_file
from mlops.training.table import feature_table


def experiment_spec(ctx: RunContext) -> ExperimentSpec:
    """The selected experiment (``experiment=<name>``) as a validated spec."""
    e = ctx.cfg.experiment
    if e is None:
        raise ConfigError("no experiment selected", key="experiment",
                          fix="pass experiment=<name> (see conf/experiment/)")
    try:
        # the spec's own fields; the rest of the group (outcomes, simulation) is for actions
        return ExperimentSpec(**{f.name: as_dict(getattr(e, f.name)) for f in fields(ExperimentSpec)})
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


def simulation_settings(ctx: RunContext) -> SimulationSettings:
    """``experiment.simulation`` typed."""
    sim = ctx.cfg.experiment.simulation
    return SimulationSettings(start_day=None if sim.start_day is None else float(sim.start_day),
                              days=float(sim.days), pre_days=float(sim.pre_days))


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
    out = OutcomeSpec.from_dict(as_dict(ctx.cfg.experiment.outcomes), key="experiment.outcomes")
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


def simulated_units(ctx: RunContext, spec: ExperimentSpec
                    ) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(per-unit outcomes, per-unit-per-day outcomes, description) of simulated traffic:
    each variant's model scores its units with the feature table of the plan it carries."""
    events, schema, outcomes, models = _inputs(ctx, spec)
    override = ctx.cfg.experiment.simulation.threshold
    variants = {name: VariantModel(model, mv.name, mv.version, ctx.model_plan(mv, schema),
                                   threshold=version_decision(mv, override,
                                                              key=SIMULATION_KEY).threshold)
                for name, (model, mv) in models.items()}
    keep = kept_columns(spec, variants[spec.control].plan.timestamp, outcomes, schema)
    tables: dict[str, pl.DataFrame] = {}  # plan hash -> rows with that plan's features
    for vm in variants.values():
        if vm.plan.spec_hash not in tables:
            tables[vm.plan.spec_hash] = feature_table(vm.plan, ctx.scan_events(), labels=ctx.scan_labels(),
                                                      event_id=ctx.event_id, dedupe=ctx.cfg.data.dedupe,
                                                      extra=keep)
    return simulate_units(spec, events, outcomes, variants, tables, simulation_settings(ctx))


def logged_units(ctx: RunContext, spec: ExperimentSpec) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Outcomes of what the server actually did: the prediction log of an experiment
    (``action=serve|replay experiment=...``) joined with the source rows (labels and
    other outcome columns) by request id = event id (``data.event_id``), or without
    one by (entity, timestamp)."""
    from mlops.serving.prediction_log import scan_prediction_log
    log_dir = ctx.cfg.serving.log_dir or str(ctx.home / "predictions")
    log = served_log(scan_prediction_log(log_dir), spec, log_dir)  # parquet parts + journal
    events, schema, outcomes, models = _inputs(ctx, spec)
    plan = ctx.model_plan(models[spec.control][1], schema)  # entity and timestamp names
    return logged_outcomes(spec, log, events, outcomes, plan=plan, event_id=ctx.event_id,
                           pre_days=simulation_settings(ctx).pre_days, log_path=str(log_dir))
