"""Transitional (remove with ``serving_support``): the serving actions' support module,
which the serving branch moves into ``mlops/serving``, still imports these names. They
forward to :mod:`mlops.experiments.inputs` and the typed experiment config."""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.errors import ConfigError
from mlops.experiments import ExperimentSpec, inputs


def experiment_spec(ctx: RunContext) -> ExperimentSpec:
    if ctx.cfg.experiment is None:
        raise ConfigError("no experiment selected", key="experiment",
                          fix="pass experiment=<name> (see conf/experiment/)")
    return ctx.cfg.experiment


def guard_weights(ctx: RunContext, spec: ExperimentSpec) -> dict:
    return inputs.guard_weights(ctx.home / "experiments", spec)


def resolve_models(ctx: RunContext, spec: ExperimentSpec) -> dict[str, tuple]:
    return inputs.variant_models(ctx.registry(), spec, model_name=ctx.model_name,
                                 trusted=ctx.trusted_types)
