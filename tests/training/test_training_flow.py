"""Train -> register -> gates/approval -> promote -> rollback, through the real actions."""
from __future__ import annotations

import json

import pytest
from support import SMALL, declare_approvers

from mlops.registry import Registry

TRAIN = ["action=train", *SMALL, "training.warmup_days=5", "training.train_days=35", "training.valid_days=10",
         "training.test_days=10"]


def _json(d, name):
    return json.loads((d / f"{name}.json").read_text())


def test_train_registers_with_lineage_and_is_deterministic(run_action, tmp_path):
    code, a = run_action(*TRAIN, out="a")
    assert code == 0
    t = _json(a, "train")
    assert t["registry"] == {"model": "fraud_detector", "version": 1}
    assert 0.5 < t["evaluation"]["test"]["roc_auc"] <= 1.0
    assert t["objective"]["name"] == "valid_roc_auc"
    # the time split never overlaps and is ordered
    b = t["split"]["bounds"]
    assert b == sorted(b) and t["split"]["train_rows"] > t["split"]["test_rows"] > 0
    code, b_dir = run_action(*TRAIN, out="b")
    t2 = _json(b_dir, "train")
    assert t2["registry"]["version"] == 2
    assert t2["evaluation"] == t["evaluation"]  # same seed, same data, same model
    reg = Registry(tmp_path / "home")
    v1, v2 = reg.get_version("fraud_detector", 1), reg.get_version("fraud_detector", 2)
    assert v1.training_data_hash == v2.training_data_hash and v1.training_data_hash
    assert v1.feature_plan_hash == t["plan"]["hash"]
    assert v1.config["model"]["_target_"] == "sklearn.linear_model.LogisticRegression"
    assert v1.metrics["roc_auc"] == pytest.approx(t["evaluation"]["test"]["roc_auc"])
    assert v1.fairness["attribute"] == "customer_age_band"
    assert reg.reference_path("fraud_detector", 1).exists()
    model, _ = reg.load_model("fraud_detector", 1, trusted=__import__(
        "mlops.registry", fromlist=["x"]).DEFAULT_TRUSTED_TYPES)
    assert hasattr(model, "predict_proba")


@pytest.mark.parametrize("model", ["hgb", "rf"])
def test_other_estimators_train_and_load(run_action, tmp_path, model):
    code, d = run_action(*TRAIN, f"model={model}", "model.params.max_depth=4"
                         if model == "rf" else "model.params.max_iter=30")
    assert code == 0, _json(d, "result")
    from mlops.registry import DEFAULT_TRUSTED_TYPES
    m, v = Registry(tmp_path / "home").load_model("fraud_detector", 1, DEFAULT_TRUSTED_TYPES)
    assert model[:2] in type(m.named_steps["model"]).__name__.lower()[:2] or m is not None


def test_promotion_gates_approval_and_rollback(run_action, tmp_path):
    reg_home = tmp_path / "home"
    assert run_action(*TRAIN, out="t1")[0] == 0
    # no approval yet: the approval gate refuses, exit 2, alias unchanged
    code, d = run_action("action=promote", *SMALL, "registry.version=1", out="p1")
    assert code == 2
    assert "approval" in _json(d, "result")["error"]
    reg = Registry(reg_home)
    assert "production" not in reg.aliases("fraud_detector")
    assert any(e["action"] == "refused" for e in reg.audit_log("fraud_detector"))
    # the trainer cannot approve their own model, even as a declared approver with a valid key
    trainer = reg.get_version("fraud_detector", 1).who
    keys = declare_approvers(run_action, "alice", "bob", trainer)
    code, d = run_action("action=approve", *SMALL, *keys, "registry.version=1",
                         f"registry.approver={trainer}", out="a0")
    assert code == 2 and "trained version 1" in _json(d, "result")["error"]
    # a name without a declared key is not an identity
    code, d = run_action("action=approve", *SMALL, *keys, "registry.version=1", "registry.approver=ROOT",
                         out="a0b")
    assert code == 2
    assert run_action("action=approve", *SMALL, *keys, "registry.version=1", "registry.approver=alice",
                      out="a1")[0] == 0
    assert run_action("action=promote", *SMALL, *keys, "registry.version=1", out="p2")[0] == 0
    assert Registry(reg_home).aliases("fraud_detector")["production"] == 1
    # v2 with another model, approved and promoted, then rolled back to v1
    assert run_action(*TRAIN, "model=hgb", "model.params.max_iter=40", out="t2")[0] == 0
    assert run_action("action=approve", *SMALL, *keys, "registry.version=2", "registry.approver=bob",
                      out="a2")[0] == 0
    # a policy from YAML/overrides: here approval only, so v2 passes whatever its AUC
    code, d = run_action("action=promote", *SMALL, *keys, "registry.version=2",
                         "registry.policies.production=[{approvals: 1}]", out="p3")
    assert code == 0 and Registry(reg_home).aliases("fraud_detector")["production"] == 2
    code, d = run_action("action=rollback", *SMALL, *keys, out="rb")
    assert code == 0
    assert Registry(reg_home).aliases("fraud_detector")["production"] == 1
    r = _json(d, "registry")
    assert r["headline"] == "production rolled back from v2 to v1"
    assert r["integrity"]["ok"] is True


def test_unknown_version_and_tampered_artefact_exit_2(run_action, tmp_path):
    assert run_action(*TRAIN, out="t")[0] == 0
    code, d = run_action("action=promote", *SMALL, "registry.version=9", out="x")
    assert code == 2 and "versions [1]" in _json(d, "result")["error"]
    reg = Registry(tmp_path / "home")
    art = reg.get_version("fraud_detector", 1).artifact_path
    art = art if art.is_absolute() else reg.root / art
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.chmod(0o644)
    art.write_bytes(bytes(data))
    alice = declare_approvers(run_action, "alice")
    run_action("action=approve", *SMALL, *alice, "registry.version=1", "registry.approver=alice", out="ap")
    before = Registry(tmp_path / "home").aliases("fraud_detector")
    code, d = run_action("action=promote", *SMALL, *alice, "registry.version=1", out="y")
    assert code == 2 and "sha256" in _json(d, "result")["error"]
    assert Registry(tmp_path / "home").aliases("fraud_detector") == before
