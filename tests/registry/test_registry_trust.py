"""Issue 13's measured attacks on the registry, each one now caught.

Direct SQLite edits, forged approvals, a dropped trigger, a tampered artefact on
rollback, approvals signed by an undeclared key, the trainer approving under another
name, control characters in names, a consistently rewritten history (expect_head),
orphans and file modes.
"""
from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.linear_model import LogisticRegression

from mlops.errors import ConfigError, GateFailedError, IntegrityError, RegistryError
from mlops.registry import DEFAULT_TRUSTED_TYPES, chain
from mlops.registry.approvals import payload
from mlops.registry.signing import generate_keypair, load_private_key, public_key_text, sign


def _xy():
    x = np.random.default_rng(3).normal(size=(40, 2))
    return x, (x[:, 0] > 0).astype(int)


KEYS = {n: Ed25519PrivateKey.generate() for n in ("alice", "bob", "mallory")}
PUB = {n: public_key_text(k.public_key()) for n, k in KEYS.items()}
DECLARED = {"alice": PUB["alice"], "bob": PUB["bob"]}  # mallory is nobody's approver
POLICY = {"production": [{"approvals": 1}]}


@pytest.fixture()
def reg(tmp_path, make_registry):
    return make_registry(tmp_path / "home", policies=POLICY, approvers=DECLARED)


def _live(reg, model, n=2):
    """n versions trained by bob, each approved by alice and promoted: production = n."""
    for _ in range(n):
        v = reg.register("fraud", model, metadata={"metrics": {"roc_auc": 0.8}}, actor="bob").version
        reg.approve("fraud", v, "alice", private_key=KEYS["alice"])
        reg.promote("fraud", v, "production", actor="alice")
    return reg


def _kinds(report):
    return [p["kind"] for p in report["problems"]]


def test_an_untouched_registry_verifies_and_every_event_links(reg, logreg):
    _live(reg, logreg)
    reg.rollback("fraud", actor="alice")
    report = reg.verify()
    assert report["ok"] and report["problems"] == [] and report["events"] == 7
    log = reg.audit_log()
    assert [e["action"] for e in log] == ["register", "approve", "promote"] * 2 + ["rollback"]
    assert log[0]["prev_hash"] == chain.GENESIS and report["head"] == log[-1]["hash"]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(log, log[1:]))


def test_moving_an_alias_in_the_database_changes_nothing_served_and_is_reported(reg, logreg, backend):
    _live(reg, logreg, 1)
    reg.register("fraud", logreg, metadata={"metrics": {"roc_auc": 0.5}}, actor="bob")  # v2, unapproved
    backend.sql(reg, "UPDATE aliases SET version = 2 WHERE alias = 'production'")
    assert reg.aliases("fraud") == {"production": 1}  # aliases are read from the chain
    assert reg.load_model("fraud", "production", DEFAULT_TRUSTED_TYPES)[1].version == 1
    report = reg.verify()
    assert _kinds(report) == ["alias_without_event"]
    assert "points at version 2 in the aliases table but the chain says 1" in report["problems"][0]["problem"]


def test_a_forged_approval_row_is_not_counted_and_is_reported(reg, logreg, backend):
    reg.register("fraud", logreg, metadata={}, actor="bob")
    backend.sql(reg, "INSERT INTO approvals VALUES ('fraud', 1, 'alice', 'production', '2025-01-01', NULL, "
              f"'{PUB['alice']}', 'Zm9yZ2Vk')")
    with pytest.raises(GateFailedError, match="0 of 1 required"):
        reg.promote("fraud", 1, "production")
    assert _kinds(reg.verify()) == ["approval_without_event"]


def test_dropping_the_trigger_then_editing_the_log_is_detected(reg, logreg, backend):
    _live(reg, logreg)
    backend.sql(reg, backend.drop_trigger("audit_no_update"), "UPDATE audit SET actor = 'carol' WHERE id = 2")
    report = reg.verify()
    assert {"missing_trigger", "broken_link"} <= set(_kinds(report))
    assert report["first_broken_link"]["event"] == 2
    assert "event #2 (approve fraud v1) was changed" in report["first_broken_link"]["problem"]
    # deleting an event is caught too (the next one no longer links)
    backend.sql(reg, backend.drop_trigger("audit_no_delete"), "UPDATE audit SET actor = 'alice' WHERE id = 2",
                "DELETE FROM audit WHERE id = 3")
    assert "events #3..#3 are missing" in reg.verify()["first_broken_link"]["problem"]


def test_editing_a_version_row_after_dropping_its_trigger_is_detected(reg, logreg, backend):
    _live(reg, logreg, 1)
    backend.sql(reg, backend.drop_trigger("versions_no_update"),
                "UPDATE versions SET metrics = '{\"roc_auc\": 0.99}'")
    assert set(_kinds(reg.verify())) == {"missing_trigger", "version_changed"}


def test_rollback_refuses_a_tampered_target(reg, logreg, hgb_pipeline, tabular):
    reg.register("fraud", logreg, metadata={}, actor="bob")
    reg.register("fraud", hgb_pipeline, metadata={}, actor="bob")  # different bytes
    for v in (1, 2):
        reg.approve("fraud", v, "alice", private_key=KEYS["alice"])
        reg.promote("fraud", v, "production")
    path = reg.get_version("fraud", 1).artifact_path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="rollback of model 'fraud' version 1 .* refused.*sha256") as err:
        reg.rollback("fraud")
    assert err.value.exit_code == 4
    assert reg.aliases("fraud") == {"production": 2}
    refused = reg.audit_log()[-1]
    assert refused["action"] == "refused" and refused["details"]["operation"] == "rollback"
    assert _kinds(reg.verify()) == ["artifact"]


def test_approvals_signed_by_an_undeclared_key_do_not_count(reg, logreg):
    reg.register("fraud", logreg, metadata={}, actor="bob")
    # through the API: an undeclared name, and a declared name with someone else's key
    with pytest.raises(RegistryError, match="'mallory' is not a declared approver"):
        reg.approve("fraud", 1, "mallory", private_key=KEYS["mallory"])
    with pytest.raises(RegistryError, match="not alice's declared key"):
        reg.approve("fraud", 1, "alice", private_key=KEYS["mallory"])
    # around the API: a well-formed, correctly chained event signed with mallory's key
    ts = "2025-01-01T00:00:00+00:00"
    sha = reg.get_version("fraud", 1).artifact_sha256
    content = payload(model="fraud", version=1, artifact_sha256=sha, alias="production", approver="alice", ts=ts)
    signature = sign(KEYS["mallory"], content)
    with reg.database.write() as conn:
        conn.execute("INSERT INTO approvals VALUES ('fraud', 1, 'alice', 'production', ?, NULL, ?, ?)",
                     (ts, PUB["mallory"], signature))
        chain.append(conn, ts=ts, model="fraud", version=1, action="approve", alias="production", actor="alice",
                     details={"ts": ts, "comment": None, "public_key": PUB["mallory"], "signature": signature,
                              "payload": content})
    with pytest.raises(GateFailedError, match="not counted: alice: signature does not verify"):
        reg.promote("fraud", 1, "production")
    report = reg.verify()
    assert "undeclared_key" in _kinds(report) and "broken_link" not in _kinds(report)


def test_the_trainer_cannot_approve_under_any_name(reg, logreg):
    reg.register("fraud", logreg, metadata={}, actor="bob")
    with pytest.raises(RegistryError, match="'bob' trained version 1"):
        reg.approve("fraud", 1, "bob", private_key=KEYS["bob"])
    with pytest.raises(RegistryError, match="not alice's declared key"):  # bob's key, alice's name
        reg.approve("fraud", 1, "alice", private_key=KEYS["bob"])
    with pytest.raises(RegistryError, match="'ROOT' is not a declared approver"):
        reg.approve("fraud", 1, "ROOT", private_key=KEYS["bob"])
    with pytest.raises(ConfigError, match="no spaces or control characters"):
        reg.approve("fraud", 1, "carol\nINJECTED", private_key=KEYS["bob"])
    with pytest.raises(ConfigError, match="control characters"):
        reg.register("fraud", logreg, metadata={}, actor="carol\nINJECTED")
    refusals = [e for e in reg.audit_log() if e["action"] == "refused"]
    assert len(refusals) == 3 and all(e["details"]["operation"] == "approve" for e in refusals)
    assert reg.approvals("fraud", 1) == []
    with pytest.raises(GateFailedError):
        reg.promote("fraud", 1, "production")


def test_expect_head_catches_a_consistently_rewritten_history(reg, logreg, backend):
    reg.register("fraud", logreg, metadata={}, actor="bob")
    with pytest.raises(GateFailedError):
        reg.promote("fraud", 1, "production")  # the refusal is event #2
    head = reg.verify()["head"]
    reg.approve("fraud", 1, "alice", private_key=KEYS["alice"])
    assert reg.verify(expect_head=head)["ok"]  # history grew; up to head it is unchanged
    # an attacker with write access removes the refusal and re-hashes every later event
    with reg.database.write() as conn:
        conn.execute(backend.drop_trigger("audit_no_delete"))
        events = [e for e in chain.events(conn) if e.action != "refused"]
        conn.execute("DELETE FROM audit")
        conn.execute(f"DELETE FROM {backend.sequence_table} WHERE name = 'audit'")
        for e in events:
            chain.append(conn, ts=e.ts, model=e.model, version=e.version, action=e.action, alias=e.alias,
                         actor=e.actor, details=e.details)
        conn.execute(backend.create_trigger("audit_no_delete"))
    assert reg.verify()["ok"]  # a full rewrite is self-consistent: only an outside head shows it
    report = reg.verify(expect_head=head)
    assert _kinds(report) == ["rewritten"] and head in report["problems"][0]["problem"]


def test_an_interrupted_registration_is_a_note_not_tampering_and_gc_removes_it(reg, logreg):
    reg.register("fraud", logreg, metadata={}, actor="bob")

    def killed():
        raise KeyboardInterrupt  # the process dies between the file write and the insert
    reg._after_artifact_write = killed
    with pytest.raises(KeyboardInterrupt):
        reg.register("fraud", LogisticRegression(C=0.5).fit(*_xy()), metadata={}, actor="bob")
    report = reg.verify()
    assert report["ok"] and report["problems"] == []
    (note,) = report["notes"]
    assert note["kind"] == "interrupted_write" and "action=gc" in note["note"]
    assert note["file"] not in {str(reg.get_version("fraud", 1).artifact_path)}
    assert reg.gc_orphans(min_age_seconds=0) == [Path(note["file"])]
    assert reg.verify()["notes"] == [] and reg.load_model("fraud", 1, DEFAULT_TRUSTED_TYPES)


def test_a_partial_write_is_a_note_and_a_missing_artefact_is_tampering(reg, logreg):
    mv = reg.register("fraud", logreg, metadata={}, actor="bob")
    partial = mv.artifact_path.parent / f".{mv.artifact_sha256[:16]}.abc123.tmp"  # killed mid-write
    partial.write_bytes(mv.artifact_path.read_bytes()[:100])
    report = reg.verify()
    assert report["ok"] and [n["file"] for n in report["notes"]] == [str(partial)]
    assert reg.gc_orphans(min_age_seconds=3600) == []  # young: may be a write in progress
    assert reg.gc_orphans(min_age_seconds=0) == [partial] and not partial.exists()
    mv.artifact_path.unlink()  # a recorded fact gone: that is exit 4, whoever did it
    report = reg.verify()
    assert not report["ok"] and _kinds(report) == ["artifact"] and "missing" in report["problems"][0]["problem"]


def test_record_event_extends_the_chain(reg, logreg):
    _live(reg, logreg, 1)
    reg.record_event("fraud", "breaker_trip", version=1, alias="production", actor="server",
                     details={"psi": 0.4})
    last = reg.audit_log()[-1]
    assert (last["action"], last["details"], last["actor"]) == ("breaker_trip", {"psi": 0.4}, "server")
    assert reg.verify()["ok"]
    with pytest.raises(ConfigError, match="action"):
        reg.record_event("fraud", "Bad Action")


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_home_files_are_private(reg, logreg, tmp_path):
    _live(reg, logreg, 1)
    generate_keypair(reg.home / "keys" / "alice.key")
    files = [reg.home / "keys" / "alice.key", reg.home / "keys" / "alice.pub",
             *[p for p in reg.artifacts_dir.rglob("*") if p.is_file()]]
    reader = None
    if reg.db_path is not None:  # SQLite: the database and its -wal/-shm are files of the home
        reader = sqlite3.connect(reg.db_path)  # SQLite removes -wal/-shm when the last connection closes
        reader.execute("SELECT COUNT(*) FROM versions").fetchall()
        files += [reg.db_path, reg.db_path.with_name("registry.db-wal"), reg.db_path.with_name("registry.db-shm")]
    dirs = [reg.artifacts_dir.parent, reg.artifacts_dir, reg.home / "keys",
            *[p for p in reg.artifacts_dir.rglob("*") if p.is_dir()]]
    assert all(p.exists() for p in files)
    assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
    assert {str(p): _mode(p) for p in dirs} == {str(p): 0o700 for p in dirs}
    if reader is not None:
        reader.close()
    # a private key others can read is refused, like ssh does
    (reg.home / "keys" / "alice.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_private_key(reg.home / "keys" / "alice.key")


def test_serving_and_monitoring_files_are_private(tmp_path):
    import polars as pl

    from mlops.features.compile import compile_plan
    from mlops.features.online import SQLiteStore
    from mlops.home import open_private
    from mlops.serving.prediction_log import PredictionLog
    SQLiteStore(tmp_path / "home" / "online" / "store.sqlite").close()
    plan = compile_plan({"name": "t", "entity": "uid", "timestamp": "ts", "raw": ["x"],
                         "label": {"column": "y"}},
                        {"uid": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64, "y": pl.Int8})
    log = PredictionLog(tmp_path / "home" / "predictions", plan)
    log.append([{"request_id": "r1"}])
    log.close()
    with open_private(tmp_path / "home" / "alerts.jsonl") as fh:
        fh.write(json.dumps({"alert": 1}) + "\n")
    files = [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.name == "store.sqlite" for p in files)
    assert {str(p): _mode(p) for p in files} == {str(p): 0o600 for p in files}
    dirs = [tmp_path / "home" / "online", tmp_path / "home" / "predictions"]
    assert {str(p): _mode(p) for p in dirs} == {str(p): 0o700 for p in dirs}


def test_a_self_declared_approver_is_reported_against_the_reviewed_list(reg, logreg, make_registry):
    """The trainer controls his command line: he declares his own key as 'carol' for one run,
    approves and promotes. Verified against the reviewed approver list, that approval shows."""
    reg.register("fraud", logreg, metadata={}, actor="bob")
    rogue = make_registry(reg.home, policies=POLICY, approvers={**DECLARED, "carol": PUB["mallory"]})
    rogue.approve("fraud", 1, "carol", private_key=KEYS["mallory"])
    rogue.promote("fraud", 1, "production", actor="bob")
    assert rogue.verify()["ok"]  # consistent with what that run declared
    report = reg.verify()        # the registry opened with the reviewed list
    assert _kinds(report) == ["undeclared_approver"] and "'carol'" in report["problems"][0]["problem"]
    # and a gate evaluated under the reviewed list does not count it
    assert not reg.check_gates("fraud", 1, "production")[0].passed
