"""A version carries its policy: stored, hashed into the chain, read back; a registry from
before policies (schema 2) is migrated in place and its versions still verify."""
from __future__ import annotations

import sqlite3

import pytest

from mlops.registry import Registry
from mlops.registry.policy import decision_policy

POLICY = {"task": "classification",
          "decision": {"rule": "positive_rate", "target": 0.02, "value": None, "threshold": 0.83,
                       "met": True, "note": None,
                       "achieved": {"valid": {"rows": 100, "positive_rate": 0.02}}}}


def test_the_policy_is_stored_and_read_back(tmp_path, logreg):
    reg = Registry(tmp_path)
    mv = reg.register("m", logreg, metadata={"policy": POLICY, "tags": {"task": "classification"}})
    assert reg.get_version("m", 1).policy == POLICY == mv.policy
    assert decision_policy(mv).threshold == 0.83
    assert reg.verify()["ok"]


def test_an_edited_policy_breaks_verification(tmp_path, logreg):
    reg = Registry(tmp_path)
    reg.register("m", logreg, metadata={"policy": POLICY})
    conn = sqlite3.connect(reg.db_path)
    conn.execute("DROP TRIGGER versions_no_update")
    conn.execute("UPDATE versions SET policy = NULL")  # "no policy": as if registered before
    conn.commit()
    conn.close()
    kinds = {p["kind"] for p in reg.verify()["problems"]}
    assert "version_changed" in kinds


def test_a_schema_2_registry_is_migrated_and_its_versions_still_verify(tmp_path, logreg, monkeypatch):
    from mlops.registry import migrations
    original = Registry._insert_version

    def insert_without_policy(conn, row, actor):
        row.pop("policy")
        return original(conn, row, actor)
    with monkeypatch.context() as m:  # the code of schema 2: no policy column, no policy
        m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        m.setattr(migrations, "SCHEMA_VERSION", 2)
        m.setattr(Registry, "_insert_version", staticmethod(insert_without_policy))
        old = Registry(tmp_path)
        old.register("m", logreg, metadata={"config": {"training": {"threshold": 0.8}},
                                           "tags": {"task": "classification"}})
        old.promote("m", 1, "production")
    db = tmp_path / "registry" / "registry.db"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "policy" not in [r[1] for r in conn.execute("PRAGMA table_info(versions)")]
    conn.close()
    reg = Registry(tmp_path)  # today's code: migrates the embedded SQLite in place
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION == 3
    conn.close()
    v1 = reg.get_version("m", "production")
    assert v1.policy == {}
    legacy = decision_policy(v1)
    assert legacy.threshold == 0.8 and legacy.source == "legacy"
    reg.register("m", logreg, metadata={"policy": POLICY})
    assert reg.get_version("m", 2).policy == POLICY
    report = reg.verify()
    assert report["ok"], report["problems"]


def test_a_schema_1_registry_is_still_refused(tmp_path):
    path = tmp_path / "registry" / "registry.db"
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    from mlops.errors import RegistryError
    with pytest.raises(RegistryError, match="schema version 1"):
        Registry(tmp_path)
