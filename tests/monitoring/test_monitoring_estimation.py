"""CBPE (mlops.monitoring.estimation) against hand-worked cases, sklearn and simulation."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from mlops.errors import ConfigError, DataError
from mlops.monitoring import estimation as E


def test_expected_auc_hand_worked():
    # scores already in rank order; calibrated p = scores. By hand: cumulative expected
    # TP 0.9, 1.5, 1.7, 1.8 (of 1.8); FP 0.1, 0.5, 1.3, 2.2 (of 2.2); trapezoids:
    # .1/2.2*(0+.9/1.8)/2 + .4/2.2*(.5+1.5/1.8)/2 + .8/2.2*(1.5+1.7)/3.6 + .9/2.2*(1.7+1.8)/3.6
    p = np.array([0.9, 0.6, 0.2, 0.1])
    by_hand = (0.1 / 2.2 * 0.25 + 0.4 / 2.2 * (0.5 + 1.5 / 1.8) / 2
               + 0.8 / 2.2 * (1.5 + 1.7) / 3.6 + 0.9 / 2.2 * (1.7 + 1.8) / 3.6)
    assert E.estimate_roc_auc(p, p) == pytest.approx(by_hand, abs=1e-12)
    assert by_hand == pytest.approx(0.8535353535, abs=1e-9)


def test_expected_auc_equals_pairwise_brute_force():
    # E[concordant pairs] / (E[P] E[N]) with ties in the score counted half
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(60), 1)  # many ties
    p = rng.random(60)
    num = 0.0
    for i in range(60):
        for j in range(60):
            if i == j:
                continue
            w = p[i] * (1 - p[j])
            num += w if scores[i] > scores[j] else (0.5 * w if scores[i] == scores[j] else 0.0)
    num += 0.5 * np.sum(p * (1 - p))  # a row against itself: same score, half a pair
    brute = num / (p.sum() * (1 - p).sum())
    assert E.estimate_roc_auc(p, scores) == pytest.approx(brute, abs=1e-12)


def test_zero_one_probabilities_reproduce_sklearn_auc_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = (rng.random(300) < 0.2).astype(float)
        s = np.round(rng.random(300) + 0.4 * y, 1)
        assert E.estimate_roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert E.estimate_roc_auc(np.zeros(5), np.arange(5.0)) is None  # no expected positives


def test_precision_recall_hand_worked():
    p = np.array([0.9, 0.6, 0.2, 0.1])
    pred = np.array([True, True, False, False])
    assert E.estimate_precision(pred, p) == pytest.approx(0.75)       # (0.9 + 0.6) / 2
    assert E.estimate_recall(pred, p) == pytest.approx(1.5 / 1.8)     # 1.5 of 1.8 expected
    assert E.estimate_precision(np.zeros(4, bool), p) is None
    # with 0/1 "probabilities" they are the realized metrics
    y = np.array([1.0, 0.0, 1.0, 0.0])
    assert E.estimate_precision(pred, y) == precision_score(y, pred)
    assert E.estimate_recall(pred, y) == recall_score(y, pred)


def test_estimates_match_the_mean_realized_value_on_calibrated_scores():
    """Perfectly calibrated scores, labels drawn from them: estimate = mean realized."""
    rng = np.random.default_rng(11)
    n, draws, threshold = 3000, 200, 0.3
    p = rng.beta(0.6, 4.0, n)
    pred = p >= threshold
    realized = {"roc_auc": [], "precision": [], "recall": []}
    for _ in range(draws):
        y = (rng.random(n) < p).astype(float)
        for k, v in E.realized_metrics(y, p, threshold).items():
            realized[k].append(v)
    estimated = {"roc_auc": E.estimate_roc_auc(p, p), "precision": E.estimate_precision(pred, p),
                 "recall": E.estimate_recall(pred, p)}
    for k in estimated:
        mean, se = np.mean(realized[k]), np.std(realized[k]) / np.sqrt(draws)
        # precision is exactly unbiased; AUC/recall are ratios of expectations (O(1/n) bias)
        assert abs(estimated[k] - mean) < max(4 * se, 0.002), (k, estimated[k], mean, se)


def test_sampling_band_covers_about_95_percent():
    rng = np.random.default_rng(5)
    n, threshold = 1500, 0.3
    p = rng.beta(0.6, 4.0, n)
    band = E.sampling_band(p, p, threshold, draws=400, seed=1)
    hits = {k: 0 for k in E.METRICS}
    trials = 300
    for _ in range(trials):
        y = (rng.random(n) < p).astype(float)
        r = E.realized_metrics(y, p, threshold)
        for k in E.METRICS:
            hits[k] += band[k][0] <= r[k] <= band[k][1]
    for k in E.METRICS:
        assert 0.90 <= hits[k] / trials <= 0.99, (k, hits[k] / trials)


def test_ece_hand_worked_and_nannyml_bins():
    # two bins of two rows: |(.1+.3)/2 - 0| * .5 + |(.6+.9)/2 - 1| * .5 = .1 + .125
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.6, 0.9])
    assert E.expected_calibration_error(y, p, bins=2) == pytest.approx(0.225)
    # 20 rows, 10 bins -> n <= 2*bins, NannyML falls back to n // 2 bins of 2 rows
    y = np.tile([0, 1], 10)
    p = np.linspace(0.05, 0.95, 20)
    pairs = [abs(p[i:i + 2].mean() - 0.5) / 10 for i in range(0, 20, 2)]
    assert E.expected_calibration_error(y, p) == pytest.approx(sum(pairs))


def test_miscalibrated_scores_are_recalibrated_with_isotonic():
    rng = np.random.default_rng(2)
    n = 6000
    true_p = rng.beta(0.6, 4.0, n)
    y = (rng.random(n) < true_p).astype(float)
    raw = np.sqrt(true_p)  # monotone but far too high: class_weight=balanced does this
    cal = E.fit_calibration(y, raw)
    assert cal.method == "isotonic" and cal.needed
    assert cal.ece_raw > 0.1 and cal.ece_calibrated < 0.03
    iso = IsotonicRegression(out_of_bounds="clip").fit(raw, y)
    probe = np.r_[raw[:200], -1.0, 2.0]  # out of range clips, as sklearn's
    assert np.allclose(cal.apply(probe), iso.predict(probe))
    assert len(cal.boot) == 50
    # precision from raw scores would be wildly off; calibrated it matches the truth
    pred = raw >= 0.6
    assert abs(E.estimate_precision(pred, cal.apply(raw)) - E.estimate_precision(pred, true_p)) < 0.02
    assert abs(E.estimate_precision(pred, raw) - E.estimate_precision(pred, true_p)) > 0.2
    forced = E.fit_calibration(y, raw, method="none")
    assert forced.method == "none" and forced.ece_raw == pytest.approx(cal.ece_raw)


def test_calibration_errors_name_the_key():
    with pytest.raises(ConfigError, match="calibration.*auto, isotonic or none"):
        E.fit_calibration(np.array([0, 1]), np.array([0.1, 0.9]), method="platt")
    with pytest.raises(DataError, match="0/1"):
        E.fit_calibration(np.array([0, 2, 1]), np.array([0.1, 0.5, 0.9]))
    with pytest.raises(DataError, match="too few"):
        E.fit_calibration(np.array([0, 1, 0]), np.array([0.1, 0.9, 0.2]), method="isotonic")


def _chunk_frame(p_score, p_label, labelled_share, seed=0):
    rng = np.random.default_rng(seed)
    n = p_score.size
    t0 = dt.datetime(2024, 1, 1)
    y = (rng.random(n) < p_label).astype(float)
    known = rng.random(n) < labelled_share
    return pl.DataFrame({"t": [t0 + dt.timedelta(minutes=int(m)) for m in np.arange(n) * 10],
                         "score": p_score, "y": pl.Series(np.where(known, y, np.nan)).fill_nan(None)})


def test_chunks_switch_from_estimated_to_realized_and_flag_concept_drift():
    rng = np.random.default_rng(4)
    n = 3000
    p = rng.beta(0.6, 4.0, n)
    cal = E.Calibration(method="none", needed=False)
    # labels follow the scores (calibration holds): realized inside the band
    df = _chunk_frame(p, p, 1.0)
    chunks = E.estimate_by_chunk(df, time_col="t", score_col="score", label_col="y", chunk="7d",
                                 threshold=0.3, calibration=cal)
    assert len(chunks) >= 3 and all(c["shown"] == "realized" for c in chunks)
    assert sum(len(c["outside_band"]) for c in chunks) <= 1
    first = chunks[0]
    assert first["value"] == first["realized"]
    assert first["rows"] + sum(c["rows"] for c in chunks[1:]) == n
    # half the labels so far: the estimate is shown, the partial realized value is kept
    half = E.estimate_by_chunk(_chunk_frame(p, p, 0.5), time_col="t", score_col="score",
                               label_col="y", chunk="7d", threshold=0.3, calibration=cal)
    assert all(c["shown"] == "estimated" and c["value"] == c["estimated"] for c in half)
    assert all(c["realized"] is not None and "labelled so far" in c["note"] for c in half)
    # concept drift: positives now score low (labels no longer follow the scores)
    drifted = E.estimate_by_chunk(_chunk_frame(p, 0.6 * (1 - p) ** 6, 1.0), time_col="t",
                                  score_col="score", label_col="y", chunk="7d", threshold=0.3,
                                  calibration=cal)
    for c in drifted:
        assert c["estimated"]["roc_auc"] > 0.7 and c["realized"]["roc_auc"] < 0.5
        assert "roc_auc" in c["outside_band"]
    none = E.estimate_by_chunk(df.drop("y"), time_col="t", score_col="score", label_col=None,
                               chunk=1000, threshold=0.3, calibration=cal)
    assert [c["rows"] for c in none] == [1000, 1000, 1000]
    assert all(c["realized"] is None and c["shown"] == "estimated" for c in none)


def test_docstring_examples():
    import doctest
    result = doctest.testmod(E, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
