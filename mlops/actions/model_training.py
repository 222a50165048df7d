"""Train and register a model from the run's config (support module, not an action).

Shared by ``action=train`` and continuous training (``monitor`` -> retrain): reads
config into typed settings, loads the data, the estimator and the champion, calls the
engine pipeline (:mod:`mlops.training.pipeline`), registers, writes the model card.
"""
from __future__ import annotations

import time
from datetime import datetime

from mlops.actions.context import RunContext
from mlops.actions.outputs import write_report
from mlops.actions.registry_access import model_name, open_registry, trusted_types
from mlops.actions.train_view import model_card
from mlops.config.validate import as_dict
from mlops.data.checks import require_rows
from mlops.errors import ConfigError, SkewError
from mlops.features.compile import FeaturePlan
from mlops.registry.policy import decision_policy
from mlops.registry.redact import redact
from mlops.training.champion import Champion
from mlops.training.decision import DecisionRule
from mlops.training.estimator import build_estimator, build_pipeline
from mlops.training.pipeline import (
    TrainingSettings,
    TrainOutcome,
    check_fairness_gates,
    check_objective,
    train_model,
)
from mlops.training.registration import Lineage, register, registration_record
from mlops.training.result import EstimatorSpec, TrainResult
from mlops.training.table import LabelledTable, labelled_table, stored_feature_table
from mlops.training.task import infer_task


def decision_rule(t) -> DecisionRule:
    """``training.decision`` typed; the removed ``training.threshold`` is an error naming it."""
    if t.threshold is not None:
        raise ConfigError("was replaced by training.decision (the threshold is part of the "
                          "model's decision policy, recorded with the version)",
                          key="training.threshold",
                          fix=f"write training.decision: {{rule: fixed, value: {t.threshold}}} "
                              "(or rule: positive_rate | precision | recall with a target)")
    d = t.decision
    return DecisionRule(rule=str(d.rule), value=None if d.value is None else float(d.value),
                        target=None if d.target is None else float(d.target))


def training_settings(ctx: RunContext) -> TrainingSettings:
    """``training.*`` as typed settings."""
    t = ctx.cfg.training
    start = None
    if t.start:
        try:
            start = datetime.fromisoformat(str(t.start))
        except ValueError:
            raise ConfigError(f"must be an ISO date or datetime; got {t.start!r}", key="training.start",
                              fix="e.g. training.start=2024-03-01, or null (first event + warm-up)") from None
    return TrainingSettings(
        start=start, warmup_days=t.warmup_days, train_days=t.train_days, valid_days=t.valid_days,
        test_days=t.test_days, decision=decision_rule(t), objective_metric=t.objective.metric,
        objective_split=str(t.objective.split), fairness_attribute=t.fairness.attribute,
        fairness_min_group_rows=int(t.fairness.min_group_rows), reference_bins=int(t.reference.n_bins),
        reference_max_rows=int(t.reference.max_rows), register=bool(t.register),
        compare_with=str(t.compare_with) if t.compare_with else None, description=str(t.description))


def class_names(ctx: RunContext) -> list[str] | None:
    """``report.class_names``: None or exactly [negative, positive]."""
    names = ctx.cfg.report.class_names
    if names is not None and len(names) != 2:
        raise ConfigError(f"must name the two classes [negative, positive]; got {list(names)}",
                          key="report.class_names", fix="e.g. report.class_names=[legit,fraud] or null")
    return None if names is None else [str(n) for n in names]


def build_model(ctx: RunContext, plan: FeaturePlan):
    """(unfitted pipeline, task) from ``model._target_``; the task comes from the estimator."""
    m = ctx.cfg.model
    est = build_estimator(str(m._target_), m.params, trusted=ctx.cfg.registry.trusted_types)
    task = infer_task(est, declared=plan.label.get("task"))
    pipe = build_pipeline(est, numeric=plan.numeric, categorical=plan.categorical,
                          scale_numeric=bool(m.scale_numeric), max_categories=int(m.max_categories))
    return pipe, task


def training_table(ctx: RunContext, plan: FeaturePlan, extra: list[str]) -> LabelledTable:
    """The labelled table: built earlier (``training.features_path``) or computed now."""
    path = ctx.cfg.training.features_path
    if path:  # its duplicates were dropped (or refused) when action=features built it
        return LabelledTable(stored_feature_table(plan, str(path), extra=extra), None)
    return labelled_table(plan, ctx.scan_events(), labels=ctx.scan_labels(), event_id=ctx.event_id,
                          dedupe=bool(ctx.cfg.data.dedupe), extra=extra)


def load_champion(ctx: RunContext, alias: str | None) -> Champion | None:
    """The version behind ``alias`` with the plan it carries, or a note saying why not."""
    if not alias:
        return None
    reg, name = open_registry(ctx), model_name(ctx)
    if alias not in reg.aliases(name):
        return Champion(alias, note="no such alias yet; nothing to compare")
    model, mv = reg.load_model(name, alias, trusted_types(ctx))
    try:
        plan = ctx.model_plan(mv, training=True)
    except (SkewError, ConfigError) as exc:
        return Champion(alias, mv.version, note=f"its plan cannot be rebuilt ({exc}); stored metrics only")
    return Champion(alias, mv.version, model=model, plan=plan, events=ctx.scan_events(),
                    event_id=ctx.event_id, threshold=decision_policy(mv).threshold)


def train_and_register(ctx: RunContext, settings: TrainingSettings) -> tuple[TrainResult, TrainOutcome]:
    """Train on ``ctx``'s data with ``settings``; register when ``settings.register``."""
    t0 = time.perf_counter()
    plan = ctx.plan()
    pipe, task = build_model(ctx, plan)
    class_names(ctx)
    check_objective(settings, task)  # fail in milliseconds, before the data is read
    settings.decision.check(task)
    attribute = settings.audit_attribute(task)
    if settings.register:
        check_fairness_gates(ctx.cfg.registry.policies, attribute, task)
    built = training_table(ctx, plan, extra=[attribute] if attribute else [])
    require_rows(built.frame, what="the labelled data")
    outcome = train_model(pipe, plan, built.frame, settings, task=task,
                          champion=load_champion(ctx, settings.compare_with))
    outcome.split["left_out"]["deduplicated"] = built.deduplicated
    info = EstimatorSpec(model_name(ctx), str(ctx.cfg.model._target_), ctx.cfg.model.params)
    result = TrainResult.from_outcome(outcome, plan, info)
    if settings.register:
        lineage = Lineage(config=redact(as_dict(ctx.cfg)), estimator=info.target,
                          source_data_hash=ctx.data_hash())
        version = register(open_registry(ctx), info.name,
                           registration_record(outcome, plan, settings, lineage))
        result.registry = {"model": version.name, "version": version.version}
    result.duration_s = round(time.perf_counter() - t0, 3)
    return result, outcome


def write_model_card(ctx: RunContext, result: TrainResult, outcome: TrainOutcome) -> None:
    """Print the run's warnings; write ``train.json`` + ``train.html`` in ``ctx.output_dir``."""
    for w in result.warnings:
        print(f"warning: {w}")
    y_test = outcome.parts["test"][outcome.label].to_numpy()
    write_report(ctx, "train", result.to_json(), title=f"Model card: {result.model.name}",
                 context=model_card(result, y_test, outcome.scores["test"], class_names(ctx)))
