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

from dataclasses import dataclass

import numpy as np
import polars as pl

from mlops.errors import ConfigError, DataError

TASKS = ("classification", "regression")
# the model's score column: in the monitoring reference, the monitor's rows and scored output
PREDICTION = "prediction"


def _final(model):
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def infer_task(model, *, declared: str | None = None, key: str = "model._target_") -> str:
    """``classification`` or ``regression`` from the estimator; ``declared`` must agree."""
    from sklearn.base import is_classifier, is_regressor  # loaded when a model is at hand
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
    from sklearn.base import is_regressor  # loaded when a model is at hand
    try:
        return bool(is_regressor(_final(model)))
    except Exception:  # objects that are not sklearn estimators: treat as classifiers
        return False


@dataclass(frozen=True)
class RowScores:
    """What the model says about each row.

    ``values``: P(positive class) for a binary classifier, the top class's probability
    for a multi-class one, the predicted value for a regressor. ``column``: for a
    classifier, the index into ``classes_`` of the class each value belongs to (1 for
    binary: the positive class); None for a regressor. ``n_classes``: 0 for a regressor.
    """

    values: np.ndarray
    column: np.ndarray | None
    n_classes: int = 0


def score_rows(model, X) -> RowScores:
    """Score ``X`` (a frame of the plan's features): the one place a model is called.

    Every path that scores a model (training, monitoring, experiments, serving) comes here.
    """
    if is_regression_model(model):
        return RowScores(np.asarray(model.predict(X), dtype=np.float64), None)
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    if proba.shape[1] == 2:
        return RowScores(proba[:, 1], np.ones(proba.shape[0], dtype=np.int64), 2)
    idx = proba.argmax(axis=1)
    return RowScores(proba[np.arange(proba.shape[0]), idx], idx, proba.shape[1])


def model_scores(model, X) -> np.ndarray:
    """One score per row: P(positive class) for a binary classifier, the value for a regressor."""
    return score_rows(model, X).values


def score_frame(model, plan, df: pl.DataFrame) -> np.ndarray:
    """:func:`model_scores` of ``df``'s plan features (``plan``: anything with ``feature_names``)."""
    return model_scores(model, df.select(plan.feature_names))


def label_target(df: pl.DataFrame, label: str, task: str) -> np.ndarray:
    """The label as the estimator needs it: 0/1 for binary classification, float for regression."""
    col = df[label]
    if col.null_count():
        raise DataError(f"{col.null_count():,} rows given to the model have no label",
                        key="features.label.column",
                        fix="pass only labelled rows (training.split.time_split leaves null labels out)")
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
