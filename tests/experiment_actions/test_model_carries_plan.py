"""The model carries its plan: v1 on fraud_v1, v2 on fraud_v2, v2 in production.

Every serving action (score, parity, replay, monitor, analyze, plan) runs WITHOUT
repeating ``features=`` (the config still selects fraud_v1) and uses each model's own
plan; a ``features=`` given explicitly that disagrees fails naming both hashes. An A/B
experiment between v1 and v2 scores each arm with its own plan, simulated and served.
Checked against independent recomputation (features compiled afresh, models scored
directly, GrowthBook buckets by hand).
"""
from __future__ import annotations

import json
import os
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from support import SMALL, compose_cfg

from mlops.actions.context import RunContext
from mlops.app import execute
from mlops.errors import SkewError
from mlops.experiments import bucket
from mlops.features.offline import compute_features
from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry
from mlops.serving.prediction_log import scan_prediction_log

DATA = [*SMALL, "data.scenario=none"]
SEED = "fraud-v1-vs-v2-2024-05"
# control = production (v2, fraud_v2), treatment = staging (v1, fraud_v1)
EXP = ["experiment=ab_v1_v2", "experiment.min_duration_days=0", "serving.breaker.enabled=false"]


class World:
    def __init__(self, tmp):
        self.tmp = tmp

    def cfg(self, *overrides, out):
        cfg = compose_cfg([*DATA, *overrides], self.tmp)
        cfg.paths.output_dir = str(self.tmp / out)
        return cfg

    def run(self, *overrides, out):
        code, _ = execute(self.cfg(*overrides, out=out))
        return code, self.tmp / out

    def json(self, out, name):
        return json.loads((self.tmp / out / f"{name}.json").read_text())

    def plan(self, features):
        """The spec compiled afresh from conf/features (independent of the registry)."""
        ctx = RunContext.from_config(self.cfg(f"features={features}", out="compile"))
        return ctx, ctx.plan()

    def model(self, version):
        return Registry(self.tmp / "home").load_model("fraud_detector", version,
                                                      DEFAULT_TRUSTED_TYPES)[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    os.environ.pop("MLOPS_HOME", None)
    w = World(tmp_path_factory.mktemp("carries"))
    assert w.run("action=train", out="t1")[0] == 0
    assert w.run("action=train", "features=fraud_v2", out="t2")[0] == 0
    assert w.run("action=keygen", "registry.approver=ann", out="keygen")[0] == 0
    ann = "+registry.approvers.ann.public_key_file=keys/ann.pub"
    for v, alias in ((2, "production"), (1, "staging")):
        assert w.run("action=approve", ann, f"registry.version={v}", "registry.approver=ann",
                     out=f"a{v}")[0] == 0
        assert w.run("action=promote", ann, f"registry.version={v}", f"registry.alias={alias}",
                     "registry.policies.production=[{approvals: 1}]", out=f"p{v}")[0] == 0
    w.h1 = w.json("t1", "train")["plan"]["hash"]
    w.h2 = w.json("t2", "train")["plan"]["hash"]
    assert w.h1 != w.h2
    return w


def test_score_uses_the_production_models_plan(world):
    code, d = world.run("action=score", out="score")  # config still says fraud_v1
    assert code == 0, world.json("score", "result")
    assert world.json("score", "score")["plan_hash"] == world.h2
    ctx, plan = world.plan("fraud_v2")
    feats = compute_features(plan, ctx.scan_events(), keep=["transaction_id"]).collect()
    expected = feats.select("transaction_id", pl.Series(
        "p", world.model(2).predict_proba(feats.select(plan.feature_names))[:, 1]))
    got = pl.read_parquet(d / "predictions.parquet").join(expected, on="transaction_id")
    assert got.height == feats.height
    assert (got["probability"] - got["p"]).abs().max() < 1e-12


def test_explicit_other_features_fails_naming_both_hashes(world):
    cfg = world.cfg("action=score", "features=fraud_v1", out="skew")
    ctx = RunContext.from_config(cfg, overrides=["action=score", "features=fraud_v1"])
    from mlops.actions import parity, score
    with pytest.raises(SkewError) as err:
        score.run(ctx)
    msg = str(err.value)
    assert err.value.exit_code == 2 and "features=fraud_v1" in msg
    assert world.h1[:12] in msg and world.h2[:12] in msg
    # the same spec as the model's, given explicitly, is fine
    cfg = world.cfg("action=parity", "features=fraud_v2", "serving.parity_events=40", out="same")
    ctx = RunContext.from_config(cfg, overrides=["action=parity", "features=fraud_v2"])
    assert parity.run(ctx).exit_code == 0


def test_parity_and_monitor_use_the_models_plan(world):
    code, _ = world.run("action=parity", "serving.parity_events=60", out="parity")
    r = world.json("parity", "parity")
    assert code == 0 and r["plan"]["hash"] == world.h2 and r["n_mismatches"] == 0
    code, _ = world.run("action=monitor", "monitoring.window.start_day=70",
                        "monitoring.window.days=20", out="monitor")
    m = world.json("monitor", "monitor")
    assert code in (0, 3), world.json("monitor", "result")
    assert m["model"]["version"] == 2
    assert "burst_share_1h" in m["features"]  # a fraud_v2-only feature is monitored


def test_simulated_experiment_scores_each_arm_with_its_own_plan(world):
    code, _ = world.run("action=analyze", *EXP, out="analyze")
    assert code == 0, world.json("analyze", "result")
    r = world.json("analyze", "analyze")
    info = r["outcomes"]
    assert info["plans"]["control"].startswith("fraud_v2") and \
        info["plans"]["treatment"].startswith("fraud_v1")
    # brute force: window = last 21 days; each unit's arm by hand; its rows scored by its
    # own model on its own features; declines per unit = rows at or above that version's
    # own decision threshold (its policy, chosen at training)
    reg = Registry(world.tmp / "home")
    thresholds = {v: reg.get_version("fraud_detector", v).policy["decision"]["threshold"]
                  for v in (1, 2)}
    assert thresholds[1] != thresholds[2] and info["thresholds"] == {
        "control": thresholds[2], "treatment": thresholds[1]}
    for arm, version, features in (("control", 2, "fraud_v2"), ("treatment", 1, "fraud_v1")):
        ctx, plan = world.plan(features)
        feats = compute_features(plan, ctx.scan_events()).collect()
        start = feats["event_ts"].max() - timedelta(days=21)
        rows = feats.filter(pl.col("event_ts") >= start)
        arms = {u: ("control" if bucket(SEED, u) < 0.5 else "treatment")
                for u in rows["user_id"].unique().to_list()}
        rows = rows.filter(pl.col("user_id").replace_strict(arms) == arm)
        p = world.model(version).predict_proba(rows.select(plan.feature_names))[:, 1]
        per_unit = rows.with_columns(pl.Series("d", (p >= thresholds[version]).astype(float))) \
            .group_by("user_id").agg(pl.col("d").sum())
        entry = r["metrics"]["declines"]["variants"]["treatment"]
        got = entry["control_mean"] if arm == "control" else entry["treatment_mean"]
        assert got == pytest.approx(per_unit["d"].mean(), rel=1e-12)
    code, _ = world.run("action=plan", *EXP, out="plan")
    assert code == 0 and world.json("plan", "plan")["units_per_arm"] > 0


def test_served_experiment_scores_each_arm_with_its_own_plan(world):
    code, _ = world.run("action=replay", *EXP, "serving.replay.start_day=95",
                        "serving.replay.days=8", out="replay")
    assert code == 0, world.json("replay", "result")
    log = scan_prediction_log(world.tmp / "home" / "predictions").collect()
    served = log.filter(pl.col("served_by") == "model")
    assert dict(served.select("variant", "model_version").unique().iter_rows()) == \
        {"control": "2", "treatment": "1"}
    # each logged score equals the batch path of that arm's model on that arm's plan
    for arm, version, features in (("control", 2, "fraud_v2"), ("treatment", 1, "fraud_v1")):
        ctx, plan = world.plan(features)
        feats = compute_features(plan, ctx.scan_events(), keep=["transaction_id"]).collect()
        mine = served.filter(pl.col("variant") == arm).join(
            feats, left_on="request_id", right_on="transaction_id")
        assert mine.height == served.filter(pl.col("variant") == arm).height > 0
        p = world.model(version).predict_proba(mine.select(plan.feature_names))[:, 1]
        assert np.abs(mine["probability"].to_numpy() - p).max() < 1e-9
    code, _ = world.run("action=analyze", *EXP, "experiment.outcomes.source=prediction_log",
                        out="analyze_log")
    assert code == 0, world.json("analyze_log", "result")
    r = world.json("analyze_log", "analyze")
    assert r["outcomes"]["joined"] == served.height
    assert sum(r["srm"]["observed"].values()) == served["entity"].n_unique()


def test_without_an_event_id_the_log_joins_on_entity_and_time(world):
    """data.event_id=null: request ids are generated; outcomes and labels join the log on
    (entity, timestamp) and give exactly what the event-id join gives on the same traffic."""
    window = ["serving.replay.start_day=100", "serving.replay.days=4"]
    results = {}
    for eid in ("transaction_id", "null"):
        log = [f"serving.log_dir={world.tmp / f'log_{eid}'}", f"data.event_id={eid}",
               f"serving.store.path={world.tmp / f'store_{eid}.sqlite'}"]  # same history
        code, _ = world.run("action=replay", *EXP, *window, *log, out=f"replay_{eid}")
        assert code == 0, world.json(f"replay_{eid}", "result")
        code, _ = world.run("action=analyze", *EXP, *log,
                            "experiment.outcomes.source=prediction_log", out=f"an_{eid}")
        assert code == 0, world.json(f"an_{eid}", "result")
        results[eid] = world.json(f"an_{eid}", "analyze")
        code, _ = world.run("action=monitor", "monitoring.source=prediction_log", *log,
                            out=f"mon_{eid}")
        mon = world.json(f"mon_{eid}", "monitor")
        assert code in (0, 3) and mon["current"]["rows"] > 0
        results[eid]["labelled"] = mon["performance"]["labelled_rows"]
    ids = scan_prediction_log(world.tmp / "log_null").collect()["request_id"]
    assert not ids.str.starts_with("t").any()  # generated, not transaction ids
    a, b = results["transaction_id"], results["null"]
    assert a["outcomes"]["joined"] == b["outcomes"]["joined"] > 0
    assert a["labelled"] == b["labelled"] > 0
    assert a["guardrails"][0]["estimate"] == pytest.approx(b["guardrails"][0]["estimate"],
                                                          rel=1e-12)
    for m in ("cost", "declines", "fraud_loss"):
        x, y = a["metrics"][m]["variants"]["treatment"], b["metrics"][m]["variants"]["treatment"]
        assert x["control_mean"] == pytest.approx(y["control_mean"], rel=1e-12)
        assert x["treatment_mean"] == pytest.approx(y["treatment_mean"], rel=1e-12)


def test_champion_is_scored_with_its_own_plan_on_the_same_test_rows(world):
    code, _ = world.run("action=train", "training.compare_with=production",
                        "training.register=false", out="t3")  # candidate on fraud_v1
    assert code == 0, world.json("t3", "result")
    r = world.json("t3", "train")
    champ = r["champion"]
    assert champ["version"] == 2 and champ["plan"]["hash"] == world.h2
    # by hand: production (v2) on ITS features of the candidate's test rows
    from datetime import datetime

    from sklearn.metrics import roc_auc_score
    lo, hi = (datetime.fromisoformat(b) for b in r["split"]["bounds"][2:4])
    ctx, plan = world.plan("fraud_v2")
    feats = compute_features(plan, ctx.scan_events(), keep=["is_fraud", "label_ts"]).collect()
    test = feats.filter((pl.col("event_ts") >= lo) & (pl.col("event_ts") < hi)
                        & (pl.col("label_ts") <= hi))
    assert test.height == r["evaluation"]["test"]["rows"]
    p = world.model(2).predict_proba(test.select(plan.feature_names))[:, 1]
    auc = roc_auc_score(test["is_fraud"].to_numpy(), p)
    assert champ["metrics"]["roc_auc"] == pytest.approx(auc, rel=1e-12)
    assert champ["lift"]["roc_auc"] == pytest.approx(
        r["evaluation"]["test"]["roc_auc"] - auc, rel=1e-9)
