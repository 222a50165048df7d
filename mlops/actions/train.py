"""``action=train``: point-in-time features -> time split -> fit -> evaluate -> register.

Writes ``train.json`` + ``train.html`` (the model card) and returns the objective
(validation window) so Hydra sweepers can optimise it. The run is
:func:`mlops.training.run.train` (shared with continuous training).
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.reports.views.train import model_card
from mlops.training.run import train


def run(ctx: RunContext) -> ActionResult:
    """Train, register (``training.register``) and write the model card."""
    result, outcome = train(ctx.training_job())
    for w in result.warnings:
        print(f"warning: {w}")
    write_report(ctx, "train", result.to_json(), title=f"Model card: {result.model.name}",
                 context=model_card(result, outcome, ctx.cfg.report.class_names))
    return ActionResult(result=result.to_json(), metrics=result.shown_metrics(),
                        objective=result.objective, registry=result.registry)
