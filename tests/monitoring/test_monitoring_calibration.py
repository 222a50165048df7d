"""Calibrated limits (issue 20): every chunk statistic re-computed by brute force with scipy,
the limit arithmetic by hand, and the judgments on data where the right answer is known."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.stats
from scipy.spatial.distance import jensenshannon

from mlops.monitoring import stats
from mlops.monitoring.calibration import band_limit, chunk_layout, upper_limit
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.feature_limits import categorical_limit, numeric_limit
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.reference import Reference, fit_reference

T0 = datetime(2024, 1, 1)


# --- chunk layout and limit arithmetic ---------------------------------------------------

def test_layout_uses_window_sized_chunks_evenly_spaced():
    layout = chunk_layout(10_000, 100, max_chunks=40)
    assert layout.chunk_rows == 100 and layout.n_chunks == 40 and layout.note is None
    assert layout.starts[0] == 0 and layout.ends[-1] == 10_000  # first and last chunk included
    assert np.all(np.diff(layout.starts) >= 100)                 # never overlapping


def test_layout_falls_back_to_smaller_chunks_and_says_so():
    layout = chunk_layout(1_000, 400, min_chunks=6)
    assert layout.n_chunks == 6 and layout.chunk_rows == 166
    assert "holds 2 chunks of 400 rows" in layout.note and "conservative" in layout.note
    assert chunk_layout(10, 5, min_chunks=6) is None             # chunks of 1 row: nothing to measure


def test_upper_and_band_limits_by_hand():
    layout = chunk_layout(600, 100)
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]                      # mean 3.5, sd(ddof=1) 1.8708
    up = upper_limit(values, k=2.0, floor=1.0, statistic="psi", layout=layout)
    m = scipy.stats.t.ppf(scipy.stats.norm.cdf(2.0), 5) * np.sqrt(1 + 1 / 6)  # 2 sigma for a new value
    assert up.threshold == pytest.approx(3.5 + m * 1.8708287) and up.source == "calibrated"
    assert upper_limit(values, k=2.0, floor=20.0, statistic="psi", layout=layout).source == "floor"
    assert up.breached(up.threshold + 1e-9) and not up.breached(up.threshold) and not up.breached(None)
    # AUC-like: the band sits under the baseline, at least min_change of it wide
    auc = band_limit([0.80, 0.81, 0.80, 0.79, 0.80, 0.80], k=3.0, baseline=0.8, min_change=0.05,
                     higher_is_better=True, statistic="roc_auc", layout=layout)
    assert auc.threshold == pytest.approx(0.8 - 0.8 * 0.05) and auc.source == "floor"
    assert auc.direction == "below" and auc.breached(0.75) and not auc.breached(0.77)
    rmse = band_limit([10.0, 14.0, 9.0, 15.0, 11.0, 13.0], k=3.0, baseline=12.0, min_change=0.05,
                      higher_is_better=False, statistic="rmse", layout=layout)
    assert rmse.threshold == pytest.approx(12.0 + 3 * np.std([10, 14, 9, 15, 11, 13], ddof=1))


def test_interval_multiplier_gives_a_new_chunk_the_coverage_of_k_sigma():
    """Simulated: n normal chunk values, one new value; it exceeds mean + m sd as often as a
    normal exceeds 3 sd (0.135%), where plain 3 sd is exceeded far more often with few chunks."""
    from mlops.monitoring.calibration import interval_multiplier
    rng = np.random.default_rng(0)
    for n in (6, 12):
        sample = rng.normal(size=(200_000, n + 1))
        mean, sd = sample[:, :n].mean(axis=1), sample[:, :n].std(axis=1, ddof=1)
        m = interval_multiplier(3.0, n)
        assert abs((sample[:, n] > mean + m * sd).mean() - 0.00135) < 0.0004
        assert (sample[:, n] > mean + 3 * sd).mean() > 0.004


# --- every chunk statistic against the rest of the reference, by brute force --------------

def _brute_numeric(values, layout, statistic):
    out = []
    for sl in layout.slices():
        chunk = values[sl]
        rest = np.concatenate([values[: sl.start], values[sl.stop:]])
        out.append(statistic(chunk[np.isfinite(chunk)], rest[np.isfinite(rest)]))
    return np.mean(out), np.std(out, ddof=1)


@pytest.mark.parametrize("test", ["wasserstein", "ks", "psi", "js"])
def test_numeric_chunk_statistics_equal_scipy_against_the_rest(test):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0.4, 1.3, 3000)])  # a trend
    values[rng.choice(values.size, 200, replace=False)] = np.nan                  # nulls
    finite = values[np.isfinite(values)]
    std, edges = float(finite.std()), stats.numeric_edges(finite, 10)
    layout = chunk_layout(values.size, 500)

    def brute(chunk, rest):
        if test == "wasserstein":
            return scipy.stats.wasserstein_distance(rest, chunk) / std
        if test == "ks":
            return scipy.stats.ks_2samp(rest, chunk).statistic
        r = np.bincount(np.searchsorted(edges, rest, side="right"), minlength=edges.size + 1)
        c = np.bincount(np.searchsorted(edges, chunk, side="right"), minlength=edges.size + 1)
        if test == "js":
            return jensenshannon(r / r.sum(), c / c.sum(), base=2)
        rs, cs = np.maximum(r / r.sum(), 1e-4), np.maximum(c / c.sum(), 1e-4)
        return float(np.sum((cs - rs) * np.log(cs / rs)))

    mean, sd = _brute_numeric(values, layout, brute)
    limit = numeric_limit(values, test=test, ref_std=std, edges=edges, layout=layout, k=3.0, floor=0.0)
    assert limit.mean == pytest.approx(mean, rel=1e-9) and limit.std == pytest.approx(sd, rel=1e-9)
    m = scipy.stats.t.ppf(scipy.stats.norm.cdf(3.0), limit.chunks - 1) * np.sqrt(1 + 1 / limit.chunks)
    assert limit.chunks == layout.n_chunks and limit.threshold == pytest.approx(mean + m * sd, rel=1e-9)


@pytest.mark.parametrize("test", ["js", "psi", "chi2"])
def test_categorical_chunk_statistics_equal_scipy_against_the_rest(test):
    rng = np.random.default_rng(5)
    codes = np.concatenate([rng.choice(4, 2000, p=[0.4, 0.3, 0.2, 0.1]),
                            rng.choice(4, 2000, p=[0.3, 0.3, 0.3, 0.1])]).astype(np.int32)
    codes[rng.choice(codes.size, 100, replace=False)] = -1                        # nulls
    layout = chunk_layout(codes.size, 400)
    values = []
    for sl in layout.slices():
        chunk, rest = codes[sl], np.concatenate([codes[: sl.start], codes[sl.stop:]])
        c = np.bincount(chunk[chunk >= 0], minlength=4)
        r = np.bincount(rest[rest >= 0], minlength=4)
        if test == "chi2":
            values.append(scipy.stats.chisquare(c, r / r.sum() * c.sum()).statistic)
        elif test == "js":
            values.append(jensenshannon(r / r.sum(), c / c.sum(), base=2))
        else:
            rs, cs = np.maximum(r / r.sum(), 1e-4), np.maximum(c / c.sum(), 1e-4)
            values.append(float(np.sum((cs - rs) * np.log(cs / rs))))
    limit = categorical_limit(codes, test=test, n_categories=4, layout=layout, k=3.0, floor=0.0)
    assert limit.mean == pytest.approx(np.mean(values), rel=1e-9)
    assert limit.std == pytest.approx(np.std(values, ddof=1), rel=1e-9)


# --- judgments on data whose answer is known ------------------------------------------------

def _frame(values, start=T0):
    return pl.DataFrame({"ts": [start + timedelta(minutes=i) for i in range(len(values))], "x": values})


def test_a_large_sample_no_longer_drifts_by_size_alone():
    """200k vs 200k rows, shifted by 0.02 sd: KS's p-value says drift, the calibrated limit
    (whose chunks carry the same noise) and its 0.1 sd floor do not; 0.5 sd still drifts."""
    rng = np.random.default_rng(0)
    ref = fit_reference(_frame(rng.normal(size=200_000)), numeric=["x"], categorical=[], timestamp="ts")
    tiny = pl.DataFrame({"x": rng.normal(0.02, 1, 200_000)})
    assert detect_drift(ref, tiny, DriftPolicy(method="fixed", numeric_test="ks"))["features"]["x"]["drift"]
    calibrated = detect_drift(ref, tiny)["features"]["x"]
    assert calibrated["test"] == "js" and not calibrated["drift"]
    assert calibrated["limit"]["chunks"] == 6 and "conservative" in calibrated["limit"]["note"]
    moved = detect_drift(ref, pl.DataFrame({"x": rng.normal(0.5, 1, 200_000)}))["features"]["x"]
    assert moved["drift"] and moved["score"] > moved["threshold"]


def test_a_seasonal_reference_widens_its_own_limits():
    """The reference swings +-0.4 sd over a season; a window from any one season is not
    drift, while a fixed Wasserstein threshold (0.1) calls it drift."""
    rng = np.random.default_rng(1)
    n = 24_000
    season = 0.4 * np.sin(np.arange(n) / n * 4 * np.pi)
    ref = fit_reference(_frame(rng.normal(season, 1)), numeric=["x"], categorical=[], timestamp="ts")
    peak = pl.DataFrame({"x": rng.normal(0.4, 1, 2000)})
    assert detect_drift(ref, peak, DriftPolicy(method="fixed"))["features"]["x"]["drift"]
    got = detect_drift(ref, peak)["features"]["x"]
    assert not got["drift"] and got["limit"]["source"] == "calibrated" and got["threshold"] > 0.1
    beyond = pl.DataFrame({"x": rng.normal(1.5, 1, 2000)})  # far beyond any season
    assert detect_drift(ref, beyond)["features"]["x"]["drift"]


def test_a_limit_past_the_statistics_maximum_is_reported_not_judged():
    """A level that climbs through the whole reference (a season inside the training period):
    each chunk differs so much from the rest that the JS limit lands above 1, the most a JS
    distance can reach. Such a feature could never drift; it is reported as not judged (a
    warning naming the fix), never as a quiet ``no_drift``; the stable feature beside it is
    judged as usual."""
    from mlops.monitoring.verdict import drift_headline, run_status
    rng = np.random.default_rng(3)
    n = 6000
    trend = rng.normal(0, 1, n) + np.arange(n) / 600          # +10 sd over the period
    ref = fit_reference(pl.DataFrame({"ts": [T0 + timedelta(minutes=i) for i in range(n)],
                                      "x": trend, "y": rng.normal(size=n)}),
                        numeric=["x", "y"], categorical=[], timestamp="ts")
    out = detect_drift(ref, pl.DataFrame({"x": rng.normal(20, 1, 1000), "y": rng.normal(size=1000)}))
    x, y = out["features"]["x"], out["features"]["y"]
    # independent check of the premise: the limit itself is past JS's maximum of 1
    assert x["test"] == "js" and x["limit"]["mean"] + x["limit"]["multiplier"] * x["limit"]["std"] > 1.0
    assert x["status"] == "reference_too_variable" and x["drift"] is False
    assert "previous: N" in x["note"] and "past the most js can reach" in x["note"]
    assert y["status"] in ("no_drift", "drift") and y["threshold"] < 1.0
    assert out["n_unjudgeable"] == 1 and out["n_drifted"] == int(y["drift"])
    assert "1 not judged (x" in drift_headline(out) and run_status(False, out) == "warn"
    # every feature unjudgeable: no dataset verdict, said as such
    only_x = fit_reference(pl.DataFrame({"ts": [T0 + timedelta(minutes=i) for i in range(n)], "x": trend}),
                           numeric=["x"], categorical=[], timestamp="ts")
    alone = detect_drift(only_x, pl.DataFrame({"x": rng.normal(20, 1, 1000)}))
    assert alone["dataset_status"] == "insufficient_data" and "could be decided" in alone["dataset_reason"]


def test_reference_rows_round_trip_and_old_references_fall_back_to_fixed(tmp_path):
    rng = np.random.default_rng(2)
    df = _frame(rng.normal(size=3000)).with_columns(c=pl.Series(rng.choice(["a", "b"], 3000)))
    ref = fit_reference(df.reverse(), numeric=["x"], categorical=["c"], timestamp="ts")
    assert np.array_equal(ref.rows.numeric["x"], df["x"].to_numpy())     # time order, not file order
    loaded = Reference.load(ref.save(tmp_path / "r.npz"))
    assert np.array_equal(loaded.rows.numeric["x"], ref.rows.numeric["x"])
    assert np.array_equal(loaded.rows.categorical["c"], ref.rows.categorical["c"])
    assert np.array_equal(loaded.rows.time, ref.rows.time)
    old = fit_reference(df, numeric=["x"], categorical=["c"], keep_rows=False)  # as before format 2
    out = detect_drift(old, df.head(500))
    assert out["calibration"]["method"] == "fixed" and "no rows in time order" in out["calibration"]["note"]
    assert "fixed threshold" in out["features"]["x"]["note"]
    json.dumps(out, allow_nan=False)


def test_thinned_reference_keeps_time_order():
    ref = fit_reference(_frame(np.arange(1000.0)), numeric=["x"], categorical=[], timestamp="ts", max_rows=100)
    assert ref.rows.step == 10 and ref.rows.numeric["x"].tolist() == list(np.arange(0.0, 1000.0, 10.0))


# --- the dataset verdict: any feature past a limit set for the family -----------------------

def test_family_level_gives_the_family_the_false_alarm_rate_of_one_k_sigma_test():
    """Independent truth: for F independent normal statistics, P(any past the family level)
    = 1 - Phi(k_F)**F must equal one k-sigma tail, Phi(-k)."""
    from mlops.monitoring.calibration import family_k
    for k, family in [(3.0, 1), (3.0, 2), (3.0, 12), (2.5, 40), (3.0, 500)]:
        kf = family_k(k, family)
        assert 1 - scipy.stats.norm.cdf(kf) ** family == pytest.approx(scipy.stats.norm.sf(k), rel=1e-9)
    assert family_k(3.0, 12) > family_k(3.0, 2) > 3.0


def _features_frame(rng, n, shifts=None, start=T0, columns=12):
    shifts = shifts or {}
    data = {f"f{i}": rng.normal(shifts.get(f"f{i}", 0.0), 1.0, n) for i in range(columns)}
    return pl.DataFrame({"ts": [start + timedelta(minutes=i) for i in range(n)], **data})


def test_a_shift_in_one_feature_of_twelve_is_data_drift_without_a_share_rule():
    """0.5 sd in 1 of 12 features: the default (any feature past its family-wise limit) calls
    it data drift and names only that feature; Evidently's share rule (0.5) does not."""
    rng = np.random.default_rng(4)
    cols = [f"f{i}" for i in range(12)]
    ref = fit_reference(_features_frame(rng, 40_000), numeric=cols, categorical=[], timestamp="ts")
    cur = _features_frame(rng, 2_000, {"f3": 0.5}).drop("ts")
    out = detect_drift(ref, cur)
    assert out["dataset_drift"] and [n for n, f in out["features"].items() if f["drift"]] == ["f3"]
    assert out["policy"]["family_size"] == 12 and "judged together" in out["features"]["f3"]["limit_text"]
    assert out["policy"]["drift_k"] == pytest.approx(3.6890, abs=1e-4)
    shared = detect_drift(ref, cur, DriftPolicy(drift_share=0.5))
    assert shared["features"]["f3"]["drift"] and not shared["dataset_drift"]
    assert "under the 50% share" in __import__("mlops.monitoring.verdict", fromlist=["x"]).drift_headline(shared)


def test_stable_windows_of_many_features_stay_quiet_with_family_limits():
    """20 windows drawn like the reference, 12 features, no effect-size floor (so only the
    calibration decides): the family-wise limits stay quiet, while the same features each at
    a looser 2-sigma limit of their own ("any of them") alarm often: the test can tell."""
    rng = np.random.default_rng(5)
    cols = [f"f{i}" for i in range(12)]
    ref = fit_reference(_features_frame(rng, 24_000), numeric=cols, categorical=[], timestamp="ts")
    family = DriftPolicy(effect_floors={"js": 0.0})
    loose = DriftPolicy(effect_floors={"js": 0.0}, std_multiplier=2.0)
    family_alarms = loose_alarms = 0
    for _ in range(20):
        cur = _features_frame(rng, 1_500).drop("ts")
        family_alarms += detect_drift(ref, cur, family)["dataset_drift"]
        per_feature = detect_drift(ref, cur, loose, family_size=1)
        loose_alarms += any(f["drift"] for f in per_feature["features"].values())
    assert family_alarms <= 1            # nominal: 0.13% of windows for normal statistics
    assert loose_alarms >= 5
