"""Minimum sample sizes with fixed thresholds (``method: fixed``): tiny windows are
insufficient_data, never drift (issue 14.1)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import scipy.stats

from mlops.errors import ConfigError
from mlops.monitoring.drift import detect_drift as _detect
from mlops.monitoring.policy import DEFAULT_MIN_ROWS
from mlops.monitoring.policy import DriftPolicy as _Policy
from mlops.monitoring.reference import fit_reference


def DriftPolicy(**kwargs):  # noqa: N802 - these tests pin the fixed-threshold method
    return _Policy(**{"method": "fixed", **kwargs})


def detect_drift(reference, current, policy=None, **kwargs):
    return _detect(reference, current, policy if policy is not None else DriftPolicy(), **kwargs)

NO_MINIMUMS = {"min_rows": {t: 0 for t in DEFAULT_MIN_ROWS}, "min_reference_rows": 0,
               "min_rows_dataset": 0}


def _reference(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    df = pl.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n),
                       "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]).tolist()})
    return df, fit_reference(df, numeric=["a", "b"], categorical=["c"])


def _current(n, seed=1, shift=0.0):
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"a": rng.normal(shift, size=n), "b": rng.exponential(size=n) + shift,
                         "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]).tolist()},
                        schema={"a": pl.Float64, "b": pl.Float64, "c": pl.String})


@pytest.mark.parametrize("rows", [0, 1, 10])
def test_tiny_windows_are_insufficient_never_drift(rows):
    _, ref = _reference()
    cur = _current(rows, shift=5.0)  # far away: without minimums every feature would drift
    out = detect_drift(ref, cur)
    assert out["dataset_status"] == "insufficient_data" and out["dataset_drift"] is False
    assert f"{rows} current row(s)" in out["dataset_reason"]
    assert out["n_drifted"] == 0 and out["n_insufficient"] == 3 and out["cur_rows"] == rows
    for f in out["features"].values():
        assert f["status"] == "insufficient_data" and f["drift"] is False
        assert f["note"]  # the report says why
    json.dumps(out, allow_nan=False)
    if rows:
        a = out["features"]["a"]
        assert a["test"] == "ks"  # the small side picks the p-value test
        assert "needs >= 50 (min_rows.ks)" in a["note"]
        # statistics are still computed (and still scipy's)
        ks = scipy.stats.ks_2samp(_reference()[0]["a"].to_numpy(), cur["a"].to_numpy())
        assert a["ks_stat"] == pytest.approx(ks.statistic)


def test_without_minimums_one_row_drifts_which_is_what_the_guard_prevents():
    _, ref = _reference()
    one = _current(1, seed=3)  # an ordinary row from the reference distribution
    loose = detect_drift(ref, one, DriftPolicy(**NO_MINIMUMS, numeric_test="wasserstein",
                                               categorical_test="js"))
    # a single row is >= 0.1 away in normed Wasserstein and JS from any distribution
    assert loose["dataset_drift"] is True and loose["n_drifted"] >= 2
    guarded = detect_drift(ref, one, DriftPolicy(numeric_test="wasserstein", categorical_test="js"))
    assert guarded["dataset_drift"] is False and guarded["n_drifted"] == 0
    assert guarded["features"]["a"]["note"].startswith("insufficient data: 1 valid current value(s); "
                                                       "wasserstein needs >= 500")


def test_ten_rows_decide_with_a_lowered_minimum_exactly_as_scipy():
    ref_df, ref = _reference()
    cur = _current(10, seed=5, shift=1.5)
    policy = DriftPolicy(min_rows={"ks": 5, "chi2": 5}, min_rows_dataset=10)
    out = detect_drift(ref, cur, policy)
    a = out["features"]["a"]
    ks = scipy.stats.ks_2samp(ref_df["a"].to_numpy(), cur["a"].to_numpy())
    assert a["test"] == "ks" and a["score"] == pytest.approx(ks.pvalue, rel=1e-8)
    assert a["drift"] is bool(ks.pvalue < 0.05) is True and a["status"] == ("drift" if a["drift"] else "no_drift")
    assert out["dataset_status"] in ("drift", "no_drift")


def test_default_test_follows_the_smaller_sample():
    _, ref = _reference(n=5000)
    assert detect_drift(ref, _current(600))["features"]["a"]["test"] == "ks"
    assert detect_drift(ref, _current(600))["features"]["c"]["test"] == "chi2"
    big = detect_drift(ref, _current(2000))
    assert big["features"]["a"]["test"] == "wasserstein" and big["features"]["c"]["test"] == "js"
    assert big["features"]["a"]["status"] == "no_drift"


def test_enough_features_but_too_few_rows_is_no_dataset_drift():
    _, ref = _reference()
    cur = _current(40, shift=5.0)
    out = detect_drift(ref, cur, DriftPolicy(min_rows={"ks": 10, "chi2": 10}))
    assert out["features"]["a"]["status"] == "drift"  # the feature is decided ...
    assert out["dataset_status"] == "insufficient_data"  # ... but 40 < min_rows_dataset (50)
    assert out["dataset_drift"] is False and "min_rows_dataset" in out["dataset_reason"]


def test_small_reference_is_insufficient():
    ref = fit_reference(pl.DataFrame({"a": np.arange(40.0)}), numeric=["a"], categorical=[])
    out = detect_drift(ref, pl.DataFrame({"a": np.arange(1000.0) + 500}))
    assert out["features"]["a"]["status"] == "insufficient_data"
    assert "min_reference_rows" in out["features"]["a"]["note"]


def test_constant_columns_equal_and_different():
    ref = fit_reference(pl.DataFrame({"k": [5.0] * 200, "c": ["a"] * 200}),
                        numeric=["k"], categorical=["c"])
    same = detect_drift(ref, pl.DataFrame({"k": [5.0] * 200, "c": ["a"] * 200}))
    k, c = same["features"]["k"], same["features"]["c"]
    assert (k["psi"], k["js"], k["ks_stat"], k["ks_pvalue"], k["wasserstein"]) == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert k["status"] == "no_drift" and c["status"] == "no_drift" and c["js"] == 0.0
    assert same["dataset_status"] == "no_drift"
    moved = detect_drift(ref, pl.DataFrame({"k": [6.0] * 200, "c": ["b"] * 200}))
    ks = scipy.stats.ks_2samp([5.0] * 200, [6.0] * 200)
    assert moved["features"]["k"]["ks_stat"] == 1.0
    assert moved["features"]["k"]["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-8)
    assert moved["features"]["k"]["status"] == "drift"
    assert moved["features"]["c"]["test"] == "js" and moved["features"]["c"]["status"] == "drift"
    assert moved["dataset_drift"] is True
    json.dumps(moved, allow_nan=False)


def test_min_rows_are_validated_naming_the_key():
    with pytest.raises(ConfigError, match="min_rows.kss"):
        DriftPolicy(min_rows={"kss": 10})
    with pytest.raises(ConfigError, match="min_rows.ks"):
        DriftPolicy(min_rows={"ks": -1})
    with pytest.raises(ConfigError, match="min_rows_dataset"):
        DriftPolicy(min_rows_dataset=1.5)
