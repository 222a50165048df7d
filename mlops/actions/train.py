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
from mlops.actions.registry_access import model_name, open_registry
from mlops.config.validate import plain
from mlops.data.checks import dedupe, feature_warnings, require_days, require_rows
from mlops.data.fingerprint import frame_hash
from mlops.data.labels import check_labels_by_entity, join_by_event_id
from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_at, compute_features
from mlops.features.tables import open_table
from mlops.monitoring.reference import fit_reference
from mlops.registry.redact import redact
from mlops.training.estimator import build_estimator, build_pipeline
from mlops.training.metrics import HIGHER_IS_BETTER, classification_metrics, fairness_audit, regression_metrics
from mlops.training.split import split_bounds, time_split
from mlops.training.task import infer_task, model_scores

PREDICTION_COLUMN = "prediction"  # model score column in the monitoring reference


def feature_table(ctx: RunContext, plan: FeaturePlan, extra: list[str] = ()) -> pl.DataFrame:
    """Point-in-time features for every labelled point, with label, label time and extras.

    Labels come from the events or from ``data.labels`` (joined by event id, or an
    entity-keyed label spine whose features use only events strictly before each label).
    """
    events = ctx.scan_events()
    label, known_at = plan.label.get("column"), plan.label.get("available_at")
    if not label:
        raise ConfigError("the feature spec names no label column", key="features.label.column",
                          fix="set label: {column: <your label column>} in the feature spec")
    labels = ctx.scan_labels()
    if labels is not None and labels[1] == "event_id":
        if not ctx.event_id:
            raise ConfigError("labels joined by event id need the event id column",
                              key="data.event_id", fix="set data.event_id: <your id column>")
        events = join_by_event_id(events, labels[0], event_id=ctx.event_id, label=label,
                                  known_at=known_at)
    schema = events.collect_schema()
    frame = events.collect()
    require_rows(frame, what="the event data")
    frame = dedupe(frame, event_id=ctx.event_id, allow=bool(ctx.cfg.data.get("dedupe", False)))
    if labels is not None and labels[1] == "entity":
        spine = check_labels_by_entity(labels[0], entity=plan.entity, timestamp=plan.timestamp,
                                       label=label, known_at=known_at).collect()
        require_rows(spine, what="the label table", key="data.labels.path")
        feats = compute_at(plan, frame, spine, raw_from="asof").collect()
        return feats.select([plan.entity, plan.timestamp, *plan.feature_names]).with_columns(
            spine.select([c for c in spine.columns if c not in (plan.entity, plan.timestamp)]))
    if label not in schema:
        raise DataError(f'label column "{label}" is not in the data; columns: {list(schema)}',
                        key="features.label.column",
                        fix="point it at the label column, or give a label table (data.labels)")
    if known_at and known_at not in schema:
        raise DataError(f'label time column "{known_at}" is not in the data; columns: '
                        f"{list(schema)}", key="features.label.available_at",
                        fix="name the column holding when each label became known, or null "
                            "(labels known at event time)")
    keep = [c for c in (ctx.event_id, label, known_at, *extra) if c and c in schema]
    return compute_features(plan, frame, keep=list(dict.fromkeys(keep))).collect()


def build_model(ctx: RunContext, plan: FeaturePlan):
    """(unfitted pipeline, task) from ``model._target_``; the task comes from the estimator."""
    m = ctx.cfg.model
    est = build_estimator(str(m._target_), plain(m.params), trusted=plain(ctx.cfg.registry.trusted_types))
    task = infer_task(est, declared=plan.label.get("task"))
    pipe = build_pipeline(est, numeric=plan.numeric, categorical=plan.categorical,
                          scale_numeric=bool(m.scale_numeric), max_categories=int(m.max_categories))
    return pipe, task


def training_table(ctx: RunContext, plan: FeaturePlan, extra: list[str] = ()) -> pl.DataFrame:
    """:func:`feature_table`, or the table built earlier at ``training.features_path``
    (action=features / features_merge) after checking its plan hash against ``plan``."""
    path = ctx.cfg.training.get("features_path")
    if not path:
        return feature_table(ctx, plan, extra)
    key = "training.features_path"
    if not plan.label.get("column"):
        raise ConfigError("the feature spec names no label column", key="features.label.column",
                          fix="set label: {column: <your label column>} in the feature spec")
    table = open_table(str(path), plan.spec_hash, key=key)
    cols = table.collect_schema().names()
    needed = [plan.entity, plan.timestamp, plan.label["column"], plan.label.get("available_at"),
              *plan.feature_names, *extra]
    missing = [c for c in dict.fromkeys(needed) if c and c not in cols]
    if missing:
        raise DataError(f"the feature table lacks columns {missing}", key=key,
                        fix="rebuild it with action=features on data that has them")
    # the row order compute_features gives (each entity's rows stay in one shard, in order)
    return table.sort([plan.entity, plan.timestamp], maintain_order=True).collect()



def _target(df: pl.DataFrame, plan: FeaturePlan, task: str) -> np.ndarray:
    """The label as the estimator needs it: 0/1 for binary classification, float for regression."""
    label = plan.label["column"]
    col = df[label]
    if col.null_count():
        raise DataError(f"{col.null_count():,} training rows have no label", key="features.label.column",
                        fix="drop unlabelled rows from the data or give labels.available_at")
    if task == "regression":
        if not col.dtype.is_numeric():
            raise DataError(f'a regressor needs a numeric label; "{label}" is {col.dtype}',
                            key="features.label.column", fix="pick a classifier or a numeric label")
        return col.cast(pl.Float64).to_numpy()
    values = sorted(col.unique().to_list(), key=str)
    if len(values) < 2:
        raise DataError(f"the train window holds a single class ({values})", key="training.train_days",
                        fix="widen the train window so it contains both classes")
    if len(values) > 2 or not set(values) <= {0, 1}:
        raise DataError(f'binary classification needs a 0/1 label; "{label}" has values '
                        f"{values[:6]}{' ...' if len(values) > 6 else ''}",
                        key="features.label.column",
                        fix="encode the positive class as 1, or use a regressor for a number")
    return col.cast(pl.Int8).to_numpy()


def score(model, plan: FeaturePlan, df: pl.DataFrame) -> np.ndarray:
    """Scores for ``df``: P(positive) (classifier) or the predicted value (regressor)."""
    return model_scores(model, df.select(plan.feature_names))


def evaluate(task: str, y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """The task's metrics on one split."""
    if task == "regression":
        return regression_metrics(y, scores)
    return classification_metrics(y, scores, threshold)


def _split_bounds(ctx: RunContext, plan: FeaturePlan, table: pl.DataFrame):
    tcfg, ts = ctx.cfg.training, plan.timestamp
    first, last = table[ts].min(), table[ts].max()
    if tcfg.start:
        start, warmup = datetime.fromisoformat(tcfg.start), 0.0
    else:  # skip the warm-up: early rows see windows that are not full yet
        warmup = (plan.max_period_seconds / 86400 if tcfg.warmup_days is None
                  else float(tcfg.warmup_days))
        start = first + timedelta(days=warmup)
    days = float(tcfg.train_days) + float(tcfg.valid_days) + float(tcfg.test_days)
    require_days(first, last, needed_days=warmup + days if not tcfg.start else
                 (start - first).total_seconds() / 86400 + days,
                 parts=f"warm-up {warmup:g} + train {tcfg.train_days:g} + valid "
                       f"{tcfg.valid_days:g} + test {tcfg.test_days:g}")
    return split_bounds(start, train_days=tcfg.train_days, valid_days=tcfg.valid_days,
                        test_days=tcfg.test_days)


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    cfg, tcfg = ctx.cfg, ctx.cfg.training
    plan = ctx.plan()
    pipe, task = build_model(ctx, plan)
    names = ctx.cfg.report.get("class_names")
    if names is not None and len(names) != 2:
        raise ConfigError(f"must name the two classes [negative, positive]; got {list(names)}",
                          key="report.class_names", fix="e.g. report.class_names=[legit,fraud] or null")
    metric, split = _check_objective(tcfg, task)
    attribute = tcfg.fairness.attribute if task == "classification" else None
    if tcfg.register:
        _check_fairness_gates(ctx, attribute, task)
    table = training_table(ctx, plan, extra=[attribute] if attribute else [])
    require_rows(table, what="the labelled data")
    label = plan.label["column"]
    bounds = _split_bounds(ctx, plan, table)
    parts, split_info = time_split(table, timestamp=plan.timestamp, bounds=bounds,
                                   available_at=plan.label.get("available_at"))
    warnings = feature_warnings(parts["train"], plan.feature_names)
    model = pipe.fit(parts["train"].select(plan.feature_names), _target(parts["train"], plan, task))
    evaluation, probs = {}, {}
    for name in ("train", "valid", "test"):
        probs[name] = score(model, plan, parts[name])
        evaluation[name] = evaluate(task, _target(parts[name], plan, task), probs[name],
                                    float(tcfg.threshold))
    fairness = {}
    if attribute:
        if attribute not in table.columns:
            raise ConfigError(f'"{attribute}" is not a column of the data',
                              key="training.fairness.attribute", fix="name a data column or null")
        test_pred = (probs["test"] >= tcfg.threshold).astype(int)
        fairness = fairness_audit(parts["test"][label].to_numpy(), test_pred,
                                  parts["test"][attribute].to_numpy(), attribute=attribute,
                                  min_group_rows=int(tcfg.fairness.min_group_rows))
    objective = {"name": f"{split}_{metric}", "value": evaluation[split].get(metric),
                 "direction": "maximize" if HIGHER_IS_BETTER[metric] else "minimize"}
    flat = {k: v for k, v in evaluation["test"].items()
            if isinstance(v, (int, float)) and v is not None and np.isfinite(v)}
    flat.update({f"valid_{k}": v for k, v in evaluation["valid"].items()
                 if k in HIGHER_IS_BETTER and v is not None})
    leak = _leakage(task, evaluation["valid"])
    flat["leakage_suspected"] = 1 if leak else 0
    if leak:
        warnings.append(leak)
    champion = _compare_with(ctx, plan, parts["test"], flat, float(tcfg.threshold))

    registry_info, version = None, None
    if tcfg.register:
        version = _register(ctx, plan, model, parts, table, flat, fairness, evaluation, split_info,
                            task)
        registry_info = {"model": version.name, "version": version.version}
    t = evaluation["test"]
    quality = (f"test RMSE {_f(t['rmse'])}, R² {_f(t['r2'])}" if task == "regression" else
               f"test ROC-AUC {_f(t['roc_auc'])}, PR-AUC {_f(t['pr_auc'])}")
    headline = (f"{model_name(ctx)}{' v' + str(version.version) if version else ''}: {quality}"
                f" on {t['rows']:,} later rows")
    result = {
        "action": "train", "status": "ok", "headline": headline, "task": task,
        "model": {"name": model_name(ctx), "target": str(cfg.model._target_),
                  "params": plain(cfg.model.params)},
        "plan": {"name": plan.name, "version": plan.version, "hash": plan.spec_hash,
                 "features": plan.feature_names},
        "split": split_info, "evaluation": evaluation, "fairness": fairness,
        "champion": champion, "warnings": warnings,
        "objective": objective, "registry": registry_info,
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    for w in warnings:
        print(f"warning: {w}")
    write_report(ctx, "train", result, title=f"Model card: {model_name(ctx)}",
                 context=_display(result, ctx, parts["test"][label].to_numpy(), probs["test"]))
    keys = (("rmse", "mae", "r2", "valid_rmse", "valid_r2") if task == "regression" else
            ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "valid_roc_auc",
             "valid_pr_auc"))
    shown = {k: flat[k] for k in keys if k in flat}
    return ActionResult(result=result, metrics=shown, objective=objective, registry=registry_info)


def _leakage(task: str, valid: dict) -> str | None:
    """A validation score this close to perfect usually means a feature leaks the label."""
    key = "r2" if task == "regression" else "roc_auc"
    value = valid.get(key)
    if value is not None and value > 0.999:
        return (f"validation {key} is {value:.4f} (> 0.999): a feature probably leaks the label; "
                "the production gate `leakage_suspected` refuses this model unless you drop it")
    return None


def _check_fairness_gates(ctx: RunContext, attribute: str | None, task: str) -> None:
    """A fairness gate needs a fairness audit, so a fairness attribute (classification)."""
    if attribute:
        return
    for alias, gates in (plain(ctx.cfg.registry.policies) or {}).items():
        for i, gate in enumerate(gates or []):
            if isinstance(gate, dict) and "fairness" in gate:
                why = ("regression models get no fairness audit" if task == "regression"
                       else "training.fairness.attribute is null")
                raise ConfigError(f"a {gate['fairness']} gate needs a fairness audit, but {why}",
                                  key=f"registry.policies.{alias}[{i}]",
                                  fix="set training.fairness.attribute: <column> or drop this gate "
                                      "from the policy")


def _compare_with(ctx: RunContext, plan: FeaturePlan, test: pl.DataFrame, flat: dict,
                  threshold: float) -> dict | None:
    """Champion/challenger on the SAME test window: stored metrics of two versions come
    from different periods, so a fair "not worse than production" needs both scored here.
    The champion scores with the plan it carries (its features of the same events when
    its spec differs). Adds ``<metric>_lift_vs_<alias>`` (candidate - champion)."""
    alias = ctx.cfg.training.compare_with
    if not alias:
        return None
    reg, name = open_registry(ctx), model_name(ctx)
    if str(alias) not in reg.aliases(name):
        return {"alias": str(alias), "note": "no such alias yet; nothing to compare"}
    from mlops.actions.registry_access import trusted_types
    from mlops.errors import SkewError
    champ, mv = reg.load_model(name, str(alias), trusted_types(ctx))
    out = {"alias": str(alias), "version": mv.version}
    try:
        champ_plan = ctx.model_plan(mv, training=True)
    except (SkewError, ConfigError) as exc:
        return {**out, "note": f"its plan cannot be rebuilt ({exc}); stored metrics only"}
    rows, note = (test, None) if champ_plan.spec_hash == plan.spec_hash else \
        _champion_rows(ctx, champ_plan, plan, test)
    if rows is None:
        return {**out, "note": note}
    task = "regression" if "rmse" in flat else "classification"  # the candidate's task
    m = evaluate(task, _target(test, plan, task), score(champ, champ_plan, rows), threshold)
    shown = ("rmse", "mae", "r2") if task == "regression" else \
        ("roc_auc", "pr_auc", "precision", "recall")
    lifts = {}
    for k in (shown if task == "regression" else shown[:2]):  # lifts of ranking metrics
        if m.get(k) is not None and flat.get(k) is not None:
            lifts[k] = flat[k] - m[k]
            flat[f"{k}_lift_vs_{alias}"] = lifts[k]
    return {**out, "plan": {"name": champ_plan.name, "hash": champ_plan.spec_hash},
            "metrics": {k: m.get(k) for k in shown}, "lift": lifts}


def _champion_rows(ctx: RunContext, champ_plan: FeaturePlan, plan: FeaturePlan,
                   test: pl.DataFrame) -> tuple[pl.DataFrame | None, str | None]:
    """The champion's features (its own plan, over the full history) of the test events,
    in ``test`` order; matched on the event id, else on (entity, timestamp)."""
    eid = ctx.event_id
    key = [eid] if eid and eid in test.columns else [plan.entity, plan.timestamp]
    if key != [eid] and (champ_plan.entity, champ_plan.timestamp) != (plan.entity, plan.timestamp):
        return None, (f"its plan {champ_plan.name} keys events differently; set data.event_id "
                      "to compare on the same events (stored metrics only)")
    ts = champ_plan.timestamp
    table = compute_features(champ_plan, ctx.scan_events(), keep=key)
    if ts == plan.timestamp:  # only the test days are needed
        table = table.filter(pl.col(ts).is_between(test[ts].min(), test[ts].max()))
    table = table.select(*key, *[c for c in champ_plan.feature_names if c not in key]).collect()
    if table.select(key).is_duplicated().any():
        return None, (f"events are not unique by {key}; set data.event_id to compare on the "
                      "same events (stored metrics only)")
    rows = test.select(key).join(table.with_columns(pl.lit(True).alias("__hit")), on=key,
                                 how="left", maintain_order="left")
    if rows["__hit"].null_count():
        return None, f"{rows['__hit'].null_count()} test events have no champion features"
    return rows.drop("__hit"), None


CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1",
                          "accuracy")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def _check_objective(tcfg, task: str) -> tuple[str, str]:
    """Validate before any work, so a typo fails in milliseconds, not after training."""
    valid = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    metric = tcfg.objective.metric or valid[0]
    metric, split = str(metric), str(tcfg.objective.split)
    if metric not in valid:
        raise ConfigError(f"unknown {task} metric {metric!r}; valid: {list(valid)}",
                          key="training.objective.metric", fix="pick one of the valid metrics")
    if split not in ("train", "valid", "test"):
        raise ConfigError(f"must be train, valid or test; got {split!r}",
                          key="training.objective.split")
    return metric, split


def _register(ctx, plan, model, parts, table, flat, fairness, evaluation, split_info, task):
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
            "config": redact(plain(ctx.cfg)), "hyperparameters": hyper, "metrics": flat,
            "fairness": fairness, "description": str(ctx.cfg.training.description),
            "tags": {"split": split_info, "estimator": str(ctx.cfg.model._target_),
                     "task": task, "calibration": evaluation["test"].get("calibration"),
                     "source_data_hash": ctx.data_hash()},
        })


def _f(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _display(result: dict, ctx: RunContext, y_test: np.ndarray, s_test: np.ndarray) -> dict:
    from mlops.reports import svg
    ev, task = result["evaluation"], result["task"]
    t = ev["test"]
    if task == "regression":
        rows = [{"split": k, **{m: ev[k].get(m) for m in ("rows", "rmse", "mae", "r2")}}
                for k in ("train", "valid", "test")]
        y = np.asarray(y_test, dtype=float)
        pts = _sample(np.column_stack([s_test, y, y - s_test]), 2000)
        charts = {
            "pred_vs_actual": svg.scatter([(float(a), float(b)) for a, b, _ in pts],
                                          xlabel="predicted", ylabel="actual", diagonal=True),
            "residuals": svg.scatter([(float(a), float(r)) for a, _, r in pts],
                                     xlabel="predicted", ylabel="residual (actual - predicted)",
                                     hline=0.0),
        }
        cards = [{"label": "test RMSE", "value": t["rmse"]}, {"label": "test MAE", "value": t["mae"]},
                 {"label": "test R²", "value": t["r2"]}]
    else:
        rows = [{"split": k, **{m: ev[k].get(m) for m in ("rows", "positives", "roc_auc", "pr_auc",
                                                          "log_loss", "brier", "precision", "recall")}}
                for k in ("train", "valid", "test")]
        classes = list(ctx.cfg.report.get("class_names") or ["negative", "positive"])
        charts = {
            "calibration": svg.calibration_curve([tuple(p) for p in t["calibration"]]),
            "confusion": svg.confusion_matrix(t["confusion"], classes),
        }
        cards = [{"label": "test ROC-AUC", "value": t["roc_auc"]},
                 {"label": "test PR-AUC", "value": t["pr_auc"]},
                 {"label": f"precision @ {t['threshold']}", "value": t["precision"], "format": "pct"},
                 {"label": f"recall @ {t['threshold']}", "value": t["recall"], "format": "pct"}]
    fair = result["fairness"]
    if fair:
        charts["fairness"] = svg.bar_chart(
            [(g["group"], g["selection_rate"]) for g in fair["groups"]],
            xlabel="share flagged (selection rate)", ylabel=fair["attribute"])
    cards.append({"label": "registry version", "value": (result["registry"] or {}).get("version", "—")})
    return {"metric_rows": rows, "charts": charts, "cards": cards,
            "positive_name": (ctx.cfg.report.get("class_names") or ["", "positive"])[-1]}


def _sample(rows: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows, evenly spaced (deterministic): a readable scatter plot."""
    if len(rows) <= n:
        return rows
    return rows[np.linspace(0, len(rows) - 1, n).astype(int)]
