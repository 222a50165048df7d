"""Metrics, fairness, split and the estimator allowlist against hand-worked values."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from mlops.errors import ConfigError, DataError
from mlops.training.estimator import build_estimator
from mlops.training.metrics import calibration, classification_metrics, fairness_audit
from mlops.training.split import split_bounds, time_split


def test_fairness_hand_worked():
    # group a: 4 rows, 2 positives; flagged rows 0,1 -> selection .5, TPR 1/2, FPR 1/2
    # group b: 4 rows, 2 positives; flagged row 4 -> selection .25, TPR 1/2, FPR 0
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    pred = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    g = np.array(["a"] * 4 + ["b"] * 4)
    f = fairness_audit(y, pred, g, attribute="grp", min_group_rows=1)
    assert f["demographic_parity_difference"] == pytest.approx(0.25)
    # TPR gap 0, FPR gap 0.5 -> equalized odds difference 0.5
    assert f["equalized_odds_difference"] == pytest.approx(0.5)
    small = fairness_audit(y, pred, g, attribute="grp", min_group_rows=5)
    assert small["demographic_parity_difference"] == 0.0  # groups too small are excluded


def test_classification_metrics_hand_worked():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.2, 0.9])
    m = classification_metrics(y, p, 0.5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    # predicted positive: rows 1, 2, 5 -> TP = 2, FP = 1; positives 3 -> recall 2/3
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["confusion"] == [[2, 1], [1, 2]]
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    single = classification_metrics(np.zeros(4), np.full(4, 0.1), 0.5)
    assert single["roc_auc"] is None  # one class: undefined, not a crash


def test_calibration_bins_cover_every_row():
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    cal = calibration(y, p, n_bins=10)
    assert sum(c for _, _, c in cal) == 1000
    for mean_p, frac, _ in cal:  # well-calibrated by construction
        assert abs(mean_p - frac) < 0.15


def test_split_is_by_time_and_drops_unknown_labels():
    t0 = datetime(2024, 1, 1)
    df = pl.DataFrame({"ts": [t0 + timedelta(days=d) for d in range(30)],
                       "label_ts": [t0 + timedelta(days=d + 3) for d in range(30)]})
    bounds = split_bounds(t0, train_days=10, valid_days=5, test_days=5)
    parts, info = time_split(df, timestamp="ts", bounds=bounds, available_at="label_ts")
    assert parts["train"]["ts"].max() < parts["valid"]["ts"].min()
    assert parts["valid"]["ts"].max() < parts["test"]["ts"].min()
    # test days 15..19 have labels at 18..22; the cut-off is day 20 (inclusive),
    # so days 18 and 19 are not labelled yet; days 20..29 are after the test window
    assert info["left_out"]["label_known_too_late"] == 2 and info["test_rows"] == 3
    assert info["left_out"]["outside_windows"] == 10 and info["label_cutoff"] == "2024-01-21T00:00:00"
    with pytest.raises(ConfigError, match="training.split.valid_days"):
        split_bounds(t0, train_days=10, valid_days=0, test_days=5)
    with pytest.raises(DataError, match="has no rows with a label known by"):
        time_split(df, timestamp="ts", bounds=split_bounds(t0 + timedelta(days=100), train_days=1,
                   valid_days=1, test_days=1), available_at=None)


@pytest.mark.parametrize("target,match", [
    ("os.system", "not an allowed estimator"),
    ("subprocess.Popen", "not an allowed estimator"),
    ("sklearn.linear_model.NoSuchModel", "not an allowed estimator"),
    ("sklearn.metrics.roc_auc_score", "not an allowed estimator"),
])
def test_estimator_allowlist(target, match):
    with pytest.raises(ConfigError, match=match):
        build_estimator(target, {})


def test_estimator_unknown_param_names_valid_ones():
    with pytest.raises(ConfigError, match=r"model.params.*no parameter\(s\) \['Cee'\]"):
        build_estimator("sklearn.linear_model.LogisticRegression", {"Cee": 1})


def _reason_by_hand(ts, label, known, bounds):
    """The left-out rule, row by row, as the model card states it."""
    if ts is None or not bounds[0] <= ts < bounds[-1]:
        return "outside_windows"
    if label is None:
        return "unlabelled"
    if known is False:
        return None
    if known is None:
        return "label_time_missing"
    return "label_known_too_late" if known > bounds[-1] else None


def test_split_counts_every_row_left_out_by_reason_against_a_row_by_row_rule():
    rng = np.random.default_rng(5)
    t0, n = datetime(2024, 1, 1), 2000
    ts = [t0 + timedelta(hours=float(h)) for h in rng.uniform(0, 40 * 24, n)]
    label = [None if u < 0.2 else int(u > 0.6) for u in rng.random(n)]
    # unlabelled rows carry a label time too (the data): it must not matter
    known = [None if u < 0.05 else t + timedelta(days=float(d))
             for t, u, d in zip(ts, rng.random(n), rng.uniform(0, 8, n))]
    df = pl.DataFrame({"ts": ts, "y": label, "known": known})
    bounds = split_bounds(t0 + timedelta(days=5), train_days=20, valid_days=5, test_days=5)
    parts, info = time_split(df, timestamp="ts", bounds=bounds, available_at="known", label="y")
    by_hand = [_reason_by_hand(*row, bounds) for row in zip(ts, label, known)]
    expected = {r: by_hand.count(r) for r in ("outside_windows", "unlabelled", "label_time_missing",
                                              "label_known_too_late")}
    assert info["left_out"] == expected and all(expected.values())
    used = sum(r is None for r in by_hand)
    assert info["used_rows"] == used == sum(p.height for p in parts.values())
    assert info["rows"] == n == used + sum(expected.values())
    assert all(p["y"].null_count() == 0 and (p["known"] <= bounds[-1]).all() for p in parts.values())


def test_split_without_available_at_uses_every_labelled_row_in_the_windows():
    t0 = datetime(2024, 1, 1)
    df = pl.DataFrame({"ts": [t0 + timedelta(days=d) for d in range(12)],
                       "y": [1, 0, None, 1, 0, 1, 0, None, 1, 0, 1, 0]})
    bounds = split_bounds(t0 + timedelta(days=1), train_days=5, valid_days=2, test_days=2)
    parts, info = time_split(df, timestamp="ts", bounds=bounds, available_at=None, label="y")
    # days 0, 10, 11 outside; days 2 and 7 unlabelled; the other 7 used
    assert info["left_out"] == {"outside_windows": 3, "unlabelled": 2, "label_time_missing": 0,
                                "label_known_too_late": 0}
    assert (info["train_rows"], info["valid_rows"], info["test_rows"]) == (4, 1, 2)
