"""A small, fully built serving world for the tests (and the subprocess server).

Synthetic transactions -> compiled plan -> features -> a fitted sklearn Pipeline
(OneHotEncoder for categoricals, imputer + scaler for numerics, logistic regression)
-> model metadata and breaker reference bins.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.compile import FeaturePlan, compile_plan
from mlops.features.offline import compute_features
from mlops.monitoring.reference import fit_reference
from mlops.serving.breaker import BreakerReference
from mlops.serving.skew import ModelInfo

SPEC = {"name": "t", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
        "categorical": ["merchant_category", "country", "channel"],
        "windows": [{"column": "amount", "aggs": ["sum", "mean", "count"],
                     "periods": ["1h", "7d"]}],
        "derived": [{"name": "amount_ratio", "expr": "amount / (amount_mean_7d + 1)"}]}


@dataclass
class World:
    events: pl.DataFrame
    plan: FeaturePlan
    features: pl.DataFrame
    model: Pipeline
    info: ModelInfo
    reference: BreakerReference


def make_model(plan: FeaturePlan, C: float = 1.0) -> Pipeline:
    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), plan.categorical),
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
         plan.numeric)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(C=C, max_iter=1000))])


def build_world(n_users: int = 80, days: int = 30, seed: int = 7, version: str = "1",
                C: float = 1.0) -> World:
    events = generate(SyntheticParams(n_users=n_users, days=days, seed=seed))
    plan = compile_plan(SPEC, events.schema)
    feats = compute_features(plan, events, keep=["is_fraud", "transaction_id"]).collect()
    X = feats.select(plan.feature_names)
    model = make_model(plan, C).fit(X, feats["is_fraud"].to_numpy())
    scores = model.predict_proba(X)[:, 1]
    reference = breaker_reference(X, scores, categorical=plan.categorical)
    info = ModelInfo("fraud", version, plan.spec_hash)
    return World(events, plan, feats, model, info, reference)


def breaker_reference(X: pl.DataFrame, scores, *, categorical=(), n_bins: int = 10,
                      window: int | None = None) -> BreakerReference:
    """The breaker's bins as serving gets them: monitoring's reference fitted on the
    training features and scores (the one stored with a model; ``X`` in time order), with
    limits calibrated for a ``window`` when one is given."""
    from mlops.serving.breaker.limits import calibrated_reference
    numeric = [c for c in X.columns if c not in categorical]
    fitted = fit_reference(X.with_columns(pl.Series("prediction", np.asarray(scores, dtype=float))),
                           numeric=[*numeric, "prediction"], categorical=list(categorical),
                           n_bins=n_bins)
    if window is not None:
        return calibrated_reference(fitted, X.columns, window=window)
    return BreakerReference.from_reference(fitted, X.columns)


def record(row: dict, plan: FeaturePlan) -> dict:
    """A request record (JSON-able) from an event row."""
    rec = {c: row[c] for c in plan.source_columns}
    rec[plan.timestamp] = row[plan.timestamp].isoformat()
    return rec


def scores_of(model, frame: pl.DataFrame, plan: FeaturePlan) -> np.ndarray:
    return model.predict_proba(frame.select(plan.feature_names))[:, 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
