"""Build estimators from ``_target_`` through one exact allowlist, wrapped in a preprocessing Pipeline.

Config never executes arbitrary code: ``_target_`` must be a dotted path of a class that
``sklearn.utils.all_estimators()`` lists (estimators, transformers, clusterers; under its
public path or its defining module), or a path the user listed in
``registry.trusted_types``. The check happens on the string, before anything is imported
or instantiated. Parameter values are validated by the estimator's own constraints at
build time, so a wrong value is a one-line ConfigError, not a traceback from ``fit``.

Example:
    >>> est = build_estimator("sklearn.linear_model.LogisticRegression", {"C": 0.5})
    >>> type(est).__name__
    'LogisticRegression'
"""
from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import re
import sys
from collections.abc import Iterable

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.errors import ConfigError


@functools.lru_cache(maxsize=1)
def sklearn_estimators() -> dict[str, type]:
    """Dotted path -> class for every class ``sklearn.utils.all_estimators()`` lists, under its
    defining module and every public module that exports it (``sklearn.linear_model.X``)."""
    from sklearn.utils import all_estimators  # imports every sklearn module: ~1-3 s, once
    out: dict[str, type] = {}
    for name, cls in all_estimators():
        out[f"{cls.__module__}.{name}"] = cls
        parts = cls.__module__.split(".")
        for n in range(1, len(parts)):
            prefix = parts[:n]
            module = sys.modules.get(".".join(prefix))
            if not any(p.startswith("_") for p in prefix) and getattr(module, name, None) is cls:
                out[f"{'.'.join(prefix)}.{name}"] = cls
    return out


def _resolve(target: object, trusted: Iterable[str], key: str) -> type:
    if isinstance(target, str) and target in sklearn_estimators():
        return sklearn_estimators()[target]
    trusted = [str(t) for t in trusted]
    if not isinstance(target, str) or target not in trusted:
        names = sorted(sklearn_estimators())
        close = difflib.get_close_matches(str(target), names, n=1, cutoff=0.8)
        hint = f". Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{target!r} is not an allowed estimator: not listed by "
                          f"sklearn.utils.all_estimators() nor in registry.trusted_types{hint}", key=key,
                          fix="name a scikit-learn estimator (e.g. sklearn.ensemble.HistGradientBoostingClassifier), "
                              "or add the dotted class path to registry.trusted_types if you trust it")
    module_name, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"cannot import {target!r} (listed in registry.trusted_types)", key=key,
                          fix="check the spelling of the class path, or install its package") from None
    if not inspect.isclass(obj):
        raise ConfigError(f"{target!r} is not a class", key=key, fix="name an estimator class")
    return obj


def build_estimator(target: str, params: dict | None = None, *, key: str = "model._target_",
                    trusted: Iterable[str] = ()):
    """Instantiate an allowlisted ``target`` with ``params`` (see the module docstring).

    ``trusted`` adds exact dotted class paths (``registry.trusted_types``).
    """
    obj = _resolve(target, trusted, key)
    attr = obj.__name__
    params_key = key.replace("_target_", "params")
    params = dict(params or {})
    accepted = sorted(p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs"))
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(f"{attr} has no parameter(s) {unknown}; valid: {accepted}",
                          key=params_key, fix="rename or remove them")
    try:
        est = obj(**params)
        if hasattr(est, "_validate_params"):  # sklearn's declared constraints, checked now, not in fit
            est._validate_params()
    except (TypeError, ValueError) as exc:
        text = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).rstrip(".")
        found = re.match(r"The '(\w+)' parameter", text)
        where = f"{params_key}.{found.group(1)}" if found else params_key
        valid = f" (parameters of {attr}: {accepted})" if not found else ""
        raise ConfigError(f"{text}{valid}", key=where, fix="check the parameter value") from None
    return est


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
