"""The model's baseline (issue 20): performance limits relative to the model, and detector
alarm levels calibrated on its own error stream; checked against the streaming detectors,
scikit-learn and simulation."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import mean_squared_error, roc_auc_score

from mlops.errors import ConfigError
from mlops.monitoring.baseline import parse_change, performance_baseline
from mlops.monitoring.concept import run_detectors
from mlops.monitoring.detector_limits import block_bootstrap, calibrate_detector, ddm_max, page_hinkley_max
from mlops.monitoring.detectors import DDM, PageHinkley

T0 = datetime(2024, 1, 1)


def _streaming_ph_max(stream, delta, min_instances, mode="both"):
    ph = PageHinkley(delta=delta, threshold=1e18, min_instances=min_instances)
    best = 0.0
    for i, x in enumerate(stream):
        ph.update(x)
        if i + 1 >= min_instances:
            rise, fall = ph.sum_increase - ph.min_increase, ph.max_decrease - ph.sum_decrease
            best = max(best, {"up": rise, "down": fall, "both": max(rise, fall)}[mode])
    return best


def _streaming_ddm_max(stream, min_instances):
    ddm = DDM(warning_level=1e17, out_control_level=1e18, min_instances=min_instances)
    best = 0.0
    for x in stream:
        ddm.update(x)
        if ddm.n > min_instances and ddm.s_min > 0:
            s = math.sqrt(ddm.p * (1 - ddm.p) / ddm.n)
            best = max(best, (ddm.p + s - ddm.p_min) / ddm.s_min)
    return best


def test_vectorised_statistics_equal_the_streaming_detectors():
    rng = np.random.default_rng(0)
    for seed in range(5):
        stream = (rng.uniform(size=800) < 0.1 + 0.05 * (seed % 2)).astype(float)
        stream[400:] = (rng.uniform(size=400) < 0.25).astype(float)
        for mode in ("both", "up", "down"):
            got = page_hinkley_max(stream, delta=0.02, alpha=1 - 1e-4, min_instances=30, mode=mode)[0]
            assert got == pytest.approx(_streaming_ph_max(stream, 0.02, 30, mode), rel=1e-9)
        assert ddm_max(stream, min_instances=30)[0] == pytest.approx(_streaming_ddm_max(stream, 30), rel=1e-9)


def test_block_bootstrap_keeps_blocks_of_consecutive_values():
    reps = block_bootstrap(np.arange(1000.0), 400, 3, seed=1)
    assert reps.shape == (3, 400)
    diffs = np.diff(reps, axis=1)
    assert (diffs == 1).mean() >= 0.99  # blocks of 100 (a quarter of 400): 99 steps of +1 in 100


def _bursty(rng, n, rate=0.05, burst=8):
    """0/1 errors arriving in bursts (one customer, one storm): independent tests cry wolf."""
    out = np.zeros(n)
    for start in np.flatnonzero(rng.uniform(size=n) < rate / burst):
        out[start:start + burst] = 1.0
    return out


def test_calibrated_alarm_levels_keep_a_stable_bursty_stream_quiet():
    rng = np.random.default_rng(7)
    baseline = _bursty(rng, 4000)
    quiet_raw = quiet_cal = 0
    params = {"delta": 0.02, "threshold": 1.0, "min_instances": 30}
    calibrated, info = calibrate_detector("page_hinkley", params, baseline, 3000)
    assert info["used"] == calibrated["threshold"] > params["threshold"]
    for _ in range(40):
        stable = _bursty(rng, 3000)
        quiet_raw += _first(PageHinkley(**params), stable) is None
        quiet_cal += _first(PageHinkley(**calibrated), stable) is None
    assert quiet_cal >= 36 and quiet_raw < quiet_cal
    shifted = np.concatenate([_bursty(rng, 1500), _bursty(rng, 1500, rate=0.25)])
    assert _first(PageHinkley(**calibrated), shifted) is not None


def _first(detector, stream):
    for i, x in enumerate(stream):
        if detector.update(x):
            return i
    return None


def test_run_detectors_scales_page_hinkley_by_the_baseline_sd():
    baseline = np.tile([0.0, 1.0], 200)  # sd 0.5
    out = run_detectors(np.zeros(100), list(range(100)), {"page_hinkley": {"delta": 0.1, "threshold": 5.0}},
                        "errors", baseline)["page_hinkley"]
    assert out["parameters"]["delta"] == pytest.approx(0.05)
    assert out["parameters"]["threshold"] >= 2.5 and out["calibration"]["configured"] == pytest.approx(2.5)


# --- performance limits relative to the model ----------------------------------------------

def _baseline_rows(n=6000, seed=0, regression=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    if regression:
        y = 10 * x + rng.normal(0, 3, n)
        score = 10 * x
    else:
        score = 1 / (1 + np.exp(-2 * x))
        y = (rng.uniform(size=n) < score).astype(float)
    return pl.DataFrame({"ts": [T0 + timedelta(hours=i) for i in range(n)], "y": y, "p": score})


def test_calibrated_band_is_the_metric_spread_over_baseline_chunks():
    rows = _baseline_rows()
    got = performance_baseline(rows, metric="roc_auc", chunk="7d", max_change=None, min_change=0.0,
                               k=3.0, min_chunks=6, time_col="ts", label_col="y", score_col="p",
                               recorded=None)
    assert got.value == pytest.approx(roc_auc_score(rows["y"], rows["p"]))
    first = rows["ts"].min()  # weeks counted from the first row
    weeks = rows.with_columns(w=(pl.col("ts") - first).dt.total_days() // 7).partition_by("w", maintain_order=True)
    chunk_auc = [roc_auc_score(w["y"], w["p"]) for w in weeks]
    assert got.limit.chunks == len(chunk_auc) >= 6
    assert got.limit.threshold == pytest.approx(got.value - 3 * np.std(chunk_auc, ddof=1), rel=1e-9)


def test_declared_relative_and_absolute_limits_for_a_regressor():
    rows = _baseline_rows(regression=True)
    rmse = math.sqrt(mean_squared_error(rows["y"], rows["p"]))
    common = dict(metric="rmse", chunk="7d", min_change=0.05, k=3.0, min_chunks=6, time_col="ts",
                  label_col="y", score_col="p", recorded=None)
    rel = performance_baseline(rows, max_change="20%", **common)
    assert rel.limit.threshold == pytest.approx(1.2 * rmse) and rel.limit.direction == "above"
    absolute = performance_baseline(rows, max_change=0.5, **common)
    assert absolute.limit.threshold == pytest.approx(rmse + 0.5)
    old = performance_baseline(None, max_change=None, **{**common, "recorded": 12.0})
    assert old.limit.threshold == pytest.approx(12.6) and "no baseline rows" in old.note


def test_max_change_rejects_what_it_cannot_read():
    assert parse_change("12.5%") == ("relative", 0.125)
    for bad in ("lots", -1, True):
        with pytest.raises(ConfigError, match="max_change"):
            parse_change(bad)


def test_a_detection_in_the_burn_in_belongs_to_the_previous_window():
    stream = np.array([0.0] * 60 + [1.0] * 40 + [0.0] * 200)
    params = {"page_hinkley": {"delta": 0.01, "threshold": 5.0, "min_instances": 30, "mode": "up"}}
    whole = run_detectors(stream, list(range(300)), params, "errors")["page_hinkley"]
    assert whole["first_detection"] is not None and whole["first_detection"] < 100
    window = run_detectors(stream, list(range(300)), params, "errors", window_from=120)["page_hinkley"]
    assert window["first_detection"] is None and window["before_window"] == 1
