"""action=analyze / action=plan from files, checked against scipy and the closed form."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats

EXP = ["experiment=ab_v1_v2", "experiment.cuped_covariate=null", "experiment.guardrails=[]",
       "experiment.secondary_metrics=[]", "experiment.min_duration_days=0",
       "experiment.days_elapsed=21"]


def _units(tmp_path, seed=0, n=4000, lift=0.0):
    rng = np.random.default_rng(seed)
    variant = np.where(rng.random(n) < 0.5, "control", "treatment")
    cost = rng.gamma(2.0, 5.0, n) * np.where(variant == "treatment", 1 + lift, 1.0)
    df = pl.DataFrame({"user_id": [f"u{i}" for i in range(n)], "variant": variant, "cost": cost})
    path = tmp_path / "units.parquet"
    df.write_parquet(path)
    return df, path


def _json(d, name):
    return json.loads((d / f"{name}.json").read_text())


def test_units_file_matches_scipy_welch(run_action, tmp_path):
    df, path = _units(tmp_path, lift=-0.1)
    code, d = run_action("action=analyze", *EXP, "experiment.outcomes.source=units",
                         f"experiment.outcomes.path={path}", "experiment.outcomes.period_col=null")
    assert code == 0
    r = _json(d, "analyze")
    v = r["metrics"]["cost"]["variants"]["treatment"]
    c = df.filter(pl.col("variant") == "control")["cost"].to_numpy()
    t = df.filter(pl.col("variant") == "treatment")["cost"].to_numpy()
    ref = stats.ttest_ind(t, c, equal_var=False)
    assert v["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert v["abs_diff"] == pytest.approx(t.mean() - c.mean(), rel=1e-12)
    assert r["decision"] == "ship" and r["srm"]["flagged"] is False


def test_sufficient_stats_file_and_srm(run_action, tmp_path):
    # 6000 vs 4000 units under a 50/50 design: SRM must flag and block shipping
    rows = []
    for variant, n, mean in (("control", 6000, 10.0), ("treatment", 4000, 8.0)):
        x = np.random.default_rng(len(variant)).normal(mean, 3.0, n)
        rows.append({"variant": variant, "metric": "cost", "n": n, "sum": float(x.sum()),
                     "sum_sq": float((x ** 2).sum())})
    path = tmp_path / "suff.csv"
    pl.DataFrame(rows).write_csv(path)
    code, d = run_action("action=analyze", *EXP, "experiment.outcomes.source=sufficient",
                         f"experiment.outcomes.path={path}")
    r = _json(d, "analyze")
    expected = stats.chisquare([6000, 4000], [5000, 5000])
    assert r["srm"]["pvalue"] == pytest.approx(expected.pvalue, rel=1e-6)
    assert r["srm"]["flagged"] is True and r["decision"] != "ship"


def test_reweighting_under_the_same_seed_is_refused(run_action, tmp_path):
    _, path = _units(tmp_path)
    args = [*EXP, "experiment.outcomes.source=units", f"experiment.outcomes.path={path}",
            "experiment.outcomes.period_col=null"]
    assert run_action("action=analyze", *args, out="a")[0] == 0
    code, d = run_action("action=analyze", *args, "experiment.variants.0.weight=0.7",
                         "experiment.variants.1.weight=0.3", out="b")
    assert code == 2 and "seed" in _json(d, "result")["error"]
    code, _ = run_action("action=analyze", *args, "experiment.variants.0.weight=0.7",
                         "experiment.variants.1.weight=0.3", "experiment.seed=new-seed", out="c")
    assert code == 0  # a new seed re-randomises: allowed


def test_plan_matches_the_closed_form(run_action, tmp_path):
    df, path = _units(tmp_path)
    code, d = run_action("action=plan", *EXP, "experiment.outcomes.source=units",
                         f"experiment.outcomes.path={path}", "experiment.outcomes.period_col=null",
                         "experiment.daily_units=500")
    r = _json(d, "plan")
    c = df.filter(pl.col("variant") == "control")["cost"]
    mde = 0.2 * c.mean()
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    expected = 2 * (z * c.std()) ** 2 / mde ** 2
    assert code == 0 and abs(r["units_per_arm"] - expected) <= 1.0
