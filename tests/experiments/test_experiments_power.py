"""Power: sample size and MDE vs the closed-form normal formula, and one simulation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from mlops.errors import ExperimentError
from mlops.experiments import duration_days, mde_for, power_at, sample_size


def closed_form(mde, alpha, power, var_c, var_t, ratio=1.0, two_sided=True):
    z_a = st.norm.ppf(1 - alpha / 2) if two_sided else st.norm.ppf(1 - alpha)
    return math.ceil((z_a + st.norm.ppf(power)) ** 2 * (var_c + var_t / ratio) / mde ** 2)


@pytest.mark.parametrize("mde,alpha,power,sd,ratio,two_sided", [
    (0.1, 0.05, 0.8, 1.0, 1.0, True), (0.5, 0.01, 0.9, 3.0, 1.0, True),
    (2.0, 0.05, 0.8, 10.0, 2.0, True), (0.1, 0.05, 0.8, 1.0, 1.0, False),
])
def test_sample_size_continuous_closed_form(mde, alpha, power, sd, ratio, two_sided):
    n = sample_size(mde, alpha, power, sd, ratio=ratio, two_sided=two_sided)
    assert n == closed_form(mde, alpha, power, sd ** 2, sd ** 2, ratio, two_sided)


def test_sample_size_textbook_value():
    # 2 * (1.959964 + 0.841621)**2 / 0.1**2 = 1569.8 -> 1570 per arm
    assert sample_size(0.1, 0.05, 0.8, 1.0) == 1570


@pytest.mark.parametrize("p,mde", [(0.1, 0.01), (0.5, 0.05), (0.02, 0.004)])
def test_sample_size_proportions_closed_form(p, mde):
    n = sample_size(mde, 0.05, 0.8, baseline_rate=p)
    assert n == closed_form(mde, 0.05, 0.8, p * (1 - p), (p + mde) * (1 - p - mde))


def test_mde_for_inverts_sample_size():
    assert mde_for(1570, 0.05, 0.8, 1.0) == pytest.approx(
        (st.norm.ppf(0.975) + st.norm.ppf(0.8)) * math.sqrt(2 / 1570))
    n = 20_000
    d = mde_for(n, 0.05, 0.8, baseline_rate=0.1)
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert d == pytest.approx(z * math.sqrt((0.09 + (0.1 + d) * (0.9 - d)) / n), rel=1e-9)
    assert sample_size(d, 0.05, 0.8, baseline_rate=0.1) in (n, n + 1)


def test_power_by_simulation():
    """At the computed sample size, about 80 % of simulated experiments are significant."""
    mde, sd = 0.25, 1.0
    n = sample_size(mde, 0.05, 0.8, sd)
    rng = np.random.default_rng(99)
    sims = 2000
    c = rng.normal(0, sd, (sims, n))
    t = rng.normal(mde, sd, (sims, n))
    rejected = st.ttest_ind(t, c, axis=1, equal_var=False).pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=3 * math.sqrt(0.8 * 0.2 / sims))
    assert power_at(mde, n, 1.0, n, 1.0, alpha=0.05) == pytest.approx(0.8, abs=0.002)


def test_duration_days():
    assert duration_days(1570, 1000) == 4  # 1570 / (1000 * 0.5) = 3.14 -> 4
    assert duration_days(1000, 1000, weights=[0.8, 0.2]) == 5
    assert duration_days(500, 1000) == 1


@pytest.mark.parametrize("call,match", [
    (lambda: sample_size(0, sd=1), "mde"), (lambda: sample_size(0.1, 1.2, sd=1), "alpha"),
    (lambda: sample_size(0.1, sd=1, baseline_rate=0.1), "exactly one"),
    (lambda: sample_size(0.1), "exactly one"), (lambda: sample_size(0.2, baseline_rate=0.9), "stay in"),
    (lambda: mde_for(0, sd=1), "n_per_arm"), (lambda: duration_days(10, 0), "daily_units"),
    (lambda: sample_size(0.1, sd=-1), "sd"),
])
def test_power_errors(call, match):
    with pytest.raises(ExperimentError, match=match):
        call()
