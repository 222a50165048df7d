"""detect_drift with fixed thresholds (``method: fixed``): the monitor.json contract, decisions,
edge cases and policy validation. Calibrated limits: test_monitoring_calibration.py."""
from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import scipy.stats
from scipy.spatial.distance import jensenshannon

from mlops.errors import ConfigError, DataError
from mlops.monitoring.drift import HIST_MAX_CATEGORIES
from mlops.monitoring.drift import detect_drift as _detect
from mlops.monitoring.policy import DriftPolicy as _Policy
from mlops.monitoring.reference import fit_reference


def DriftPolicy(**kwargs):  # noqa: N802 - these tests pin the fixed-threshold method
    return _Policy(**{"method": "fixed", **kwargs})


def detect_drift(reference, current, policy=None, **kwargs):
    return _detect(reference, current, policy if policy is not None else DriftPolicy(), **kwargs)

NUMERIC_FIELDS = {"type", "test", "threshold", "status", "drift", "score", "limit", "limit_text", "quality",
                  "psi", "js",
                  "ks_stat",
                  "ks_pvalue", "wasserstein", "exact", "ref_rows", "cur_rows", "ref_null_share",
                  "cur_null_share", "cur_nonfinite", "hist", "note"}
CATEGORICAL_FIELDS = (NUMERIC_FIELDS - {"ks_stat", "ks_pvalue", "wasserstein", "exact"}) | {
    "chi2_stat", "chi2_pvalue", "unseen_share"}


def _frames(n_ref=3000, n_cur=2000, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    ref = pl.DataFrame({"a": rng.normal(size=n_ref), "b": rng.exponential(size=n_ref),
                        "c": rng.choice(["x", "y", "z"], n_ref, p=[0.5, 0.3, 0.2]).tolist()})
    cur = pl.DataFrame({"a": rng.normal(shift, size=n_cur), "b": rng.exponential(size=n_cur),
                        "c": rng.choice(["x", "y", "z"], n_cur, p=[0.5, 0.3, 0.2]).tolist()})
    return ref, cur


def _dumps(result):
    return json.dumps(result, allow_nan=False)  # raises on NaN/inf


def test_contract_fields_and_json_safety():
    ref_df, cur_df = _frames()
    out = detect_drift(fit_reference(ref_df, numeric=["a", "b"], categorical=["c"]), cur_df)
    assert set(out) == {"features", "drift_share", "dataset_drift", "dataset_status", "dataset_reason", "calibration",
                        "quality",
                        "n_features", "n_drifted", "n_insufficient", "n_unjudgeable", "cur_rows", "policy",
                            "reference_values"}
    assert set(out["features"]["a"]) == NUMERIC_FIELDS
    assert set(out["features"]["c"]) == CATEGORICAL_FIELDS
    assert out["n_features"] == 3
    assert json.loads(_dumps(out)) == out


def test_statistics_equal_scipy_end_to_end():
    ref_df, cur_df = _frames(n_ref=4000, n_cur=3000, shift=0.1, seed=4)
    ref = fit_reference(ref_df, numeric=["a"], categorical=["c"], n_bins=10)
    a = detect_drift(ref, cur_df)["features"]["a"]
    r, c = ref_df["a"].to_numpy(), cur_df["a"].to_numpy()
    ks = scipy.stats.ks_2samp(r, c)
    assert a["ks_stat"] == pytest.approx(ks.statistic, rel=1e-13)
    assert a["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-8)
    assert a["wasserstein"] == pytest.approx(scipy.stats.wasserstein_distance(r, c) / np.std(r))
    edges = np.quantile(r, np.arange(1, 10) / 10)
    full = np.r_[-np.inf, edges, np.inf]
    rs, cs = np.histogram(r, full)[0] / r.size, np.histogram(c, full)[0] / c.size
    assert a["js"] == pytest.approx(jensenshannon(rs, cs, base=2))
    fr, fc = np.maximum(rs, 1e-4), np.maximum(cs, 1e-4)
    assert a["psi"] == pytest.approx(np.sum((fc - fr) * np.log(fc / fr)))
    assert a["hist"]["edges"] == pytest.approx(edges.tolist())
    assert a["hist"]["cur"] == pytest.approx(cs.tolist())


def test_categorical_chi2_and_unseen_share():
    ref_df = pl.DataFrame({"c": ["a"] * 50 + ["b"] * 50})
    cur_df = pl.DataFrame({"c": ["a"] * 70 + ["b"] * 30 + ["new"] * 25})
    f = detect_drift(fit_reference(ref_df, numeric=[], categorical=["c"]), cur_df)["features"]["c"]
    expected = scipy.stats.chisquare([70, 30], [50, 50])  # unseen rows excluded from chi2
    assert f["test"] == "chi2"
    assert f["chi2_stat"] == pytest.approx(expected.statistic)
    assert f["score"] == f["chi2_pvalue"] == pytest.approx(expected.pvalue)
    assert f["unseen_share"] == pytest.approx(25 / 125)
    assert f["hist"]["categories"] == ["a", "b", "<unseen>"]
    assert f["hist"]["cur"] == pytest.approx([70 / 125, 30 / 125, 25 / 125])
    assert f["js"] == pytest.approx(jensenshannon([0.5, 0.5, 0], [70, 30, 25], base=2))
    assert f["drift"] is True


def test_default_tests_by_type_and_size():
    small_ref, cur = _frames(n_ref=1000)
    big_ref, _ = _frames(n_ref=1001)
    small = detect_drift(fit_reference(small_ref, numeric=["a"], categorical=["c"]), cur)
    big = detect_drift(fit_reference(big_ref, numeric=["a"], categorical=["c"]), cur)
    assert (small["features"]["a"]["test"], small["features"]["c"]["test"]) == ("ks", "chi2")
    assert (big["features"]["a"]["test"], big["features"]["c"]["test"]) == ("wasserstein", "js")
    assert big["features"]["a"]["score"] == big["features"]["a"]["wasserstein"]
    assert big["features"]["a"]["threshold"] == 0.1


def test_shift_is_detected_and_no_shift_is_not():
    ref_df, same = _frames(seed=1)
    _, shifted = _frames(shift=0.5, seed=2)
    ref = fit_reference(ref_df, numeric=["a", "b"], categorical=["c"])
    quiet = detect_drift(ref, same)
    assert not quiet["features"]["a"]["drift"] and quiet["n_drifted"] == 0
    loud = detect_drift(ref, shifted)
    assert loud["features"]["a"]["drift"] and loud["n_drifted"] == 1
    assert loud["drift_share"] == pytest.approx(1 / 3) and loud["dataset_drift"] is False


def test_dataset_rule_and_overrides():
    ref_df, _ = _frames(seed=1)
    _, shifted = _frames(shift=0.5, seed=2)
    ref = fit_reference(ref_df, numeric=["a", "b"], categorical=["c"])
    policy = DriftPolicy(drift_share=0.3, overrides={"a": {"test": "psi", "threshold": 0.05},
                                                    "b": {"threshold": 1e-9}})
    out = detect_drift(ref, shifted, policy)
    a, b = out["features"]["a"], out["features"]["b"]
    assert (a["test"], a["threshold"], a["score"]) == ("psi", 0.05, a["psi"])
    assert (b["test"], b["threshold"]) == ("wasserstein", 1e-9) and b["drift"]
    assert out["n_drifted"] == 2 and out["dataset_drift"] is True
    assert out["policy"]["overrides"]["a"] == {"test": "psi", "threshold": 0.05}


def test_constant_columns():
    ref_df = pl.DataFrame({"k": [3.0] * 500, "c": ["only"] * 500})
    same = detect_drift(fit_reference(ref_df, numeric=["k"], categorical=["c"]),
                        pl.DataFrame({"k": [3.0] * 200, "c": ["only"] * 200}))
    k = same["features"]["k"]
    assert (k["ks_stat"], k["ks_pvalue"], k["wasserstein"], k["psi"]) == (0.0, 1.0, 0.0, 0.0)
    assert not k["drift"] and "constant" in k["note"]
    c = same["features"]["c"]
    assert c["chi2_stat"] is None and "chi-square is undefined" in c["note"] and not c["drift"]
    moved = detect_drift(fit_reference(ref_df, numeric=["k"], categorical=["c"]),
                         pl.DataFrame({"k": [3.5] * 200, "c": ["only"] * 200}))
    assert moved["features"]["k"]["wasserstein"] == pytest.approx(0.5 / 1e-3)
    assert moved["features"]["k"]["drift"]


def test_empty_current_window():
    ref_df, cur_df = _frames()
    out = detect_drift(fit_reference(ref_df, numeric=["a"], categorical=["c"]), cur_df.head(0))
    for f in out["features"].values():
        assert f["drift"] is False and f["score"] is None and f["psi"] is None
        assert f["cur_rows"] == 0 and f["cur_null_share"] is None
        assert "empty" in f["note"]
    assert out["drift_share"] == 0.0 and out["dataset_drift"] is False
    _dumps(out)


def test_all_nan_and_null_current_column():
    ref_df, _ = _frames()
    cur = pl.DataFrame({"a": [float("nan")] * 5 + [None] * 5, "c": [None] * 10},
                       schema={"a": pl.Float64, "c": pl.String})
    out = detect_drift(fit_reference(ref_df, numeric=["a"], categorical=["c"]), cur)
    a, c = out["features"]["a"], out["features"]["c"]
    assert (a["cur_rows"], a["cur_nonfinite"], a["cur_null_share"]) == (10, 5, 0.5)
    assert a["ks_stat"] is None and not a["drift"] and "no valid value" in a["note"]
    assert c["cur_null_share"] == 1.0 and c["psi"] is None and not c["drift"]
    _dumps(out)


def test_nan_and_inf_are_dropped_counted_and_never_crash():
    rng = np.random.default_rng(5)
    ref_df = pl.DataFrame({"a": rng.normal(size=500)})
    clean = rng.normal(size=300)
    dirty = np.r_[clean, [np.nan, np.inf, -np.inf]]
    ref = fit_reference(ref_df, numeric=["a"], categorical=[])
    got = detect_drift(ref, pl.DataFrame({"a": dirty}))["features"]["a"]
    want = detect_drift(ref, pl.DataFrame({"a": clean}))["features"]["a"]
    assert got["cur_nonfinite"] == 3 and "3 NaN/inf" in got["note"]
    for key in ("ks_stat", "ks_pvalue", "wasserstein", "psi", "js"):
        assert got[key] == want[key]


def test_all_nan_reference_column():
    ref_df = pl.DataFrame({"a": [float("nan")] * 20})
    out = detect_drift(fit_reference(ref_df, numeric=["a"], categorical=[]),
                       pl.DataFrame({"a": [1.0, 2.0]}))
    assert out["features"]["a"]["score"] is None and "reference has no valid" in out["features"]["a"]["note"]
    _dumps(out)


def test_many_categories_hist_is_capped_but_statistics_use_all():
    cats = [f"c{i:03d}" for i in range(100)]
    ref_df = pl.DataFrame({"c": cats * 20})
    cur_df = pl.DataFrame({"c": cats[:50] * 40})
    f = detect_drift(fit_reference(ref_df, numeric=[], categorical=["c"]), cur_df)["features"]["c"]
    assert len(f["hist"]["categories"]) == HIST_MAX_CATEGORIES
    assert f["hist"]["categories"][-2:] == ["<other>", "<unseen>"]
    assert sum(f["hist"]["ref"]) == pytest.approx(1.0) and sum(f["hist"]["cur"]) == pytest.approx(1.0)
    assert f["js"] == pytest.approx(jensenshannon([1] * 100 + [0], [1] * 50 + [0] * 51, base=2))


def test_progress_callback_reports_each_feature():
    ref_df, cur_df = _frames()
    calls = []
    detect_drift(fit_reference(ref_df, numeric=["a", "b"], categorical=["c"]), cur_df,
                 progress=lambda done, total, name: calls.append((done, total, name)))
    assert calls == [(1, 3, "a"), (2, 3, "b"), (3, 3, "c")]


def test_detect_errors():
    ref_df, cur_df = _frames()
    ref = fit_reference(ref_df, numeric=["a"], categorical=["c"])
    with pytest.raises(DataError, match="lacks column"):
        detect_drift(ref, cur_df.drop("a"))
    with pytest.raises(DataError, match="numeric dtype"):
        detect_drift(ref, cur_df.with_columns(pl.col("a").cast(pl.String)))
    with pytest.raises(ConfigError, match="did you mean 'a'"):
        detect_drift(ref, cur_df, DriftPolicy(overrides={"aa": {"threshold": 0.2}}))
    with pytest.raises(ConfigError, match="cannot decide the categorical feature"):
        detect_drift(ref, cur_df, DriftPolicy(overrides={"c": {"test": "ks"}}))
    with pytest.raises(ConfigError, match="refit the reference"):
        detect_drift(ref, cur_df, DriftPolicy(n_bins=20))
    # 'c' has 3000 reference rows, so JS decides it and a threshold of 2 is out of range.
    with pytest.raises(ConfigError, match=r"overrides.c.threshold: must be a float in \(0, 1\]"):
        detect_drift(ref, cur_df, DriftPolicy(overrides={"c": {"threshold": 2.0}}))
    small = fit_reference(ref_df.head(500), numeric=["a"], categorical=["c"])
    with pytest.raises(ConfigError, match=r"overrides.c.threshold: must be a p-value: a float in \(0, 1\)"):
        detect_drift(small, cur_df, DriftPolicy(overrides={"c": {"threshold": 2.0}}))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"thresholds": {"kss": 0.05}}, "must be a test among"),
    ({"thresholds": {"ks": 1.5}}, r"thresholds.ks: must be a p-value: a float in \(0, 1\)"),
    ({"thresholds": {"js": 1.5}}, r"\(0, 1\]"),
    ({"thresholds": {"psi": -0.1}}, "a float > 0"),
    ({"thresholds": {"wasserstein": float("nan")}}, "a float > 0"),
    ({"thresholds": ["ks"]}, "mapping"),
    ({"overrides": {"a": {"test": "t-test"}}}, "must be a test among"),
    ({"overrides": {"a": {"tets": "ks"}}}, "unknown key"),
    ({"overrides": {"a": "ks"}}, "must be a mapping"),
    ({"overrides": {"a": {"test": "ks", "threshold": 0.0}}}, r"a p-value: a float in \(0, 1\)"),
    ({"drift_share": 0.0}, "drift_share"),
    ({"drift_share": 1.5}, "drift_share"),
    ({"n_bins": 1}, "n_bins"),
    ({"small_sample_rows": -1}, "small_sample_rows"),
    ({"numeric_test": "chi2"}, "must be a test among"),
    ({"categorical_test": "wasserstein"}, "must be a test among"),
])
def test_policy_validation_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DriftPolicy(**kwargs)


def test_policy_merges_partial_thresholds_with_defaults():
    policy = DriftPolicy(thresholds={"psi": 0.25})
    assert policy.thresholds == {"ks": 0.05, "wasserstein": 0.1, "psi": 0.25, "js": 0.1, "chi2": 0.05}
    assert policy.decide("x", "numeric", ref_valid=10) == ("ks", 0.05)
    assert DriftPolicy(numeric_test="psi").decide("x", "numeric", ref_valid=10) == ("psi", 0.2)
    json.dumps(policy.to_dict(), allow_nan=False)


def test_pvalue_tests_drift_below_and_distances_at_or_above_threshold():
    from mlops.monitoring.policy import is_drift
    assert is_drift("ks", 0.049, 0.05) and not is_drift("ks", 0.05, 0.05)
    assert is_drift("psi", 0.2, 0.2) and not is_drift("psi", 0.199, 0.2)
    assert not is_drift("js", None, 0.1) and not is_drift("js", math.nan, 0.1)


def test_threads_do_not_change_results():
    ref_df, cur_df = _frames(shift=0.2)
    ref = fit_reference(ref_df, numeric=["a", "b"], categorical=["c"])
    assert detect_drift(ref, cur_df, n_jobs=1) == detect_drift(ref, cur_df, n_jobs=3)
    with pytest.raises(ConfigError, match="n_jobs"):
        detect_drift(ref, cur_df, n_jobs=0)


def test_all_unseen_categories_drift_even_when_chi2_is_undefined():
    """Small reference -> chi-square decides; 100% unseen values -> chi2 undefined -> JS decides."""
    ref = fit_reference(pl.DataFrame({"c": ["a", "b"] * 50}), numeric=[], categorical=["c"])
    out = detect_drift(ref, pl.DataFrame({"c": ["z"] * 100}))["features"]["c"]
    assert out["chi2_stat"] is None and out["unseen_share"] == 1.0
    assert out["test"] == "js" and out["js"] == 1.0 and out["drift"] is True
