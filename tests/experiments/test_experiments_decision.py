"""analyze() end to end and the decision rules on constructed cases."""
from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as st

from mlops.errors import ExperimentError
from mlops.experiments import (
    ExperimentSpec,
    SufficientStats,
    adjust_pvalues,
    aggregate_units,
    analyze,
    assign_units,
    decide,
)


def ss(mean: float, sd: float, n: int) -> SufficientStats:
    """Sufficient stats of n units with exactly this mean and sample sd."""
    return SufficientStats(n, n * mean, (n - 1) * sd ** 2 + n * mean ** 2)


def make_spec(**kw) -> ExperimentSpec:
    base = dict(key="exp", variants=[{"name": "control", "model": "m@champion", "weight": 0.5},
                                     {"name": "treatment", "model": "m@challenger", "weight": 0.5}],
                primary_metric={"name": "conv", "direction": "increase"},
                guardrails=[{"name": "latency", "direction": "decrease", "margin": 0.05,
                             "margin_type": "relative"}],
                min_duration_days=7)
    base.update(kw)
    return ExperimentSpec(**base)


def table(conv_t=0.12, lat_t=100.0, n_c=10_000, n_t=10_000, conv_c=0.10):
    def arm(conv, lat, n):
        return {"conv": ss(conv, math.sqrt(conv * (1 - conv)), n), "latency": ss(lat, 10.0, n)}
    return {"control": arm(conv_c, 100.0, n_c), "treatment": arm(conv_t, lat_t, n_t)}


def test_ship_when_better_no_srm_guardrails_pass_duration_reached():
    out = analyze(make_spec(), table(), days_elapsed=14)
    assert out["decision"] == "ship" and out["winner"] == "treatment"
    e = out["metrics"]["conv"]["variants"]["treatment"]
    assert e["outcome"] == "better" and e["significant"]
    assert e["abs_diff"] == pytest.approx(0.02) and e["rel_lift"] == pytest.approx(0.2)
    assert out["guardrails"][0]["passed"] and not out["srm"]["flagged"]
    json.dumps(out, allow_nan=False)  # strict JSON


def test_keep_running_before_min_duration_or_unknown_duration():
    for days in (3, None):
        out = analyze(make_spec(), table(), days_elapsed=days)
        assert out["decision"] == "keep_running"
        assert "Minimum duration not reached" in out["reasons"][0]
    assert analyze(make_spec(min_duration_days=0), table())["decision"] == "ship"


def test_do_not_ship_when_significantly_worse():
    out = analyze(make_spec(), table(conv_t=0.08), days_elapsed=14)
    assert out["decision"] == "do_not_ship"
    assert out["metrics"]["conv"]["variants"]["treatment"]["outcome"] == "worse"


def test_do_not_ship_when_a_guardrail_fails_even_if_primary_improves():
    out = analyze(make_spec(), table(lat_t=110.0), days_elapsed=14)  # +10 % latency, margin 5 %
    assert out["decision"] == "do_not_ship"
    g = out["guardrails"][0]
    assert not g["passed"] and g["estimate"] == pytest.approx(0.1)
    assert any("Guardrail 'latency' failed" in r for r in out["reasons"])


def test_srm_blocks_shipping():
    out = analyze(make_spec(), table(n_c=10_000, n_t=10_600), days_elapsed=14)
    assert out["srm"]["flagged"] and out["decision"] == "keep_running"
    assert any("Sample ratio mismatch" in r for r in out["reasons"])


def test_keep_running_when_inconclusive_reports_power_and_remaining_sample():
    out = analyze(make_spec(mde=0.05), table(conv_t=0.101, n_c=2000, n_t=2000), days_elapsed=10)
    assert out["decision"] == "keep_running"
    p = out["power"]["variants"]["treatment"]
    var_c, var_t = 0.1 * 0.9, 0.101 * 0.899
    se = math.sqrt(var_c / 2000 + var_t / 2000)
    z = st.norm.ppf(0.975)
    expected_power = st.norm.cdf(0.005 / se - z) + st.norm.cdf(-0.005 / se - z)
    assert out["power_achieved"] == pytest.approx(expected_power)
    n_req = math.ceil((z + st.norm.ppf(0.8)) ** 2 * (var_c + var_t) / 0.005 ** 2)
    assert p["n_required_per_arm"]["control"] == n_req
    assert p["n_remaining_per_arm"]["control"] == n_req - 2000
    assert p["days_remaining"] == math.ceil((n_req - 2000) / (4000 / 10 * 0.5))
    assert any("Power for 'treatment'" in r for r in out["reasons"])


def test_decrease_metric_lower_is_better():
    spec = make_spec(primary_metric={"name": "latency", "direction": "decrease"}, guardrails=[])
    out = analyze(spec, {"control": {"latency": ss(100, 10, 5000)},
                         "treatment": {"latency": ss(98, 10, 5000)}}, days_elapsed=7)
    assert out["decision"] == "ship"
    e = out["metrics"]["latency"]["variants"]["treatment"]
    assert e["prob_beat_control"] > 0.99


def test_three_arms_holm_across_treatments_and_best_winner():
    spec = make_spec(variants=[{"name": "control", "model": "a", "weight": 0.4},
                               {"name": "b", "model": "b", "weight": 0.3},
                               {"name": "c", "model": "c", "weight": 0.3}],
                     guardrails=[], secondary_metrics=["revenue", "clicks"])

    def arm(conv, rev, n):
        return {"conv": ss(conv, math.sqrt(conv * (1 - conv)), n), "revenue": ss(rev, 5, n),
                "clicks": ss(3, 2, n)}

    stats = {"control": arm(0.10, 10.0, 8000), "b": arm(0.115, 10.2, 6000), "c": arm(0.125, 10.0, 6000)}
    out = analyze(spec, stats, days_elapsed=30)
    conv = out["metrics"]["conv"]["variants"]
    raw = [conv["b"]["p_value"], conv["c"]["p_value"]]
    assert [conv["b"]["p_value_adjusted"], conv["c"]["p_value_adjusted"]] == pytest.approx(
        adjust_pvalues(raw, "holm"))
    pairs = [(m, v) for m in ("revenue", "clicks") for v in ("b", "c")]
    sec = [out["metrics"][m]["variants"][v]["p_value"] for m, v in pairs]
    adj = [out["metrics"][m]["variants"][v]["p_value_adjusted"] for m, v in pairs]
    assert adj == pytest.approx(adjust_pvalues(sec, "holm"))
    assert out["decision"] == "ship" and out["winner"] == "c"
    assert out["srm"]["expected"] == pytest.approx({"control": 8000, "b": 6000, "c": 6000})


def test_sequential_mode_needs_the_always_valid_interval_to_exclude_zero():
    stats = table(conv_t=0.109, n_c=10_000, n_t=10_000)
    fixed = analyze(make_spec(guardrails=[]), stats, days_elapsed=14)
    seq = analyze(make_spec(guardrails=[], sequential=True), stats, days_elapsed=14)
    f, s = fixed["metrics"]["conv"]["variants"]["treatment"], seq["metrics"]["conv"]["variants"]["treatment"]
    assert f["significant"] and f["sequential_ci"] is None
    lo, hi = s["sequential_ci"]
    assert lo < 0 < hi and lo < f["abs_ci"][0] and hi > f["abs_ci"][1]
    assert not s["significant"] and seq["decision"] == "keep_running"
    assert fixed["decision"] == "ship"


def test_cuped_in_analyze_from_polars_rows():
    rng = np.random.default_rng(5)
    n = 20_000
    spec = make_spec(guardrails=[], primary_metric="revenue", cuped_covariate="pre_revenue")
    ids = pl.Series([f"u{i}" for i in range(n)])
    variant = assign_units(spec, ids)
    pre = rng.gamma(2, 5, n)
    rev = 0.9 * pre + rng.normal(0, 3, n) + 0.15 * (variant == "treatment").to_numpy()
    df = pl.DataFrame({"variant": variant, "revenue": rev, "pre_revenue": pre})
    stats = aggregate_units(df, variant_col="variant", metric_cols=["revenue"], covariate_col="pre_revenue")
    out = analyze(spec, stats, days_elapsed=7)
    e = out["metrics"]["revenue"]["variants"]["treatment"]
    assert out["metrics"]["revenue"]["cuped"] and e["cuped"] and e["variance_reduction"] > 0.8
    plain = analyze(make_spec(guardrails=[], primary_metric="revenue"), stats, days_elapsed=7)
    assert plain["metrics"]["revenue"]["variants"]["treatment"]["cuped"] is False
    assert e["se"] < plain["metrics"]["revenue"]["variants"]["treatment"]["se"] / 2
    assert out["decision"] == "ship"


def test_novelty_in_analyze_and_decide_mentions_it():
    rng = np.random.default_rng(3)
    per_period = {}
    for day, effect in enumerate([0.05, 0.05, 0.04, 0.0, 0.0, 0.0]):
        per_period[f"2024-01-0{day + 1}"] = {
            "control": {"conv": SufficientStats.from_values(rng.random(3000) < 0.10),
                        "latency": ss(100, 10, 3000)},
            "treatment": {"conv": SufficientStats.from_values(rng.random(3000) < 0.10 + effect),
                          "latency": ss(100, 10, 3000)}}
    total = {v: {m: sum((p[v][m] for p in list(per_period.values())[1:]), list(per_period.values())[0][v][m])
                 for m in ("conv", "latency")} for v in ("control", "treatment")}
    out = analyze(make_spec(), total, per_period=per_period, days_elapsed=6)
    nov = out["novelty"]
    assert nov["available"] and nov["flagged"] and nov["variants"]["treatment"]["late_effect"] < 0.01
    assert any("Novelty" in r for r in out["reasons"])


def test_input_problems():
    spec = make_spec(variants=[{"name": "control", "model": "a", "weight": 0.5},
                               {"name": "treatment", "model": "b", "weight": 0.5},
                               {"name": "shadow", "model": "s", "shadow": True}])
    stats = table()
    stats["shadow"] = {"conv": ss(0.5, 0.5, 10)}  # shadows are ignored
    assert analyze(spec, stats, days_elapsed=14)["decision"] == "ship"
    with pytest.raises(ExperimentError, match="not in the experiment"):
        analyze(spec, {**table(), "ghost": table()["control"]})
    with pytest.raises(ExperimentError, match="lacks metrics"):
        analyze(spec, {"control": {"conv": ss(0.1, 0.3, 100)}, "treatment": table()["treatment"]})
    with pytest.raises(ExperimentError, match="days_elapsed"):
        analyze(spec, table(), days_elapsed=-1)
    missing_arm = analyze(spec, {"control": table()["control"]}, days_elapsed=14)
    assert missing_arm["srm"]["flagged"]
    assert missing_arm["metrics"]["conv"]["variants"]["treatment"]["status"] == "insufficient_data"
    assert missing_arm["guardrails"][0]["status"] == "insufficient_data"
    assert missing_arm["decision"] == "keep_running"  # no data is no evidence of harm
    with pytest.raises(ExperimentError, match="analyze"):
        decide({"decision": "ship"})


def test_zero_control_mean_gives_null_relative_lift_in_strict_json():
    spec = make_spec(guardrails=[], min_duration_days=0)
    out = analyze(spec, {"control": {"conv": ss(0.0, 0.0, 100)}, "treatment": {"conv": ss(0.1, 0.3, 100)}})
    e = out["metrics"]["conv"]["variants"]["treatment"]
    assert e["rel_lift"] is None and e["rel_ci"] == [None, None]
    assert out["power"]["variants"]["treatment"]["power_achieved"] is None  # relative mde of 0
    json.loads(json.dumps(out, allow_nan=False))


def test_untestable_guardrail_blocks_shipping_without_failing():
    spec = make_spec(guardrails=[{"name": "errors", "direction": "decrease", "margin": 0.1,
                                  "margin_type": "relative"}])
    stats = {"control": {"conv": ss(0.10, 0.3, 10_000), "errors": ss(0.0, 0.0, 10_000)},
             "treatment": {"conv": ss(0.12, 0.325, 10_000), "errors": ss(0.0, 0.0, 10_000)}}
    out = analyze(spec, stats, days_elapsed=14)
    assert out["guardrails"][0]["status"] == "undefined_relative_lift"
    assert out["metrics"]["conv"]["variants"]["treatment"]["outcome"] == "better"
    assert out["decision"] == "keep_running"
    assert any("could not be checked" in r for r in out["reasons"])
