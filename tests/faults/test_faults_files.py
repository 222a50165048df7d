"""Damaged and hostile files: a corrupt registry database, artefacts swapped for a symlink,
a FIFO or a bigger file, an unsafe home, a store path at a file that is not a database.

Each is refused with one line naming the file, nothing is read without end or waited on,
and no mode of anything the product did not create is changed.
"""
from __future__ import annotations

import contextlib
import io
import os
import stat
from pathlib import Path

import pytest
from fault_tools import finishes, one_line_error

from mlops.errors import ArtifactIntegrityError, ConfigError, ServingError
from mlops.features.online.sqlite import SQLiteStore
from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry

PAGE = 4096


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _damage(db: Path, how: str) -> None:
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * PAGE and not db.with_name(db.name + "-wal").exists()
    if how == "header":
        data[:16] = b"this is no db..."
    elif how == "truncated":
        data = data[: len(data) // 2 + 100]
    elif how == "zeroed_page":
        data[2 * PAGE: 3 * PAGE] = bytes(PAGE)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["header", "truncated", "zeroed_page"])
def test_a_corrupt_registry_database_is_exit_4_in_one_line_naming_the_file(registered, run_action, capsys, how):
    db = registered / "registry" / "registry.db"
    _damage(db, how)
    before = db.read_bytes()
    code, _ = run_action("action=verify", out=f"verify-{how}")
    line = one_line_error(capsys.readouterr().err)
    assert code == 4 and str(db) in line, line
    assert db.read_bytes() == before  # verify repairs nothing behind the user's back


def test_registry_url_at_a_text_file_is_refused_and_the_file_left_alone(tmp_path, run_action, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    notes.chmod(0o644)
    code, _ = run_action("action=verify", f"registry.url={notes}")
    line = one_line_error(capsys.readouterr().err)
    assert code == 4 and str(notes) in line and "not a SQLite database" in line, line
    assert notes.read_text() == "my notes\n" and _mode(notes) == 0o644


def _swap(path: Path, how: str) -> None:
    if how == "symlink_to_dev_zero":
        path.unlink()
        path.symlink_to("/dev/zero")
    elif how == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif how == "grown":
        with open(path, "ab") as fh:
            fh.write(bytes(50_000_000))


@pytest.mark.parametrize("how", ["symlink_to_dev_zero", "fifo", "grown"])
def test_an_artefact_that_is_not_the_registered_regular_file_is_refused_before_reading(registered, how):
    reg = Registry(registered)
    artefact = reg.get_version("m", 1).artifact_path
    _swap(artefact, how)
    report, error = finishes(reg.verify)
    assert error is None and not report["ok"]
    (problem,) = report["problems"]
    assert problem["kind"] == "artifact" and str(artefact) in problem["problem"]
    said = {"symlink_to_dev_zero": "symbolic link", "fifo": "FIFO", "grown": "were recorded"}[how]
    assert said in problem["problem"], problem
    _, error = finishes(lambda: reg.load_model("m", 1, DEFAULT_TRUSTED_TYPES))
    assert isinstance(error, ArtifactIntegrityError) and str(artefact) in str(error)


def test_verify_of_a_swapped_artefact_is_exit_4_and_names_it(registered, run_action):
    artefact = Registry(registered).get_version("m", 1).artifact_path
    _swap(artefact, "fifo")

    def verify():
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code, _ = run_action("action=verify")
        return code, err.getvalue()
    (code, err), error = finishes(verify)
    assert error is None and code == 4 and str(artefact) in err and "Traceback" not in err


def test_a_reference_file_swapped_for_a_symlink_is_refused(registered):
    reg = Registry(registered)
    mv = reg.get_version("m", 1)
    reference = reg.artifacts.locate(f"artifacts/{mv.reference_sha256[:2]}/{mv.reference_sha256}.npz")
    _swap(reference, "symlink_to_dev_zero")
    _, error = finishes(lambda: reg.reference_path("m", 1))
    assert isinstance(error, ArtifactIntegrityError) and "symbolic link" in str(error)


# ------------------------------------------------------------------------------ the home
def test_a_world_writable_home_without_sticky_bit_is_refused_and_not_chmodded(tmp_path, run_action, capsys):
    home = tmp_path / "shared"
    home.mkdir()
    home.chmod(0o777)
    code, _ = run_action("action=registry", f"paths.home={home}")
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "paths.home" in line and "writable by every user" in line, line
    assert _mode(home) == 0o777 and list(home.iterdir()) == []


def test_a_home_that_is_a_symlink_is_refused(tmp_path, run_action, capsys):
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    link = tmp_path / "link"
    link.symlink_to(real)
    code, _ = run_action("action=registry", f"paths.home={link}")
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "symbolic link" in line, line
    assert _mode(real) == 0o755 and list(real.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_home_owned_by_another_user_is_refused(tmp_path, run_action, capsys):
    home = tmp_path / "theirs"
    home.mkdir(mode=0o755)
    os.chown(home, 65534, 65534)
    code, _ = run_action("action=registry", f"paths.home={home}")
    line = one_line_error(capsys.readouterr().err)
    assert code == 2 and "owned by" in line and "uid 65534" in line, line
    assert _mode(home) == 0o755 and list(home.iterdir()) == []


def test_an_existing_home_keeps_its_mode_and_what_the_product_creates_is_private(tmp_path, run_action, tiny_model):
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: shared, but nobody removes another's files
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o755)
    for home in (sticky, mine):
        Registry(home / "new-home").register("m", tiny_model, metadata={})  # a missing home below it
        assert run_action("action=verify", f"paths.home={home}", out=f"v-{home.name}")[0] == 0
    assert _mode(sticky) == 0o1777 and _mode(mine) == 0o755
    made = [p for home in (sticky, mine) for p in home.rglob("*")]
    assert made and all(_mode(p) == (0o700 if p.is_dir() else 0o600) for p in made), \
        {str(p): oct(_mode(p)) for p in made}


# ------------------------------------------------------------------------------ the store
@pytest.mark.parametrize("what", ["text", "fifo", "directory"])
def test_a_store_path_at_something_that_is_not_a_database_is_refused_untouched(tmp_path, what):
    path = tmp_path / "store.sqlite"
    if what == "text":
        path.write_text("a,b\n1,2\n")
        path.chmod(0o644)
    elif what == "fifo":
        os.mkfifo(path, 0o644)
    else:
        path.mkdir(mode=0o755)
    before = path.read_bytes() if what == "text" else None
    _, error = finishes(lambda: SQLiteStore(path))
    assert isinstance(error, ConfigError) and "serving.store.path" in str(error) and str(path) in str(error)
    assert _mode(path) == 0o644 if what != "directory" else _mode(path) == 0o755
    if before is not None:
        assert path.read_bytes() == before


def test_a_damaged_store_database_is_a_one_line_serving_error(tmp_path):
    path = tmp_path / "store.sqlite"
    SQLiteStore(path).close()
    _damage_store(path)
    with pytest.raises(ServingError) as caught:
        SQLiteStore(path)
    assert "serving.store.path" in str(caught.value) and str(path) in str(caught.value)


def _damage_store(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:PAGE] = b"\xff" * (PAGE - 100)  # the schema's page, after the valid file header
    path.write_bytes(bytes(data))
