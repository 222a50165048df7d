"""The decision rule chosen at training, checked against brute force over every candidate
threshold; the policy recorded with the version and read back (old versions included)."""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from mlops.errors import ConfigError
from mlops.features.compile import compile_plan
from mlops.registry.policy import DecisionPolicy, decision_policy
from mlops.training.decision import DecisionRule, achieved, choose_threshold
from mlops.training.estimator import build_pipeline
from mlops.training.pipeline import train_model
from mlops.training.registration import Lineage, registration_record
from mlops.training.settings import TrainingSettings


def _truth(rule: str, target: float, y: np.ndarray, p: np.ndarray) -> float:
    """The rule by its definition, over every candidate threshold, by direct counting."""
    cands = sorted(set(p.tolist())) + [np.nextafter(max(p), np.inf)]
    rows = []
    for t in cands:
        pos = p >= t
        tp = int((pos & (y == 1)).sum())
        rows.append((t, pos.mean(), tp / pos.sum() if pos.sum() else None, tp / (y == 1).sum()))
    if rule == "positive_rate":
        return min(t for t, rate, _, _ in rows if rate <= target)
    if rule == "precision":
        return min(t for t, _, prec, _ in rows if prec is not None and prec >= target)
    return max(t for t, _, _, rec in rows if rec >= target)


@pytest.mark.parametrize("seed", range(6))
def test_each_rule_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    p = np.round(rng.uniform(size=n), 2)          # rounding: many ties
    y = (rng.uniform(size=n) < p).astype(int)      # a calibrated-ish score
    for rule, target in [("positive_rate", 0.02), ("positive_rate", 0.3), ("recall", 0.9),
                         ("recall", 0.5), ("precision", 0.6), ("precision", 0.8)]:
        choice = choose_threshold(DecisionRule(rule, target=target), y, p)
        assert choice.met
        assert choice.threshold == _truth(rule, target, y, p), (rule, target)


def test_unreachable_precision_takes_the_most_precise_threshold_and_says_so():
    # precision at 0.9, 0.8, 0.7, 0.6: 0, 1/2, 2/3, 1/2
    y, p = np.array([0, 1, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6])
    choice = choose_threshold(DecisionRule("precision", target=0.9), y, p)
    assert choice.threshold == 0.7 and choice.met is False and "not reached" in choice.note


def test_achieved_by_hand():
    y, p = np.array([1, 1, 0, 0, 1]), np.array([0.9, 0.4, 0.8, 0.1, 0.6])
    assert achieved(y, p, 0.5) == {"rows": 5, "positive_rate": 0.6, "precision": 2 / 3,
                                   "recall": 2 / 3}


def test_rule_errors_name_the_key():
    with pytest.raises(ConfigError, match="training.decision.rule"):
        DecisionRule("positive_rate", target=0.1).check("regression")
    with pytest.raises(ConfigError, match="training.decision.target"):
        DecisionRule("recall").check("classification")
    with pytest.raises(ConfigError, match="training.decision.value"):
        DecisionRule("fixed", value=1.5).check("classification")
    with pytest.raises(ConfigError, match="training.decision.rule"):
        DecisionRule("f1", target=0.5).check("classification")
    DecisionRule("fixed").check("regression")  # the default is fine for a regressor


def test_the_removed_training_threshold_names_its_replacement():
    with pytest.raises(ConfigError, match="training.threshold") as err:
        TrainingSettings(threshold=0.8)
    assert "training.decision: {rule: fixed, value: 0.8}" in str(err.value)


T0 = datetime(2024, 1, 1)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(3)
    n = 2000
    x = rng.normal(size=n)
    y = (x + rng.normal(size=n) > 1.0).astype(np.int64)
    ts = [T0 + timedelta(hours=float(h)) for h in np.sort(rng.uniform(0, 60 * 24, size=n))]
    return pl.DataFrame({"ent": rng.integers(0, 40, n).astype(str), "ts": ts, "x": x,
                         "v": x * 3 + rng.normal(size=n), "y": y})


def _train(table, rule, model=None):
    model = LogisticRegression() if model is None else model
    spec = {"name": "u", "entity": "ent", "timestamp": "ts", "label": {"column": "y"},
            "raw": ["x"]}
    plan = compile_plan(spec, table.schema)
    settings = TrainingSettings(warmup_days=0, train_days=30, valid_days=15, test_days=15,
                                decision=rule)
    pipe = build_pipeline(model, numeric=plan.numeric, categorical=[])
    task = "regression" if isinstance(model, Ridge) else "classification"
    return plan, settings, train_model(pipe, plan, table, settings, task=task)


def test_training_chooses_on_validation_and_records_what_it_achieved(table):
    plan, settings, out = _train(table, DecisionRule("positive_rate", target=0.05))
    yv, pv = out.parts["valid"]["y"].to_numpy(), out.scores["valid"]
    assert out.threshold == _truth("positive_rate", 0.05, yv, pv)
    d = out.decision
    assert d["rule"] == "positive_rate" and d["target"] == 0.05 and d["met"] is True
    for name in ("valid", "test"):
        y, p = out.parts[name]["y"].to_numpy(), out.scores[name]
        pos = p >= out.threshold
        assert d["achieved"][name]["positive_rate"] == pytest.approx(pos.mean())
        assert d["achieved"][name]["precision"] == pytest.approx(y[pos].mean())
        assert d["achieved"][name]["recall"] == pytest.approx(pos[y == 1].mean())
    assert d["achieved"]["valid"]["positive_rate"] <= 0.05
    # the test metrics are at the chosen threshold, not at 0.5
    assert out.evaluation["test"]["threshold"] == out.threshold
    assert out.evaluation["test"]["precision"] == pytest.approx(d["achieved"]["test"]["precision"])
    record = registration_record(out, plan, settings, Lineage({}, "est", "h"))
    policy = record.metadata["policy"]
    assert policy["task"] == "classification" and policy["decision"] is d
    read = decision_policy(record.metadata)
    assert (read.threshold, read.rule, read.target, read.source) == (
        out.threshold, "positive_rate", 0.05, "policy")


def test_a_regressor_records_no_threshold(table):
    reg_table = table.with_columns(pl.col("v").alias("y"))
    plan, settings, out = _train(reg_table, DecisionRule(), model=Ridge())
    assert out.threshold is None and out.decision["rule"] is None
    record = registration_record(out, plan, settings, Lineage({}, "est", "h"))
    read = decision_policy(record.metadata)
    assert read.task == "regression" and read.threshold is None and not read.is_classifier
    with pytest.raises(ConfigError, match="serving.threshold"):
        read.overridden_by(0.3, key="serving.threshold")


def test_versions_from_before_policies_fall_back_with_a_note():
    old = decision_policy({"config": {"training": {"threshold": 0.8}}, "tags": {"task": "classification"}})
    assert (old.threshold, old.source) == (0.8, "legacy") and "training.threshold" in old.note
    bare = decision_policy({"config": {}, "tags": {}})
    assert bare.threshold == 0.5 and "0.5" in bare.note
    reg = decision_policy({"tags": {"task": "regression"}})
    assert reg.threshold is None and reg.task == "regression"


def test_an_override_wins_and_remembers_the_policy():
    d = DecisionPolicy(threshold=0.83).overridden_by(0.3, key="serving.threshold")
    assert d.threshold == 0.3 and d.policy_threshold == 0.83 and d.source == "override"
    assert d.as_dict()["overridden_by"] == "serving.threshold"
    assert DecisionPolicy(threshold=0.83).overridden_by(None, key="x").threshold == 0.83
    with pytest.raises(ConfigError, match="serving.threshold"):
        DecisionPolicy().overridden_by(1.5, key="serving.threshold")


def test_a_run_override_warns_and_old_versions_say_where_their_threshold_came_from():
    from mlops.serving.deployment import model_info
    mv = SimpleNamespace(name="m", version=3, feature_plan_hash="h", config={}, tags={},
                         policy={"task": "classification",
                                 "decision": {"rule": "fixed", "value": 0.5, "threshold": 0.5}})
    d = decision_policy(mv).overridden_by(0.7, key="experiment.simulation.threshold")
    assert d.threshold == 0.7 and d.policy_threshold == 0.5
    assert d.notice("m", 3).startswith("warning: m v3: experiment.simulation.threshold=0.7 overrides")
    info = model_info(mv, d, alias="production")
    assert info.threshold == 0.7 and info.as_dict()["decision"]["source"] == "override"
    old = SimpleNamespace(name="m", version=1, feature_plan_hash="h", policy={}, tags={},
                          config={"training": {"threshold": 0.8}})
    legacy = decision_policy(old).overridden_by(None, key="experiment.simulation.threshold")
    assert legacy.threshold == 0.8
    assert legacy.notice("m", 1).startswith("note: m v1 registered before decision policies")
    assert decision_policy(mv).notice("m", 3) is None  # its own policy: nothing to say
