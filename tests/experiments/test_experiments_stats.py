"""Sufficient statistics, Welch, relative lift, chance to beat control, non-inferiority,
SRM, Holm/BH and the novelty check, each against scipy or a brute-force re-computation."""
from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as st

from mlops.errors import DataError, ExperimentError
from mlops.experiments import SufficientStats, adjust_pvalues, aggregate_units, non_inferiority, novelty, srm, welch

S = SufficientStats.from_values


# -- sufficient statistics -------------------------------------------------------------------
def test_sufficient_stats_moments_match_numpy():
    rng = np.random.default_rng(1)
    y, x = rng.normal(3, 2, 500), rng.normal(1, 1, 500)
    s = S(y, x)
    assert s.n == 500
    assert s.mean == pytest.approx(y.mean())
    assert s.variance == pytest.approx(y.var(ddof=1))
    assert s.mean_pre == pytest.approx(x.mean())
    assert s.variance_pre == pytest.approx(x.var(ddof=1))
    assert s.covariance == pytest.approx(np.cov(y, x)[0, 1])
    both = S(y[:200], x[:200]) + S(y[200:], x[200:])
    assert both.n == 500 and both.variance == pytest.approx(y.var(ddof=1))
    assert (S(y) + s).has_covariate is False
    assert SufficientStats.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("kw", [{"n": -1, "sum": 0, "sum_sq": 0}, {"n": 2, "sum": math.nan, "sum_sq": 0},
                                {"n": 2, "sum": 1, "sum_sq": 1, "sum_pre": 1.0},
                                {"n": 2.5, "sum": 1, "sum_sq": 1}])
def test_sufficient_stats_validation(kw):
    with pytest.raises(ExperimentError):
        SufficientStats(**kw)


def test_aggregate_units_matches_per_group_numpy():
    rng = np.random.default_rng(2)
    n = 3000
    df = pl.DataFrame({"variant": rng.choice(["control", "t1", "t2"], n),
                       "rev": rng.exponential(5, n), "conv": rng.random(n) < 0.2,
                       "pre": rng.normal(0, 1, n), "clicks": rng.integers(0, 10, n)})
    out = aggregate_units(df.lazy(), variant_col="variant", metric_cols=["rev", "conv", "clicks"],
                          covariate_col={"rev": "pre"})
    assert set(out) == {"control", "t1", "t2"}
    for v, g in df.group_by("variant"):
        name = v[0]
        rev, pre = g["rev"].to_numpy(), g["pre"].to_numpy()
        got = out[name]["rev"]
        assert got.n == len(g)
        assert got.sum == pytest.approx(rev.sum()) and got.sum_sq == pytest.approx((rev ** 2).sum())
        assert got.sum_cross == pytest.approx((rev * pre).sum())
        assert got.sum_pre == pytest.approx(pre.sum()) and got.sum_sq_pre == pytest.approx((pre ** 2).sum())
        assert out[name]["conv"].mean == pytest.approx(g["conv"].cast(pl.Float64).mean())
        assert out[name]["conv"].has_covariate is False
        assert out[name]["clicks"].variance == pytest.approx(g["clicks"].to_numpy().var(ddof=1))


def test_aggregate_units_errors_name_the_column():
    df = pl.DataFrame({"variant": ["a", "b"], "amount": [1.0, None], "label": ["x", "y"]})
    with pytest.raises(DataError, match='Did you mean "amount"'):
        aggregate_units(df, variant_col="variant", metric_cols=["amout"])
    with pytest.raises(DataError, match="null"):
        aggregate_units(df, variant_col="variant", metric_cols=["amount"])
    with pytest.raises(DataError, match="numeric"):
        aggregate_units(df, variant_col="variant", metric_cols=["label"])
    nan = pl.DataFrame({"variant": ["a", "b"], "y": [1.0, float("nan")]})
    with pytest.raises(DataError, match="NaN"):
        aggregate_units(nan, variant_col="variant", metric_cols=["y"])


# -- Welch, lift, chance to beat control --------------------------------------------------------
CASES = [(0, 1000, 1200, 10.0, 10.3, 2.0, 2.5), (1, 40, 25, 0.0, 0.8, 1.0, 3.0),
         (2, 5000, 5000, 100.0, 99.0, 20.0, 20.0), (3, 12, 300, -5.0, -4.0, 1.0, 0.5)]


@pytest.mark.parametrize("seed,n_c,n_t,m_c,m_t,sd_c,sd_t", CASES)
def test_welch_matches_scipy(seed, n_c, n_t, m_c, m_t, sd_c, sd_t):
    rng = np.random.default_rng(seed)
    c, t = rng.normal(m_c, sd_c, n_c), rng.normal(m_t, sd_t, n_t)
    cmp = welch(S(c), S(t), alpha=0.1)
    ref = st.ttest_ind(t, c, equal_var=False)
    assert cmp.t_stat == pytest.approx(ref.statistic, rel=1e-9)
    assert cmp.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert cmp.df == pytest.approx(ref.df, rel=1e-9)
    lo, hi = ref.confidence_interval(confidence_level=0.9)
    assert cmp.ci == pytest.approx((lo, hi), rel=1e-7)
    assert cmp.diff == pytest.approx(t.mean() - c.mean())
    # relative CI uses the same Welch df and t quantile
    crit = st.t.ppf(0.95, ref.df)
    assert cmp.rel == pytest.approx((t.mean() - c.mean()) / abs(c.mean()))
    assert cmp.rel_ci == pytest.approx((cmp.rel - crit * cmp.rel_se, cmp.rel + crit * cmp.rel_se))


def test_welch_on_proportions_matches_scipy_on_zero_one_data():
    rng = np.random.default_rng(5)
    c, t = (rng.random(4000) < 0.10).astype(float), (rng.random(4100) < 0.115).astype(float)
    cmp = welch(S(c), S(t))
    ref = st.ttest_ind(t, c, equal_var=False)
    assert cmp.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert cmp.control_var == pytest.approx(c.var(ddof=1))


def test_relative_lift_delta_method_hand_formula_and_bootstrap():
    cmp = welch(SufficientStats(n=100, sum=1000.0, sum_sq=100 * 100 + 99 * 4.0),
                SufficientStats(n=200, sum=2200.0, sum_sq=200 * 121 + 199 * 9.0))
    # m_c=10, v_c=4, n_c=100; m_t=11, v_t=9, n_t=200 (worked by hand)
    assert cmp.rel == pytest.approx(0.1)
    assert cmp.rel_se ** 2 == pytest.approx((9 / 200) / 100 + (4 / 100) * 121 / 10 ** 4)
    rng = np.random.default_rng(11)
    c, t = rng.gamma(2.0, 5.0, 2000), rng.gamma(2.2, 5.0, 2000)
    cmp = welch(S(c), S(t))
    bc = c[rng.integers(0, 2000, (2000, 2000))].mean(axis=1)
    bt = t[rng.integers(0, 2000, (2000, 2000))].mean(axis=1)
    boot_se = ((bt - bc) / np.abs(bc)).std(ddof=1)
    assert cmp.rel_se == pytest.approx(boot_se, rel=0.1)


def test_prob_beat_control_normal_approximation():
    rng = np.random.default_rng(3)
    c, t = rng.normal(0, 1, 300), rng.normal(0.1, 1, 300)
    cmp = welch(S(c), S(t))
    z = (t.mean() - c.mean()) / math.sqrt(c.var(ddof=1) / 300 + t.var(ddof=1) / 300)
    assert cmp.prob_beat_control("increase") == pytest.approx(st.norm.cdf(z))
    assert cmp.prob_beat_control("decrease") == pytest.approx(st.norm.cdf(-z))


def test_welch_zero_variance_and_too_few_units():
    same = welch(S([1.0, 1.0, 1.0]), S([1.0, 1.0]))
    assert same.p_value == 1.0 and same.ci == (0.0, 0.0)
    apart = welch(S([0.0, 0.0, 0.0]), S([1.0, 1.0]))
    assert apart.p_value == 0.0 and apart.prob_beat_control() == 1.0
    zero_control = welch(S([0.0, 0.0, 0.0]), S([1.0, 0.0]))
    assert math.isnan(zero_control.rel)
    with pytest.raises(ExperimentError, match="at least 2 units"):
        welch(S([1.0]), S([1.0, 2.0]))


@pytest.mark.parametrize("direction,margin,shift", [("increase", 0.2, -0.05), ("increase", 0.05, -0.3),
                                                     ("decrease", 0.2, 0.05), ("decrease", 0.05, 0.3)])
def test_non_inferiority_absolute_matches_scipy_one_sided(direction, margin, shift):
    rng = np.random.default_rng(7)
    c, t = rng.normal(5, 1, 800), rng.normal(5 + shift, 1, 900)
    cmp = welch(S(c), S(t))
    ni = non_inferiority(cmp, direction=direction, margin=margin, margin_type="absolute", alpha=0.05)
    if direction == "increase":  # H0: t - c <= -margin
        ref = st.ttest_ind(t + margin, c, equal_var=False, alternative="greater")
    else:  # H0: t - c >= margin
        ref = st.ttest_ind(t - margin, c, equal_var=False, alternative="less")
    assert ni.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert ni.passed == (ref.pvalue < 0.05)
    lo, hi = ref.confidence_interval(confidence_level=0.95)  # one-sided bound, shifted
    bound = lo - margin if direction == "increase" else hi + margin
    assert ni.bound == pytest.approx(bound, rel=1e-7)


def test_non_inferiority_relative_margin_uses_delta_method():
    rng = np.random.default_rng(8)
    c, t = rng.normal(100, 10, 1000), rng.normal(99, 10, 1000)
    cmp = welch(S(c), S(t))
    ni = non_inferiority(cmp, direction="increase", margin=0.02, margin_type="relative", alpha=0.05)
    expected = st.t.sf((cmp.rel + 0.02) / cmp.rel_se, cmp.df)
    assert ni.p_value == pytest.approx(expected) and ni.threshold == -0.02


# -- SRM ------------------------------------------------------------------------------------
@pytest.mark.parametrize("counts,weights", [((5000, 5200), (0.5, 0.5)), ((5000, 5500), (0.5, 0.5)),
                                            ((2000, 3100, 4900), (0.2, 0.3, 0.5)), ((900, 100), (0.9, 0.1))])
def test_srm_matches_scipy_chisquare(counts, weights):
    names = [f"v{i}" for i in range(len(counts))]
    out = srm(dict(zip(names, counts)), dict(zip(names, weights)))
    ref = st.chisquare(counts, np.array(weights) * sum(counts))
    assert out["chi2"] == pytest.approx(ref.statistic) and out["pvalue"] == pytest.approx(ref.pvalue)
    assert out["flagged"] == (ref.pvalue < 0.001)


def test_srm_known_counts():
    # 5000 vs 5500 under 50/50: chi2 = 2 * 250**2 / 5250 = 23.81, p ~ 1.1e-6 -> flagged
    out = srm({"a": 5000, "b": 5500}, {"a": 0.5, "b": 0.5})
    assert out["chi2"] == pytest.approx(2 * 250 ** 2 / 5250) and out["flagged"]
    assert not srm({"a": 5000, "b": 5050}, {"a": 0.5, "b": 0.5})["flagged"]
    assert srm({"a": 0, "b": 0}, {"a": 0.5, "b": 0.5})["pvalue"] is None
    with pytest.raises(ExperimentError, match="no traffic"):
        srm({"a": 1, "zz": 2}, {"a": 0.5, "b": 0.5})


# -- multiple testing -------------------------------------------------------------------------
def holm_brute(p):
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    adj = [0.0] * m
    for rank, i in enumerate(order):
        adj[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    return adj


def bh_brute(p):
    m, order = len(p), sorted(range(len(p)), key=lambda i: p[i])
    adj = [0.0] * m
    for rank, i in enumerate(order):
        adj[i] = min(1.0, min(m / (j + 1) * p[order[j]] for j in range(rank, m)))
    return adj


def test_holm_and_bh_hand_computed():
    p = [0.01, 0.02, 0.03, 0.04, 0.05]
    # Holm: 5*.01, 4*.02, 3*.03, 2*.04, 1*.05 -> .05, .08, .09, .09 (max), .09 (max)
    assert adjust_pvalues(p, "holm") == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    # BH: m/k * p = .05 for every k -> all .05
    assert adjust_pvalues(p, "bh") == pytest.approx([0.05] * 5)
    assert adjust_pvalues([0.5, 0.9], "holm") == pytest.approx([1.0, 1.0])
    assert adjust_pvalues(p, "none") == p


def test_holm_and_bh_vs_brute_force():
    rng = np.random.default_rng(4)
    for m in (1, 2, 3, 7, 20):
        for _ in range(20):
            p = rng.random(m) ** 3
            if m > 2:
                p[1] = p[0]  # ties
            assert adjust_pvalues(p, "holm") == pytest.approx(holm_brute(list(p)))
            assert adjust_pvalues(p, "bh") == pytest.approx(bh_brute(list(p)))


def test_nan_pvalues_are_left_out_of_the_family():
    out = adjust_pvalues([0.01, math.nan, 0.04], "holm")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_bh_controls_fdr_more_liberally_than_holm():
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205]
    holm, bh = adjust_pvalues(p, "holm"), adjust_pvalues(p, "bh")
    assert all(b <= h + 1e-12 for b, h in zip(bh, holm))
    assert sum(x < 0.05 for x in bh) > sum(x < 0.05 for x in holm)
    assert all(a <= b for a, b in itertools.pairwise(sorted(holm)))


# -- novelty --------------------------------------------------------------------------------
def _periods(effects, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"day{i}", S(rng.normal(10, 2, n)), S(rng.normal(10 + e, 2, n)))
            for i, e in enumerate(effects)]


def test_novelty_flags_a_decaying_effect():
    periods = _periods([1.0, 0.9, 0.8, 0.3, 0.1, 0.0])
    out = novelty(periods)
    assert out["available"] and out["flagged"]
    assert out["early_periods"] == ["day0", "day1", "day2"]
    assert out["late_periods"] == ["day3", "day4", "day5"]
    # recompute the z-test by hand from the pooled halves
    e = welch(periods[0][1] + periods[1][1] + periods[2][1], periods[0][2] + periods[1][2] + periods[2][2])
    lt = welch(periods[3][1] + periods[4][1] + periods[5][1], periods[3][2] + periods[4][2] + periods[5][2])
    z = (lt.diff - e.diff) / math.hypot(e.se, lt.se)
    assert out["z"] == pytest.approx(z) and out["pvalue"] == pytest.approx(2 * st.norm.sf(abs(z)))
    assert len(out["periods"]) == 6 and out["periods"][0]["abs_diff"] == pytest.approx(
        welch(periods[0][1], periods[0][2]).diff)


def test_novelty_not_flagged_for_a_stable_effect_and_odd_middle_left_out():
    out = novelty(_periods([0.5] * 5, seed=1))
    assert out["available"] and not out["flagged"]
    assert out["early_periods"] == ["day0", "day1"] and out["late_periods"] == ["day3", "day4"]
    assert novelty(_periods([0.5]))["available"] is False
