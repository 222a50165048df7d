"""What gets registered for a trained model: the record (model, drift reference, lineage).

The record is built here from the training outcome; :func:`register` stores it in any
registry with ``register(name, model, *, reference_file, metadata)`` (the action owns
the Registry handle).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlops.data.fingerprint import frame_hash
from mlops.features.compile import FeaturePlan
from mlops.monitoring.reference import Reference, fit_reference
from mlops.monitoring.reference_rows import baseline_from
from mlops.registry.policy import policy_record
from mlops.training.pipeline import TrainOutcome
from mlops.training.settings import TrainingSettings
from mlops.training.task import PREDICTION, score_frame


@dataclass(frozen=True)
class Lineage:
    """Where a model came from, beyond what training measured."""

    config: dict              # the resolved run config, secrets already redacted
    estimator: str            # the ``_target_`` it was built from
    source_data_hash: str     # content hash of the event source


@dataclass(frozen=True)
class RegistrationRecord:
    """Everything a registry stores for one version."""

    model: Any
    reference: Reference
    metadata: dict


def _hyperparameters(model) -> dict:
    """The estimator's scalar parameters (JSON-safe)."""
    est = model.named_steps["model"]
    return {k: v for k, v in est.get_params().items()
            if isinstance(v, (int, float, str, bool, type(None)))}


def registration_record(outcome: TrainOutcome, plan: FeaturePlan, settings: TrainingSettings,
                        lineage: Lineage) -> RegistrationRecord:
    """The model, its drift reference (train-window features + score, in time order, and
    the model's scores and labels on the validation and test windows: its baseline) and
    its lineage."""
    train = outcome.parts["train"]
    ref_frame = train.select(plan.timestamp, *plan.feature_names).with_columns(
        pl.Series(PREDICTION, score_frame(outcome.model, plan, train)))
    reference = fit_reference(ref_frame, numeric=[*plan.numeric, PREDICTION],
                              categorical=plan.categorical, n_bins=settings.reference.n_bins,
                              max_rows=settings.reference.max_rows, timestamp=plan.timestamp)
    held_out = pl.concat([outcome.parts["valid"], outcome.parts["test"]], how="vertical_relaxed")
    reference.baseline = baseline_from(
        held_out, timestamp=plan.timestamp, label=outcome.label,
        score=np.concatenate([outcome.scores["valid"], outcome.scores["test"]]))
    metadata = {
        "training_data_hash": frame_hash(train),
        "feature_plan_hash": plan.spec_hash, "feature_plan_name": plan.name,
        "feature_plan_version": plan.version,
        "config": lineage.config, "hyperparameters": _hyperparameters(outcome.model),
        "metrics": outcome.metrics, "fairness": outcome.fairness,
        "description": settings.description,
        "policy": policy_record(outcome.task, outcome.decision),
        "tags": {"split": outcome.split, "estimator": lineage.estimator, "task": outcome.task,
                 "calibration": outcome.evaluation["test"].get("calibration"),
                 "source_data_hash": lineage.source_data_hash},
    }
    return RegistrationRecord(model=outcome.model, reference=reference, metadata=metadata)


def register(registry, name: str, record: RegistrationRecord):
    """Store ``record`` as the next version of ``name``; returns the registry's version."""
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = record.reference.save(Path(tmp) / "reference.npz")
        return registry.register(name, record.model, reference_file=ref_path,
                                 metadata=record.metadata)
