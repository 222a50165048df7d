"""The training pipeline as an engine function: typed settings + plan + table in, outcome out.

Every number is checked against an independent computation: the split by hand-filtered
time windows, metrics by scikit-learn on a separately fitted pipeline, fairness by
numpy group means, the champion's lift against its own scores.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mlops.errors import ConfigError
from mlops.features.compile import compile_plan
from mlops.training.champion import Champion
from mlops.training.estimator import build_pipeline
from mlops.training.pipeline import check_fairness_gates, check_objective, train_model
from mlops.training.registration import Lineage, register, registration_record
from mlops.training.result import EstimatorSpec, TrainResult
from mlops.training.settings import FairnessSettings, ObjectiveSettings, TrainingSettings
from mlops.training.task import PREDICTION

T0 = datetime(2024, 1, 1)
SETTINGS = TrainingSettings(warmup_days=0, train_days=30, valid_days=15, test_days=15,
                            fairness=FairnessSettings(attribute="grp", min_group_rows=5))


def _spec(raw=("x", "z")):
    return {"name": "unit", "entity": "ent", "timestamp": "ts", "label": {"column": "y"},
            "raw": list(raw)}


@pytest.fixture(scope="module")
def table():
    """60 days of rows, label driven by x (not z): a learnable, imperfect signal."""
    rng = np.random.default_rng(7)
    n = 1800
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = (x + rng.normal(scale=1.0, size=n) > 0.3).astype(np.int64)
    ts = [T0 + timedelta(hours=float(h)) for h in np.sort(rng.uniform(0, 60 * 24, size=n))]
    return pl.DataFrame({"eid": np.arange(n), "ent": rng.integers(0, 30, n).astype(str), "ts": ts,
                         "x": x, "z": z, "grp": np.where(rng.random(n) < 0.4, "p", "q"), "y": y})


@pytest.fixture(scope="module")
def trained(table):
    plan = compile_plan(_spec(), table.schema)
    pipe = build_pipeline(LogisticRegression(), numeric=plan.numeric, categorical=plan.categorical)
    return plan, train_model(pipe, plan, table, SETTINGS, task="classification")


def _window(table, lo_days, hi_days):
    lo, hi = T0 + timedelta(days=lo_days), T0 + timedelta(days=hi_days)
    return table.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))


def test_split_and_metrics_match_an_independent_fit(table, trained):
    plan, out = trained
    first = table["ts"].min()  # the windows start at the first event (no warm-up)
    lo = (first - T0).total_seconds() / 86400
    train, test = _window(table, lo, lo + 30), _window(table, lo + 45, lo + 60)
    assert out.split["train_rows"] == train.height and out.split["test_rows"] == test.height
    ref = build_pipeline(LogisticRegression(), numeric=["x", "z"], categorical=[]).fit(
        train.select("x", "z"), train["y"].to_numpy())
    p = ref.predict_proba(test.select("x", "z"))[:, 1]
    assert out.evaluation["test"]["roc_auc"] == pytest.approx(roc_auc_score(test["y"], p), abs=1e-12)
    np.testing.assert_allclose(out.scores["test"], p, atol=1e-12)
    assert out.objective == {"name": "valid_roc_auc", "value": out.evaluation["valid"]["roc_auc"],
                             "direction": "maximize"}
    assert out.metrics["roc_auc"] == out.evaluation["test"]["roc_auc"]
    assert out.metrics["valid_roc_auc"] == out.evaluation["valid"]["roc_auc"]
    assert out.metrics["leakage_suspected"] == 0 and out.champion is None


def test_fairness_is_the_test_window_selection_rate_per_group(trained):
    _, out = trained
    test, decided = out.parts["test"], out.scores["test"] >= out.threshold
    groups = {g["group"]: g for g in out.fairness["groups"]}
    for name in ("p", "q"):
        mask = (test["grp"] == name).to_numpy()
        assert groups[name]["rows"] == mask.sum()
        assert groups[name]["selection_rate"] == pytest.approx(decided[mask].mean())
    rates = [groups[g]["selection_rate"] for g in ("p", "q")]
    assert out.fairness["demographic_parity_difference"] == pytest.approx(max(rates) - min(rates))


def test_a_feature_that_is_the_label_is_flagged_as_leakage(table):
    leaky = table.with_columns(pl.col("y").cast(pl.Float64).alias("copy"))
    plan = compile_plan(_spec(("x", "copy")), leaky.schema)
    pipe = build_pipeline(LogisticRegression(), numeric=plan.numeric, categorical=[])
    out = train_model(pipe, plan, leaky, SETTINGS, task="classification")
    assert out.metrics["leakage_suspected"] == 1
    assert any("leaks the label" in w for w in out.warnings)


def test_champion_scored_on_the_same_test_rows(table, trained):
    plan, out = trained
    same = Champion("production", 1, model=out.model, plan=plan)
    pipe = build_pipeline(LogisticRegression(), numeric=plan.numeric, categorical=[])
    again = train_model(pipe, plan, table, SETTINGS, task="classification", champion=same)
    assert again.champion["lift"] == {"roc_auc": 0.0, "pr_auc": 0.0}
    assert again.metrics["roc_auc_lift_vs_production"] == 0.0
    # a champion with its own plan (x only) is scored on ITS features of the same events
    x_plan = compile_plan(_spec(("x",)), table.schema)
    x_model = build_pipeline(LogisticRegression(), numeric=["x"], categorical=[]).fit(
        table.select("x"), table["y"].to_numpy())
    other = Champion("production", 2, model=x_model, plan=x_plan, events=table.lazy(), event_id="eid")
    pipe = build_pipeline(LogisticRegression(), numeric=plan.numeric, categorical=[])
    res = train_model(pipe, plan, table, SETTINGS, task="classification",
                      champion=other)
    test = res.parts["test"]
    auc = roc_auc_score(test["y"], x_model.predict_proba(test.select("x"))[:, 1])
    assert res.champion["metrics"]["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert res.champion["lift"]["roc_auc"] == pytest.approx(res.metrics["roc_auc"] - auc, abs=1e-12)
    assert res.champion["plan"] == {"name": x_plan.name, "hash": x_plan.spec_hash}


def test_a_champion_note_is_reported_without_scoring(table, trained):
    plan, _ = trained
    pipe = build_pipeline(LogisticRegression(), numeric=plan.numeric, categorical=[])
    out = train_model(pipe, plan, table, SETTINGS, task="classification",
                      champion=Champion("staging", note="no such alias yet; nothing to compare"))
    assert out.champion == {"alias": "staging", "note": "no such alias yet; nothing to compare"}
    assert not any("lift" in k for k in out.metrics)


def test_settings_errors_name_the_key():
    with pytest.raises(ConfigError, match="training.objective.metric"):
        check_objective(TrainingSettings(objective=ObjectiveSettings(metric="rmse")), "classification")
    with pytest.raises(ConfigError, match="training.objective.split"):
        check_objective(TrainingSettings(objective=ObjectiveSettings(split="holdout")), "classification")
    assert check_objective(TrainingSettings(), "regression") == ("rmse", "valid")
    with pytest.raises(ConfigError, match=r"registry.policies.production\[1\]"):
        check_fairness_gates({"production": [{"metric": "roc_auc"}, {"fairness": "dp"}]}, None,
                             "classification")
    check_fairness_gates({"production": [{"fairness": "dp"}]}, "grp", "classification")


def test_result_json_contract_and_registration_record(tmp_path, trained):
    plan, out = trained
    result = TrainResult.from_outcome(out, plan, EstimatorSpec("m", "sklearn.linear_model.LogisticRegression"))
    doc = result.to_json()
    assert list(doc) == ["action", "status", "headline", "task", "model", "plan", "split", "decision",
                         "evaluation",
                         "fairness", "champion", "warnings", "objective", "registry", "duration_s"]
    assert doc["headline"].startswith("m: test ROC-AUC ") and "v1" not in doc["headline"]
    assert result.shown_metrics()["roc_auc"] == out.evaluation["test"]["roc_auc"]
    record = registration_record(out, plan, SETTINGS, Lineage({"k": 1}, "est", "abc"))
    assert record.metadata["tags"]["source_data_hash"] == "abc"
    assert record.metadata["metrics"] is out.metrics
    # the drift reference holds the train window's features and the model's score on them
    assert set(record.reference.numeric) == {"x", "z", PREDICTION}
    train = out.parts["train"]
    assert record.reference.numeric["x"].rows == train.height
    assert record.reference.numeric["x"].mean == pytest.approx(train["x"].mean())
    assert record.reference.numeric[PREDICTION].mean == pytest.approx(
        out.model.predict_proba(train.select(plan.feature_names))[:, 1].mean())
    from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry
    reg = Registry(tmp_path / "home")
    mv = register(reg, "m", record)
    result.registry = {"model": mv.name, "version": mv.version}
    assert result.to_json()["headline"].startswith("m v1: ")
    model, loaded = reg.load_model("m", 1, DEFAULT_TRUSTED_TYPES)
    np.testing.assert_allclose(model.predict_proba(out.parts["test"].select(plan.feature_names))[:, 1],
                               out.scores["test"])
    assert loaded.metrics["roc_auc"] == out.metrics["roc_auc"]
    assert reg.reference_path("m", 1).exists()
