"""action=consistency: logged (online) features vs the offline engine on the same events."""
from __future__ import annotations

import glob
import json
import sqlite3

import polars as pl
import pytest

DATA = ["data.n_users=400", "data.days=110"]
REPLAY = ["serving.replay.start_day=95", "serving.replay.days=3",
          "serving.replay.records_per_request=16"]


def _promoted(run_action):
    alice = "+registry.approvers.alice.public_key_file=keys/alice.pub"
    for args, out in ((["action=train"], "train"), (["action=keygen", "registry.approver=alice"], "key"),
                      (["action=approve", alice, "registry.version=1", "registry.approver=alice"], "ap"),
                      (["action=promote", alice, "registry.version=1"], "promote")):
        assert run_action(*args, *DATA, out=out)[0] == 0, out


def _consistency(run_action, *extra, out="cons"):
    code, d = run_action("action=consistency", *DATA, *extra, out=out)
    return code, json.loads((d / "consistency.json").read_text()), d


def test_clean_replay_is_consistent(run_action, tmp_path):
    _promoted(run_action)
    code, d = run_action("action=replay", *DATA, *REPLAY, out="replay")
    assert code == 0
    events = json.loads((d / "replay.json").read_text())["window"]["events"]
    code, c, out = _consistency(run_action)
    assert code == 0 and c["status"] == "ok", c["headline"]
    assert c["join"]["key"] == "transaction_id"
    assert c["join"]["matched"] == c["log"]["plan_rows"] == events and c["join"]["unmatched"] == 0
    assert c["failing"] == {} and len(c["features"]) >= 10
    for name, f in c["features"].items():
        assert f["compared"] == events
        assert f["mismatch"] == f["online_null"] == f["offline_null"] == 0, name
        if f["type"] == "numeric":
            assert f["max_abs_diff"] <= 1e-9, name
    assert (out / "consistency.html").exists()
    assert not (tmp_path / "home" / "alerts.jsonl").exists()
    # without an event id the join falls back to (entity, timestamp); ties are left out
    code, c2, _ = _consistency(run_action, "data.event_id=null", out="cons_no_id")
    assert code == 0 and c2["join"]["key"] == "user_id, event_ts"
    assert c2["join"]["matched"] + c2["join"]["ambiguous"] == events
    assert all(f["mismatch_rate"] == 0 for f in c2["features"].values())


def test_tampered_log_is_found_and_alerts(run_action, tmp_path):
    _promoted(run_action)
    assert run_action("action=replay", *DATA, *REPLAY, out="replay")[0] == 0
    parts = sorted(glob.glob(str(tmp_path / "home" / "predictions" / "*" / "*.parquet")))  # one replica
    log = pl.read_parquet(parts[0])
    feats = log["features"].struct.unnest()
    numeric = next(c for c, t in feats.schema.items() if t == pl.Float64)
    k = 7  # the server "logged" a wrong value for 7 requests
    changed = feats.with_columns(pl.when(pl.int_range(pl.len()) < k).then(pl.col(numeric) + 0.5)
                                 .otherwise(pl.col(numeric)).alias(numeric))
    log.with_columns(pl.Series("features", changed.to_struct())).write_parquet(parts[0])
    total = sum(pl.read_parquet(p).height for p in parts)
    code, c, _ = _consistency(run_action)
    assert code == 3 and c["status"] == "fail"
    f = c["features"][numeric]
    assert f["mismatch"] == k and f["mismatch_rate"] == pytest.approx(k / total)
    assert f["max_abs_diff"] == pytest.approx(0.5)
    assert len(f["examples"]) == k and all(abs(e["online"] - e["offline"]) == pytest.approx(0.5)
                                           for e in f["examples"])
    assert list(c["failing"]) == [numeric]
    assert sum(g["mismatch"] for g in c["features"].values()) == k  # nothing else moved
    alert = json.loads((tmp_path / "home" / "alerts.jsonl").read_text().splitlines()[-1])
    assert alert["source"] == "consistency" and numeric in alert["reasons"][0]
    # a threshold above the observed rate: reported, not alerted
    code, c, _ = _consistency(run_action, "monitoring.consistency.max_mismatch_rate=0.5",
                              out="lenient")
    assert code == 0 and c["features"][numeric]["mismatch"] == k


def test_corrupted_online_store_shows_mismatches(run_action, tmp_path):
    """Stored events altered in the online store (a corrupted replica) skew window features.

    The altered rows stay in place, as a real store would keep serving them. The plan has no
    event id, so an event's identity is its entity, time and payload (`duplicates:
    identical`): the next replay's history load stores the original events beside the
    altered ones, so counts over those days drift too; the request's own inputs never do.
    """
    _promoted(run_action)
    assert run_action("action=replay", *DATA, *REPLAY, out="first")[0] == 0
    code, c, _ = _consistency(run_action, out="clean")
    assert code == 0 and not c["failing"]
    with sqlite3.connect(tmp_path / "home" / "online_store.sqlite") as con:
        changed = con.execute(
            "UPDATE events SET payload = json_set(payload, '$.amount', "
            "json_extract(payload, '$.amount') + 1000.0) WHERE rowid % 3 = 0").rowcount
    assert changed > 0
    later = ["serving.replay.start_day=98", "serving.replay.days=2",
             "serving.replay.records_per_request=16"]
    assert run_action("action=replay", *DATA, *later, out="second")[0] == 0
    code, c, _ = _consistency(run_action, out="corrupted")
    assert code == 3 and c["status"] == "fail" and c["join"]["unmatched"] == 0
    # the request's own inputs are untouched; windows over the altered amounts are not
    assert c["features"]["amount"]["mismatch_rate"] == 0
    assert c["features"]["channel"]["mismatch_rate"] == 0
    windows = {f for f in c["failing"]}
    assert windows and all("amount" in f or f.startswith("events_count") for f in windows), windows
    assert any("amount" in f for f in windows)
    worst = max(c["features"].values(), key=lambda f: f["mismatch_rate"])
    assert worst["max_abs_diff"] >= 1000 - 1e-6 and worst["examples"]
    alerts = (tmp_path / "home" / "alerts.jsonl").read_text().splitlines()
    assert json.loads(alerts[-1])["source"] == "consistency"
