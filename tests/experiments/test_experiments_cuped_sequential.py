"""CUPED against a per-unit computation, and the sequential interval: formula, width, coverage."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from mlops.errors import ExperimentError
from mlops.experiments import SufficientStats, cuped_compare, cuped_theta, sequential_ci, welch
from mlops.experiments.sequential import sequential_halfwidth, sequential_rho

S = SufficientStats.from_values


def _arms(rho: float, n=4000, effect=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, 2 * n)
    y = 5 + rho * (x - 10) / 2 * 3 + math.sqrt(1 - rho ** 2) * 3 * rng.normal(size=2 * n)
    y[n:] += effect
    return (y[:n], x[:n]), (y[n:], x[n:])


def test_cuped_matches_per_unit_direct_computation():
    (yc, xc), (yt, xt) = _arms(0.7)
    stats = {"control": S(yc, xc), "treatment": S(yt, xt)}
    cmp, theta, _ = cuped_compare("control", "treatment", stats)
    x_all, y_all = np.concatenate([xc, xt]), np.concatenate([yc, yt])
    theta_direct = np.cov(y_all, x_all)[0, 1] / x_all.var(ddof=1)
    assert theta == pytest.approx(theta_direct)
    adj_c = yc - theta_direct * (xc - x_all.mean())
    adj_t = yt - theta_direct * (xt - x_all.mean())
    ref = st.ttest_ind(adj_t, adj_c, equal_var=False)
    assert cmp.diff == pytest.approx(adj_t.mean() - adj_c.mean())
    assert cmp.treatment_var == pytest.approx(adj_t.var(ddof=1))
    assert cmp.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    assert cmp.ci == pytest.approx(tuple(ref.confidence_interval()), rel=1e-6)
    assert cmp.rel == pytest.approx((adj_t.mean() - adj_c.mean()) / abs(adj_c.mean()))


def test_cuped_reduces_variance_by_about_rho_squared():
    (yc, xc), (yt, xt) = _arms(0.8, seed=1)
    stats = {"control": S(yc, xc), "treatment": S(yt, xt)}
    cmp, _, reduction = cuped_compare("control", "treatment", stats)
    raw = welch(stats["control"], stats["treatment"])
    assert cmp.se < raw.se
    assert reduction == pytest.approx(0.64, abs=0.03)
    assert reduction == pytest.approx(1 - cmp.se ** 2 / raw.se ** 2)


def test_cuped_with_unrelated_covariate_changes_little():
    (yc, xc), (yt, xt) = _arms(0.0, seed=2)
    _, theta, reduction = cuped_compare("c", "t", {"c": S(yc, xc), "t": S(yt, xt)})
    assert abs(theta) < 0.1 and abs(reduction) < 0.01


def test_cuped_theta_needs_covariates_and_handles_constant_covariate():
    with pytest.raises(ExperimentError, match="covariate"):
        cuped_theta({"c": S([1.0, 2.0]), "t": S([1.0, 2.0], [0.0, 1.0])})
    assert cuped_theta({"c": S([1.0, 2.0], [3.0, 3.0]), "t": S([2.0, 5.0], [3.0, 3.0])}) == 0.0


# -- sequential -------------------------------------------------------------------------------
def test_sequential_formula_by_hand():
    alpha, tuning, se, n = 0.05, 5000, 0.07, 3000
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)
    assert sequential_rho(alpha, tuning) == pytest.approx(rho)
    s2 = se ** 2 * n
    half = math.sqrt(s2) * math.sqrt(2 * (n * rho ** 2 + 1) / (n ** 2 * rho ** 2)
                                     * math.log(math.sqrt(n * rho ** 2 + 1) / alpha))
    assert sequential_ci(1.0, se, n, alpha=alpha, tuning=tuning) == pytest.approx((1 - half, 1 + half))


@pytest.mark.parametrize("n", [100, 1000, 5000, 50_000, 1_000_000])
@pytest.mark.parametrize("tuning", [500, 5000, 100_000])
def test_sequential_interval_is_wider_than_fixed_horizon(n, tuning):
    se = 1 / math.sqrt(n)
    fixed = st.norm.ppf(0.975) * se
    assert sequential_halfwidth(se, n, alpha=0.05, tuning=tuning) > fixed


def test_sequential_interval_is_tightest_near_tuning_parameter():
    # relative to the fixed-horizon width, the sequence is cheapest around N = N*
    ratios = {n: sequential_halfwidth(1 / math.sqrt(n), n, alpha=0.05, tuning=5000) * math.sqrt(n)
              for n in (500, 5000, 50_000)}
    assert ratios[5000] < ratios[500] and ratios[5000] < ratios[50_000]


def test_sequential_coverage_with_peeking_stays_above_nominal():
    """1000 simulated experiments, 40 looks each: the always-valid interval must cover the
    true effect at every look in >= 95 % of them; the fixed-horizon interval does not."""
    rng = np.random.default_rng(2024)
    sims, n_max, effect, alpha = 1000, 2000, 0.3, 0.05
    looks = np.linspace(50, n_max, 40).astype(int)
    c = rng.normal(0, 1, (sims, n_max))
    t = rng.normal(effect, 2, (sims, n_max))
    cs_c, cs_t = np.cumsum(c, axis=1), np.cumsum(t, axis=1)
    cq_c, cq_t = np.cumsum(c * c, axis=1), np.cumsum(t * t, axis=1)
    seq_ok = np.ones(sims, dtype=bool)
    fixed_ok = np.ones(sims, dtype=bool)
    z = st.norm.ppf(1 - alpha / 2)
    for n in looks:
        m_c, m_t = cs_c[:, n - 1] / n, cs_t[:, n - 1] / n
        v_c = (cq_c[:, n - 1] - n * m_c ** 2) / (n - 1)
        v_t = (cq_t[:, n - 1] - n * m_t ** 2) / (n - 1)
        se = np.sqrt(v_c / n + v_t / n)
        diff = m_t - m_c
        half = np.array([sequential_halfwidth(s, 2 * n, alpha=alpha, tuning=2000) for s in se])
        seq_ok &= np.abs(diff - effect) <= half
        fixed_ok &= np.abs(diff - effect) <= z * se
    assert seq_ok.mean() >= 1 - alpha
    assert fixed_ok.mean() < 1 - alpha  # the peeking problem the sequence fixes
