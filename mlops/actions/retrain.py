"""Continuous training: a candidate trained on the recent window, registered as ``staging``."""
from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime, timedelta

from mlops.actions.context import RunContext
from mlops.errors import MlopsError


def retrain_candidate(ctx: RunContext, info: dict) -> dict:
    """Train on the last ``monitoring.retrain_days`` before the current window's end.

    The window splits 70/15/15 into train/valid/test by time, so the candidate is
    still evaluated on later data than it saw. It goes to ``staging`` through the
    staging gates; promotion to production stays a separate, gated, approved step.
    """
    from mlops.actions.model_training import train_and_register, training_settings, write_model_card
    from mlops.actions.registry_access import model_name, open_registry
    days = float(ctx.cfg.monitoring.retrain_days)
    end = datetime.fromisoformat(info.get("labels_known_by") or info.get("end"))
    cfg = copy.deepcopy(ctx.cfg)
    cfg.training.warmup_days = 0.0  # the window starts well after the data does
    cfg.training.compare_with = ctx.cfg.monitoring.alias  # champion on the same test days
    cfg.training.start = (end - timedelta(days=days)).isoformat()
    cfg.training.train_days, cfg.training.valid_days, cfg.training.test_days = (
        days * 0.7, days * 0.15, days * 0.15)
    cfg.training.description = f"continuous training after drift ({ctx.output_dir.name})"
    sub = replace(ctx, cfg=cfg, output_dir=ctx.output_dir / "retrain", _events=ctx._events)
    sub.output_dir.mkdir(exist_ok=True)
    try:
        res, outcome = train_and_register(sub, training_settings(sub))
        write_model_card(sub, res, outcome)
    except MlopsError as exc:
        return {"action": "retrain", "detail": f"candidate training failed: {exc}", "staged": False}
    version = res.version
    if version is None:
        return {"action": "retrain", "detail": "candidate trained but not registered "
                "(training.register is false): nothing to stage", "staged": False,
                "report": "retrain/train.html"}
    reg = open_registry(ctx)
    try:
        reg.promote(model_name(ctx), version, "staging")
        staged, note = True, f"v{version} registered and staged"
    except MlopsError as exc:
        staged, note = False, f"v{version} registered; staging refused: {exc}"
    auc = res.evaluation["test"].get("roc_auc")
    return {"action": "retrain", "detail": f"{note} (test ROC-AUC {auc:.3f} on recent data)"
            if auc is not None else note, "version": version, "staged": staged,
            "report": "retrain/train.html"}
