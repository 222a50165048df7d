"""A single run composes its config once (``mlops.project.compose_once``), and every run,
multirun, error and ``hydra.mode`` setting gives exactly what Hydra's own double
composition gives: each job's config and Hydra config compared as YAML with a plain
``@hydra.main`` in a fresh interpreter (``compose_probe.py``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("compose_probe.py")


def probe(way: str, config_dir: str | Path, *argv: str, cwd: Path) -> dict:
    """What the app's task received when started ``way`` (stock | once | cli | cli-stock)."""
    proc = subprocess.run([sys.executable, str(PROBE), way, str(config_dir), "config", *argv],
                          cwd=cwd, text=True, capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1",
                               "MLOPS_HOME": str(cwd / "home")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def mini(tmp_path) -> Path:
    """A config whose ``db`` group must be chosen (``???``: skipped when Hydra composes in
    multirun mode, an error in run mode, the one place the two modes compose differently)."""
    conf = tmp_path / "conf"
    (conf / "db").mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - db: ???\n  - _self_\nx: 1\n")
    (conf / "db" / "a.yaml").write_text("name: a\n")
    (conf / "db" / "b.yaml").write_text("name: b\n")
    return conf


def same_as_hydra(config_dir, argv: list[str], tmp_path: Path, way: str = "once") -> tuple[dict, dict]:
    dirs = [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    stock = probe("cli-stock" if way == "cli" else "stock", config_dir, *argv, *dirs, cwd=tmp_path)
    ours = probe(way, config_dir, *argv, *dirs, cwd=tmp_path)
    assert ours["error"] == stock["error"]
    assert ours["jobs"] == stock["jobs"]
    return stock, ours


@pytest.mark.parametrize("argv", [
    ["db=a"],
    ["db=b", "x=2", "hydra.job.name=other", "+y=3"],
    ["db=a", "hydra.mode=RUN"],                 # the config itself says run
])
def test_a_single_run_composes_once_and_gets_hydras_config(mini, tmp_path, argv):
    stock, ours = same_as_hydra(mini, argv, tmp_path)
    assert stock["error"] is None and len(stock["jobs"]) == 1
    assert "mode: RUN" in ours["jobs"][0]["hydra"]
    assert (stock["composed"], ours["composed"]) == (2, 1)


@pytest.mark.parametrize("argv", [
    ["-m", "db=a,b"],
    ["-m", "db=a", "x=1,2,3"],
    ["-m", "db=a"],                             # no sweep: composes in run mode, still a multirun
    ["db=a", "hydra.mode=MULTIRUN"],            # a multirun without -m
])
def test_multiruns_are_unchanged(mini, tmp_path, argv):
    stock, ours = same_as_hydra(mini, argv, tmp_path)
    assert stock["error"] is None and len(ours["jobs"]) >= 1
    assert all("mode: MULTIRUN" in job["hydra"] for job in ours["jobs"])
    assert ours["composed"] == stock["composed"]


@pytest.mark.parametrize("argv,message", [
    ([], "You must specify 'db'"),              # fails in run mode only: Hydra's get_mode decides
    (["-m", "x=5"], "You must specify 'db'"),   # the same in a multirun (its jobs compose in run mode)
    (["db=a", "x=1,2"], "Ambiguous value for argument 'x=1,2'"),   # a sweep without -m
    (["db=c"], "Could not find 'db/c'"),
    (["db=a", "nope=1"], "Could not override 'nope'"),
])
def test_errors_are_unchanged(mini, tmp_path, argv, message):
    stock, _ = same_as_hydra(mini, argv, tmp_path)
    assert message in stock["error"]


def test_the_command_line_composes_once_and_gets_hydras_config(tmp_path):
    argv = ["action=drift", "monitoring.reference=ref.parquet", "monitoring.current=cur.parquet",
            "model=hgb", "monitoring.on_drift=[]"]
    stock, ours = same_as_hydra("builtin", argv, tmp_path, way="cli")
    assert stock["error"] is None and "action: drift" in ours["jobs"][0]["cfg"]
    assert (stock["composed"], ours["composed"]) == (2, 1)


def test_a_command_line_sweep_is_unchanged(tmp_path):
    stock, ours = same_as_hydra("builtin", ["-m", "action=drift", "model=logreg,hgb"], tmp_path, way="cli")
    assert stock["error"] is None and len(ours["jobs"]) == 2
    assert ours["composed"] == stock["composed"]


@pytest.mark.slow  # six jobs, each composed, twice over
def test_a_named_sweep_that_sets_hydra_mode_is_unchanged(tmp_path):
    """``sweep=models`` sets ``hydra.mode: MULTIRUN`` in a config group (no ``-m``): composing
    once in run mode reads that mode, and the multirun composes as Hydra does."""
    stock, ours = same_as_hydra("builtin", ["sweep=models", "hydra/launcher=basic"], tmp_path, way="cli")
    assert stock["error"] is None and len(ours["jobs"]) == 6
    assert all("mode: MULTIRUN" in job["hydra"] for job in ours["jobs"])
    assert ours["composed"] == stock["composed"]


def test_hydra_is_restored_after_the_run(mini, tmp_path):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra

    from mlops.project.compose_once import compose_once
    before = (Hydra.get_mode, ConfigLoaderImpl.load_configuration)
    with pytest.raises(RuntimeError), compose_once():
        assert Hydra.get_mode is not before[0]
        raise RuntimeError("the run failed")
    assert (Hydra.get_mode, ConfigLoaderImpl.load_configuration) == before
