"""The small-batch fast path reproduces the model's own predict_proba, or is not used."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from mlops.serving.model.compiled import compile_model
from mlops.serving.model.scoring import known_categories
from mlops.training.estimator import build_pipeline


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    cats = [f"c{i}" for i in range(40)]  # > max_categories: infrequent grouping kicks in
    x1 = rng.normal(50, 20, n)
    x1[rng.random(n) < 0.1] = np.nan
    frame = pl.DataFrame({
        "x1": pl.Series(x1).fill_nan(None), "x2": rng.exponential(3, n),
        "cat": rng.choice(cats, n, p=np.r_[np.full(10, 0.08), np.full(30, 0.2 / 30)]),
        "chan": pl.Series([None if v == "-" else v for v in rng.choice(["a", "b", "-"], n)],
                          dtype=pl.String)})
    y = (frame["x2"].to_numpy() + (frame["cat"] == "c1").to_numpy() * 3
         + rng.normal(0, 1, n) > 4).astype(int)
    return frame, y


@pytest.mark.parametrize("estimator,scale", [
    (LogisticRegression(max_iter=2000), True),
    (HistGradientBoostingClassifier(max_iter=30, random_state=0), False)])
def test_compiled_pipeline_matches_predict_proba(estimator, scale):
    frame, y = _data()
    model = build_pipeline(estimator, numeric=["x1", "x2"], categorical=["cat", "chan"],
                           scale_numeric=scale, max_categories=8).fit(frame, y)
    fast = compile_model(model, frame.columns, categorical=["cat", "chan"],
                         known_categories=known_categories(model))
    assert fast is not None
    test, _ = _data(500, seed=1)
    test = test.with_columns(pl.when(pl.int_range(500) % 11 == 0).then(pl.lit("never-seen"))
                             .otherwise(pl.col("cat")).alias("cat"))
    for rows in (test.head(1), test.slice(7, 3), test):  # one row, a micro-batch, many
        np.testing.assert_allclose(fast.predict_proba(rows), model.predict_proba(rows),
                                   rtol=0, atol=1e-12)


def test_unsupported_pipelines_get_no_fast_path():
    frame, y = _data(500)
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["cat"]),
                             ("num", FunctionTransformer(np.log1p), ["x2"])])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(frame, y)
    assert compile_model(model, frame.columns, categorical=["cat", "chan"]) is None
    bare = LogisticRegression().fit(frame.select("x2").to_numpy(), y)
    assert compile_model(bare, ["x2"], categorical=[]) is None


def test_regressors_get_no_fast_path_and_scores_keep_their_meaning():
    from sklearn.linear_model import Ridge

    from mlops.serving.model.scoring import predict_scores
    frame, y = _data(400)
    model = build_pipeline(Ridge(), numeric=["x1", "x2"], categorical=["cat", "chan"]
                           ).fit(frame, y.astype(float))
    assert compile_model(model, frame.columns, categorical=["cat", "chan"]) is None
    clf = build_pipeline(LogisticRegression(max_iter=500), numeric=["x1", "x2"],
                         categorical=["cat", "chan"]).fit(frame, y)
    fast = compile_model(clf, frame.columns, categorical=["cat", "chan"])
    a, b = predict_scores(fast, frame, threshold=0.3), predict_scores(clf, frame, threshold=0.3)
    assert (a[0] == b[0]).all() and np.allclose(a[1], b[1], rtol=0, atol=1e-12)
