"""Beyond one machine: Ray launcher (local Ray), SLURM config, the sharded-score sweep + merge."""
from __future__ import annotations

import importlib.util
import json

import polars as pl
import pytest
from hydra import compose, initialize_config_dir
from support import CONF, SMALL, run_cli

HAS_RAY = importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None
HAS_SUBMITIT = importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None


@pytest.mark.skipif(not HAS_RAY, reason="hydra-ray-launcher/ray not installed: pip install -e '.[scale]'")
def test_ray_launcher_runs_a_sweep_on_local_ray(tmp_path):
    sweep = tmp_path / "sweep"
    p = run_cli(["-m", "action=train", *SMALL, "model=logreg,hgb", "model.params.max_iter=40",
                 "hydra/launcher=ray_cluster", "hydra.launcher.ray.init.num_cpus=2",
                 f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                env={"MLOPS_HOME": str(tmp_path / "home"), "RAY_ADDRESS": None}, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = json.loads((sweep / "sweep.json").read_text())["jobs"]
    assert sorted(j["status"] for j in jobs) == ["ok", "ok"]
    assert sorted(j["registry"]["version"] for j in jobs) == [1, 2]


@pytest.mark.skipif(not HAS_SUBMITIT, reason="hydra-submitit-launcher not installed: pip install -e '.[scale]'")
def test_slurm_launcher_config_composes_with_resources():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm",
                                                       "hydra.launcher.partition=cpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.cpus_per_task, launcher.mem_gb, launcher.partition) == (2, 8, "cpu")
    assert launcher.timeout_min == 60


def test_sharded_score_sweep_then_merge_equals_one_pass(tmp_path):
    env = {"MLOPS_HOME": str(tmp_path / "home")}
    declare = "+registry.approvers.x.public_key_file=keys/x.pub"
    for args in (["action=train"], ["action=keygen", "registry.approver=x"],
                 ["action=approve", "registry.version=1", "registry.approver=x", declare],
                 ["action=promote", "registry.version=1", declare]):
        assert run_cli([*args, *SMALL], cwd=tmp_path, env=env).returncode == 0
    sweep = tmp_path / "sweep"
    p = run_cli(["sweep=sharded_score", *SMALL, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(list(sweep.glob("*/predictions-*-of-00004.parquet"))) == 4
    p = run_cli(["action=score_merge", *SMALL, "serving.num_shards=4",
                 f"serving.input={sweep}/*/predictions-*.parquet"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    merged_dir = [line.split("report: ")[1] for line in p.stdout.splitlines()
                  if line.startswith("report: ")][0].rsplit("/", 1)[0]
    merged = pl.read_parquet(f"{merged_dir}/predictions.parquet").sort("transaction_id")
    p = run_cli(["action=score", *SMALL], cwd=tmp_path, env=env)
    one_dir = [line.split("report: ")[1] for line in p.stdout.splitlines()
               if line.startswith("report: ")][0].rsplit("/", 1)[0]
    one = pl.read_parquet(f"{one_dir}/predictions.parquet").sort("transaction_id")
    assert merged.height == one.height
    assert merged["transaction_id"].equals(one["transaction_id"])
    assert (merged["probability"] - one["probability"]).abs().max() < 1e-12


HAS_OPTUNA = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None


@pytest.mark.skipif(not HAS_OPTUNA, reason="hydra-optuna-sweeper not installed: pip install -e '.[optuna]'")
def test_optuna_sweep_optimises_the_returned_objective(tmp_path):
    sweep = tmp_path / "sweep"
    p = run_cli(["sweep=optuna", "hydra.sweeper.n_trials=3", *SMALL, f"hydra.sweep.dir={sweep}"],
                cwd=tmp_path, env={"MLOPS_HOME": str(tmp_path / "home")}, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = json.loads((sweep / "sweep.json").read_text())["jobs"]
    best = (sweep / "optimization_results.yaml").read_text()
    assert len(jobs) == 3 and all(j["status"] == "ok" for j in jobs)
    top = max(j["objective"] for j in jobs)
    assert f"best_value: {top}" in best  # Optuna saw exactly what the jobs returned
