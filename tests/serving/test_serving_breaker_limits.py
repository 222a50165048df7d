"""The breaker's limits, calibrated on the model's reference: checked against a brute-force
recount of the PSI of every reference chunk, the calibrated arming size, a season the
breaker must sit through and a shift it must catch."""
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
from mlops.serving.breaker.bins import BreakerReference
from mlops.serving.breaker.limits import LEGACY_NOTE, calibrate, calibrated_reference, window_sizes
from mlops.serving.settings import BreakerSettings

T0 = datetime(2024, 1, 1)


def _frame(x: np.ndarray, c: list[str], p: np.ndarray) -> pl.DataFrame:
    ts = [T0 + timedelta(minutes=i) for i in range(x.size)]
    # shuffled rows: the reference must put them back in time order
    order = np.random.default_rng(0).permutation(x.size)
    return pl.DataFrame({"ts": ts, "x": x, "c": c, "prediction": p})[order]


def _fit(df: pl.DataFrame, **kw):
    return fit_reference(df, numeric=["x", "prediction"], categorical=["c"], n_bins=10,
                         timestamp="ts", **kw)


def _brute_psi(edges_or_cats, ref_vals, cur_vals) -> float | None:
    """PSI of ``cur_vals`` against ``ref_vals`` by direct comparison (numeric: bins
    [e_i, e_i+1) with open outer bins; categorical: each category), shares floored at 1e-4."""
    def bins(v):
        if isinstance(edges_or_cats[0], str):
            return edges_or_cats.index(v) if v is not None else None
        return None if not math.isfinite(v) else sum(1 for e in edges_or_cats if v >= e)
    n = len(edges_or_cats) + (0 if isinstance(edges_or_cats[0], str) else 1)
    r = [b for b in map(bins, ref_vals) if b is not None]
    c = [b for b in map(bins, cur_vals) if b is not None]
    if len(r) < 2 or len(c) < 2:
        return None
    out = 0.0
    for k in range(n):
        rs, cs = max(r.count(k) / len(r), 1e-4), max(c.count(k) / len(c), 1e-4)
        out += (cs - rs) * math.log(cs / rs)
    return out


def test_each_limit_is_the_3_sigma_interval_of_the_chunk_psi_floored(tmp_path):
    rng = np.random.default_rng(4)
    n = 3000
    drift = np.linspace(0, 0.6, n)  # a slow trend: chunks differ by more than noise
    df = _frame(rng.normal(drift, 1.0), rng.choice(["a", "b", "c"], n, p=[.6, .3, .1]).tolist(),
                rng.beta(2, 5, n))
    fitted = _fit(df)
    bins = BreakerReference.from_reference(fitted, ["x", "c"])
    limits = calibrate(bins, fitted.rows, window=400)
    ordered = df.sort("ts")
    truth_cols = {"x": (list(bins.features[0].edges), ordered["x"].to_list()),
                  "c": (list(bins.features[1].categories), ordered["c"].to_list()),
                  None: (list(bins.score.edges), ordered["prediction"].to_list())}
    assert [lv.size for lv in limits.levels] == window_sizes(400, 10) == [50, 100, 200, 400]
    for level in limits.levels:
        layout = chunk_layout(n, level.size)
        for name, (edges, vals) in truth_cols.items():
            psis = [_brute_psi(edges, vals[:a] + vals[b:], vals[a:b])
                    for a, b in zip(layout.starts.tolist(), layout.ends.tolist())]
            k = len(psis)  # 3 sigma for one new chunk: the t prediction interval
            m = scipy.stats.t.ppf(scipy.stats.norm.cdf(3.0), k - 1) * np.sqrt(1 + 1 / k)
            want = max(float(np.mean(psis) + m * np.std(psis, ddof=1)), 0.1)
            got = level.score if name is None else level.features[name]
            assert got.threshold == pytest.approx(want, rel=1e-9), (level.size, name)
            assert got.chunks == layout.n_chunks and got.chunk_rows == level.size
    # armed at the smallest size where the score's own noise is within the floor
    at_floor = [lv.size for lv in limits.levels if lv.score.source == "floor"]
    assert limits.min_records == (at_floor[0] if at_floor else 400)


def _seasonal_reference(window: int):
    """Six seasons alternating the mean of x by +-0.8 sd, 1,000 rows each."""
    rng = np.random.default_rng(7)
    season = np.repeat(np.tile([0.8, -0.8], 3), 1000)
    x = rng.normal(season, 1.0)
    df = _frame(x, rng.choice(["a", "b"], x.size).tolist(), rng.uniform(size=x.size))
    return calibrated_reference(_fit(df), ["x", "c"], window=window), rng


def _observe(br, x, rng, score=None):
    m = x.size
    return br.observe({"x": x, "c": rng.choice(["a", "b"], m).tolist()},
                      rng.uniform(size=m) if score is None else score)


def test_a_season_of_the_reference_does_not_trip_it_and_a_shift_beyond_does():
    ref, rng = _seasonal_reference(500)
    limit_x = ref.limits.at(500).features["x"]
    assert limit_x.source == "calibrated" and limit_x.threshold > 0.25  # the seasons' spread
    # one season as the reference saw it: a fixed 0.25 would trip, the calibrated limit not
    season = rng.normal(0.8, 1.0, 500)
    calibrated = CircuitBreaker(ref, BreakerSettings(window=500))
    fixed = CircuitBreaker(ref, BreakerSettings(window=500, feature_psi=0.25))
    assert _observe(calibrated, season, rng).state == "closed"
    assert _observe(fixed, season, rng).state == "tripped"
    assert calibrated.status().feature_psi["x"] > 0.25
    # a shift no season ever showed trips it
    shifted = CircuitBreaker(ref, BreakerSettings(window=500, max_drift_share=0.4))
    st = _observe(shifted, rng.normal(3.0, 1.0, 500), rng)
    assert st.state == "tripped" and "x" in st.drifting


def test_not_armed_before_its_calibrated_minimum():
    ref, rng = _seasonal_reference(500)
    br = CircuitBreaker(ref, BreakerSettings(window=500))
    need = ref.limits.min_records
    st = _observe(br, rng.normal(5.0, 1.0, need - 1), rng, score=np.full(need - 1, 0.999))
    assert st.state == "closed" and not st.armed and st.min_records == need
    st = _observe(br, rng.normal(5.0, 1.0, 1), rng, score=np.full(1, 0.999))
    assert st.armed and st.state == "tripped"
    # an explicit minimum wins
    early = CircuitBreaker(ref, BreakerSettings(window=500, min_requests=50))
    assert _observe(early, rng.normal(5.0, 1.0, 60), rng, np.full(60, 0.999)).state == "tripped"


def test_limits_survive_a_round_trip_and_old_references_keep_fixed_limits():
    ref, _ = _seasonal_reference(500)
    again = BreakerReference.from_dict(ref.as_dict())
    assert again.limits == ref.limits and again == ref
    rng = np.random.default_rng(1)
    df = _frame(rng.normal(size=2000), rng.choice(["a", "b"], 2000).tolist(), rng.uniform(size=2000))
    old = calibrated_reference(_fit(df, keep_rows=False), ["x", "c"], window=500)
    assert old.limits is None
    st = CircuitBreaker(old, BreakerSettings(window=500)).status()
    assert st.calibration == LEGACY_NOTE and st.min_records == 200
