"""Task inference and the regression metrics, against sklearn."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops.errors import ConfigError
from mlops.serving.model.scoring import predict_scores
from mlops.training.metrics import regression_metrics
from mlops.training.task import infer_task, model_scores


def test_task_comes_from_the_estimator_through_pipelines():
    assert infer_task(make_pipeline(StandardScaler(), Ridge())) == "regression"
    assert infer_task(HistGradientBoostingRegressor()) == "regression"
    assert infer_task(LogisticRegression()) == "classification"
    with pytest.raises(ConfigError, match="declares task 'classification'"):
        infer_task(Ridge(), declared="classification")
    with pytest.raises(ConfigError, match="neither a classifier nor a regressor"):
        infer_task(StandardScaler())


def test_one_scoring_function_for_both_tasks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -2.0, 0.5] + rng.normal(0, 0.1, 200)
    reg = Ridge().fit(X, y)
    np.testing.assert_allclose(model_scores(reg, X), reg.predict(X))
    labels, values = predict_scores(reg, __import__("polars").DataFrame(X))
    np.testing.assert_allclose(values, reg.predict(X))
    clf = LogisticRegression().fit(X, (y > 0).astype(int))
    np.testing.assert_allclose(model_scores(clf, X), clf.predict_proba(X)[:, 1])


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=500), rng.normal(size=500)
    m = regression_metrics(y, p)
    assert m["rmse"] == pytest.approx(root_mean_squared_error(y, p))
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["r2"] == pytest.approx(r2_score(y, p))


def test_serving_labels_come_from_the_one_scoring_function():
    import polars as pl

    from mlops.errors import ServingError
    from mlops.training.task import score_rows
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 2))
    frame = pl.DataFrame(X, schema=["a", "b"])
    three = np.where(X[:, 0] > 0.5, "hi", np.where(X[:, 0] < -0.5, "lo", "mid"))
    multi = LogisticRegression().fit(frame, three)
    labels, probs = predict_scores(multi, frame)
    assert (labels == multi.predict(frame)).all()  # the arg-max class, as sklearn predicts
    np.testing.assert_allclose(probs, multi.predict_proba(frame).max(axis=1))
    np.testing.assert_allclose(score_rows(multi, frame).values, probs)
    binary = LogisticRegression().fit(frame, np.where(X[:, 1] > 0, "yes", "no"))
    labels, probs = predict_scores(binary, frame, threshold=0.8)
    p_yes = binary.predict_proba(frame)[:, 1]  # classes_ = [no, yes]
    np.testing.assert_allclose(probs, p_yes)
    assert (labels == np.where(p_yes >= 0.8, "yes", "no")).all()
    with pytest.raises(ServingError, match="no predict_proba"):
        predict_scores(StandardScaler().fit(frame), frame)
    empty_labels, empty_probs = predict_scores(binary, frame.head(0))
    assert empty_labels.size == empty_probs.size == 0
