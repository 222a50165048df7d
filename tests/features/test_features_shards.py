"""Sharded training sets: shard = one pass row for row, merge refuses bad shard sets,
train reads the merged table (checking its plan hash), sharding never changes the plan."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
from support import SMALL, run_cli

from mlops.features.compile import compile_plan
from mlops.features.spec import parse_spec
from mlops.features.tables import PLAN_HASH

HAS_RAY = importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None
N = 3


def _shards(run_action, *extra):
    files = []
    for k in range(N):
        code, out = run_action("action=features", *SMALL, f"features.shard={k}",
                               f"features.num_shards={N}", *extra, out=f"shard{k}")
        assert code == 0
        files.append(out / f"features-{k:05d}-of-{N:05d}.parquet")
    return files


def test_plan_hash_ignores_sharding_options():
    schema = {"user_id": pl.String, "event_ts": pl.Datetime("us"), "amount": pl.Float64}
    spec = {"name": "s", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
            "windows": [{"column": "amount", "aggs": ["sum"]}]}
    plain = compile_plan(parse_spec(spec), schema)
    sharded = compile_plan(parse_spec({**spec, "shard": 2, "num_shards": 8,
                                       "merge_input": "x/*.parquet"}), schema)
    assert plain.spec_hash == sharded.spec_hash


def test_shards_merge_to_one_pass_and_train_reads_it(run_action, tmp_path):
    files = _shards(run_action)
    code, one = run_action("action=features", *SMALL, out="one")
    assert code == 0
    whole = pl.read_parquet(one / "features.parquet")
    parts = [pl.read_parquet(f) for f in files]
    assert all(p.height > 0 for p in parts)
    # disjoint entities, and together exactly the one-pass rows
    ents = [set(p["user_id"]) for p in parts]
    assert sum(map(len, ents)) == len(set().union(*ents))
    code, merged_dir = run_action("action=features_merge", *SMALL, f"features.num_shards={N}",
                                  f"features.merge_input={tmp_path}/shard*/features-*.parquet",
                                  out="merged")
    assert code == 0
    merged = pl.read_parquet(merged_dir / "features.parquet")
    assert pl.read_parquet_metadata(merged_dir / "features.parquet")[PLAN_HASH] == \
        pl.read_parquet_metadata(one / "features.parquet")[PLAN_HASH]
    key = "transaction_id"
    assert merged.sort(key).equals(whole.sort(key))  # row for row, every column, exact

    # train on the merged table == train computing features itself (same rows, same order)
    code, t1 = run_action("action=train", *SMALL, "training.register=false",
                          f"training.features_path={merged_dir}/features.parquet", out="t_merged")
    assert code == 0
    code, t2 = run_action("action=train", *SMALL, "training.register=false", out="t_one")
    assert code == 0
    a, b = (json.loads((d / "train.json").read_text())["evaluation"] for d in (t1, t2))
    assert a["test"]["roc_auc"] == b["test"]["roc_auc"] and a["test"]["rows"] == b["test"]["rows"]


def test_merge_refuses_missing_duplicated_and_foreign_shards(run_action, tmp_path, capsys):
    files = _shards(run_action)
    glob = f"{tmp_path}/shard*/features-*.parquet"
    files[1].unlink()
    code, _ = run_action("action=features_merge", *SMALL, f"features.num_shards={N}",
                         f"features.merge_input={glob}", out="m1")
    assert code == 2 and "missing shards [1]" in capsys.readouterr().err
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / files[0].name).write_bytes(files[0].read_bytes())
    code, _ = run_action("action=features_merge", *SMALL, f"features.num_shards={N}",
                         f"features.merge_input={tmp_path}/*/features-*.parquet", out="m2")
    err = capsys.readouterr().err
    assert code == 2 and "shard 0 written more than once" in err and "missing shards [1]" in err
    # shards of another plan (fraud_v2 vs the default fraud_v1) are refused naming both hashes
    code, _ = run_action("action=features_merge", *SMALL, "features=fraud_v2",
                         f"features.num_shards={N}", f"features.merge_input={glob}", out="m3")
    err = capsys.readouterr().err
    assert code == 2 and "was built with plan" in err and "features.merge_input" in err


def test_train_refuses_a_table_of_another_plan(run_action, capsys):
    code, one = run_action("action=features", *SMALL, out="one")
    assert code == 0
    code, _ = run_action("action=train", *SMALL, "features=fraud_v2",
                         f"training.features_path={one}/features.parquet", out="t")
    err = capsys.readouterr().err
    assert code == 2 and "training.features_path" in err and "configured plan is" in err


def test_shard_options_are_checked_first(run_action, capsys):
    code, _ = run_action("action=features", *SMALL, "features.shard=4", "features.num_shards=4")
    assert code == 2 and "features.shard" in capsys.readouterr().err
    code, _ = run_action("action=features", *SMALL, "features.num_shards=4")
    assert code == 2 and "sweep=sharded_features" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_RAY, reason="hydra-ray-launcher/ray not installed: pip install -e '.[scale]'")
def test_sharded_features_sweep_on_local_ray_equals_one_pass(tmp_path):
    env = {"MLOPS_HOME": str(tmp_path / "home"), "RAY_ADDRESS": None}
    sweep = tmp_path / "sweep"
    p = run_cli(["sweep=sharded_features", *SMALL, "hydra/launcher=ray_cluster",
                 "hydra.launcher.ray.init.num_cpus=2", f"hydra.sweep.dir={sweep}"],
                cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(list(sweep.glob("*/features-*-of-00004.parquet"))) == 4
    p = run_cli(["action=features_merge", *SMALL, "features.num_shards=4",
                 f"features.merge_input={sweep}/*/features-*-of-00004.parquet"], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    merged_dir = _report_dir(p.stdout)
    p = run_cli(["action=features", *SMALL], cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    one = pl.read_parquet(_report_dir(p.stdout) / "features.parquet").sort("transaction_id")
    merged = pl.read_parquet(merged_dir / "features.parquet").sort("transaction_id")
    assert merged.equals(one)


def _report_dir(stdout: str) -> Path:
    line = [x for x in stdout.splitlines() if x.startswith("report: ")][0]
    return Path(line.split("report: ")[1]).parent


def test_partitioned_sink_equals_one_pass_and_keeps_the_plan_hash(tmp_path):
    """sink_features in 4 entity partitions (row groups of one file) == compute_features."""
    import numpy as np

    from mlops.features.offline import compute_features, sink_features
    from mlops.features.tables import table_metadata
    rng = np.random.default_rng(3)
    n = 4000
    df = pl.DataFrame({"eid": np.arange(n), "user_id": rng.integers(0, 300, n).astype(str),
                       "event_ts": (np.datetime64("2024-01-01") + rng.integers(0, 86400 * 9, n)
                                    .astype("timedelta64[s]")).astype("datetime64[us]"),
                       "amount": rng.random(n), "item": rng.integers(0, 9, n).astype(str)})
    spec = {"name": "p", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
            "windows": [{"column": "amount", "aggs": ["sum", "last"], "periods": ["1d"]},
                        {"column": "item", "aggs": ["distinct"], "periods": ["2d"]}]}
    plan = compile_plan(parse_spec(spec), df.schema)
    out = tmp_path / "f.parquet"
    rows = sink_features(plan, df, out, keep=["eid"], rows_per_partition=1000,
                         metadata=table_metadata(plan.spec_hash, plan.name))
    assert rows == n
    got = pl.read_parquet(out)
    assert got.sort("eid").equals(compute_features(plan, df, keep=["eid"]).collect().sort("eid"))
    assert pl.read_parquet_metadata(out)[PLAN_HASH] == plan.spec_hash
