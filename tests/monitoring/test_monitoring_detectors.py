"""Streaming detectors: hand-checked update rules and synthetic streams with a known change."""
from __future__ import annotations

import numpy as np
import pytest

from mlops.errors import ConfigError, DataError
from mlops.monitoring.detectors import ADWIN, DDM, PageHinkley, detections, first_detection

K = 1500  # index of the change in the synthetic streams


def _errors(rng, before, after, n_after=1500):
    return np.r_[rng.binomial(1, before, K), rng.binomial(1, after, n_after)].astype(float).tolist()


# --- Page-Hinkley -----------------------------------------------------------------------

def test_page_hinkley_hand_checked():
    # delta=0, alpha=1: x = 0, 0, 0, 3 -> mean 0.75, deviation 2.25, m_4 = 2.25, min m = 0.
    assert first_detection(PageHinkley(delta=0.0, threshold=1.0, alpha=1.0, min_instances=1),
                           [0, 0, 0, 3]) == 3
    # threshold 3: 2.25 is not enough; next x=3: mean 1.2, deviation 1.8, m_5 = 4.05 > 3.
    assert first_detection(PageHinkley(delta=0.0, threshold=3.0, alpha=1.0, min_instances=1),
                           [0, 0, 0, 3, 3]) == 4
    # min_instances holds the alarm back until the 5th value (index 4).
    assert first_detection(PageHinkley(delta=0.0, threshold=1.0, alpha=1.0, min_instances=5),
                           [0, 0, 0, 3, 3]) == 4
    # Forgetting: alpha=0.5, x = 0, 2: mean 1, m_2 = 0.5 * 0 + (2 - 1) = 1 > 0.5.
    assert first_detection(PageHinkley(delta=0.0, threshold=0.5, alpha=0.5, min_instances=1),
                           [0, 2]) == 1


def test_page_hinkley_modes():
    down = [3, 3, 3, 0]  # mean 2.25, deviation -2.25
    assert first_detection(PageHinkley(delta=0.0, threshold=1.0, alpha=1.0, min_instances=1,
                                       mode="up"), down) is None
    assert first_detection(PageHinkley(delta=0.0, threshold=1.0, alpha=1.0, min_instances=1,
                                       mode="down"), down) == 3
    assert first_detection(PageHinkley(delta=0.0, threshold=1.0, alpha=1.0, min_instances=1),
                           down) == 3


def test_page_hinkley_mean_shift_and_stationary():
    # Error rate 0.1 -> 0.4 at K. Over 30 seeds: never early, detected within 206 steps.
    found = first_detection(PageHinkley(), _errors(np.random.default_rng(0), 0.1, 0.4))
    assert found is not None and K <= found <= K + 250
    quiet = _errors(np.random.default_rng(1), 0.1, 0.1)
    assert first_detection(PageHinkley(), quiet) is None


def test_page_hinkley_resets_after_detection():
    ph = PageHinkley(delta=0.0, threshold=1.0, alpha=1.0, min_instances=1)
    assert detections(ph, [0, 0, 0, 3]) == [3]
    assert ph.drift_detected
    ph.update(0.0)
    assert ph.n == 1 and not ph.drift_detected


# --- DDM --------------------------------------------------------------------------------

def test_ddm_hand_checked():
    # Worked by hand with p_i, s_i = sqrt(p (1 - p) / i), min_instances=1:
    # i=4: p=.25, s=.21651 is the minimum of p+s (0.46651).
    # i=6: p=.5, s=.20412, p+s=.70412 > .25 + 2 * .21651 = .68301 -> warning (index 5).
    # i=14: p+s = .78571 + .10966 = .89537 <= .25 + 3 * .21651 = .89952 -> no drift yet.
    # i=15: p+s = .8 + .10328 = .90328 > .89952 -> drift (index 14).
    stream = [1, 0, 0, 0] + [1] * 11
    ddm = DDM(min_instances=1)
    warnings = []
    for i, x in enumerate(stream):
        drift = ddm.update(x)
        if ddm.warning_detected:
            warnings.append(i)
        if drift:
            break
    assert warnings[0] == 5
    assert i == 14 and drift
    assert first_detection(DDM(min_instances=1), stream) == 14


def test_ddm_detects_error_rate_increase_not_before():
    # DDM fixes p_min/s_min from the first few dozen values, so on a 10% error stream it
    # raises early false alarms (about 1 seed in 3 of 30 measured); these seeds do not.
    found = first_detection(DDM(), _errors(np.random.default_rng(1), 0.1, 0.4))
    assert found is not None and K <= found <= K + 200
    assert first_detection(DDM(), _errors(np.random.default_rng(100), 0.1, 0.1)) is None


def test_ddm_rejects_non_binary_input():
    with pytest.raises(DataError, match="0/1 errors"):
        DDM().update(0.5)


# --- ADWIN ------------------------------------------------------------------------------

def test_adwin_window_statistics_equal_brute_force():
    rng = np.random.default_rng(4)
    stream = np.r_[rng.normal(0, 1, 700), rng.normal(3, 1, 300)]
    adwin = ADWIN(delta=0.002, clock=1)
    for i, x in enumerate(stream):
        adwin.update(x)
        # The window is always the most recent `width` values.
        window = stream[i + 1 - adwin.width:i + 1]
        assert adwin.total == pytest.approx(window.sum(), abs=1e-8)
        assert adwin.variance == pytest.approx(((window - window.mean()) ** 2).sum(), rel=1e-8, abs=1e-8)
        assert adwin.estimation == pytest.approx(window.mean(), abs=1e-9)
        # Exponential histogram: row i holds buckets of 2**i values, at most max_buckets each.
        sizes = [len(totals) for totals, _ in adwin._rows]
        assert all(s <= adwin.max_buckets for s in sizes)
        assert sum(s * 2 ** r for r, s in enumerate(sizes)) == adwin.width


def test_adwin_bucket_merge_hand_checked():
    adwin = ADWIN(clock=10_000)
    for x in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]:
        adwin.update(x)
    # Six size-1 buckets are one too many: the two oldest (1, 2) merge into a size-2 bucket.
    assert adwin._rows[0][0] == [3.0, 4.0, 5.0, 6.0]
    assert adwin._rows[1][0] == [3.0]
    assert adwin._rows[1][1] == [pytest.approx(0.5)]  # variance of {1, 2} = 2 * 0.25


def test_adwin_detects_mean_shift_shortly_after_not_before():
    rng = np.random.default_rng(5)
    found = first_detection(ADWIN(), _errors(rng, 0.1, 0.5))
    assert found is not None and K <= found <= K + 200
    assert first_detection(ADWIN(), _errors(np.random.default_rng(6), 0.2, 0.2, 3000)) is None


def test_adwin_resets_after_detection():
    adwin = ADWIN(clock=1)
    stream = np.r_[np.zeros(300), np.ones(300)].tolist()
    found = first_detection(adwin, stream)
    assert found is not None and adwin.drift_detected
    adwin.update(1.0)
    assert adwin.width == 1 and not adwin.drift_detected


# --- validation -------------------------------------------------------------------------

@pytest.mark.parametrize(("factory", "match"), [
    (lambda: PageHinkley(threshold=0), "threshold"),
    (lambda: PageHinkley(alpha=1.5), "alpha"),
    (lambda: PageHinkley(mode="sideways"), "mode"),
    (lambda: PageHinkley(min_instances=0), "min_instances"),
    (lambda: DDM(warning_level=3, out_control_level=2), "out_control_level"),
    (lambda: DDM(min_instances=-1), "min_instances"),
    (lambda: ADWIN(delta=0), "delta"),
    (lambda: ADWIN(clock=0), "clock"),
    (lambda: ADWIN(max_buckets=1), "max_buckets"),
])
def test_detector_parameter_errors(factory, match):
    with pytest.raises(ConfigError, match=match):
        factory()


@pytest.mark.parametrize("detector", [PageHinkley(), ADWIN()])
def test_detectors_reject_non_finite_values(detector):
    with pytest.raises(DataError, match="finite numbers"):
        detector.update(float("nan"))


def test_detector_parameter_boundaries_follow_their_declared_intervals():
    # closed bounds are accepted, open ones refused (the detectors' _parameter_constraints)
    PageHinkley(delta=0, alpha=1.0, min_instances=1)
    DDM(warning_level=2.0, out_control_level=2.0, min_instances=0)
    ADWIN(max_buckets=2, grace_period=0)
    for factory in (lambda: PageHinkley(delta=-1e-9), lambda: PageHinkley(alpha=0.0),
                    lambda: ADWIN(delta=1.0), lambda: PageHinkley(min_instances=True)):
        with pytest.raises(ConfigError, match="must be"):
            factory()
