"""Calling the model: scores, labels, and what its encoders know.

The model is any fitted estimator with ``predict_proba`` that accepts a polars frame of
``plan.feature_names`` (an sklearn Pipeline with a ColumnTransformer does).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from mlops.errors import ServingError
from mlops.training.task import is_regression_model, score_rows


def predict_scores(model, features: pl.DataFrame | list[dict], *, threshold: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, positive-class probabilities) for each row; (values, values) for a regressor.

    ``features`` is a frame of the plan's features, or (for a compiled model,
    :mod:`mlops.serving.model.compiled`) the rows backend's feature dicts.

    Binary models: label = ``classes_[1]`` when p >= threshold, else ``classes_[0]``.
    Multi-class models: the arg-max class and its probability.

    Example:
        >>> labels, probs = predict_scores(pipe, frame.select(plan.feature_names))  # doctest: +SKIP
    """
    if len(features) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if not is_regression_model(model) and not hasattr(model, "predict_proba"):
        raise ServingError(f"the model ({type(model).__name__}) has no predict_proba",
                           key="serving.model", fix="serve a probabilistic classifier")
    rows = score_rows(model, features)
    if rows.column is None:  # regression: the prediction is the value
        return rows.values, rows.values
    classes = getattr(model, "classes_", None)
    classes = np.asarray(classes if classes is not None else np.arange(rows.n_classes))
    idx = (rows.values >= threshold).astype(np.int64) if rows.n_classes == 2 else rows.column
    return classes[idx], rows.values


def _encoders(model):
    """Yield (input column names, fitted encoder) pairs found inside a model."""
    steps = getattr(model, "steps", None)
    if steps is not None:
        for _, step in steps:
            yield from _encoders(step)
        return
    transformers = getattr(model, "transformers_", None)
    if transformers is not None:
        for _, trans, cols in transformers:
            if isinstance(cols, (list, tuple)) and hasattr(trans, "categories_"):
                yield list(cols), trans
            elif isinstance(cols, (list, tuple)):
                for inner_cols, enc in _encoders(trans):
                    yield inner_cols or list(cols), enc
        return
    if hasattr(model, "categories_"):
        yield list(getattr(model, "feature_names_in_", [])), model


def known_categories(model) -> dict[str, set]:
    """``{feature: categories seen in training}`` from the model's fitted encoders.

    Walks Pipelines and ColumnTransformers; returns {} when it finds none (then no
    unknown-category warnings are given).
    """
    out: dict[str, set] = {}
    for cols, enc in _encoders(model):
        for col, cats in zip(cols, enc.categories_):
            out[str(col)] = {c for c in np.asarray(cats).tolist() if isinstance(c, str)}
    return out
