"""Circuit breaker: PSI semantics, incremental window, tripping on real drift, actions."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import SPEC, breaker_reference, make_model, record, scores_of

from mlops.data.synthetic import SyntheticParams, generate
from mlops.errors import ConfigError, DataError
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_features
from mlops.monitoring import stats
from mlops.monitoring.reference import fit_reference
from mlops.serving.breaker import BreakerReference, CircuitBreaker, FeatureBins, psi
from mlops.serving.http.app import create_app
from mlops.serving.settings import BreakerSettings


def _brute_bin(edges, x):
    """Index of [e_i, e_i+1) with open outer bins, by direct comparison."""
    if x is None or not math.isfinite(x):
        return -1
    return sum(1 for e in edges if x >= e)


def test_psi_matches_hand_computation_with_floor():
    c, r = [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]
    want = sum((max(a, 1e-4) - max(b, 1e-4)) * math.log(max(a, 1e-4) / max(b, 1e-4))
               for a, b in zip(c, r))
    assert psi(c, r) == pytest.approx(want, rel=1e-12)
    assert psi(r, r) == 0.0


def test_numeric_bins_are_left_closed_with_open_outer_bins():
    b = FeatureBins("x", (0.25, 0.25, 0.25, 0.25), edges=(1.0, 2.0, 3.0))
    xs = [-1e9, 0.999, 1.0, 1.5, 2.0, 2.999, 3.0, 1e9, float("nan"), float("inf")]
    assert b.bin(xs).tolist() == [_brute_bin(b.edges, x) for x in xs]
    assert b.bin(xs).tolist()[-2:] == [-1, -1]


def test_categorical_bins_have_an_unseen_bin():
    b = FeatureBins("c", (0.5, 0.5, 0.0), categories=("a", "b"))
    assert b.bin(["a", "b", "zzz", None]).tolist() == [0, 1, 2, -1]


def test_reference_bins_are_monitorings_numpy_quantile_edges_without_duplicates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    k = np.r_[np.zeros(900), np.ones(100)]
    df = pl.DataFrame({"x": x, "k": k, "c": ["a"] * 300 + ["b"] * 700, "prediction": x})
    fitted = fit_reference(df, numeric=["x", "k", "prediction"], categorical=["c"], n_bins=10)
    ref = BreakerReference.from_reference(fitted, ["x", "k", "c"])
    fx, fk, fc = ref.features
    assert np.allclose(fx.edges, np.quantile(x, np.arange(1, 10) / 10))
    # eight of the nine quantiles are 0.0: one edge each, linear interpolation for q=0.9
    assert fk.edges == pytest.approx((0.0, 0.1)) and len(fk.shares) == 3
    assert fk.shares == pytest.approx((0.0, 0.9, 0.1))
    assert fc.categories == ("a", "b") and fc.shares == pytest.approx((0.3, 0.7, 0.0))
    assert sum(fx.shares) == pytest.approx(1.0)
    assert ref.score.edges == fx.edges and ref.score.shares == fx.shares
    assert BreakerReference.from_dict(ref.as_dict()) == ref


def test_reference_without_the_score_is_a_data_error():
    fitted = fit_reference(pl.DataFrame({"x": np.arange(10.0)}), numeric=["x"], categorical=[])
    with pytest.raises(DataError, match="prediction"):
        BreakerReference.from_reference(fitted, ["x"])


def test_breaker_psi_is_monitorings_psi_on_the_same_bins():
    """The window's PSI per feature equals monitoring.stats.psi over monitoring's bins of
    the same values (bin_counts on the reference edges; categories + unseen)."""
    rng = np.random.default_rng(3)
    train = pl.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(list("abc"), 2000).tolist(),
                          "prediction": rng.uniform(size=2000)})
    fitted = fit_reference(train, numeric=["x", "prediction"], categorical=["c"], n_bins=8)
    ref = BreakerReference.from_reference(fitted, ["x", "c"])
    s = BreakerSettings(window=400, min_requests=10, min_values=10, feature_psi=1e9,
                        prediction_psi=1e9)
    x, c, p = rng.normal(0.4, 1.0, 300), rng.choice(list("abcz"), 300).tolist(), rng.beta(2, 1, 300)
    st = CircuitBreaker(ref, s).observe({"x": x, "c": c}, p)
    nx, cx = fitted.numeric["x"], fitted.categorical["c"]
    want_x = stats.psi(stats.shares(nx.counts), stats.shares(stats.bin_counts(x, nx.edges)))
    seen = [float(sum(v == k for v in c)) for k in cx.categories]
    want_c = stats.psi(stats.shares(np.append(cx.counts, 0.0)),
                       stats.shares(np.append(seen, 300 - sum(seen))))
    npred = fitted.numeric["prediction"]
    want_p = stats.psi(stats.shares(npred.counts), stats.shares(stats.bin_counts(p, npred.edges)))
    assert st.feature_psi["x"] == pytest.approx(want_x, rel=1e-12)
    assert st.feature_psi["c"] == pytest.approx(want_c, rel=1e-12)
    assert st.prediction_psi == pytest.approx(want_p, rel=1e-12)
    assert psi is stats.psi  # one PSI: the breaker's is monitoring's


def test_unseen_categories_psi_by_hand():
    """Shares (.25, .25, .5) against a reference (.5, .5, 0): the empty unseen bin is
    floored at 1e-4 (DESIGN §6)."""
    b = FeatureBins("c", (0.5, 0.5, 0.0), categories=("a", "b"))
    idx = b.bin(["a", "b", "z", "z"])
    cur = np.bincount(idx, minlength=3) / 4
    want = 2 * (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    assert psi(b.shares, cur) == pytest.approx(want, rel=1e-12)


def test_bad_reference_is_a_config_error():
    with pytest.raises(ConfigError, match="needs 3 reference shares"):
        FeatureBins("x", (0.5, 0.5), edges=(1.0, 2.0))


def test_incremental_window_equals_recount_over_the_last_n():
    rng = np.random.default_rng(1)
    ref = breaker_reference(pl.DataFrame({"x": rng.normal(size=500), "c": list("abcab" * 100)}),
                            rng.uniform(size=500), categorical=["c"], n_bins=5)
    s = BreakerSettings(window=50, min_requests=10, min_values=10, feature_psi=1e9,
                        prediction_psi=1e9)
    br = CircuitBreaker(ref, s)
    xs, cs, ps = [], [], []
    for step in range(12):
        m = int(rng.integers(1, 30))
        x = rng.normal(step * 0.1, 1, size=m)
        x[rng.random(m) < 0.1] = np.nan
        c = rng.choice(list("abcz"), size=m).tolist()
        p = rng.uniform(size=m)
        st = br.observe({"x": x, "c": c}, p)
        xs += x.tolist()
        cs += c
        ps += p.tolist()
        last_x, last_c, last_p = xs[-50:], cs[-50:], ps[-50:]
        fx, fc = ref.features

        def shares(bins, values):
            idx = [bins.bin([v])[0] if not isinstance(v, float) else _brute_bin(bins.edges, v)
                   for v in values]
            idx = [i for i in idx if i >= 0]
            return np.bincount(idx, minlength=bins.n_bins) / len(idx), len(idx)
        want_x, n_x = shares(fx, last_x)
        want_c, _ = shares(fc, last_c)
        want_p, _ = shares(ref.score, last_p)
        assert st.window_records == min(len(ps), 50)
        if n_x >= 10:
            assert st.feature_psi["x"] == pytest.approx(psi(want_x, fx.shares), abs=1e-12)
        if len(last_c) >= 10:
            assert st.feature_psi["c"] == pytest.approx(psi(want_c, fc.shares), abs=1e-12)
            assert st.prediction_psi == pytest.approx(psi(want_p, ref.score.shares), abs=1e-12)


@pytest.fixture(scope="module")
def drift_setup():
    """Train on 30 stable days; 'stable' and 'shifted' continue from the same users."""
    base = generate(SyntheticParams(n_users=400, days=60, seed=7))
    shifted = generate(SyntheticParams(n_users=400, days=60, seed=7,
                                       scenario="covariate_shift", drift_start=30))
    plan = compile_plan(SPEC, base.schema)
    cut = pl.datetime(2024, 1, 31)
    fb = compute_features(plan, base, keep=["is_fraud"]).collect()
    fs = compute_features(plan, shifted).collect()
    train = fb.filter(pl.col("event_ts") < cut).sort("event_ts")
    model = make_model(plan).fit(train.select(plan.feature_names), train["is_fraud"].to_numpy())
    # limits calibrated on the training rows in time order, for a window of 400
    ref = breaker_reference(train.select(plan.feature_names), scores_of(model, train, plan),
                            categorical=plan.categorical, window=400)
    late = pl.col("event_ts") >= cut
    return plan, model, ref, fb.filter(late), fs.filter(late)


def _run(plan, model, ref, frame, settings, step=25):
    br = CircuitBreaker(ref, settings)
    states = []
    for i in range(0, frame.height, step):
        part = frame.slice(i, step)
        states.append(br.observe({n: part[n] for n in plan.feature_names},
                                 scores_of(model, part, plan)))
    return br, states


def test_breaker_trips_on_covariate_shift_and_not_on_stable_inputs(drift_setup):
    """Calibrated limits (no threshold given): quiet on later stable traffic, trips on the
    shift, never before its calibrated minimum."""
    plan, model, ref, stable, shifted = drift_setup
    s = BreakerSettings(window=400)
    br, states = _run(plan, model, ref, stable.sample(1200, seed=0, shuffle=True), s)
    assert all(st.state == "closed" for st in states)
    assert states[-1].armed and states[-1].calibration == "calibrated on the model's reference"
    br, states = _run(plan, model, ref, shifted.sample(1200, seed=0, shuffle=True), s)
    assert br.tripped and {"channel", "amount"} <= set(states[-1].drifting)
    first = next(i for i, st in enumerate(states) if st.state == "tripped")
    assert states[first].window_records >= ref.limits.min_records == br.min_records
    assert states[-1].feature_psi["channel"] > states[-1].feature_limits["channel"]
    assert br.reset().state == "closed" and br.status().window_records == 0


ON_TRIP = [("abstain", 200, "abstain", {}), ("default", 200, "default", {"default_value": 0.0}),
           ("fallback", 200, "fallback", {}), ("refuse", 503, None, {})]


@pytest.mark.parametrize("on_trip,status,served,extra", ON_TRIP)
def test_breaker_on_trip_through_the_app(world, world_v2, make_state, on_trip, status, served,
                                         extra):
    plan = world.plan
    shifted = generate(SyntheticParams(n_users=150, days=20, seed=11, scenario="covariate_shift",
                                       drift_start=0, magnitude=3.0))
    recs = [record(r, plan) for r in shifted.head(120).to_dicts()]
    s = dict(window=100, min_requests=50, min_values=30, max_drift_share=0.1)
    br = CircuitBreaker(world.reference, BreakerSettings(**s, on_trip=on_trip, **extra))
    fb = (world_v2.model, world_v2.info) if on_trip == "fallback" else None
    state = make_state(breaker=br, fallback=fb, admin_token="tok", log=True)
    with TestClient(create_app(state)) as client:
        for i in range(0, 60, 20):
            assert client.post("/predict", json={"records": recs[i:i + 20]}).status_code \
                in (200, 503)
        assert br.tripped, br.status()
        r = client.post("/predict", json={"records": recs[60:70]})
        assert r.status_code == status, r.text
        if status == 200:
            body = r.json()
            assert body["served_by"] == served and body["decisions"] == [served] * 10
            assert all("circuit breaker tripped" in w[-1] for w in body["warnings"])
            state.prediction_log.flush()
            logged = (pl.scan_parquet(f"{state.prediction_log.directory}/*.parquet")
                      .filter(pl.col("request_id").is_in(body["request_ids"])).collect())
            order = {rid: k for k, rid in enumerate(body["request_ids"])}
            logged = logged.sort(pl.col("request_id").replace_strict(order))
            assert logged["served_by"].to_list() == [served] * 10
        if on_trip == "abstain":  # no invented value: nothing is answered, nothing logged
            assert body["predictions"] == [None] * 10 and body["probabilities"] == [None] * 10
            assert logged["prediction"].null_count() == 10
            assert logged["probability"].null_count() == 10
        elif on_trip == "default":  # the declared value, and its label at the threshold
            assert body["probabilities"] == [0.0] * 10 and body["predictions"] == [0] * 10
        elif on_trip == "fallback":  # the fallback's scores on the very features logged
            assert body["model"] == {"name": "fraud", "version": "2"}
            want = world_v2.model.predict_proba(
                logged.unnest("features").select(plan.feature_names))[:, 1]
            assert np.allclose(body["probabilities"], want, rtol=0, atol=1e-12)
        else:
            assert "circuit breaker tripped" in r.json()["detail"]
            assert r.headers["retry-after"] == "1"  # poll_seconds: a reset is seen by then
        ready = client.get("/ready")
        assert ready.json()["checks"]["breaker"]["state"] == "tripped"
        assert ready.json()["checks"]["breaker"]["on_trip"] == on_trip
        assert (ready.status_code == 503) is (on_trip == "refuse")
        metrics = client.get("/metrics").text
        assert "mlops_breaker_tripped 1.0" in metrics
        assert 'mlops_breaker_feature_psi{feature="channel"}' in metrics
        reset = client.post("/admin/breaker/reset", headers={"Authorization": "Bearer tok"})
        assert reset.status_code == 200 and reset.json()["breaker"]["state"] == "closed"
        after = client.post("/predict", json={"records": recs[70:75]})
        assert after.status_code == 200 and after.json()["served_by"] == "model"
        assert after.json()["decisions"] == ["model"] * 5


def test_fallback_without_a_fallback_model_is_a_config_error(world, make_state):
    br = CircuitBreaker(world.reference, BreakerSettings(on_trip="fallback"))
    with pytest.raises(ConfigError, match="serving.breaker.fallback"):
        make_state(breaker=br)


def test_a_default_value_is_only_answered_when_declared(world, make_state):
    with pytest.raises(ConfigError, match="serving.breaker.default_value"):
        make_state(breaker=CircuitBreaker(world.reference, BreakerSettings(on_trip="default")))
    with pytest.raises(ConfigError, match="probability in"):  # the classifier's probability
        make_state(breaker=CircuitBreaker(world.reference, BreakerSettings(
            on_trip="default", default_value=3.0)))


@pytest.mark.parametrize("old,new", [({"action": "default"}, "on_trip: abstain"),
                                     ({"action": "fallback"}, "breaker.fallback"),
                                     ({"default_score": 0.0}, "default_value: 0.0"),
                                     ({"max_records_per_entity": 5}, "max_entity_share: 0.01")])
def test_removed_breaker_keys_name_their_replacement(old, new):
    from mlops.serving.settings import ServingSettings
    with pytest.raises(ConfigError, match="serving.breaker") as err:
        ServingSettings(breaker=BreakerSettings(**old)).validate()
    assert new in str(err.value)
