"""Helpers for the own-project tests: a user's data with its own column names."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]


def mlops_cmd() -> list[str]:
    """The installed ``mlops`` console script, else ``python -m mlops`` (same code)."""
    exe = shutil.which("mlops")
    return [exe] if exe else [sys.executable, "-m", "mlops"]


def mlops(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([*mlops_cmd(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def shop_sales(n_shops: int = 60, days: int = 100, seed: int = 3) -> pl.DataFrame:
    """Sales with a binary label (``big_return``) and a numeric one (``margin_eur``)."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(4.0, 0.5, n_shops)
    counts = rng.poisson(rng.uniform(1.0, 3.0, n_shops) * days)
    shop = np.repeat(np.arange(n_shops), counts)
    secs = rng.uniform(0, days * 86400, shop.size)
    basket = rng.lognormal(np.log(level[shop]), 0.6)
    region = rng.choice(["north", "south", "east"], shop.size)
    rel = np.log(basket / level[shop])
    big_return = (rng.random(shop.size) < 1 / (1 + np.exp(-(-2.5 + 2.0 * rel)))).astype(np.int8)
    margin = 0.3 * basket + 5.0 * (region == "north") + rng.normal(0, 3.0, shop.size)
    t0 = np.datetime64("2023-03-01T00:00:00", "s")
    return pl.DataFrame({
        "sale_ref": [f"S{i:07d}" for i in range(shop.size)],
        "shop_id": [f"shop{s:03d}" for s in shop],
        "sold_at": (t0 + secs.astype("timedelta64[s]")).astype("datetime64[us]"),
        "basket": np.round(basket, 2), "region": region,
        "big_return": big_return, "margin_eur": np.round(margin, 3),
    }).sort("sold_at")


DATA_YAML = """\
defaults:
  - files_schema
  - _self_
path: data/sales.parquet
event_id: sale_ref
"""

FEATURES_YAML = """\
defaults:
  - feature_spec_schema
  - _self_
name: {name}
entity: shop_id
timestamp: sold_at
label: {{column: {label}}}
raw: [basket]
categorical: [region]
windows:
  - {{column: basket, aggs: [mean, count], periods: [1d, 7d]}}
derived:
  - {{name: basket_vs_week, expr: "basket / (basket_mean_7d + 1)"}}
"""

PROJECT_YAML = """\
# @package _global_
defaults:
  - override /data: sales
  - override /features: {features}
  - override /model: {model}
  - _self_
model:
  name: {name}
registry:
  approvers: {{alice: {{public_key_file: keys/alice.pub}}}}
training:
  train_days: 50
  valid_days: 15
  test_days: 15
monitoring:
  window: {{days: 15}}
  performance: {{chunk: 5d}}
"""


def write_user_files(project: Path, *, task: str) -> None:
    """The user's own data and YAML, in their project folder (never in this repo)."""
    (project / "data").mkdir(exist_ok=True)
    (project / "drift").mkdir(exist_ok=True)   # outside the data/ globs (README: drift example)
    sales = shop_sales()
    sales.write_parquet(project / "data" / "sales.parquet")
    cut = sales["sold_at"].min() + (sales["sold_at"].max() - sales["sold_at"].min()) / 2
    sales.filter(pl.col("sold_at") < cut).write_csv(project / "drift" / "first_half.csv")
    later = sales.filter(pl.col("sold_at") >= cut).with_columns(pl.col("basket") * 1.8)
    later.write_csv(project / "drift" / "second_half.csv")
    conf = project / "conf"
    (conf / "features").mkdir(parents=True, exist_ok=True)
    (conf / "data").mkdir(exist_ok=True)
    (conf / "data" / "sales.yaml").write_text(DATA_YAML)
    label, model = ("big_return", "logreg") if task == "classification" else ("margin_eur", "ridge")
    (conf / "features" / "shop_sales.yaml").write_text(
        FEATURES_YAML.format(name="shop_sales", label=label))
    (conf / "project.yaml").write_text(PROJECT_YAML.format(
        features="shop_sales", model=model, name=f"shop_{task}"))
