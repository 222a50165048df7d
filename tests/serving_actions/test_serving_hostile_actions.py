"""Issue 12 from the CLI config: secrets never reach lineage or reports, a replay run
twice changes no feature value, monitoring's trip_breaker reaches the servers."""
from __future__ import annotations

import json

import polars as pl
import pytest
from support import SMALL, declare_approvers

from mlops.registry.redact import REDACTED, redact

DATA = [*SMALL, "data.scenario=covariate_shift", "data.drift_start=80"]
SECRET = "hunter2-admin-token"
REDIS_PW = "redis-pw-42"


def test_redact_hides_secret_keys_and_url_passwords():
    cfg = {"serving": {"admin_token": "t", "store": {"url": f"redis://u:{REDIS_PW}@h:6379/0"}},
           "db": {"Password": "p", "client_secret": "s", "api_key": "k", "token_ttl": None},
           "list": [{"my_token": "x"}, "https://example.org/path"], "n": 3}
    out = redact(cfg)
    assert out["serving"]["admin_token"] == REDACTED
    assert out["serving"]["store"]["url"] == f"redis://u:{REDACTED}@h:6379/0"
    assert out["db"] == {"Password": REDACTED, "client_secret": REDACTED, "api_key": REDACTED,
                         "token_ttl": None}  # null stays visible: "not configured"
    assert out["list"] == [{"my_token": REDACTED}, "https://example.org/path"] and out["n"] == 3
    assert cfg["serving"]["admin_token"] == "t"  # a copy: the live config keeps its token


@pytest.fixture
def live(run_action):
    assert run_action("action=train", *DATA, f"serving.admin_token={SECRET}",
                      f"serving.store.url=redis://:{REDIS_PW}@127.0.0.1:6379/0",
                      out="train")[0] == 0
    ann = declare_approvers(run_action, "ann")
    assert run_action("action=approve", *DATA, *ann, "registry.version=1", "registry.approver=ann",
                      out="approve")[0] == 0
    assert run_action("action=promote", *DATA, *ann, "registry.version=1", out="promote")[0] == 0
    return run_action


def test_secrets_never_reach_lineage_or_reports(live, tmp_path):
    code, d = live("action=registry", *DATA, "+registry.approvers.ann.public_key_file=keys/ann.pub",
                   f"serving.admin_token={SECRET}", out="reg")
    assert code == 0
    from mlops.registry import Registry
    mv = Registry(tmp_path / "home").list_versions()[0]
    lineage = json.dumps(mv.config)
    assert SECRET not in lineage and REDIS_PW not in lineage and REDACTED in lineage
    for f in (tmp_path / "reg").glob("*"):
        if f.suffix in (".json", ".html"):
            text = f.read_text()
            assert SECRET not in text and REDIS_PW not in text, f.name
    for f in (tmp_path / "train").glob("*.json"):
        assert SECRET not in f.read_text()


def test_replay_twice_changes_no_feature_value(live, tmp_path):
    args = ["action=replay", *DATA, "serving.replay.start_day=60", "serving.replay.days=3",
            "serving.breaker.enabled=false"]
    assert live(*args, out="r1")[0] == 0
    store = tmp_path / "home" / "online_store.sqlite"
    import sqlite3
    with sqlite3.connect(store) as db:
        n1 = db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert live(*args, out="r2")[0] == 0
    with sqlite3.connect(store) as db:
        n2 = db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert n1 == n2 > 0
    log = pl.read_parquet(tmp_path / "home" / "predictions" / "**" / "*.parquet")
    feats = log.select("request_id", pl.col("features").struct.unnest())
    names = [c for c in feats.columns if c != "request_id"]
    per_id = feats.group_by("request_id").agg([pl.col(c).n_unique().alias(c) for c in names]
                                              + [pl.len().alias("copies")])
    assert per_id["copies"].min() == 2  # every event was served in both runs
    assert all(per_id[c].max() == 1 for c in names), "a feature differs between the two replays"


def _serving_state(tmp_path, *overrides):
    """The serving state ``action=serve`` would run, built in process (no socket)."""
    from support import compose_cfg

    from mlops.actions.context import RunContext
    ctx = RunContext.from_config(compose_cfg([*DATA, *overrides], tmp_path))
    return ctx.serving_state()


def test_monitor_trip_breaker_opens_the_serving_breaker_until_an_audited_reset(live, tmp_path):
    code, d = live("action=monitor", *DATA, "monitoring.on_drift=[trip_breaker]",
                   "monitoring.window.start_day=82", "monitoring.window.days=28", out="mon")
    result = json.loads((d / "monitor.json").read_text())
    trips = [a for a in result["actions"] if a["action"] == "trip_breaker"]
    assert trips and trips[0]["state"]["state"] == "tripped", result["headline"]
    from mlops.registry import Registry
    audit = [e for e in Registry(tmp_path / "home").audit_log() if e["action"] == "breaker_trip"]
    assert audit and audit[-1]["actor"] == "monitor" and audit[-1]["version"] == 1
    # a server of v1 started afterwards answers with the breaker open: no value
    state = _serving_state(tmp_path)
    assert state.breaker.status().state == "tripped"
    assert state.breaker.status().scope == "breaker.state.fraud_detector.v1"
    state.close()
    # a replay (a dry run) neither inherits the trip nor leaves one behind
    code, d2 = live("action=replay", *DATA, "serving.replay.start_day=60",
                    "serving.replay.days=1", out="after")
    replay = json.loads((d2 / "replay.json").read_text())
    assert replay["breaker"]["state"] == "closed" and replay["breaker"]["scope"].endswith(
        f"v1.replay-{d2.name}")
    # the explicit reset: action=breaker_reset, audited; servers close at their next poll
    code, d3 = live("action=breaker_reset", *DATA, "registry.version=1", out="reset")
    assert code == 0
    assert "reset (was tripped)" in json.loads((d3 / "registry.json").read_text())["headline"]
    resets = [e for e in Registry(tmp_path / "home").audit_log() if e["action"] == "breaker_reset"]
    assert resets and resets[-1]["version"] == 1 and resets[-1]["details"]["was"] == "tripped"
    state = _serving_state(tmp_path)
    assert state.breaker.status().state == "closed"
    state.close()
