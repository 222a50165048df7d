"""The breaker's window calibrated on the model's reference (``serving.breaker.window: null``):
the chosen size checked against a brute-force recount of the PSI of every reference window,
and the behaviour it is for: traffic whose days differ (a stormy day) does not trip a window
that long, a shift does."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.stats

from mlops.monitoring.calibration import chunk_layout
from mlops.monitoring.reference import fit_reference
from mlops.serving.breaker import CircuitBreaker
from mlops.serving.breaker.limits import (
    WINDOW_BASE,
    BreakerLimits,
    calibrated_reference,
    choose_window,
    column_bins,
)
from mlops.serving.settings import BreakerSettings

T0 = datetime(2024, 1, 1)
EPISODE = 300   # records per "day": each day has its own offset, as weather moves flight delays


def _episodes(n: int, rng, spread: float = 0.4, shift: float = 0.0) -> np.ndarray:
    offsets = np.repeat(rng.normal(0.0, spread, n // EPISODE + 1), EPISODE)[:n]
    return rng.normal(offsets + shift, 1.0)


def _frame(x: np.ndarray, rng) -> pl.DataFrame:
    return pl.DataFrame({"ts": [T0 + timedelta(minutes=i) for i in range(x.size)], "x": x,
                         "c": rng.choice(["a", "b"], x.size).tolist(),
                         "prediction": 1 / (1 + np.exp(-x))})


def _reference(x: np.ndarray, rng, **kw):
    fitted = fit_reference(_frame(x, rng), numeric=["x", "prediction"], categorical=["c"],
                           n_bins=10, timestamp="ts")
    return fitted, calibrated_reference(fitted, ["x", "c"], window=None, **kw)


def _brute_limit(values: list[float], edges: list[float], size: int) -> float:
    """The 3-sigma limit (t prediction interval for one new chunk) of the PSI of each
    calibration chunk of ``size`` against the rest, counted value by value (bins
    [e_i, e_i+1), open outer bins; shares floored at 1e-4)."""
    def shares(vals):
        counts = [0] * (len(edges) + 1)
        for v in vals:
            counts[sum(1 for e in edges if v >= e)] += 1
        return [max(c / len(vals), 1e-4) for c in counts]
    layout = chunk_layout(len(values), size)
    psis = []
    for a, b in zip(layout.starts.tolist(), layout.ends.tolist()):
        cur, ref = shares(values[a:b]), shares(values[:a] + values[b:])
        psis.append(sum((c - r) * math.log(c / r) for c, r in zip(cur, ref)))
    k = len(psis)
    m = scipy.stats.t.ppf(scipy.stats.norm.cdf(3.0), k - 1) * math.sqrt(1 + 1 / k)
    return float(np.mean(psis) + m * np.std(psis, ddof=1))


@pytest.mark.parametrize("spread", [0.0, 0.25])
def test_the_window_is_the_smallest_whose_own_noise_at_3_sigma_is_within_the_floor(spread):
    rng = np.random.default_rng(2)
    fitted, ref = _reference(_episodes(12_000, rng, spread=spread), rng)
    size = ref.limits.window
    scores = fitted.rows.numeric["prediction"].tolist()
    edges = list(ref.score.edges)
    assert _brute_limit(scores, edges, size) <= 0.1
    assert size == WINDOW_BASE or _brute_limit(scores, edges, size // 2) > 0.1
    assert ref.limits.window_note.startswith("the smallest window at which")
    assert ref.limits.levels[-1].size == size   # the arming levels are those of this window
    if spread:   # days that differ need a longer window than a stable stream
        stable = _reference(_episodes(12_000, rng, spread=0.0), rng)[1]
        assert size > CircuitBreaker(stable, BreakerSettings()).size


def test_past_the_longest_window_the_reference_calibrates_it_takes_that_one_and_says_so():
    rng = np.random.default_rng(3)
    x = np.linspace(-3, 3, 4000) + rng.normal(0, 0.1, 4000)   # a trend: no window is stable
    _, ref = _reference(x, rng)
    longest = max(WINDOW_BASE * 2 ** k for k in range(10) if 4000 // (WINDOW_BASE * 2 ** k) >= 6)
    assert ref.limits.window == longest == 500
    assert "the longest the reference's 4,000 rows calibrate" in ref.limits.window_note


def test_choose_window_on_scores_as_the_previous_reference_compares_them():
    rng = np.random.default_rng(4)
    fitted, ref = _reference(_episodes(24_000, rng), rng, reference="previous")
    idx = column_bins(ref.score.__class__(**{**ref.score.__dict__, "name": "prediction"}),
                      fitted.rows)
    size, note = choose_window(idx, ref.score.n_bins, fitted.rows.rows, widest=10, previous=True)
    assert size == ref.limits.window and "the window before" in note


def _trips(br: CircuitBreaker, x: np.ndarray, rng, per: int = 20) -> list[int]:
    """Records after which the breaker tripped, re-closed after each trip (the window kept)
    so every stretch past the limits counts."""
    out = []
    for i in range(0, x.size, per):
        part = x[i:i + per]
        st = br.observe({"x": part, "c": rng.choice(["a", "b"], part.size).tolist()},
                        1 / (1 + np.exp(-part)))
        if st.state == "tripped":
            out.append(i + part.size)
            br.tripped = False
    return out


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_a_shift_the_days_own_variation_hides_from_a_short_window_trips_the_calibrated_one(seed):
    rng = np.random.default_rng(seed)
    _, ref = _reference(_episodes(24_000, rng), rng)
    size = ref.limits.window
    assert size > WINDOW_BASE
    # more days of the same process: the calibrated window stays closed
    assert _trips(CircuitBreaker(ref, BreakerSettings()), _episodes(4 * size, rng), rng) == []
    # a 1 sd shift: caught at once by the calibrated window; a window shorter than a day
    # varies by the day, its limits are that wide, and it never sees the shift
    shifted = _episodes(4 * size, rng, shift=1.0)
    short = CircuitBreaker(ref, BreakerSettings(window=WINDOW_BASE))
    assert _trips(short, shifted, rng) == []
    tripped = _trips(CircuitBreaker(ref, BreakerSettings()), shifted, rng)
    assert tripped and tripped[0] <= 2 * size


def test_an_explicit_window_wins_and_the_status_says_how_the_window_was_chosen():
    rng = np.random.default_rng(6)
    _, ref = _reference(_episodes(24_000, rng), rng)
    auto = CircuitBreaker(ref, BreakerSettings()).status()
    assert auto.window == ref.limits.window and auto.window_note == ref.limits.window_note
    fixed = CircuitBreaker(ref, BreakerSettings(window=400)).status().as_dict()
    assert fixed["window"] == 400 and fixed["window_note"] == "as set by serving.breaker.window"
    back = BreakerLimits.from_dict(ref.limits.as_dict())
    assert (back.window, back.window_note) == (ref.limits.window, ref.limits.window_note)


def test_a_minimum_the_calibrated_window_cannot_hold_is_a_config_error_naming_the_key():
    from mlops.errors import ConfigError
    rng = np.random.default_rng(6)
    _, ref = _reference(_episodes(12_000, rng), rng)
    size = ref.limits.window
    with pytest.raises(ConfigError, match="serving.breaker.min_requests") as err:
        CircuitBreaker(ref, BreakerSettings(min_requests=size + 1))
    assert f"at most {size}" in err.value.fix
    assert CircuitBreaker(ref, BreakerSettings(min_requests=size)).min_records == size
