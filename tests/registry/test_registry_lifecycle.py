"""Registry lifecycle: versions and lineage, not-found errors, gates at promotion, approvals,
rollback and the append-only audit log."""
from __future__ import annotations

import json

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlops.errors import ConfigError, DataError, GateFailedError, NotFoundError, RegistryError
from mlops.registry import DEFAULT_TRUSTED_TYPES
from mlops.registry.lineage import git_commit
from mlops.registry.signing import public_key_text

GATES = {
    "production": [
        {"metric": "roc_auc", "min": 0.7},
        {"metric": "roc_auc", "max_drop_vs_current": 0.005},
        {"fairness": "demographic_parity_difference", "max": 0.1},
        {"approvals": 1},
    ],
}


def _meta(auc, dpd=0.05, **extra):
    return {"metrics": {"roc_auc": auc}, "fairness": {"demographic_parity_difference": dpd,
                                                      "equalized_odds_difference": 0.02},
            "code_version": None, **extra}


# Approvers' keys live in memory here; the CLI reads them from 0600 files (action=keygen).
KEYS = {n: Ed25519PrivateKey.generate() for n in ("alice", "bob", "carol")}
APPROVERS = {n: public_key_text(k.public_key()) for n, k in KEYS.items()}


@pytest.fixture()
def reg(tmp_path, make_registry):
    return make_registry(tmp_path, policies=GATES, approvers=APPROVERS)


def _add(reg, model, auc, who="alice", **extra):
    return reg.register("fraud", model, metadata=_meta(auc, **extra), actor=who)


def test_versions_are_numbered_per_model_and_keep_lineage(reg, logreg):
    meta = _meta(0.8, training_data_hash="d" * 64, feature_plan_hash="f" * 64, feature_plan_name="fraud_v1",
                 feature_plan_version=3, config={"model": {"C": np.float64(1.0)}, "seed": 1},
                 hyperparameters={"C": 1.0}, tags=["baseline"], description="first")
    v1 = reg.register("fraud", logreg, metadata=meta, actor="alice")
    v2 = reg.register("fraud", logreg, metadata=_meta(0.81), parent=1, actor="bob")
    other = reg.register("churn", logreg, metadata={}, actor="carol")
    assert (v1.version, v2.version, other.version) == (1, 2, 1)
    got = reg.get_version("fraud", 1)
    assert got == v1
    assert got.config == {"model": {"C": 1.0}, "seed": 1} and got.feature_plan_version == 3
    assert got.training_data_hash == "d" * 64 and got.feature_plan_name == "fraud_v1"
    assert got.tags == {"baseline": True} and got.who == "alice" and got.code_version is None
    assert got.created_at.endswith("+00:00")
    assert reg.get_version("fraud", "2").parent == 1 and reg.get_version("fraud", "latest").who == "bob"
    assert reg.list_models() == ["churn", "fraud"]
    assert [(m.name, m.version) for m in reg.list_versions()] == [("churn", 1), ("fraud", 1), ("fraud", 2)]
    # Same bytes -> one file on disk: the store is content-addressed.
    assert v1.artifact_path.name == f"{v1.artifact_sha256}.skops"
    assert v1.artifact_path.parent.name == v1.artifact_sha256[:2]


def test_versions_are_immutable(reg, logreg, backend):
    _add(reg, logreg, 0.8)
    with pytest.raises(backend.append_only_error, match="append-only"):
        backend.sql(reg, "UPDATE versions SET metrics = '{}'")


def test_bad_register_inputs(reg, logreg, tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'metrics'") as err:
        reg.register("fraud", logreg, metadata={"metrcs": {}})
    assert err.value.key == "metadata.metrcs"
    with pytest.raises(ConfigError, match="finite number"):
        reg.register("fraud", logreg, metadata={"metrics": {"roc_auc": float("nan")}})
    with pytest.raises(ConfigError, match="model name"):
        reg.register("bad name!", logreg, metadata={})
    with pytest.raises(DataError, match="reference file"):
        reg.register("fraud", logreg, metadata={}, reference_file=tmp_path / "nope.json")
    with pytest.raises(NotFoundError, match="not registered"):
        reg.register("fraud", logreg, metadata={}, parent=4)
    assert reg.list_models() == []  # nothing half-registered, not even a file
    assert not reg.artifacts_dir.exists() or not any(reg.artifacts_dir.rglob("*.*"))


def test_code_version_never_crashes(tmp_path, monkeypatch, reg, logreg):
    assert git_commit(tmp_path) is None  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git binary at all
    assert git_commit() is None
    monkeypatch.chdir(tmp_path)
    assert reg.register("fraud", logreg, metadata={}).code_version is None


def test_unknown_things_give_helpful_not_found(reg, logreg):
    _add(reg, logreg, 0.8)
    _add(reg, logreg, 0.81)
    reg.approve("fraud", 2, "bob", private_key=KEYS["bob"])
    reg.promote("fraud", 2, "production", actor="bob")
    with pytest.raises(NotFoundError) as err:
        reg.get_version("fraud", 7)
    assert "model 'fraud' has versions [1, 2]; aliases: production -> 2" in str(err.value)
    with pytest.raises(NotFoundError, match="no alias 'prod'.*Did you mean 'production'"):
        reg.load_model("fraud", "prod", trusted=DEFAULT_TRUSTED_TYPES)
    with pytest.raises(NotFoundError, match=r"registered models: \['fraud'\]. Did you mean 'fraud'"):
        reg.get_version("fraudd", 1)
    with pytest.raises(NotFoundError, match="without a reference file"):
        reg.reference_path("fraud", 1)


def test_failed_gate_refuses_and_leaves_alias_unchanged(reg, logreg):
    _add(reg, logreg, 0.8)
    reg.approve("fraud", 1, "bob", private_key=KEYS["bob"])
    reg.promote("fraud", 1, "production", actor="bob")
    _add(reg, logreg, 0.65, dpd=0.3)  # below min, unfair, not approved
    with pytest.raises(GateFailedError) as err:
        reg.promote("fraud", 2, "production", actor="bob")
    text = str(err.value)
    for name in ("metric:roc_auc>=0.7", "fairness:demographic_parity_difference<=0.1", "approvals>=1"):
        assert name in text
    assert {r.name for r in err.value.results if not r.passed} >= {"metric:roc_auc>=0.7", "approvals>=1"}
    assert reg.aliases("fraud") == {"production": 1}
    refused = [e for e in reg.audit_log("fraud") if e["action"] == "refused"]
    assert len(refused) == 1 and refused[0]["version"] == 2 and refused[0]["alias"] == "production"
    assert "metric:roc_auc>=0.7" in refused[0]["details"]["failed_gates"]


def test_relative_gate_compares_with_current_production(reg, logreg):
    _add(reg, logreg, 0.800)
    reg.approve("fraud", 1, "bob", private_key=KEYS["bob"])
    reg.promote("fraud", 1, "production")
    _add(reg, logreg, 0.790)  # absolute gate passes, but 0.01 worse than production
    _add(reg, logreg, 0.797)  # within the allowed 0.005 drop
    for v in (2, 3):
        reg.approve("fraud", v, "bob", private_key=KEYS["bob"])
    with pytest.raises(GateFailedError, match="worsens<=0.005"):
        reg.promote("fraud", 2, "production")
    assert reg.promote("fraud", 3, "production").version == 3
    # Aliases without a policy need no gates.
    assert reg.promote("fraud", 2, "staging").version == 2
    assert reg.aliases("fraud") == {"production": 3, "staging": 2}
    dry = reg.check_gates("fraud", "staging", "production")
    assert [r.passed for r in dry] == [True, False, True, True]


def test_approvals(tmp_path, logreg, make_registry):
    reg = make_registry(tmp_path, policies={"production": [{"approvals": 2}]}, approvers=APPROVERS)
    _add(reg, logreg, 0.8, who="alice")
    with pytest.raises(RegistryError, match="'alice' trained version 1 and cannot approve it"):
        reg.approve("fraud", 1, "alice", private_key=KEYS["alice"])
    first = reg.approve("fraud", 1, "bob", private_key=KEYS["bob"], comment="looks good")
    assert reg.approve("fraud", 1, "bob", private_key=KEYS["bob"]) == first  # idempotent
    with pytest.raises(GateFailedError, match="1 of 2 required"):
        reg.promote("fraud", 1, "production")
    reg.approve("fraud", "latest", "carol", private_key=KEYS["carol"])
    assert [a["approver"] for a in reg.approvals("fraud", 1)] == ["bob", "carol"]
    assert reg.promote("fraud", 1, "production").version == 1
    actions = [e["action"] for e in reg.audit_log()]
    assert actions == ["register", "refused", "approve", "refused", "approve", "promote"]


def test_rollback_walks_back_one_step_per_call(reg, logreg):
    for auc in (0.80, 0.81, 0.82):
        v = _add(reg, logreg, auc).version
        reg.approve("fraud", v, "bob", private_key=KEYS["bob"])
        reg.promote("fraud", v, "production", actor="bob")
    assert reg.aliases("fraud")["production"] == 3
    assert reg.rollback("fraud", actor="carol").version == 2
    assert reg.aliases("fraud")["production"] == 2
    assert reg.rollback("fraud").version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        reg.rollback("fraud")
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        reg.rollback("fraud", alias="staging")
    moves = [(h["action"], h["previous"], h["version"]) for h in reg.alias_history("fraud", "production")]
    assert moves == [("promote", None, 1), ("promote", 1, 2), ("promote", 2, 3),
                     ("rollback", 3, 2), ("rollback", 2, 1)]
    rollbacks = [e for e in reg.audit_log("fraud") if e["action"] == "rollback"]
    assert [(e["details"]["from"], e["details"]["to"], e["actor"]) for e in rollbacks][0] == (3, 2, "carol")


def test_bad_alias_names(reg, logreg):
    _add(reg, logreg, 0.8)
    for alias in ("Prod", "7", "latest", "a b"):
        with pytest.raises(ConfigError, match="alias"):
            reg.promote("fraud", 1, alias)


@pytest.mark.parametrize("sql", ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit",
                                 "DELETE FROM versions", "DELETE FROM approvals"])
def test_audit_log_cannot_be_changed(reg, logreg, sql, backend):
    _add(reg, logreg, 0.8)
    reg.approve("fraud", 1, "bob", private_key=KEYS["bob"])
    reg.promote("fraud", 1, "production")
    before = reg.audit_log()
    with pytest.raises(backend.append_only_error, match="append-only"):
        backend.sql(reg, sql)
    assert reg.audit_log() == before


def test_snapshot_is_json_and_complete(reg, logreg):
    _add(reg, logreg, 0.8, config={"x": float("inf")})
    reg.approve("fraud", 1, "bob", private_key=KEYS["bob"])
    reg.promote("fraud", 1, "production")
    snap = json.loads(json.dumps(reg.snapshot(), allow_nan=False))
    (model,) = snap["models"]
    assert model["aliases"] == {"production": 1}
    assert model["versions"][0]["approvals"][0]["approver"] == "bob"
    assert model["versions"][0]["config"] == {"x": None}
    assert [e["action"] for e in snap["audit"]] == ["register", "approve", "promote"]
    assert snap["policies"]["production"][0]["name"] == "metric:roc_auc>=0.7"
    assert len(model["alias_history"]) == 1
