"""Build estimators from ``_target_`` through one allowlist, wrapped in a preprocessing Pipeline.

Config never executes arbitrary code: ``_target_`` must name a class under a
trusted prefix, and only classes (not functions) are instantiated.

Example:
    >>> est = build_estimator("sklearn.linear_model.LogisticRegression", {"C": 0.5})
    >>> type(est).__name__
    'LogisticRegression'
"""
from __future__ import annotations

import importlib
import inspect

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.errors import ConfigError

TRUSTED_PREFIXES = ("sklearn.", "lightgbm.", "xgboost.", "catboost.")


def build_estimator(target: str, params: dict | None = None, *, key: str = "model._target_"):
    """Instantiate ``target`` (a dotted class path under a trusted prefix) with ``params``."""
    if not isinstance(target, str) or not target.startswith(TRUSTED_PREFIXES):
        raise ConfigError(f"{target!r} is not under a trusted prefix {list(TRUSTED_PREFIXES)}",
                          key=key, fix="use an estimator class from scikit-learn (e.g. "
                                       "sklearn.ensemble.HistGradientBoostingClassifier)")
    module_name, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise ConfigError(f"cannot import {target!r}", key=key,
                          fix="check the spelling of the class path, or install its package") from None
    if not inspect.isclass(obj):
        raise ConfigError(f"{target!r} is not a class", key=key, fix="name an estimator class")
    params = dict(params or {})
    accepted = set(inspect.signature(obj).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(f"{attr} has no parameter(s) {unknown}; valid: {sorted(accepted)}",
                          key=key.replace("_target_", "params"), fix="rename or remove them")
    try:
        return obj(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{attr}({params}) failed: {exc}", key=key.replace("_target_", "params"),
                          fix="check the parameter values") from None


def build_pipeline(estimator, *, numeric: list[str], categorical: list[str],
                   scale_numeric: bool = True, max_categories: int = 30) -> Pipeline:
    """Impute + (scale) numeric, one-hot categorical (unknown categories ignored), then the model.

    Output is dense: every estimator we allow handles dense input, and tree
    models need it.
    """
    num_steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if scale_numeric:
        num_steps.append(("scale", StandardScaler()))
    transformers = []
    if numeric:
        transformers.append(("num", Pipeline(num_steps), list(numeric)))
    if categorical:
        transformers.append(("cat", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                                  max_categories=max_categories,
                                                  sparse_output=False), list(categorical)))
    pre = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", pre), ("model", estimator)])
