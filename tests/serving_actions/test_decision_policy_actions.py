"""From YAML: the registered version carries its decision policy; scoring, replay and
monitoring read it, an explicit override wins with a warning and is recorded; the breaker's
fallback is checked at start; removed keys name their replacement."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from support import SMALL

from mlops.registry import Registry

V1 = ["serving.alias=1"]


@pytest.fixture
def trained(run_action, tmp_path):
    assert run_action("action=train", *SMALL, out="train")[0] == 0
    mv = Registry(tmp_path / "home").get_version("fraud_detector", 1)
    return run_action, mv


def test_the_version_records_its_rule_and_what_it_achieved(trained, tmp_path):
    _, mv = trained
    decision = mv.policy["decision"]
    assert mv.policy["task"] == "classification"
    # the demo's conf/project.yaml declares it; the built-in default would be fixed 0.5
    assert decision["rule"] == "positive_rate" and decision["target"] == 0.03
    train = json.loads((tmp_path / "train" / "train.json").read_text())
    assert train["decision"] == decision
    assert train["evaluation"]["test"]["threshold"] == decision["threshold"]
    assert decision["achieved"]["valid"]["positive_rate"] <= 0.03
    assert "Decision policy" in (tmp_path / "train" / "train.html").read_text()


def test_scoring_decides_at_the_versions_threshold_and_an_override_wins(trained, tmp_path,
                                                                        capsys):
    run, mv = trained
    t = mv.policy["decision"]["threshold"]
    assert run("action=score", *SMALL, *V1, out="score")[0] == 0
    preds = pl.read_parquet(tmp_path / "score" / "predictions.parquet")
    assert (preds["prediction"] == (preds["probability"] >= t).cast(pl.Int64)).all()
    res = json.loads((tmp_path / "score" / "score.json").read_text())
    assert res["decision"]["threshold"] == t and res["decision"]["source"] == "policy"
    assert res["flag_rate"] == pytest.approx(float((preds["probability"] >= t).mean()))
    capsys.readouterr()
    assert run("action=score", *SMALL, *V1, "serving.threshold=0.3", out="score_override")[0] == 0
    assert "serving.threshold=0.3 overrides the version's threshold" in capsys.readouterr().out
    preds = pl.read_parquet(tmp_path / "score_override" / "predictions.parquet")
    assert (preds["prediction"] == (preds["probability"] >= 0.3).cast(pl.Int64)).all()
    res = json.loads((tmp_path / "score_override" / "score.json").read_text())
    assert res["decision"] == {**res["decision"], "threshold": 0.3, "source": "override",
                               "policy_threshold": t, "overridden_by": "serving.threshold"}


def test_replay_and_monitoring_record_the_threshold_they_used(trained, tmp_path):
    run, mv = trained
    t = mv.policy["decision"]["threshold"]
    code, d = run("action=replay", *SMALL, *V1, "serving.replay.start_day=60",
                  "serving.replay.days=2", out="replay")
    replay = json.loads((d / "replay.json").read_text())
    assert code == 0 and replay["decision"]["threshold"] == t
    assert replay["model"]["threshold"] == t
    code, d = run("action=monitor", *SMALL, "monitoring.alias=1", "monitoring.window.start_day=60",
                  "monitoring.window.days=20", out="mon")
    mon = json.loads((d / "monitor.json").read_text())
    assert mon["performance"]["estimated"]["threshold"] == t


def test_a_fallback_must_exist_at_start(trained, capsys):
    run, _ = trained
    base = ["action=replay", *SMALL, *V1, "serving.replay.days=1", "serving.breaker.on_trip=fallback"]
    assert run(*base, out="no_fallback")[0] == 2
    assert "serving.breaker.fallback" in capsys.readouterr().err
    assert run(*base, "serving.breaker.fallback=7", out="missing")[0] == 2
    assert "names no registered version" in capsys.readouterr().err
    assert run(*base, "serving.breaker.fallback=1", out="ok")[0] == 0


@pytest.mark.parametrize("override,needle", [
    ("training.threshold=0.8", "training.decision: {rule: fixed, value: 0.8}"),
    ("model=ridge", "training.decision.rule"),  # the demo's rule is a classifier's
])
def test_old_and_misfit_decision_keys_are_one_line_errors(run_action, capsys, override, needle):
    extra = ["features.label.task=null", "training.fairness.attribute=null",
             "registry.policies.production=[]"] if override == "model=ridge" else []
    assert run_action("action=train", *SMALL, override, *extra, out="bad")[0] == 2
    assert needle in capsys.readouterr().err


def test_a_regressor_records_no_threshold_and_scores_values(run_action, tmp_path):
    data = [*SMALL, "model=ridge", "features.label.task=null", "training.fairness.attribute=null",
            "registry.policies.production=[]", "training.decision.rule=fixed"]
    assert run_action("action=train", *data, out="train")[0] == 0
    mv = Registry(tmp_path / "home").get_version("fraud_detector", 1)
    assert mv.policy["task"] == "regression" and mv.policy["decision"]["threshold"] is None
    assert run_action("action=score", *data, *V1, out="score")[0] == 0
    preds = pl.read_parquet(tmp_path / "score" / "predictions.parquet")
    assert preds["prediction"].dtype == pl.Float64 and preds["probability"].null_count() == preds.height
    assert not np.isin(preds["prediction"].to_numpy(), [0.0, 1.0]).all()  # values, not labels
    res = json.loads((tmp_path / "score" / "score.json").read_text())
    assert "mean prediction" in res["headline"] and "flag_rate" not in res
