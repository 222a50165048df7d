"""Shared fixtures for registry tests: tiny real scikit-learn models."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@pytest.fixture(scope="session")
def tiny_xy():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(80, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


@pytest.fixture(scope="session")
def logreg(tiny_xy):
    x, y = tiny_xy
    return LogisticRegression().fit(x, y)


@pytest.fixture(scope="session")
def tabular():
    rng = np.random.default_rng(11)
    n = 120
    amount = rng.gamma(2.0, 50.0, n)
    amount[::9] = np.nan
    frame = pl.DataFrame({
        "amount": amount,
        "age": rng.integers(18, 80, n).astype(float),
        "channel": rng.choice(["web", "app", "store"], n),
    })
    y = ((np.nan_to_num(amount) > 100) | (frame["channel"].to_numpy() == "app")).astype(int)
    return frame, y


@pytest.fixture(scope="session")
def hgb_pipeline(tabular):
    frame, y = tabular
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["amount", "age"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
    ])
    return Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(max_iter=8, random_state=0))]).fit(frame, y)


@pytest.fixture(autouse=True)
def _outside_any_checkout(tmp_path, monkeypatch):
    # register() records the git commit of the working directory; run in a temp dir so
    # tests never depend on (or touch) the project checkout.
    monkeypatch.chdir(tmp_path)
