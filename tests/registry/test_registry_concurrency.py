"""Concurrent writers in separate processes, and processes killed mid-registration.

The writers are forked by ``registry_worker.py`` (one interpreter start for all of
them); every writer is its own OS process with its own SQLite connection.
"""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _assert_consistent(reg, fitted):
    report = reg.verify()
    # a registration killed after writing its file leaves an artefact without a row: a note
    assert report["ok"] and report["problems"] == [], report["problems"]
    assert {n["kind"] for n in report["notes"]} <= {"interrupted_write"}
    versions = reg.list_versions("fraud") if reg.list_models() else []
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    for mv in versions:
        model, _ = reg.load_model("fraud", mv.version, trusted=DEFAULT_TRUSTED_TYPES)
        np.testing.assert_array_equal(model.coef_, fitted(int(mv.metrics["seed"])).coef_)
    registered = [e for e in reg.audit_log("fraud") if e["action"] == "register"]
    assert sorted(e["version"] for e in registered) == [v.version for v in versions]
    return versions


def test_eight_concurrent_registrations_get_gapless_versions(tmp_path, fitted, backend, run_worker):
    home = tmp_path / "home"  # fresh: on SQLite the eight also race to create the schema
    out = run_worker("concurrent", home, 8, cwd=tmp_path, backend=backend)
    assert out["statuses"] == [0] * 8
    got = out["results"]
    assert sorted(version for _, _, version in got) == list(range(1, 9))
    assert len({pid for _, pid, _ in got}) == 8
    versions = _assert_consistent(Registry(home, **backend.kwargs), fitted)
    assert len(versions) == 8
    assert {(v.who, v.version) for v in versions} == {(f"worker-{s}", v) for s, _, v in got}
    assert len({v.artifact_sha256 for v in versions}) == 8


def test_kill_between_file_write_and_insert_leaves_only_an_interrupted_write(tmp_path, backend, run_worker):
    out = run_worker("die", tmp_path / "die", 1234, cwd=tmp_path, backend=backend)
    assert out["die_status"] == -signal.SIGKILL
    reg = Registry(tmp_path / "die", **backend.kwargs)
    assert reg.list_models() == [] and reg.audit_log() == []
    files = [p for p in reg.artifacts_dir.rglob("*") if p.is_file()]
    assert len(files) == 1  # the artefact reached the disk; no row points at it
    report = reg.verify()
    assert report["ok"] and report["problems"] == []  # not tampering: exit 0 with a note
    assert [(n["kind"], n["file"]) for n in report["notes"]] == [("interrupted_write", str(files[0]))]
    assert reg.gc_orphans() == []  # too young: could be a registration in progress
    assert reg.gc_orphans(min_age_seconds=0) == files
    assert not files[0].exists() and reg.verify()["notes"] == []


def test_random_sigkills_during_registration_keep_registry_consistent(tmp_path, fitted, backend, run_worker):
    out = run_worker("loop", tmp_path / "loop", 4, 1234, cwd=tmp_path, backend=backend)
    assert out["loop_statuses"] == [-signal.SIGKILL] * 4
    reg = Registry(tmp_path / "loop", **backend.kwargs)
    versions = _assert_consistent(reg, fitted)
    assert len(versions) >= 4  # each loop signals "ready" after its first registration
    removed = reg.gc_orphans(min_age_seconds=0)
    assert not {v.artifact_path for v in versions} & set(removed)
    _assert_consistent(reg, fitted)
    assert reg.verify()["notes"] == []
