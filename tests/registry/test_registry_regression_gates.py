"""Gates on regression metrics: absolute bounds and a rise vs the live version."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlops.errors import ConfigError
from mlops.registry.gates import _check_metric, parse_gate


def _v(version, **metrics):
    return SimpleNamespace(version=version, who="t", metrics=metrics, fairness={})


def test_rmse_max_and_rise_vs_current_hand_worked():
    cap = parse_gate({"metric": "rmse", "max": 4.0})
    assert _check_metric(cap, _v(2, rmse=3.9), None, "production").passed
    assert not _check_metric(cap, _v(2, rmse=4.1), None, "production").passed
    rise = parse_gate({"metric": "rmse", "max_rise_vs_current": 0.5})
    live = _v(1, rmse=3.0)
    assert _check_metric(rise, _v(2, rmse=3.4), live, "production").passed      # +0.4
    refused = _check_metric(rise, _v(2, rmse=3.6), live, "production")           # +0.6
    assert not refused.passed and "worse" in refused.detail
    assert _check_metric(rise, _v(2, rmse=2.0), live, "production").passed      # better


def test_rise_gate_refuses_higher_is_better_and_both_kinds():
    with pytest.raises(ConfigError, match="lower is better"):
        parse_gate({"metric": "r2", "max_rise_vs_current": 0.1, "higher_is_better": True})
    with pytest.raises(ConfigError, match="not both"):
        parse_gate({"metric": "rmse", "max_rise_vs_current": 0.1, "max_drop_vs_current": 0.1})
