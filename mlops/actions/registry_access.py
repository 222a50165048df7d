"""Transitional (remove with ``serving_support``): the serving actions' support module,
which the serving branch moves into ``mlops/serving``, still imports these names. They
forward to :class:`~mlops.actions.context.RunContext`, where registry access now lives."""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.registry import Registry


def model_name(ctx: RunContext) -> str:
    return ctx.model_name


def open_registry(ctx: RunContext) -> Registry:
    return ctx.registry()


def trusted_types(ctx: RunContext) -> list[str]:
    return ctx.trusted_types
