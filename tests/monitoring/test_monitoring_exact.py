"""Exact drift at any size (issue 24.3): every reference value by default, a sample only when
declared; chunk statistics in O(n log N) equal to scipy; sorted values stored once."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.stats
from scipy.spatial.distance import jensenshannon

from mlops.monitoring import stats
from mlops.monitoring.calibration import chunk_layout
from mlops.monitoring.chunk_stats import SortedWhole, ks_to_whole, wasserstein_to_whole
from mlops.monitoring.compare import compare_datasets
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.feature_limits import numeric_limit
from mlops.monitoring.multivariate import MultivariateSettings
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.reference import Reference, fit_reference


def _scipy_ks_raw(whole, chunk):
    """ks_2samp's statistic before its exact-mode rounding: the same formula, by hand."""
    pooled = np.concatenate([whole, chunk])
    d = (np.searchsorted(np.sort(whole), pooled, "right") / whole.size
         - np.searchsorted(np.sort(chunk), pooled, "right") / chunk.size)
    return max(d.max(), np.clip(-d.min(), 0, 1))


def _values(kind, n, rng):
    return {"normal": lambda: rng.normal(size=n),
            "ties": lambda: rng.integers(0, 5, n).astype(float),
            "offset": lambda: 1e6 + rng.normal(size=n),         # a large mean, a small spread
            "heavy": lambda: rng.lognormal(0, 2, n),
            "tiny": lambda: np.round(rng.normal(size=n), 1) * 1e-8}[kind]()


@pytest.mark.parametrize("kind", ["normal", "ties", "offset", "heavy", "tiny"])
def test_chunk_against_the_whole_equals_scipy(kind):
    rng = np.random.default_rng(7)
    for _ in range(40):
        size = int(rng.integers(2, 2000))
        values = _values(kind, size, rng)
        chunk = np.sort(values[rng.choice(size, int(rng.integers(1, size + 1)), replace=False)])
        whole = SortedWhole(np.sort(values))
        assert ks_to_whole(whole, chunk) == _scipy_ks_raw(values, chunk)  # bit for bit
        want = scipy.stats.wasserstein_distance(values, chunk)
        got = wasserstein_to_whole(whole, chunk)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12 * (np.abs(values).max() + 1))


def test_chunk_statistics_at_a_million_values_equal_scipy():
    rng = np.random.default_rng(1)
    values = rng.lognormal(3, 1, 1_000_000)
    whole = SortedWhole(np.sort(values))
    for chunk in (values[:150_000], values[500_000:510_000]):
        chunk = np.sort(chunk)
        assert ks_to_whole(whole, chunk) == _scipy_ks_raw(values, chunk)
        assert wasserstein_to_whole(whole, chunk) == pytest.approx(
            scipy.stats.wasserstein_distance(values, chunk), rel=1e-9)


@pytest.mark.parametrize("test", ["ks", "wasserstein", "psi", "js"])
def test_numeric_limit_is_the_same_with_the_reference_sorted_values(test):
    rng = np.random.default_rng(3)
    values = rng.normal(size=20_000)
    values[rng.choice(values.size, 300, replace=False)] = np.nan
    finite = np.sort(values[np.isfinite(values)])
    kw = dict(test=test, ref_std=float(finite.std()), edges=stats.numeric_edges(finite, 10),
              layout=chunk_layout(values.size, 1000), k=3.0, floor=0.0)
    a, b = numeric_limit(values, **kw), numeric_limit(values, **kw, all_sorted=finite)
    assert a.to_dict() == b.to_dict() and a.chunks == 20


def _timed(values, *, null_ts=0):
    ts = [datetime(2025, 1, 1) + timedelta(minutes=i) for i in range(len(values))]
    for i in range(null_ts):
        ts[i] = None
    return pl.DataFrame({"ts": ts, "x": values})


def test_every_value_is_kept_by_default_and_a_sample_only_when_declared():
    rng = np.random.default_rng(0)
    ref_df = pl.DataFrame({"x": rng.normal(size=250_000)})   # above the old 200k cap
    cur = rng.normal(0.01, size=50_000)
    ref = fit_reference(ref_df, numeric=["x"], categorical=[])
    assert ref.max_rows is None and ref.numeric["x"].sorted_values.size == 250_000
    out = detect_drift(ref, pl.DataFrame({"x": cur}), DriftPolicy())
    want = scipy.stats.ks_2samp(ref_df["x"].to_numpy(), cur)
    x = out["features"]["x"]
    assert x["ks_stat"] == want.statistic and x["ks_pvalue"] == pytest.approx(want.pvalue, rel=1e-9)
    assert x["exact"] is True and out["reference_values"]["exact"] is True
    sampled = fit_reference(ref_df, numeric=["x"], categorical=[], max_rows=10_000)
    out = detect_drift(sampled, pl.DataFrame({"x": cur}), DriftPolicy())
    assert out["features"]["x"]["exact"] is False
    assert out["reference_values"]["sampled"] == {"x": {"kept": 10_000, "valid": 250_000}}
    assert "10,000 of 250,000" in out["reference_values"]["note"]


def test_compare_datasets_is_exact_unless_declared():
    rng = np.random.default_rng(2)
    ref, cur = pl.DataFrame({"x": rng.normal(size=3000)}), pl.DataFrame({"x": rng.normal(0.2, size=3000)})
    off = MultivariateSettings(enabled=False)
    exact, _ = compare_datasets(ref, cur, DriftPolicy(), multivariate=off)
    sampled, _ = compare_datasets(ref, cur, DriftPolicy(), multivariate=off, reference_max_rows=100)
    assert exact["reference_values"]["exact"] and not sampled["reference_values"]["exact"]
    assert exact["features"]["x"]["wasserstein"] == pytest.approx(
        scipy.stats.wasserstein_distance(ref["x"].to_numpy(), cur["x"].to_numpy()) / ref["x"].to_numpy().std(),
        rel=1e-12)
    with pytest.raises(Exception, match="reference_max_rows"):
        compare_datasets(ref, cur, DriftPolicy(), multivariate=off, reference_max_rows=1)


def test_sorted_values_are_stored_once_when_the_rows_hold_them(tmp_path):
    rng = np.random.default_rng(4)
    values = rng.normal(size=50_000)
    values[::97] = np.nan
    values[5] = np.inf
    complete = fit_reference(_timed(values), numeric=["x"], categorical=[], timestamp="ts")
    assert complete.rows_hold_sorted("x")
    thinned = fit_reference(_timed(values), numeric=["x"], categorical=[], timestamp="ts", max_rows=20_000)
    dropped = fit_reference(_timed(values, null_ts=3), numeric=["x"], categorical=[], timestamp="ts")
    assert not thinned.rows_hold_sorted("x") and not dropped.rows_hold_sorted("x")
    sizes = {}
    for name, ref in (("complete", complete), ("dropped", dropped)):
        back = Reference.load(ref.save(tmp_path / f"{name}.npz"))
        np.testing.assert_array_equal(back.numeric["x"].sorted_values, ref.numeric["x"].sorted_values)
        np.testing.assert_array_equal(back.rows.numeric["x"], ref.rows.numeric["x"])
        sizes[name] = (tmp_path / f"{name}.npz").stat().st_size
    # the sorted array (8 bytes per valid value) is what the complete reference leaves out
    assert sizes["dropped"] - sizes["complete"] > 0.95 * 8 * complete.numeric["x"].valid


@pytest.mark.slow
def test_ten_million_reference_rows_equal_scipy():
    """The issue's size: KS, PSI, JS and Wasserstein on a 10M-row reference, no sampling."""
    rng = np.random.default_rng(9)
    ref = rng.lognormal(3, 1, 10_000_000)
    cur = rng.lognormal(3.01, 1, 1_000_000)
    reference = fit_reference(pl.DataFrame({"x": ref}), numeric=["x"], categorical=[])
    x = detect_drift(reference, pl.DataFrame({"x": cur}), DriftPolicy())["features"]["x"]
    ks = scipy.stats.ks_2samp(ref, cur)
    assert x["ks_stat"] == ks.statistic and x["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-9)
    assert x["wasserstein"] == pytest.approx(scipy.stats.wasserstein_distance(ref, cur) / ref.std(), rel=1e-9)
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10) / ref.size
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10) / cur.size
    assert x["js"] == pytest.approx(jensenshannon(r, c, base=2), rel=1e-9)
    rs, cs = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    assert x["psi"] == pytest.approx(float(np.sum((cs - rs) * np.log(cs / rs))), rel=1e-9)
