"""The package stands alone: a wheel built from a clean copy of the repository, installed
in a new virtual environment, runs a starter project after the copy is deleted.

The new environment takes the dependencies from the test's own environment (a path line
in a ``.pth`` file: no ``.pth`` processing, so an editable install there stays invisible)
and only the wheel from the build, so the test needs no download beyond the build backend.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _clean_copy(dest: Path) -> Path:
    """The files git tracks (a fresh clone's tree), or skip without git."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to copy the tracked files")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def _run(args: list, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{args}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def _venv_with_wheel(tmp: Path, wheel: Path, env: dict) -> Path:
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, env)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", wheel], tmp, env)
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp, env).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_wheel_runs_a_starter_project_with_the_source_tree_deleted(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLOPS_HOME")}
    clone = _clean_copy(tmp_path / "clone")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp_path / "dist", clone],
         tmp_path, env)
    wheel = next((tmp_path / "dist").glob("mlops-*.whl"))
    shutil.rmtree(clone)
    venv = _venv_with_wheel(tmp_path, wheel, env)
    mlops = venv / "bin" / "mlops"
    where = _run([venv / "bin" / "python", "-c", "import mlops; print(mlops.__file__)"], tmp_path, env)
    assert where.stdout.startswith(str(venv)), where.stdout
    assert _run([mlops, "--version"], tmp_path, env).stdout.startswith("mlops ")
    assert "usage: mlops" in _run([mlops, "--help"], tmp_path, env).stdout
    _run([mlops, "init", "p"], tmp_path, env)
    project = tmp_path / "p"
    _run([mlops, "action=features"], project, env)
    train = _run([mlops, "action=train"], project, env)
    report = Path(train.stdout.split("report: ")[-1].strip())
    assert report.name == "train.html" and report.is_file() and report.is_relative_to(project)
    card = json.loads((report.parent / "train.json").read_text())
    assert card["registry"]["version"] == 1, card.get("registry")
    assert "<table" in report.read_text()
