"""experiments/simulation.py and outcome_stats.py on frames and typed specs (no RunContext):
per-unit outcomes checked against a brute-force loop over units, weekly statistics
against a direct per-week recount."""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression

from mlops.errors import DataError, ExperimentError
from mlops.experiments import ExperimentSpec, assign_units
from mlops.experiments.outcome_stats import stats_per_period, sufficient_stats_table, unit_stats
from mlops.experiments.outcomes import OutcomeSpec
from mlops.experiments.simulation import (
    SimulationSettings,
    VariantModel,
    logged_units,
    served_log,
    simulate_units,
)

T0 = datetime(2024, 1, 1)
OUTCOMES = OutcomeSpec.from_dict({"metrics": {"flags": {"expr": "decision", "agg": "sum"},
                                              "rows": {"expr": "x", "agg": "count"}}},
                                 key="experiment.outcomes")


def _spec(**kw):
    return ExperimentSpec(**{"key": "exp", "unit": "u", "primary_metric": {"name": "flags"},
                             "variants": [{"name": "control", "model": "1", "weight": 0.5},
                                          {"name": "treatment", "model": "2", "weight": 0.5}],
                             **kw})


def _events(n_units=60, days=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"u{k}", T0 + timedelta(hours=int(h)), float(rng.normal()))
            for k in range(n_units) for h in rng.integers(0, days * 24, size=6)]
    return pl.DataFrame(rows, schema=["u", "ts", "x"], orient="row").sort("ts")


def _models(events):
    x = events.select("x")
    y = (events["x"] > 0).to_numpy().astype(int)
    plan = SimpleNamespace(spec_hash="h1", feature_names=["x"], timestamp="ts", entity="u",
                           name="p", short_hash="h1")
    # each version decides at its own threshold (its policy)
    return {"control": VariantModel(LogisticRegression().fit(x, y), "m", 1, plan, threshold=0.5),
            "treatment": VariantModel(LogisticRegression().fit(x, 1 - y), "m", 2, plan,
                                      threshold=0.3)}


def test_simulated_outcomes_equal_a_brute_force_loop_over_units():
    events, spec = _events(), _spec()
    variants = _models(events)
    s = SimulationSettings(days=10)
    per_unit, per_day, info = simulate_units(spec, events.lazy(), OUTCOMES, variants,
                                             {"h1": events}, s)
    start = events["ts"].max() - timedelta(days=10)
    window = events.filter((pl.col("ts") >= start) & (pl.col("ts") < start + timedelta(days=10)))
    want = {}
    for unit, rows in window.group_by("u"):
        arm = assign_units(spec, [unit[0]])[0]
        p = variants[arm].model.predict_proba(rows.select("x"))[:, 1]
        want[unit[0]] = (arm, int((p >= {"control": 0.5, "treatment": 0.3}[arm]).sum()),
                         rows.height)
    got = {r["u"]: (r["variant"], r["flags"], r["rows"]) for r in per_unit.iter_rows(named=True)}
    assert got == want
    assert per_day["flags"].sum() == per_unit["flags"].sum() and info["units"] == len(want)
    assert info["models"] == {"control": "m v1", "treatment": "m v2"}
    assert info["thresholds"] == {"control": 0.5, "treatment": 0.3}


def test_an_empty_window_names_the_key():
    events = _events()
    with pytest.raises(ExperimentError) as err:
        simulate_units(_spec(), events.lazy(), OUTCOMES, _models(events), {"h1": events},
                       SimulationSettings(start_day=400, days=5))
    assert err.value.key == "experiment.simulation.start_day"


def test_logged_outcomes_join_by_entity_and_timestamp():
    events, spec = _events(), _spec()
    log = pl.DataFrame({"request_id": ["r0", "r1", "r2"], "entity": events["u"][:3],
                        "event_ts": events["ts"][:3].cast(pl.Datetime("us")),
                        "variant": ["control", "treatment", "control"],
                        "served_by": ["model"] * 3, "probability": [0.9, 0.2, 0.7],
                        "prediction": [1, 0, 1]})
    rows = served_log(log.lazy(), spec, "here")
    per_unit, _, info = logged_units(spec, rows, events.lazy(), OUTCOMES,
                                     plan=_models(events)["control"].plan, event_id=None,
                                     pre_days=28, log_path="here")
    assert per_unit["flags"].sum() == 2 and info["joined"] == 3 and info["path"] == "here"
    with pytest.raises(DataError, match="no experiment traffic"):
        served_log(log.lazy().filter(pl.col("variant") == "none"), spec, "here")


def test_weekly_stats_equal_a_direct_recount():
    rng = np.random.default_rng(2)
    per_day = pl.DataFrame({"u": [f"u{i % 30}" for i in range(300)],
                            "variant": ["control" if i % 30 < 15 else "treatment" for i in range(300)],
                            "day": rng.integers(0, 21, 300).astype(float),
                            "flags": rng.integers(0, 3, 300)})
    spec = _spec()
    weekly = stats_per_period(per_day, spec, ["flags"])
    assert list(weekly) == ["week 1", "week 2", "week 3"]
    week2 = per_day.filter((pl.col("day") >= 7) & (pl.col("day") < 14))
    sums = week2.group_by("u", "variant").agg(pl.col("flags").sum())
    ctrl = sums.filter(pl.col("variant") == "control")["flags"].to_numpy().astype(float)
    got = weekly["week 2"]["control"]["flags"]
    assert got.n == ctrl.size and got.mean == pytest.approx(ctrl.mean())
    assert got.variance == pytest.approx(ctrl.var(ddof=1))
    stats, per_period = unit_stats(sums, per_day, spec)
    assert per_period is not None and stats["treatment"]["flags"].n == sums.filter(
        pl.col("variant") == "treatment").height


def test_sufficient_statistics_file_rows():
    df = pl.DataFrame({"variant": ["control", "treatment"], "metric": ["flags", "flags"],
                       "n": [10, 12], "sum": [3.0, 5.0], "sum_sq": [3.0, 5.0]})
    table = sufficient_stats_table(df, variant_col="variant")
    assert table["treatment"]["flags"].mean == pytest.approx(5 / 12)
    with pytest.raises(ExperimentError, match="sufficient statistics need"):
        sufficient_stats_table(df.drop("sum_sq"), variant_col="variant")
