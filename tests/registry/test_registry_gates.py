"""Gates: parsing errors name the key; evaluation matches hand-worked cases."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mlops.errors import ConfigError
from mlops.registry import (
    ApprovalGate,
    FairnessGate,
    GatePolicy,
    MetricGate,
    evaluate_gates,
    parse_gate,
)


@dataclass
class V:
    version: int
    metrics: dict = field(default_factory=dict)
    fairness: dict = field(default_factory=dict)
    who: str = "alice"


def _one(gate, candidate, current=None, approvers=()):
    (result,) = evaluate_gates([parse_gate(gate)], candidate=candidate, current=current,
                               approvers=list(approvers), alias="production")
    return result


def test_parse_builds_plain_dataclasses():
    assert parse_gate({"metric": "roc_auc", "min": 0.7}) == MetricGate("roc_auc", min=0.7)
    assert parse_gate({"metric": "log_loss", "max": 0.4}).higher_is_better is False
    assert parse_gate({"metric": "roc_auc", "max_drop_vs_current": 0.005}).higher_is_better is True
    assert parse_gate({"metric": "gini", "max_drop_vs_current": 0, "higher_is_better": False}).higher_is_better is False
    assert parse_gate({"fairness": "demographic_parity_difference", "max": 0.1}) == FairnessGate(
        "demographic_parity_difference", 0.1)
    assert parse_gate({"approvals": 2}) == ApprovalGate(2)


@pytest.mark.parametrize(
    ("spec", "key", "text"),
    [
        ({"metric": "roc_auc", "mni": 0.7}, "gates.production[0].mni", "Did you mean 'min'"),
        ({"metric": "roc_auc"}, "gates.production[0]", "at least one of"),
        ({"metric": "roc_auc", "min": "high"}, "gates.production[0].min", "must be a float"),
        ({"metric": "roc_auc", "max_drop_vs_current": -1}, "gates.production[0].max_drop_vs_current", ">= 0"),
        ({"approvals": 0}, "gates.production[0].approvals", "an int >= 1"),
        ({"approvals": True}, "gates.production[0].approvals", "an int >= 1"),
        ({"fairness": "dpd"}, "gates.production[0].max", "needs 'max'"),
        ({"metric": "a", "fairness": "b", "max": 1}, "gates.production[0]", "exactly one"),
        ({"metric": "auc", "min": 0.9, "max": 0.1}, "gates.production[0]", "greater than max"),
        ({"metric": "auc", "min": 0.1, "higher_is_better": "yes"}, "gates.production[0].higher_is_better",
         "a bool"),
    ],
)
def test_bad_gate_dicts_name_the_key(spec, key, text):
    with pytest.raises(ConfigError, match=text) as err:
        GatePolicy.from_dict({"production": [spec]})
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}:")


def test_policy_must_map_alias_to_list():
    with pytest.raises(ConfigError) as err:
        GatePolicy.from_dict({"production": {"metric": "auc", "min": 0.5}})
    assert err.value.key == "gates.production"
    assert GatePolicy.from_dict(None).for_alias("production") == ()
    with pytest.raises(ConfigError, match=r"\[a-z0-9_-\]\+") as err:
        GatePolicy.from_dict({"Production": []})
    assert err.value.key == "gates.Production"


def test_absolute_thresholds():
    good, bad = V(2, {"roc_auc": 0.71, "log_loss": 0.5}), V(3, {"roc_auc": 0.69, "log_loss": 0.6})
    assert _one({"metric": "roc_auc", "min": 0.7}, good).passed
    assert not _one({"metric": "roc_auc", "min": 0.7}, bad).passed
    assert _one({"metric": "log_loss", "max": 0.5}, good).passed  # boundary is inclusive
    result = _one({"metric": "log_loss", "max": 0.5}, bad)
    assert not result.passed and "0.6 > max 0.5" in result.detail
    missing = _one({"metric": "f1", "min": 0.1}, good)
    assert not missing.passed and "no numeric metric 'f1'" in missing.detail


def test_relative_gate_higher_is_better():
    current = V(1, {"roc_auc": 0.800})
    gate = {"metric": "roc_auc", "max_drop_vs_current": 0.005}
    assert _one(gate, V(2, {"roc_auc": 0.796}), current).passed        # dropped 0.004
    assert _one(gate, V(2, {"roc_auc": 0.900}), current).passed        # improved
    failed = _one(gate, V(2, {"roc_auc": 0.790}), current)             # dropped 0.010
    assert not failed.passed and "by 0.01 > allowed 0.005" in failed.detail
    assert _one(gate, V(2, {"roc_auc": 0.1}), None).passed              # nothing to compare with


def test_relative_gate_lower_is_better():
    current = V(1, {"log_loss": 0.300})
    gate = {"metric": "log_loss", "max_drop_vs_current": 0.01}
    assert _one(gate, V(2, {"log_loss": 0.305}), current).passed       # 0.005 worse
    assert _one(gate, V(2, {"log_loss": 0.100}), current).passed       # better
    assert not _one(gate, V(2, {"log_loss": 0.320}), current).passed   # 0.02 worse
    explicit = {"metric": "score", "max_drop_vs_current": 0.01, "higher_is_better": False}
    assert not _one(explicit, V(2, {"score": 0.5}), V(1, {"score": 0.4})).passed


def test_fairness_limits_use_absolute_value_and_worst_group():
    gate = {"fairness": "demographic_parity_difference", "max": 0.1}
    assert _one(gate, V(1, fairness={"demographic_parity_difference": 0.08})).passed
    assert not _one(gate, V(1, fairness={"demographic_parity_difference": -0.15})).passed
    per_attr = {"demographic_parity_difference": {"gender": 0.05, "age_band": 0.12}}
    assert not _one(gate, V(1, fairness=per_attr)).passed
    absent = _one(gate, V(1, fairness={"equalized_odds_difference": 0.0}))
    assert not absent.passed and "equalized_odds_difference" in absent.detail


def test_approvals_count_distinct_people_other_than_trainer():
    gate = {"approvals": 2}
    v = V(1, who="alice")
    assert not _one(gate, v, approvers=["bob"]).passed
    assert not _one(gate, v, approvers=["bob", "bob", "alice"]).passed
    assert _one(gate, v, approvers=["bob", "carol"]).passed


def test_gate_names_are_readable():
    names = [parse_gate(g).name for g in (
        {"metric": "roc_auc", "min": 0.7},
        {"metric": "roc_auc", "max_drop_vs_current": 0.005},
        {"fairness": "demographic_parity_difference", "max": 0.1},
        {"approvals": 1},
    )]
    assert names == ["metric:roc_auc>=0.7", "metric:roc_auc worsens<=0.005 vs current",
                     "fairness:demographic_parity_difference<=0.1", "approvals>=1"]
