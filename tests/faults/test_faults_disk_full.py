"""A full disk anywhere (the registry's artefacts and database, the features table, the
reports): one line naming the path, exit 2, nothing half-written left behind, and what
was committed before (registered versions) still verifies.

Injected ENOSPC runs everywhere; the same runs on a real small tmpfs where this machine
lets us mount one (root).
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from fault_tools import one_line_error
from support import SMALL, run_cli

from mlops.registry import Registry

TRAIN = ["action=train", *SMALL]


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(*roots: Path) -> list[str]:
    """Temp and partial files: what a write that failed halfway would leave."""
    return sorted(str(p) for root in roots if root.exists() for p in root.rglob("*")
                  if p.is_file() and (p.name.endswith(".tmp") or ".tmp-" in p.name or p.name.startswith(".")))


def test_atomic_path_leaves_nothing_and_names_the_target(tmp_path):
    from mlops.errors import DiskFullError
    from mlops.filesystem import atomic_path
    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(DiskFullError) as caught, atomic_path(target) as tmp:
        tmp.write_bytes(b"half a file")
        raise _enospc()
    assert str(target) in str(caught.value) and caught.value.exit_code == 2
    assert list(target.parent.iterdir()) == []
    target.write_bytes(b"the previous complete file")
    with pytest.raises(ValueError), atomic_path(target) as tmp:  # any other failure: same cleanup
        tmp.write_bytes(b"partial")
        raise ValueError("boom")
    assert target.read_bytes() == b"the previous complete file" and len(list(target.parent.iterdir())) == 1


@pytest.mark.parametrize("text", [
    "parquet: File out of specification: underlying IO error: No space left on device (os error 28)",
    "database or disk is full", "Disk quota exceeded (os error 122)"])
def test_a_full_disk_is_recognised_however_the_library_says_it(text):
    from mlops.filesystem import disk_full_detail
    assert disk_full_detail(RuntimeError(text)) is not None
    assert disk_full_detail(RuntimeError("wrapped")) is None
    try:
        try:
            raise RuntimeError(text)
        except RuntimeError as inner:
            raise ValueError("outer") from inner
    except ValueError as outer:
        assert disk_full_detail(outer) is not None


def _fail_writes_into(monkeypatch, marker: str, nth: int) -> None:
    """The ``nth`` file opened by os.fdopen whose path holds ``marker`` accepts half of its
    first write, then raises ENOSPC."""
    real, seen = os.fdopen, []

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise _enospc()

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def fdopen(fd, *args, **kwargs):
        fh = real(fd, *args, **kwargs)
        if marker not in os.readlink(f"/proc/self/fd/{fd}"):
            return fh
        seen.append(fd)
        return HalfWriter(fh) if len(seen) == nth else fh
    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.slow
@pytest.mark.parametrize("nth, suffix", [(1, ".skops"), (2, ".npz")])  # the model, then its reference
def test_a_full_disk_while_registering_names_the_artefact_and_leaves_no_file(
        run_action, tmp_path, capsys, monkeypatch, nth, suffix):
    _fail_writes_into(monkeypatch, "/registry/artifacts/", nth)
    code, out = run_action(*TRAIN)
    line = one_line_error(capsys.readouterr().err)
    home = tmp_path / "home"
    assert code == 2 and "/registry/artifacts/" in line and suffix in line, line
    assert _leftovers(home, out) == []
    reg = Registry(home)
    report = reg.verify()
    assert report["ok"] and report["versions_checked"] == 0 and report["notes"] == []  # no orphan artefact
    assert not [p for p in (home / "registry" / "artifacts").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_a_full_disk_while_writing_a_report_names_it_and_keeps_the_registration(
        run_action, tmp_path, capsys, monkeypatch):
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".train.html."):
            real(self, "<html>half", encoding="utf-8")
            raise _enospc()
        return real(self, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", write_text)
    code, out = run_action(*TRAIN)
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and str(out / "train.html") in line, line
    assert not (out / "train.html").exists() and _leftovers(out) == []
    reg = Registry(tmp_path / "home")
    assert reg.verify()["ok"] and [v.version for v in reg.list_versions()] == [1]  # committed: kept


def test_a_full_disk_while_writing_features_names_the_table(run_action, capsys, monkeypatch):
    real = pl.LazyFrame.sink_parquet

    def sink_parquet(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 half a table")
        raise pl.exceptions.ComputeError(
            "parquet: File out of specification: underlying IO error: No space left on device (os error 28)")
    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", sink_parquet)
    code, out = run_action("action=features", *SMALL)
    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", real)
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and str(out / "features.parquet") in line, line
    assert not (out / "features.parquet").exists() and _leftovers(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("size", ["60k", "140k", "400k"])
def test_train_on_a_small_real_filesystem_fails_in_one_line_and_leaves_a_consistent_registry(
        run_action, tmpfs, capsys, tmp_path, size):
    mount = tmpfs(size)
    home = mount / "home"
    code, out = run_action(*TRAIN, f"paths.home={home}")
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and str(mount) in line and ("no space left" in line or "disk is full" in line), line
    assert _leftovers(home, out) == []
    copy = tmp_path / "home-copy"  # what is on the full disk, opened where there is room
    shutil.copytree(home, copy)
    reg = Registry(copy)
    report = reg.verify()
    assert report["ok"] and report["notes"] == [] and report["versions_checked"] == 0, report


@pytest.mark.slow
def test_reports_on_a_full_run_directory_fail_in_one_line_naming_the_file(run_action, tmpfs, capsys, tmp_path):
    mount = tmpfs("24k")
    code, _ = run_action(*TRAIN, out=str(mount / "out"))  # an absolute out replaces tmp_path
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and str(mount / "out") in line, line
    assert _leftovers(mount) == []
    assert Registry(tmp_path / "home").verify()["ok"]


@pytest.mark.slow
def test_a_run_directory_too_full_for_hydras_copy_of_the_config_is_one_line(tmpfs, tmp_path):
    mount = tmpfs("8k")  # the composed config (~10 kB) does not fit
    done = run_cli(["action=train", *SMALL, f"paths.home={tmp_path / 'home'}", f"hydra.run.dir={mount / 'out'}"],
                   cwd=tmp_path)
    line = one_line_error(done.stderr)
    assert done.returncode == 2 and str(mount / "out" / ".hydra" / "config.yaml") in line, done.stderr
    assert not (mount / "out" / ".hydra" / "config.yaml").exists() and _leftovers(mount) == []
