"""The trust actions through the CLI dispatcher: keygen -> signed approve -> promote,
verify (exit 4 on any problem, prints the head), registry (verifies too), rollback onto a
tampered artefact (exit 4), gc; on SQLite and on PostgreSQL (registry.url)."""
from __future__ import annotations

import json
import stat

import pytest

from mlops.registry import Registry

META = {"metrics": {"roc_auc": 0.8, "leakage_suspected": 0},
        "fairness": {"demographic_parity_difference": 0.05}}
ALICE = "+registry.approvers.alice.public_key_file=keys/alice.pub"


@pytest.fixture
def home(tmp_path, logreg, hgb_pipeline, monkeypatch, backend):
    monkeypatch.chdir(tmp_path)
    backend.env(monkeypatch)
    reg = Registry(tmp_path / "home", **backend.kwargs)
    reg.register("fraud_detector", logreg, metadata=META, actor="bob")
    reg.register("fraud_detector", hgb_pipeline, metadata=META, actor="bob")
    return tmp_path / "home"


@pytest.fixture
def cli(run_action, backend):
    """run_action on the test's backend."""
    return lambda *overrides, out: run_action(*overrides, *backend.overrides, out=out)


def _result(d, name="result"):
    return json.loads((d / f"{name}.json").read_text())


def test_keygen_approve_promote_verify_rollback(cli, home, capsys, backend):
    run_action = cli
    code, d = run_action("action=keygen", "registry.approver=alice", out="k")
    out = capsys.readouterr().out
    key = home / "keys" / "alice.key"
    assert code == 0 and stat.S_IMODE(key.stat().st_mode) == 0o600
    public = (home / "keys" / "alice.pub").read_text().strip()
    assert f"+registry.approvers.alice.public_key={public}" in out
    # undeclared: a name is not an identity
    code, d = run_action("action=approve", "registry.version=1", "registry.approver=alice", out="a0")
    assert code == 2 and "not a declared approver" in _result(d)["error"]
    for v in (1, 2):
        assert run_action("action=approve", ALICE, f"registry.version={v}", "registry.approver=alice",
                          out=f"a{v}")[0] == 0
        assert run_action("action=promote", ALICE, f"registry.version={v}", out=f"p{v}")[0] == 0
    capsys.readouterr()
    code, d = run_action("action=verify", ALICE, out="v")
    head = _result(d, "verify")["integrity"]["head"]
    assert code == 0 and f"chain head: {head}" in capsys.readouterr().out
    # tamper with v1's artefact: rollback refuses (exit 4), verify and registry exit 4
    art = Registry(home, **backend.kwargs).get_version("fraud_detector", 1).artifact_path
    art.write_bytes(art.read_bytes() + b"x")
    code, d = run_action("action=rollback", ALICE, out="rb")
    assert code == 4 and "refused" in _result(d)["error"]
    assert Registry(home, **backend.kwargs).aliases("fraud_detector") == {"production": 2}
    for action in ("verify", "registry"):
        code, d = run_action(f"action={action}", ALICE, f"registry.expect_head={head}", out=action + "2")
        assert code == 4, action
        assert [p["kind"] for p in _result(d, action)["integrity"]["problems"]] == ["artifact"]
    assert "integrity: artifact:" in capsys.readouterr().err


def test_verify_names_direct_edits_and_gc_removes_interrupted_writes(cli, home, backend, capsys):
    run_action, reg = cli, Registry(home, **backend.kwargs)
    orphan = home / "registry" / "artifacts" / "ab" / ("ab" * 32 + ".skops")
    orphan.parent.mkdir()
    orphan.write_bytes(b"left by a killed registration")
    code, d = run_action("action=verify", out="v0")
    integrity = _result(d, "verify")["integrity"]
    assert code == 0 and integrity["problems"] == []  # an interrupted write is not tampering
    assert [n["kind"] for n in integrity["notes"]] == ["interrupted_write"]
    assert "note: interrupted_write:" in capsys.readouterr().out
    backend.sql(reg, "INSERT INTO aliases VALUES ('fraud_detector', 'production', 2, 'now')")
    code, d = run_action("action=verify", out="v")
    problems = _result(d, "verify")["integrity"]["problems"]
    assert code == 4 and [p["kind"] for p in problems] == ["alias_without_event"]
    code, d = run_action("action=gc", "registry.gc_min_age_seconds=0", out="gc")
    assert code == 4 and _result(d, "gc")["removed"] == [str(orphan)] and not orphan.exists()
    backend.sql(reg, "DELETE FROM aliases")  # the index is not append-only: repairing it is allowed
    assert run_action("action=verify", out="v2")[0] == 0


def test_expect_head_that_never_existed_fails(cli, home):
    run_action = cli
    code, d = run_action("action=verify", "registry.expect_head=" + "f" * 64, out="v")
    assert code == 4 and _result(d, "verify")["integrity"]["problems"][0]["kind"] == "rewritten"


def test_a_breaker_trip_by_monitoring_is_a_chain_event(run_action, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = ["data.n_users=1000", "data.days=120", "data.drift_start=90", "data.scenario=covariate_shift"]
    assert run_action("action=train", *data, out="t")[0] == 0
    assert run_action("action=keygen", "registry.approver=alice", out="k")[0] == 0
    assert run_action("action=approve", *data, ALICE, "registry.version=1", "registry.approver=alice",
                      out="a")[0] == 0
    assert run_action("action=promote", *data, ALICE, "registry.version=1", out="p")[0] == 0
    code, d = run_action("action=monitor", *data, "monitoring.window.start_day=92", "monitoring.window.days=28",
                         "monitoring.on_drift=[trip_breaker]", out="m")
    assert code == 0 and any(a["action"] == "trip_breaker" for a in _result(d, "monitor")["actions"])
    reg = Registry(tmp_path / "home")
    trip = reg.audit_log()[-1]
    assert trip["action"] == "breaker_trip" and trip["version"] == 1 and trip["details"]["source"] == "monitor"
    assert run_action("action=verify", ALICE, out="v")[0] == 0
