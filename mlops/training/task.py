"""The learning task, inferred from the estimator, and the one way to score a model.

Binary classification and regression are supported. The task comes from the
estimator (``sklearn.base.is_classifier`` / ``is_regressor``, looking through a
Pipeline to its last step), never from a guess about the label column.

Example:
    >>> from sklearn.linear_model import LogisticRegression, Ridge
    >>> infer_task(LogisticRegression()), infer_task(Ridge())
    ('classification', 'regression')
"""
from __future__ import annotations

import numpy as np
from sklearn.base import is_classifier, is_regressor

from mlops.errors import ConfigError

TASKS = ("classification", "regression")


def _final(model):
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def infer_task(model, *, declared: str | None = None, key: str = "model._target_") -> str:
    """``classification`` or ``regression`` from the estimator; ``declared`` must agree."""
    est = _final(model)
    if is_classifier(est):
        task = "classification"
    elif is_regressor(est):
        task = "regression"
    else:
        raise ConfigError(f"{type(est).__name__} is neither a classifier nor a regressor",
                          key=key, fix="use a scikit-learn classifier or regressor")
    if declared and declared != task:
        raise ConfigError(f"the label declares task {declared!r} but {type(est).__name__} is a "
                          f"{task[:-4] if task.endswith('ation') else task} estimator",
                          key="features.label.task",
                          fix=f"remove label.task (it is inferred) or pick a {declared} model")
    return task


def is_regression_model(model) -> bool:
    """True for a fitted regressor (no ``predict_proba``; sklearn says regressor)."""
    if hasattr(model, "predict_proba"):
        return False
    try:
        return bool(is_regressor(_final(model)))
    except Exception:  # objects that are not sklearn estimators: treat as classifiers
        return False


def model_scores(model, X) -> np.ndarray:
    """One score per row: P(positive class) for a binary classifier, the value for a regressor.

    Every path that scores a model (training, monitoring, experiments, serving) calls this.
    """
    if is_regression_model(model):
        return np.asarray(model.predict(X), dtype=np.float64)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    return proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
