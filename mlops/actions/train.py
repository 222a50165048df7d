"""``action=train``: point-in-time features -> time split -> fit -> evaluate -> register.

Writes ``train.json`` + ``train.html`` (the model card) and returns the
objective (validation window) so Hydra sweepers can optimise it. The pipeline is
:mod:`mlops.training.pipeline`; reading config and registering is
:mod:`mlops.actions.model_training` (shared with continuous training).
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.model_training import train_and_register, training_settings, write_model_card
from mlops.actions.outputs import ActionResult


def run(ctx: RunContext) -> ActionResult:
    """Train, register (``training.register``) and write the model card."""
    result, outcome = train_and_register(ctx, training_settings(ctx))
    write_model_card(ctx, result, outcome)
    return ActionResult(result=result.to_json(), metrics=result.shown_metrics(),
                        objective=result.objective, registry=result.registry)
