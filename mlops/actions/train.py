"""``action=train``: point-in-time features -> time split -> fit -> evaluate -> register.

Writes ``train.json`` + ``train.html`` (the model card) and returns the
objective (validation window) so Hydra sweepers can optimise it.
"""
from __future__ import annotations

import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.registry_ops import open_registry, model_name
from mlops.config.validate import plain
from mlops.data.fingerprint import frame_hash
from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features
from mlops.monitoring.reference import fit_reference
from mlops.training.estimator import build_estimator, build_pipeline
from mlops.training.metrics import HIGHER_IS_BETTER, classification_metrics, fairness_audit
from mlops.training.split import split_bounds, time_split

PREDICTION_COLUMN = "prediction"  # model score column in the monitoring reference


def feature_table(ctx: RunContext, plan: FeaturePlan, extra: list[str] = ()) -> pl.DataFrame:
    """Point-in-time features for every event, with label, label time and extras."""
    events = ctx.scan_events()
    schema = events.collect_schema()
    label = plan.label["column"]
    if label not in schema:
        raise DataError(f'label column "{label}" is not in the data; columns: {list(schema)}',
                        key="features.label.column", fix="point it at the label column")
    keep = [c for c in ("transaction_id", label, plan.label.get("available_at"), *extra)
            if c and c in schema]
    return compute_features(plan, events, keep=list(dict.fromkeys(keep))).collect()


def fit_model(ctx: RunContext, plan: FeaturePlan, train: pl.DataFrame):
    m = ctx.cfg.model
    est = build_estimator(str(m._target_), plain(m.params))
    pipe = build_pipeline(est, numeric=plan.numeric, categorical=plan.categorical,
                          scale_numeric=bool(m.scale_numeric), max_categories=int(m.max_categories))
    y = train[plan.label["column"]].to_numpy()
    if len(np.unique(y)) < 2:
        raise DataError("the train window holds a single class", key="training.train_days",
                        fix="widen the train window so it contains both classes")
    return pipe.fit(train.select(plan.feature_names), y)


def score(model, plan: FeaturePlan, df: pl.DataFrame) -> np.ndarray:
    return model.predict_proba(df.select(plan.feature_names))[:, 1]


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    cfg, tcfg = ctx.cfg, ctx.cfg.training
    metric, split = _check_objective(tcfg)
    plan = ctx.plan()
    attribute = tcfg.fairness.attribute
    table = feature_table(ctx, plan, extra=[attribute] if attribute else [])
    label, ts = plan.label["column"], plan.timestamp
    if tcfg.start:
        start = datetime.fromisoformat(tcfg.start)
    else:  # skip the warm-up: early rows see windows that are not full yet
        warmup = (plan.max_period_seconds / 86400 if tcfg.warmup_days is None
                  else float(tcfg.warmup_days))
        start = table[ts].min() + timedelta(days=warmup)
    bounds = split_bounds(start, train_days=tcfg.train_days, valid_days=tcfg.valid_days,
                          test_days=tcfg.test_days)
    parts, split_info = time_split(table, timestamp=ts, bounds=bounds,
                                   available_at=plan.label.get("available_at"))
    model = fit_model(ctx, plan, parts["train"])
    evaluation, probs = {}, {}
    for name in ("train", "valid", "test"):
        probs[name] = score(model, plan, parts[name])
        evaluation[name] = classification_metrics(parts[name][label].to_numpy(), probs[name],
                                                  float(tcfg.threshold))
    test_pred = (probs["test"] >= tcfg.threshold).astype(int)
    fairness = {}
    if attribute:
        if attribute not in table.columns:
            raise ConfigError(f'"{attribute}" is not a column of the data',
                              key="training.fairness.attribute", fix="name a data column or null")
        fairness = fairness_audit(parts["test"][label].to_numpy(), test_pred,
                                  parts["test"][attribute].to_numpy(), attribute=attribute,
                                  min_group_rows=int(tcfg.fairness.min_group_rows))
    objective = {"name": f"{split}_{metric}", "value": evaluation[split].get(metric),
                 "direction": "maximize" if HIGHER_IS_BETTER[metric] else "minimize"}
    flat = {k: v for k, v in evaluation["test"].items()
            if isinstance(v, (int, float)) and v is not None and np.isfinite(v)}
    flat.update({f"valid_{k}": v for k, v in evaluation["valid"].items()
                 if k in HIGHER_IS_BETTER and v is not None})
    champion = _compare_with(ctx, plan, parts["test"], flat, float(tcfg.threshold))

    registry_info, version = None, None
    if tcfg.register:
        version = _register(ctx, plan, model, parts, table, flat, fairness, evaluation, split_info)
        registry_info = {"model": version.name, "version": version.version}
    headline = (f"{model_name(ctx)}"
                f"{' v' + str(version.version) if version else ''}: test ROC-AUC "
                f"{_f(evaluation['test']['roc_auc'])}, PR-AUC {_f(evaluation['test']['pr_auc'])}"
                f" on {evaluation['test']['rows']:,} later rows")
    result = {
        "action": "train", "status": "ok", "headline": headline,
        "model": {"name": model_name(ctx), "target": str(cfg.model._target_),
                  "params": plain(cfg.model.params)},
        "plan": {"name": plan.name, "version": plan.version, "hash": plan.spec_hash,
                 "features": plan.feature_names},
        "split": split_info, "evaluation": evaluation, "fairness": fairness,
        "champion": champion,
        "objective": objective, "registry": registry_info,
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    write_report(ctx, "train", result, title=f"Model card: {model_name(ctx)}",
                 context=_display(result))
    shown = {k: flat[k] for k in ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall",
                                  "valid_roc_auc", "valid_pr_auc") if k in flat}
    return ActionResult(result=result, metrics=shown, objective=objective, registry=registry_info)


def _compare_with(ctx: RunContext, plan: FeaturePlan, test: pl.DataFrame, flat: dict,
                  threshold: float) -> dict | None:
    """Champion/challenger on the SAME test window: stored metrics of two versions come
    from different periods, so a fair "not worse than production" needs both scored here.
    Adds ``<metric>_lift_vs_<alias>`` (candidate - champion) to the metrics."""
    alias = ctx.cfg.training.compare_with
    if not alias:
        return None
    reg, name = open_registry(ctx), model_name(ctx)
    if str(alias) not in reg.aliases(name):
        return {"alias": str(alias), "note": "no such alias yet; nothing to compare"}
    from mlops.actions.registry_ops import trusted_types
    champ, mv = reg.load_model(name, str(alias), trusted_types(ctx))
    if mv.feature_plan_hash != plan.spec_hash:
        return {"alias": str(alias), "version": mv.version,
                "note": "different feature plan; compared on stored metrics only"}
    m = classification_metrics(test[plan.label["column"]].to_numpy(), score(champ, plan, test),
                               threshold)
    lifts = {}
    for k in ("roc_auc", "pr_auc"):
        if m.get(k) is not None and flat.get(k) is not None:
            lifts[k] = flat[k] - m[k]
            flat[f"{k}_lift_vs_{alias}"] = lifts[k]
    return {"alias": str(alias), "version": mv.version, "metrics": {k: m.get(k) for k in (
        "roc_auc", "pr_auc", "precision", "recall")}, "lift": lifts}


def _check_objective(tcfg) -> tuple[str, str]:
    """Validate before any work, so a typo fails in milliseconds, not after training."""
    metric, split = str(tcfg.objective.metric), str(tcfg.objective.split)
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"unknown metric {metric!r}; valid: {sorted(HIGHER_IS_BETTER)}",
                          key="training.objective.metric", fix="pick one of the valid metrics")
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"must be train, valid or test; got {split!r}",
                          key="training.objective.split")
    return metric, split


def _register(ctx, plan, model, parts, table, flat, fairness, evaluation, split_info):
    train = parts["train"]
    ref_frame = train.select(plan.feature_names).with_columns(
        pl.Series(PREDICTION_COLUMN, score(model, plan, train)))
    rc = ctx.cfg.training.reference
    reference = fit_reference(ref_frame, numeric=[*plan.numeric, PREDICTION_COLUMN],
                              categorical=plan.categorical, n_bins=int(rc.n_bins),
                              max_rows=int(rc.max_rows))
    registry = open_registry(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = reference.save(Path(tmp) / "reference.npz")
        est = model.named_steps["model"]
        hyper = {k: v for k, v in est.get_params().items()
                 if isinstance(v, (int, float, str, bool, type(None)))}
        return registry.register(model_name(ctx), model, reference_file=ref_path, metadata={
            "training_data_hash": frame_hash(train),
            "feature_plan_hash": plan.spec_hash, "feature_plan_name": plan.name,
            "feature_plan_version": plan.version,
            "config": plain(ctx.cfg), "hyperparameters": hyper, "metrics": flat,
            "fairness": fairness, "description": str(ctx.cfg.training.description),
            "tags": {"split": split_info, "estimator": str(ctx.cfg.model._target_),
                     "calibration": evaluation["test"]["calibration"],
                     "source_data_hash": ctx.data_hash()},
        })


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _display(result: dict) -> dict:
    from mlops.reports import svg
    ev = result["evaluation"]
    rows = [{"split": k, **{m: ev[k].get(m) for m in ("rows", "positives", "roc_auc", "pr_auc",
                                                      "log_loss", "brier", "precision", "recall")}}
            for k in ("train", "valid", "test")]
    charts = {
        "calibration": svg.calibration_curve([tuple(p) for p in ev["test"]["calibration"]]),
        "confusion": svg.confusion_matrix(ev["test"]["confusion"], ["legit", "fraud"]),
    }
    fair = result["fairness"]
    if fair:
        charts["fairness"] = svg.bar_chart(
            [(g["group"], g["selection_rate"]) for g in fair["groups"]],
            xlabel="share flagged (selection rate)", ylabel=fair["attribute"])
    t = ev["test"]
    return {"metric_rows": rows, "charts": charts, "cards": [
        {"label": "test ROC-AUC", "value": t["roc_auc"]},
        {"label": "test PR-AUC", "value": t["pr_auc"]},
        {"label": f"precision @ {t['threshold']}", "value": t["precision"], "format": "pct"},
        {"label": f"recall @ {t['threshold']}", "value": t["recall"], "format": "pct"},
        {"label": "registry version", "value": (result["registry"] or {}).get("version", "—")}]}
