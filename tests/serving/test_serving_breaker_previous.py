"""``serving.breaker.reference: previous``: the live window against the window of traffic before
it, with limits calibrated on consecutive reference chunks. Checked against brute force (the
lagged window by its definition, the PSI from numpy shares of the last W records and the W
before, the calibration by a loop over chunk pairs), a slow season it must sit through (which
trips the training reference) and a step it must catch."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.stats

from mlops.errors import ConfigError
from mlops.monitoring.reference import fit_reference
from mlops.serving.breaker import CircuitBreaker
from mlops.serving.breaker.bins import BreakerReference
from mlops.serving.breaker.limits import calibrate, calibrated_reference, window_sizes
from mlops.serving.breaker.window import EntityWindow
from mlops.serving.settings import BreakerSettings, ServingSettings

T0 = datetime(2024, 1, 1)


def _fit(x: np.ndarray, c: list[str], p: np.ndarray):
    ts = [T0 + timedelta(minutes=i) for i in range(x.size)]
    order = np.random.default_rng(0).permutation(x.size)  # the reference puts them back in order
    df = pl.DataFrame({"ts": ts, "x": x, "c": c, "prediction": p})[order]
    return fit_reference(df, numeric=["x", "prediction"], categorical=["c"], n_bins=10,
                         timestamp="ts")


def _bin(edges_or_cats, v) -> int | None:
    """The bin of one value by direct comparison (numeric: [e_i, e_i+1), open outer bins)."""
    if isinstance(edges_or_cats[0], str):
        return None if v is None else (edges_or_cats.index(v) if v in edges_or_cats
                                       else len(edges_or_cats))
    return None if not math.isfinite(v) else sum(1 for e in edges_or_cats if v >= e)


def _brute_psi(edges_or_cats, before, now) -> float:
    """PSI of ``now`` against ``before`` from numpy shares of their bins, floored at 1e-4."""
    n = len(edges_or_cats) + 1
    b = np.array([k for k in (_bin(edges_or_cats, v) for v in before) if k is not None])
    c = np.array([k for k in (_bin(edges_or_cats, v) for v in now) if k is not None])
    r = np.maximum(np.bincount(b, minlength=n) / b.size, 1e-4)
    s = np.maximum(np.bincount(c, minlength=n) / c.size, 1e-4)
    return float(np.sum((s - r) * np.log(s / r)))


# ---- the lagged window, by its definition ----------------------------------------------

def _kept(records: list[tuple], size: int, cap: int | None) -> list[int]:
    """The window's definition: the last ``size`` records; of those each entity's latest ``cap``."""
    kept, seen = [], {}
    for entity, value in reversed(records[-size:]):
        seen[entity] = seen.get(entity, 0) + 1
        if cap is None or seen[entity] <= cap:
            kept.append(value)
    return kept


def _departed(stream: list[tuple], size: int, cap: int) -> list[tuple]:
    """The records that left the window, in the order they left: record t leaves when the
    record ``size`` later arrives (the ring), or earlier when the ``cap``-th later record of
    its entity arrives (its entity's oldest); at one arrival the ring's goes first."""
    out, later = [], {}
    for t in range(len(stream) - 1, -1, -1):
        entity = stream[t][0]
        nexts = later.setdefault(entity, [])
        ring = t + size
        by_cap = nexts[-cap] if len(nexts) >= cap else math.inf  # nexts: newest first
        leave, kind = (ring, 0) if ring <= by_cap else (by_cap, 1)
        if leave < len(stream):
            out.append((leave, kind, stream[t]))
        nexts.append(t)
    return [rec for _, _, rec in sorted(out, key=lambda r: r[:2])]


@pytest.mark.parametrize("seed", range(6))
def test_the_lagged_window_is_its_definition_on_the_records_that_left(seed):
    rng = np.random.default_rng(seed)
    size, cap, width = int(rng.integers(5, 50)), int(rng.integers(1, 6)), 6
    w = EntityWindow(size=size, columns=1, width=width, per_entity=cap, lagged=True)
    weights = np.r_[np.full(3, 30.0), np.ones(30)]  # a few busy entities among quiet ones
    stream: list[tuple] = []
    for _ in range(30):
        m = int(rng.integers(1, 2 * size))   # batches longer than the window too
        ents = [f"e{k}" for k in rng.choice(weights.size, size=m, p=weights / weights.sum())]
        vals = rng.integers(0, width, size=m)
        w.push(vals[:, None].astype(np.int16), ents)
        stream += list(zip(ents, vals.tolist()))
        now = _kept(stream, size, cap)
        before = _kept(_departed(stream, size, cap), size, cap)
        assert w.counts[0].tolist() == np.bincount(now, minlength=width).tolist()
        assert w.lagged.counts[0].tolist() == np.bincount(before, minlength=width).tolist()
        assert w.lagged.filled == len(before)
    w.clear()
    assert w.filled == 0 and w.lagged.filled == 0 and w.lagged.counts.sum() == 0


# Both sides of the PSI against the window before hold W records, so its sampling noise is
# about twice the noise against a long reference (mean ~ (bins - 1) x 2 / W): at W = 1,000 the
# 0.1 floor sits far above it, and the tests below judge the season and the step, not noise.
W = 1000


def _flat_reference(n=20_000, seed=1, reference="previous", window=W):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    fitted = _fit(x, rng.choice(["a", "b", "c"], n).tolist(), _score(x, rng))
    return calibrated_reference(fitted, ["x", "c"], window=window, reference=reference)


def _score(x, rng):
    return 1.0 / (1.0 + np.exp(-(x + rng.normal(0, 0.5, x.size))))


def test_the_breaker_psi_is_the_last_w_records_against_the_w_before():
    ref = _flat_reference()
    br = CircuitBreaker(ref, BreakerSettings(window=300, reference="previous", min_values=1))
    # re-calibrate for this window size (the limits do not enter the PSI itself)
    rng = np.random.default_rng(2)
    xs, cs, ps = [], [], []
    for _ in range(40):
        m = int(rng.integers(1, 60))
        x = rng.normal(rng.uniform(-1, 1), 1.0, m)
        x[rng.random(m) < 0.05] = np.nan
        c = rng.choice(["a", "b", "c", "zz"], m, p=[.5, .3, .1, .1]).tolist()
        p = rng.uniform(size=m)
        st = br.observe({"x": x, "c": c}, p)
        xs += x.tolist()
        cs += c
        ps += p.tolist()
    x_edges, cats = list(ref.features[0].edges), list(ref.features[1].categories)
    W = 300
    assert len(xs) > 2 * W  # both windows full
    assert st.feature_psi["x"] == pytest.approx(_brute_psi(x_edges, xs[-2 * W:-W], xs[-W:]), abs=1e-12)
    assert st.feature_psi["c"] == pytest.approx(_brute_psi(cats, cs[-2 * W:-W], cs[-W:]), abs=1e-12)
    assert st.prediction_psi == pytest.approx(
        _brute_psi(list(ref.score.edges), ps[-2 * W:-W], ps[-W:]), abs=1e-12)


def test_consecutive_chunk_limits_equal_a_loop_over_chunk_pairs():
    rng = np.random.default_rng(4)
    n = 5000
    x = rng.normal(np.sin(np.arange(n) / 700.0), 1.0)   # a season: consecutive chunks differ a little
    c = rng.choice(["a", "b", "c"], n, p=[.6, .3, .1]).tolist()
    score = _score(x, rng)
    fitted = _fit(x, c, score)
    bins = BreakerReference.from_reference(fitted, ["x", "c"])
    limits = calibrate(bins, fitted.rows, window=400, reference="previous")
    assert limits.reference == "previous"
    assert [lv.size for lv in limits.levels] == window_sizes(400, 10) == [50, 100, 200, 400]
    cols = {"x": (list(bins.features[0].edges), x.tolist()),   # generated in time order
            "c": (list(bins.features[1].categories), c),
            None: (list(bins.score.edges), score.tolist())}
    for level in limits.levels:
        size = level.size
        chunks = n // size
        for name, (edges, vals) in cols.items():
            psis = [_brute_psi(edges, vals[(i - 1) * size:i * size], vals[i * size:(i + 1) * size])
                    for i in range(1, chunks)]
            k = len(psis)
            m = scipy.stats.t.ppf(scipy.stats.norm.cdf(3.0), k - 1) * np.sqrt(1 + 1 / k)
            want = max(float(np.mean(psis) + m * np.std(psis, ddof=1)), 0.1)
            got = level.score if name is None else level.features[name]
            assert got.threshold == pytest.approx(want, rel=1e-9), (size, name)
            assert got.chunks == chunks - 1 and got.chunk_rows == size  # pairs of chunks
    at_floor = [lv.size for lv in limits.levels if lv.score.source == "floor"]
    assert limits.min_records == (at_floor[0] if at_floor else 400)
    # a round trip keeps what they judge
    again = BreakerReference.from_dict(calibrated_reference(
        fitted, ["x", "c"], window=400, reference="previous").as_dict())
    assert again.limits.reference == "previous" and again.limits == limits


def _season_stream(rng, n: int, period: float, amplitude: float):
    """Live traffic whose x follows a slow sinusoidal season (sd units), scores with it."""
    t = np.arange(n)
    x = rng.normal(amplitude * np.sin(2 * np.pi * t / period), 1.0)
    return x, rng.choice(["a", "b", "c"], n).tolist(), _score(x, rng)


def _run(br, x, c, p, batch=25) -> int | None:
    """Observe in batches; the record count at the first trip (None: never)."""
    for i in range(0, x.size, batch):
        st = br.observe({"x": x[i:i + batch], "c": c[i:i + batch]}, p[i:i + batch])
        if st.state == "tripped":
            return i + batch
    return None


def test_a_slow_season_trips_the_training_reference_but_not_the_window_before():
    """The reference holds no season (one flat period); live traffic swings by 1.5 sd over
    24,000 records and back: against the training reference it is a shift, against the
    window before it moves little (at most 0.1 sd from one window to the next)."""
    rng = np.random.default_rng(5)
    x, c, p = _season_stream(rng, 48_000, period=96_000, amplitude=1.5)
    previous = CircuitBreaker(_flat_reference(), BreakerSettings(window=W, reference="previous"))
    training = CircuitBreaker(_flat_reference(reference="training"), BreakerSettings(window=W))
    assert _run(previous, x, c, p) is None
    st = previous.status()
    assert st.armed and st.compared_with == "the 1,000 records before"
    assert max(st.feature_psi["x"], st.prediction_psi) < 0.1
    assert _run(training, x, c, p) is not None
    assert training.status().compared_with == "the training reference"


def test_a_step_change_trips_the_window_before_and_only_once_armed():
    rng = np.random.default_rng(6)
    ref = _flat_reference()
    br = CircuitBreaker(ref, BreakerSettings(window=W, reference="previous"))
    need = ref.limits.min_records
    x, c, p = _season_stream(rng, W + need - 1, period=1e9, amplitude=0.0)
    assert _run(br, x, c, p) is None
    st = br.status()
    assert not st.armed and br.window.lagged.filled == need - 1  # the window before is short
    x, c, p = _season_stream(rng, 1, period=1e9, amplitude=0.0)
    assert _run(br, x, c, p) is None and br.status().armed
    x, c, p = _season_stream(rng, 3 * W, period=1e9, amplitude=0.0)
    assert _run(br, x, c, p) is None  # stable traffic: quiet
    step, c2, _ = _season_stream(rng, W, period=1e9, amplitude=0.0)
    step = step + 1.0  # one sd at once: in a window's time, ten times what the season moved
    at = _run(br, step, c2, _score(step, rng))
    assert at is not None and at <= W
    st = br.status()
    assert st.state == "tripped" and st.as_dict()["reference"] == "previous"
    assert st.as_dict()["compared_with"] == "the 1,000 records before"
    st = br.reset()  # both windows emptied
    assert st.state == "closed" and br.window.filled == 0 and br.window.lagged.filled == 0


def test_limits_calibrated_for_the_other_reference_and_unknown_references_are_config_errors():
    with pytest.raises(ConfigError, match="serving.breaker.reference"):
        CircuitBreaker(_flat_reference(reference="training"), BreakerSettings(reference="previous"))
    with pytest.raises(ConfigError, match="serving.breaker.reference"):
        CircuitBreaker(_flat_reference(), BreakerSettings())
    bad = ServingSettings()
    bad.breaker.reference = "last_week"
    with pytest.raises(ConfigError, match="serving.breaker.reference"):
        bad.validate()
