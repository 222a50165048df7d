"""One training run: settings in, a registered version and its model card's facts out.

Shared by ``action=train`` and continuous training (``monitor`` -> retrain,
:func:`retrain_and_stage`): builds the estimator from its settings, checks what can fail
in milliseconds (objective, decision rule, fairness gates) before the data is read, builds
the labelled table, runs the pipeline (:mod:`mlops.training.pipeline`) with the champion
on the same test days, and registers the version (:mod:`mlops.training.registration`)
when ``settings.register``. The caller gathers its inputs in a :class:`TrainingJob`
(config, data and registry access).

Example:
    >>> result, outcome = train(job)  # doctest: +SKIP
    >>> result.registry  # doctest: +SKIP
    {'model': 'fraud_detector', 'version': 3}
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from mlops.data.checks import require_rows
from mlops.errors import ConfigError, MlopsError, SkewError
from mlops.features.compile import FeaturePlan
from mlops.registry import ModelVersion, Registry
from mlops.registry.policy import decision_policy
from mlops.training.champion import Champion
from mlops.training.pipeline import TrainOutcome, check_fairness_gates, check_objective, train_model
from mlops.training.registration import Lineage, register, registration_record
from mlops.training.result import EstimatorSpec, TrainResult
from mlops.training.settings import ModelSettings, TrainingSettings
from mlops.training.table import LabelledTable, stored_feature_table


@dataclass
class TrainingJob:
    """What one training run reads, gathered by the caller from its config."""

    settings: TrainingSettings
    model: ModelSettings
    name: str                                        # the registry model name
    plan: FeaturePlan                                # the candidate's plan (features=)
    table: Callable[[list[str]], LabelledTable]      # the labelled table, with extra columns
    registry: Callable[[], Registry]                 # opened only to compare or register
    trusted: list[str]                               # what a registry load may build
    estimator_trusted: list[str]                     # dotted estimator classes allowed
    policies: dict                                   # registry.policies (its fairness gates)
    champion_plan: Callable[[ModelVersion], FeaturePlan]  # the plan a version carries
    events: pl.LazyFrame                             # the full history (a champion's own plan)
    event_id: str | None
    lineage: Callable[[], Lineage]                   # config and data hash, when registering


def load_champion(job: TrainingJob, alias: str | None) -> Champion | None:
    """The version behind ``alias`` with the plan it carries, or a note saying why not."""
    if not alias:
        return None
    registry = job.registry()
    if alias not in registry.aliases(job.name):
        return Champion(alias, note="no such alias yet; nothing to compare")
    model, mv = registry.load_model(job.name, alias, job.trusted)
    try:
        plan = job.champion_plan(mv)
    except (SkewError, ConfigError) as exc:
        return Champion(alias, mv.version, note=f"its plan cannot be rebuilt ({exc}); stored metrics only")
    return Champion(alias, mv.version, model=model, plan=plan, events=job.events,
                    event_id=job.event_id, threshold=decision_policy(mv).threshold)


def train(job: TrainingJob) -> tuple[TrainResult, TrainOutcome]:
    """Train on ``job``'s data; register when ``job.settings.register``."""
    t0 = time.perf_counter()
    settings, plan = job.settings, job.plan
    pipe, task = job.model.build(plan, trusted=job.estimator_trusted)
    check_objective(settings, task)  # fail in milliseconds, before the data is read
    settings.decision.check(task)
    attribute = settings.audit_attribute(task)
    if settings.register:
        check_fairness_gates(job.policies, attribute, task)
    extra = [attribute] if attribute else []
    if settings.features_path:  # built by action=features: its duplicates were dropped (or refused) then
        built = LabelledTable(stored_feature_table(plan, settings.features_path, extra=extra), None)
    else:
        built = job.table(extra)
    require_rows(built.frame, what="the labelled data")
    outcome = train_model(pipe, plan, built.frame, settings, task=task,
                          champion=load_champion(job, settings.compare_with))
    outcome.split["left_out"]["deduplicated"] = built.deduplicated
    info = EstimatorSpec(job.name, job.model._target_, job.model.params)
    result = TrainResult.from_outcome(outcome, plan, info)
    if settings.register:
        version = register(job.registry(), info.name,
                           registration_record(outcome, plan, settings, job.lineage()))
        result.registry = {"model": version.name, "version": version.version}
    result.duration_s = round(time.perf_counter() - t0, 3)
    return result, outcome


def stage_candidate(result: TrainResult, registry: Registry, *, report: str) -> dict:
    """Continuous training's last step: the registered candidate moves to ``staging``
    through the staging gates (promotion to production stays a separate, gated, approved
    step). Returns the monitor's ``retrain`` action record (``report``: the model card)."""
    if result.version is None:
        return {"action": "retrain", "detail": "candidate trained but not registered "
                "(training.register is false): nothing to stage", "staged": False,
                "report": report}
    try:
        registry.promote(result.model.name, result.version, "staging")
        staged, note = True, f"v{result.version} registered and staged"
    except MlopsError as exc:
        staged, note = False, f"v{result.version} registered; staging refused: {exc}"
    auc = result.evaluation["test"].get("roc_auc")
    return {"action": "retrain", "detail": f"{note} (test ROC-AUC {auc:.3f} on recent data)"
            if auc is not None else note, "version": result.version, "staged": staged,
            "report": report}


def retrain_and_stage(job: Callable[[], TrainingJob], registry: Callable[[], Registry], *,
                      card: Callable[[TrainResult, TrainOutcome], object], report: str) -> dict:
    """Continuous training (``monitoring.on_drift: retrain``): build the job, train the
    candidate, write its model card with ``card`` and stage it (:func:`stage_candidate`).

    A candidate that fails to train is the record's detail, not an error: the monitoring
    run that asked for it still reports its drift.
    """
    try:
        result, outcome = train(job())
        for w in result.warnings:
            print(f"warning: {w}")
        card(result, outcome)
    except MlopsError as exc:
        return {"action": "retrain", "detail": f"candidate training failed: {exc}", "staged": False}
    return stage_candidate(result, registry(), report=report)
