"""Serving actions from the CLI config: skew guard, parity, sharded scoring and the merge check."""
from __future__ import annotations

import json

import polars as pl
import pytest
from support import SMALL, declare_approvers

DATA = [*SMALL, "data.scenario=covariate_shift", "data.drift_start=80"]


@pytest.fixture
def live(run_action):
    assert run_action("action=train", *DATA, out="train")[0] == 0
    ann = declare_approvers(run_action, "ann")
    assert run_action("action=approve", *DATA, *ann, "registry.version=1", "registry.approver=ann",
                      out="approve")[0] == 0
    assert run_action("action=promote", *DATA, *ann, "registry.version=1", out="promote")[0] == 0
    return run_action


def _json(d, name):
    return json.loads((d / f"{name}.json").read_text())


def test_parity_on_drifted_data_passes(run_action):
    code, d = run_action("action=parity", *DATA, "serving.parity_events=150", out="parity")
    r = _json(d, "parity")
    # events are replayed in runs of 4 consecutive events (as the micro-batcher groups them)
    assert code == 0 and r["ok"] and 140 <= r["events"] <= 150 and r["n_mismatches"] == 0
    assert set(r["backends"]) == {"frames", "rows"} and all(b["ok"] for b in r["backends"].values())
    assert r["compared"] == r["events"] * r["features"] * 2 and r["max_abs_diff"] == 0.0


def test_parity_replays_the_served_model_through_the_request_pipeline(live):
    code, d = live("action=parity", *DATA, "serving.parity_events=120", out="parity")
    r = _json(d, "parity")
    assert code == 0 and r["ok"] and r["max_prob_diff"] is not None and r["max_prob_diff"] <= 1e-12
    # every replayed record was logged by each backend's pipeline, and compared
    assert all(b["requests"] == r["events"] for b in r["backends"].values())
    assert "probabilities" in r["headline"] and "request pipeline" in r["headline"]


def test_parity_catches_a_wrong_rows_aggregate(run_action, monkeypatch):
    """A rows-backend sum one ulp off (patched) fails the rows backend only: exit 1."""
    from dataclasses import replace

    import numpy as np

    from mlops.features.aggregates import AGGREGATES
    right = AGGREGATES["sum"].row

    def sum_(values, n, latest, t):
        v = right(values, n, latest, t)
        return np.nextafter(v, np.inf) if v is not None and len(values) > 1 else v
    monkeypatch.setitem(AGGREGATES, "sum", replace(AGGREGATES["sum"], row=sum_))
    code, d = run_action("action=parity", *DATA, "serving.parity_events=150", out="parity")
    r = _json(d, "parity")
    assert code == 1 and not r["ok"] and r["status"] == "fail"
    assert r["backends"]["frames"]["ok"] and not r["backends"]["rows"]["ok"]
    assert {m["backend"] for m in r["mismatches"]} == {"rows"}
    assert all("_sum_" in m["feature"] for m in r["mismatches"])
    assert "rows:" in r["headline"]


def test_materialize_loads_realtime_history_as_of_a_time(run_action):
    code, d = run_action("action=materialize", *DATA, "serving.as_of=2024-02-10T00:00:00",
                         out="mat")
    r = _json(d, "materialize")
    assert code == 0 and r["mode"] == "realtime" and r["events"] > 0
    assert r["as_of"].startswith("2024-02-10")
    code, d = run_action("action=materialize", *DATA, "serving=hybrid",
                         "serving.as_of=2024-02-10T00:00:00", out="mat2")
    r = _json(d, "materialize")
    assert code == 0 and r["mode"] == "hybrid" and r["entities"] > 0 and r["events"] is None
    code, _ = run_action("action=materialize", *DATA, "serving.as_of=not-a-time", out="bad")
    assert code == 2


def test_skew_guard_names_both_hashes(live, tmp_path):
    # an explicit features= (as on the command line) that is not the model's spec
    from support import compose_cfg

    from mlops.actions import score
    from mlops.actions.context import RunContext
    from mlops.errors import SkewError
    cfg = compose_cfg([*DATA, "action=score", "features=fraud_v2"], tmp_path)
    ctx = RunContext.from_config(cfg, overrides=["action=score", "features=fraud_v2"])
    with pytest.raises(SkewError) as err:
        score.run(ctx)
    msg = str(err.value)
    assert err.value.exit_code == 2 and "fraud_detector" in msg and "plan" in msg
    v1 = _json(tmp_path / "train", "train")["plan"]["hash"][:12]
    assert v1 in msg
    # without an explicit features=, the model's own plan is used
    code, d = live("action=score", *DATA, out="own")
    assert code == 0 and _json(d, "score")["plan_hash"][:12] == v1


def test_sharded_scoring_equals_unsharded_and_merge_checks_shards(live, tmp_path):
    code, full = live("action=score", *DATA, out="full")
    assert code == 0
    for i in range(3):
        assert live("action=score", *DATA, f"serving.shard={i}", "serving.num_shards=3",
                    out=f"shard{i}")[0] == 0
    parts = pl.read_parquet(str(tmp_path / "shard*" / "predictions-*.parquet"))
    whole = pl.read_parquet(full / "predictions.parquet")
    key = ["transaction_id"]
    a, b = parts.sort(key), whole.sort(key)
    assert a.height == b.height
    assert a["transaction_id"].equals(b["transaction_id"])
    assert (a["probability"] - b["probability"]).abs().max() < 1e-12
    glob = str(tmp_path / "shard*" / "predictions-*.parquet")
    code, m = live("action=score_merge", *DATA, f"serving.input={glob}", "serving.num_shards=3",
                   out="merge")
    assert code == 0 and _json(m, "score")["rows"] == b.height
    code, m = live("action=score_merge", *DATA, f"serving.input={glob}", "serving.num_shards=4",
                   out="merge_missing")
    assert code == 2 and "shards missing: [3]" in _json(m, "result")["error"]
    (tmp_path / "dup").mkdir()
    (tmp_path / "dup" / "predictions-00001-of-00003.parquet").write_bytes(
        next((tmp_path / "shard1").glob("predictions-*.parquet")).read_bytes())
    both = str(tmp_path / "*" / "predictions-*-of-00003.parquet")
    code, m = live("action=score_merge", *DATA, f"serving.input={both}", "serving.num_shards=3",
                   out="merge_dup")
    assert code == 2 and "more than once: [1]" in _json(m, "result")["error"]


def test_replay_trips_the_breaker_on_shifted_traffic_only(live):
    code, d = live("action=replay", *DATA, "serving.replay.start_day=60",
                   "serving.replay.days=12", out="calm")
    calm = _json(d, "replay")
    code2, d2 = live("action=replay", *DATA, "serving.replay.start_day=82",
                     "serving.replay.days=12", out="shift")
    shifted = _json(d2, "replay")
    assert code == 0 and calm["breaker_tripped"] is False
    assert calm["statuses"] == {"200": calm["requests"]}
    assert code2 == 0 and shifted["breaker_tripped"] is True
    assert "amount" in shifted["trips"][0]["drifting"]
    # while tripped the server keeps answering (action=default: safe score + a warning)
    assert shifted["statuses"] == {"200": shifted["requests"]}
    assert shifted["records_with_breaker_warning"] > 0


def test_replay_lets_the_breaker_see_every_record_and_says_when_it_cannot(live):
    """By default the replay sends requests no larger than what the breaker observes per
    request, so its window holds every replayed record; a larger explicit batch is said in
    the result. A window too short to arm the breaker is 'never armed', not 'stayed closed'."""
    code, d = live("action=replay", *DATA, "serving.replay.start_day=60", "serving.replay.days=1",
                   out="short")
    short = _json(d, "replay")
    cap = 20                                   # serving.breaker.max_records_per_request
    assert code == 0 and short["latency_ms"]["records_per_request"] == cap
    assert "breaker_note" not in short
    events, held = short["window"]["events"], short["breaker"]["window_records"]
    assert held == min(events, 500)            # serving.breaker.window: every record observed
    assert not short["breaker"]["armed"] and short["breaker"]["min_records"] > held   # a day: 119
    assert f"never armed ({held:,} of the {short['breaker']['min_records']:,} records" in short["headline"]
    code, d = live("action=replay", *DATA, "serving.replay.start_day=60", "serving.replay.days=1",
                   "serving.replay.records_per_request=50", out="big")
    big = _json(d, "replay")
    assert code == 0 and "observed at most 20 of each request's 50 records" in big["breaker_note"]
    assert big["breaker"]["window_records"] < events


def test_replay_against_the_window_before_from_yaml_says_so_and_catches_the_change(live):
    """``serving.breaker.reference=previous`` reaches the served breaker from the config: its
    limits are calibrated on consecutive reference chunks, the replay catches the abrupt
    change at day 80 against the traffic before it, and the result and report say what the
    window was compared with."""
    from datetime import datetime, timedelta
    code, d = live("action=replay", *DATA, "serving.breaker.reference=previous",
                   "serving.replay.start_day=60", "serving.replay.days=14", out="calm")
    calm = _json(d, "replay")
    assert code == 0 and calm["breaker"]["armed"] and calm["breaker_tripped"] is False
    code, d = live("action=replay", *DATA, "serving.breaker.reference=previous",
                   "serving.replay.start_day=74", "serving.replay.days=14", out="previous")
    r = _json(d, "replay")
    assert code == 0 and r["breaker"]["reference"] == "previous"
    assert r["breaker"]["compared_with"] == "the 500 records before"
    assert "consecutive chunks" in r["breaker"]["calibration"]
    day80 = datetime.fromisoformat(r["window"]["start"]) + timedelta(days=6)
    assert r["breaker_tripped"] is True and datetime.fromisoformat(r["trips"][0]["time"]) >= day80
    html = next(d.glob("*.html")).read_text()
    assert "the 500 records before" in html and "<code>previous</code>" in html


def test_replay_refuses_a_batch_size_below_one(live):
    code, d = live("action=replay", *DATA, "serving.replay.records_per_request=0", out="zero")
    assert code == 2
