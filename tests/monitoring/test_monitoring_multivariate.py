"""Domain-classifier drift against sklearn and hand-worked truth (issue 14.5)."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from mlops.errors import ConfigError
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.multivariate import auc_from_scores, domain_classifier, permutation_aucs
from mlops.monitoring.reference import fit_reference

FAST = {"max_rows": 3000, "folds": 3, "permutations": 200}


def _independent(n, rng):
    return pl.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n),
                         "z": rng.exponential(size=n),
                         "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]).tolist()})


def test_identical_distributions_are_no_drift_with_auc_near_half():
    rng = np.random.default_rng(11)
    ref, cur = _independent(3000, rng), _independent(3000, rng)
    out = domain_classifier(ref, cur, numeric=["x", "y", "z"], categorical=["c"], **FAST)
    assert out["status"] == "no_drift" and out["drift"] is False
    assert abs(out["auc"] - 0.5) < 0.03
    assert out["p_value"] > 0.05 and out["threshold"] >= out["min_auc"] == 0.55
    assert out["ref_sampled"] == out["cur_sampled"] == 3000


def test_shifted_correlation_with_unchanged_marginals_is_multivariate_drift_only():
    rng = np.random.default_rng(12)
    n = 3000
    ref = _independent(n, rng)
    xy = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.8], [0.8, 1.0]], size=n)
    cur = ref.with_columns(pl.Series("x", xy[:, 0]), pl.Series("y", xy[:, 1]),
                           pl.Series("z", rng.exponential(size=n)))
    uni = detect_drift(fit_reference(ref, numeric=["x", "y", "z"], categorical=["c"]), cur)
    assert uni["n_drifted"] == 0 and uni["dataset_drift"] is False  # every marginal unchanged
    out = domain_classifier(ref, cur, numeric=["x", "y", "z"], categorical=["c"], **FAST)
    assert out["drift"] is True and out["auc"] > 0.65 and out["p_value"] < 0.01
    assert {f["feature"] for f in out["top_features"][:2]} == {"x", "y"}


def test_auc_from_scores_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 20, size=500) / 20.0  # many ties
    y = rng.integers(0, 2, size=500)
    assert auc_from_scores(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_permutation_null_matches_the_mann_whitney_distribution():
    """Scores unrelated to labels: the shuffled AUCs centre on 0.5 with the Mann-Whitney
    standard deviation sqrt((n0 + n1 + 1) / (12 n0 n1))."""
    rng = np.random.default_rng(4)
    n0 = n1 = 400
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    scores = rng.random(n0 + n1)
    folds = np.arange(n0 + n1) % 4
    null = permutation_aucs(scores, y, folds, 4000, rng)
    sd = math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
    assert null.mean() == pytest.approx(0.5, abs=3 * sd / math.sqrt(4000) + 1e-3)
    assert null.std() == pytest.approx(sd, rel=0.06)


def test_few_rows_are_insufficient_and_config_is_checked():
    rng = np.random.default_rng(5)
    out = domain_classifier(_independent(10, rng), _independent(3000, rng),
                            numeric=["x"], categorical=[], **FAST)
    assert out["status"] == "insufficient_data" and out["drift"] is False and out["auc"] is None
    assert "needs >= 50" in out["note"]
    with pytest.raises(ConfigError, match="multivariate.min_auc"):
        domain_classifier(_independent(100, rng), _independent(100, rng), numeric=["x"],
                          categorical=[], min_auc=0.3)
