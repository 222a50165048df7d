"""``kstwo_sf`` and the distributions drift uses without importing scipy.stats, against
scipy.stats itself: equal values (the same operations) in every case of scipy's own
evaluation, and scipy.stats left unimported where they need it not."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from mlops.monitoring import kolmogorov, stats
from mlops.monitoring.calibration import family_k, interval_multiplier

ROOT = Path(__file__).resolve().parents[2]


def _case(n: int, d: float) -> str:
    """scipy's case for (n, d) (scipy/stats/_ksstats.py, _kolmogn, sf)."""
    t, nx2 = n * d, n * d * d
    if d <= 0.5 / n or d >= 1 or t <= 1 or n <= 140:
        return "edge"
    if t >= n - 1 or d >= 0.5:
        return "near one"
    if nx2 >= 370:
        return "zero"
    if nx2 >= 2.2:
        return "smirnov"
    return "durbin" if n <= 100_000 and n * d ** 1.5 <= 1.4 else "pelz-good"


GRID = [(n, d) for n in (141, 999, 5_000, 21_095, 99_999, 100_001, 500_000, 2_000_000)
        for d in (0.3 / n, 0.9 / n, 1.5 / n, 1e-4, 6e-4, 0.002, 0.0092, 0.03, 0.07, 0.2, 0.49, 0.5, 0.7,
                  1 - 1.5 / n, 1.0, 1.2)] + [(n, d) for n in (2, 50, 140) for d in (0.01, 0.1, 0.3, 0.6, 0.99)]


@pytest.mark.parametrize("n,d", GRID)
def test_kstwo_sf_equals_scipy_in_every_case(n, d):
    want = float(scipy.stats.kstwo.sf(d, n))
    got = kolmogorov.kstwo_sf(d, n)
    if _case(n, d) == "smirnov" and 0 < d < 0.5 and n <= 1_000_000:  # summed vectorised, not term by term
        assert got == pytest.approx(want, rel=1e-8, abs=1e-300)
    else:
        assert got == want, (_case(n, d), got, want)


def test_the_grid_covers_every_case():
    assert {_case(n, d) for n, d in GRID} == {"edge", "near one", "zero", "smirnov", "durbin", "pelz-good"}


@pytest.mark.parametrize("n,d", [(21_095, 0.0092044), (300_000, 0.0015), (150_000, 0.003)])
def test_pelz_good_is_scipys_to_the_last_bit(n, d):
    assert _case(n, d) == "pelz-good"
    assert kolmogorov.kstwo_sf(d, n) == float(scipy.stats.kstwo.sf(d, n))


def test_the_normal_t_and_chi2_functions_are_scipy_stats():
    for k, family in [(3.0, 1), (3.0, 2), (3.0, 12), (2.5, 40), (3.0, 500)]:
        tail = float(scipy.stats.norm.sf(k))
        assert family_k(k, family) == (k if family == 1 else
                                       float(scipy.stats.norm.isf(-math.expm1(math.log1p(-tail) / family))))
    for k, n in [(3.0, 6), (3.0, 40), (2.0, 2), (4.5, 1000)]:
        want = float(scipy.stats.t.ppf(scipy.stats.norm.cdf(k), n - 1) * math.sqrt(1.0 + 1.0 / n))
        assert interval_multiplier(k, n) == want
    for x, df in [(0.0, 3), (-1.0, 2), (3.84, 1), (25.0, 7), (1e4, 30), (1.0, 0)]:
        want = float(scipy.stats.chi2.sf(x, df))
        assert stats.chi2_sf(x, df) == want or (math.isnan(want) and math.isnan(stats.chi2_sf(x, df)))


def test_large_samples_get_their_p_values_without_scipy_stats():
    """Above 10,000 rows (scipy's asymptotic regime) nothing imports scipy.stats: the probe
    can fail, as the small sample (scipy's exact routine) shows."""
    code = ("import json, sys; from mlops.monitoring import stats; "
            "from mlops.monitoring.calibration import family_k, interval_multiplier; "
            "out = [stats.ks_pvalue(d, 41_586, 42_804) for d in (0.0092, 0.0186, 0.302, 1e-5)]; "
            "out += [family_k(3.0, 7), interval_multiplier(3.0, 6), stats.chi2_sf(3.0, 2)]; "
            "big = 'scipy.stats' in sys.modules; stats.ks_pvalue(0.2, 400, 500); "
            "print(json.dumps([big, 'scipy.stats' in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == [False, True]


def test_ks_pvalue_matches_ks_2samp_on_large_samples_at_the_bench_sizes():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.02, 0.05, 0.3):
        a, b = rng.normal(size=41_586), rng.normal(shift, size=42_804)
        want = scipy.stats.ks_2samp(a, b)
        stat, p = stats.ks_from_sorted(np.sort(a), b)
        assert stat == want.statistic
        assert p == pytest.approx(want.pvalue, rel=1e-8) if want.pvalue > 1e-10 else p < 1e-9
