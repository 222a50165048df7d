"""Drift statistics against independent truth: hand-worked numbers and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from mlops.monitoring import stats

# --- hand-worked examples ---------------------------------------------------------------

def test_psi_and_js_hand_worked_50_50_to_70_30():
    ref, cur = np.array([0.5, 0.5]), np.array([0.7, 0.3])
    # PSI = (0.7-0.5) ln(0.7/0.5) + (0.3-0.5) ln(0.3/0.5) = 0.2 ln 1.4 + 0.2 ln(5/3)
    expected_psi = 0.2 * math.log(1.4) + 0.2 * math.log(5 / 3)
    assert stats.psi(ref, cur) == pytest.approx(expected_psi, rel=1e-12)
    assert stats.psi(ref, cur) == pytest.approx(0.1694596, abs=1e-7)
    # JS: m = (0.6, 0.4); KL(p||m) and KL(q||m) in bits; distance = sqrt(mean of the two).
    kl_ref = 0.5 * math.log2(0.5 / 0.6) + 0.5 * math.log2(0.5 / 0.4)
    kl_cur = 0.7 * math.log2(0.7 / 0.6) + 0.3 * math.log2(0.3 / 0.4)
    expected_js = math.sqrt((kl_ref + kl_cur) / 2)
    assert stats.js_distance(ref, cur) == pytest.approx(expected_js, rel=1e-12)
    assert stats.js_distance(ref, cur) == pytest.approx(0.17408, abs=1e-5)  # sqrt((0.02945 + 0.03120) / 2)


def test_psi_floors_empty_bins_at_1e_4():
    # ref (0.5, 0.5, 0) vs cur (0.5, 0.4, 0.1): the empty ref bin counts as 1e-4.
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert stats.psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.4, 0.1])) == pytest.approx(expected)


def test_js_disjoint_is_one_and_identical_is_zero():
    assert stats.js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    assert stats.js_distance(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0


def test_bins_closed_on_the_left_and_outer_bins_open():
    edges = np.array([1.0, 2.0])
    values = np.array([-1e300, 0.999, 1.0, 1.5, 2.0, 1e300])
    assert stats.bin_counts(values, edges).tolist() == [2, 2, 2]
    assert stats.bin_counts(np.sort(values), edges, is_sorted=True).tolist() == [2, 2, 2]


def test_edges_are_numpy_quantiles_with_duplicates_dropped():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=1001)
    expected = np.quantile(ref, [k / 10 for k in range(1, 10)])
    np.testing.assert_array_equal(stats.numeric_edges(ref, 10), expected)
    # A column with 80% zeros: several quantiles coincide and appear once.
    skewed = np.r_[np.zeros(80), np.arange(1.0, 21.0)]
    edges = stats.numeric_edges(skewed, 10)
    assert edges.tolist() == sorted(set(np.quantile(skewed, np.arange(1, 10) / 10).tolist()))
    assert edges[0] == 0.0 and len(edges) < 9
    assert stats.numeric_edges(np.array([]), 10).size == 0


def test_chi2_hand_worked():
    # 50/50 reference, 70/30 current of 100: chi2 = (70-50)^2/50 + (30-50)^2/50 = 16, 1 dof.
    stat, p = stats.chi2_gof(np.array([500, 500]), np.array([70, 30]))
    assert stat == pytest.approx(16.0)
    assert p == pytest.approx(scipy.stats.chi2.sf(16.0, 1))


def test_chi2_undefined_cases_are_none():
    assert stats.chi2_gof(np.array([10]), np.array([5])) == (None, None)
    assert stats.chi2_gof(np.array([10, 5]), np.array([0, 0])) == (None, None)


# --- against scipy on random data -------------------------------------------------------

def _samples(rng, n1, n2, ties):
    if ties:
        return rng.integers(0, 6, n1).astype(float), rng.integers(0, 7, n2).astype(float)
    return rng.normal(size=n1), rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), size=n2)


@pytest.mark.parametrize("seed", range(6))
def test_ks_matches_scipy_small_samples_exact_regime(seed):
    rng = np.random.default_rng(seed)
    for trial in range(25):
        n1, n2 = int(rng.integers(1, 400)), int(rng.integers(1, 400))
        a, b = _samples(rng, n1, n2, ties=trial % 2 == 0)
        expected = scipy.stats.ks_2samp(a, b)
        stat, p = stats.ks_from_sorted(np.sort(a), b)
        assert stat == expected.statistic
        if expected.pvalue > 1e-10:
            assert p == pytest.approx(expected.pvalue, rel=1e-10)
        else:
            assert p < 1e-9


@pytest.mark.parametrize(("n1", "n2", "shift"), [(12_000, 15_000, 0.0), (12_000, 15_000, 0.03),
                                                 (20_000, 11_000, 0.05), (30_000, 30_000, 0.2),
                                                 (9_000, 9_999, 0.02), (5_000, 5_000, 0.06)])
def test_ks_matches_scipy_large_samples(n1, n2, shift):
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.normal(shift, size=n2)
    expected = scipy.stats.ks_2samp(a, b)
    stat, p = stats.ks_from_sorted(np.sort(a), b)
    assert stat == pytest.approx(expected.statistic, rel=1e-13)
    if expected.pvalue > 1e-10:
        assert p == pytest.approx(expected.pvalue, rel=1e-8)
    else:
        assert p < 1e-9


@pytest.mark.parametrize("n", [141, 5_000, 20_001, 60_000])
@pytest.mark.parametrize("n_d2", [0.5, 2.2, 3.0, 6.0, 11.0, 13.0, 40.0, 369.0, 400.0])
def test_kstwo_sf_matches_scipy_including_its_slow_smirnov_branch(n, n_d2):
    d = math.sqrt(n_d2 / n)
    expected = scipy.stats.kstwo.sf(d, n)
    got = stats.kstwo_sf(d, n)
    if expected > 1e-10:
        assert got == pytest.approx(expected, rel=1e-8)
    else:
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-300)


def test_ks_pvalue_uses_true_reference_size():
    stat_small, p_small = stats.ks_pvalue(0.05, 1_000, 1_000)
    stat_big, p_big = stats.ks_pvalue(0.05, 100_000, 1_000)
    assert p_big < p_small  # a larger reference is more certain


@pytest.mark.parametrize("seed", range(5))
def test_wasserstein_matches_scipy(seed):
    rng = np.random.default_rng(100 + seed)
    for trial in range(20):
        n1, n2 = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
        a, b = _samples(rng, n1, n2, ties=trial % 3 == 0)
        std = float(np.std(a))
        expected = scipy.stats.wasserstein_distance(a, b) / max(std, 1e-3)
        got = stats.wasserstein_from_sorted(np.sort(a), b, std)
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_ks_and_wasserstein_together_equal_the_separate_functions():
    rng = np.random.default_rng(7)
    a, b = np.sort(rng.exponential(size=5000)), np.sort(rng.exponential(1.1, size=4000))
    stat, p, w = stats.ks_and_wasserstein(a, b, float(np.std(a)))
    assert (stat, p) == stats.ks_from_sorted(a, b, cur_is_sorted=True)
    assert w == stats.wasserstein_from_sorted(a, b, float(np.std(a)), cur_is_sorted=True)


def test_wasserstein_std_floor_for_constant_reference():
    got = stats.wasserstein_from_sorted(np.zeros(10), np.full(5, 0.01), ref_std=0.0)
    assert got == pytest.approx(0.01 / 1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_js_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    for k in (2, 3, 11, 40):
        p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
        p[rng.integers(0, k)] = 0.0  # an empty bin: no floor, scipy handles 0 log 0
        p /= p.sum()
        assert stats.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_chi2_matches_scipy_chisquare(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    ref = rng.integers(1, 500, k)
    cur = rng.integers(0, 300, k)
    expected_counts = ref / ref.sum() * cur.sum()
    expected = scipy.stats.chisquare(cur, expected_counts)
    stat, p = stats.chi2_gof(ref, cur)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-10)


def test_psi_against_brute_force_histogram():
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=5000), rng.normal(0.3, 1.2, size=4000)
    edges = stats.numeric_edges(ref, 10)
    full = np.r_[-np.inf, edges, np.inf]
    # np.histogram's last bin is closed on the right; inf values never occur, so equal.
    r = np.histogram(ref, full)[0] / ref.size
    c = np.histogram(cur, full)[0] / cur.size
    brute = sum((max(ci, 1e-4) - max(ri, 1e-4)) * math.log(max(ci, 1e-4) / max(ri, 1e-4))
                for ri, ci in zip(r, c))
    r2 = stats.shares(stats.bin_counts(ref, edges))
    c2 = stats.shares(stats.bin_counts(cur, edges))
    assert stats.psi(r2, c2) == pytest.approx(brute, rel=1e-12)


# --- properties -------------------------------------------------------------------------

_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@pytest.mark.filterwarnings("ignore:ks_2samp.*Exact calculation unsuccessful")
@settings(max_examples=60, deadline=None)
@given(st.lists(_finite, min_size=1, max_size=60), st.lists(_finite, min_size=1, max_size=60))
def test_property_ks_and_wasserstein_equal_scipy(a, b):
    a, b = np.array(a), np.array(b)
    expected = scipy.stats.ks_2samp(a, b)
    stat, p = stats.ks_from_sorted(np.sort(a), b)
    assert stat == expected.statistic
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    w = stats.wasserstein_from_sorted(np.sort(a), b, 1.0)
    assert w == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=12).filter(lambda c: sum(c) > 0),
       st.data())
def test_property_psi_js_ranges_and_symmetry(ref_counts, data):
    cur_counts = data.draw(st.lists(st.integers(0, 50), min_size=len(ref_counts),
                                    max_size=len(ref_counts)).filter(lambda c: sum(c) > 0))
    r = stats.shares(np.array(ref_counts))
    c = stats.shares(np.array(cur_counts))
    assert stats.psi(r, c) >= -1e-12
    assert stats.psi(r, c) == pytest.approx(stats.psi(c, r), abs=1e-12)  # PSI is symmetric
    js = stats.js_distance(r, c)
    assert 0.0 <= js <= 1.0
    assert js == pytest.approx(stats.js_distance(c, r), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(_finite, min_size=1, max_size=80), st.lists(_finite, min_size=0, max_size=80),
       st.integers(2, 12))
def test_property_bin_counts_sorted_and_unsorted_agree(ref, cur, n_bins):
    edges = stats.numeric_edges(np.array(ref), n_bins)
    cur = np.array(cur)
    counts = stats.bin_counts(cur, edges)
    assert counts.sum() == cur.size
    assert counts.tolist() == stats.bin_counts(np.sort(cur), edges, is_sorted=True).tolist()
    assert len(counts) == len(edges) + 1
    assert np.all(np.diff(edges) > 0)


def test_shares_of_nothing_is_none():
    assert stats.shares(np.array([0, 0])) is None
    np.testing.assert_allclose(stats.shares(np.array([1, 3])), [0.25, 0.75])


def test_smirnov_sum_agrees_with_scipy_special():
    from mlops.monitoring import kolmogorov
    for n, e in [(5_000, 0.03), (60_000, 0.008)]:
        assert kolmogorov._smirnov_sum(n, e) == pytest.approx(scipy.special.smirnov(n, e), rel=1e-8)
