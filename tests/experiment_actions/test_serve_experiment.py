"""A/B test through the server: route by unit hash, log the variant, analyse the log."""
from __future__ import annotations

import json

import polars as pl
from support import SMALL, declare_approvers

from mlops.experiments import bucket
from mlops.serving.prediction_log import scan_prediction_log

DATA = [*SMALL, "data.scenario=none"]
VARIANTS = ("experiment.variants=[{name: control, model: production, weight: 0.5}, "
            "{name: treatment, model: staging, weight: 0.5}, "
            "{name: candidate, model: '1', weight: 0.0, shadow: true}]")
EXP = ["experiment=ab_v1_v2", VARIANTS, "serving.breaker.enabled=false",
       "experiment.min_duration_days=0"]


def test_replay_routes_by_hash_logs_variants_and_analyze_reads_the_log(run_action, tmp_path):
    assert run_action("action=train", *DATA, out="t1")[0] == 0
    assert run_action("action=train", *DATA, "model=hgb", "model.params.max_iter=40",
                      out="t2")[0] == 0
    ann = declare_approvers(run_action, "ann")
    for v, alias in ((1, "production"), (2, "staging")):
        assert run_action("action=approve", *DATA, *ann, f"registry.version={v}",
                          "registry.approver=ann", out=f"a{v}")[0] == 0
        assert run_action("action=promote", *DATA, *ann, f"registry.version={v}",
                          f"registry.alias={alias}", "registry.policies.production=[{approvals: 1}]",
                          out=f"p{v}")[0] == 0
    code, d = run_action("action=replay", *DATA, *EXP, "serving.replay.start_day=80",
                         "serving.replay.days=20", out="replay")
    assert code == 0, json.loads((d / "result.json").read_text())
    log = scan_prediction_log(tmp_path / "home" / "predictions").collect()
    served = log.filter(pl.col("served_by") == "model")
    shadow = log.filter(pl.col("served_by") == "shadow")
    assert set(served["variant"].unique()) == {"control", "treatment"}
    assert shadow.height == served.height and set(shadow["variant"]) == {"candidate"}
    # every logged assignment is GrowthBook's bucket of (seed, unit) against the weights
    seed = "fraud-v1-vs-v2-2024-05"
    for unit, variant in served.select("entity", "variant").unique().iter_rows():
        assert variant == ("control" if bucket(seed, unit) < 0.5 else "treatment")
    versions = dict(served.select("variant", "model_version").unique().iter_rows())
    assert versions == {"control": "1", "treatment": "2"}
    code, d = run_action("action=analyze", *DATA, *EXP, "experiment.outcomes.source=prediction_log",
                         out="analyze")
    assert code == 0, json.loads((d / "result.json").read_text())
    r = json.loads((d / "analyze.json").read_text())
    assert r["outcomes"]["source"] == "prediction_log"
    assert r["srm"]["flagged"] is False
    n = sum(r["srm"]["observed"].values())
    assert n == served["entity"].n_unique()
