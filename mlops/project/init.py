"""``mlops init [DIR]``: write a commented starter project that runs as written.

The project holds only YAML and data: ``conf/project.yaml`` (the project's
defaults), ``conf/data/``, ``conf/features/`` and a small sample event file in
``data/``. Replace the sample with your own events and edit the YAML.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

PROJECT_YAML = """\
# @package _global_
# This project's defaults: every `mlops ...` command in this folder starts from
# them, so no command repeats them. Anything here can still be overridden on the
# command line (mlops action=train model=hgb).
defaults:
  - override /data: events          # conf/data/events.yaml
  - override /features: orders      # conf/features/orders.yaml
  - override /model: logreg         # built-in: logreg, hgb, rf (classifiers); ridge, hgb_regressor
  - _self_

model:
  name: returns_model               # the registry name of this project's model
# paths:                            # all state (registry, online store, prediction log, keys,
#   home: .mlops                    # history, alerts) lives in one home: $MLOPS_HOME when set,
                                    # else .mlops here; set it to pin this project's state
                                    # (paths.home=... on the command line wins over both)
training:                           # the sample spans 125 days: 30 warm-up (longest window) + 50 + 20 + 20
  train_days: 50
  valid_days: 20
  test_days: 20
  decision: {rule: fixed, value: 0.5}   # or {rule: positive_rate | precision | recall, target: 0.1}:
                                        # chosen on the validation window, recorded with the model
monitoring:
  window: {days: 20}
  performance: {chunk: 10d}
registry:                           # promotion to production needs a signed approval:
  approvers: {}                     #   mlops action=keygen registry.approver=alice, then e.g.
                                    #   approvers: {alice: {public_key_file: keys/alice.pub}}
"""

DATA_YAML = """\
# Your events: parquet or csv files (globs allowed), read lazily.
defaults:
  - files_schema
  - _self_

path: data/*.csv
event_id: order_id        # one id per event: duplicates are refused (data.dedupe: true drops exact copies)
columns: {}               # rename source columns: {source_name: name_used_in_features}
timestamp_format: null    # strptime format for csv timestamps; null = ISO 8601
labels:                   # labels in their own table instead of a column of the events:
  path: null              #   e.g. labels/*.csv with <event_id>, <label>[, <available_at>]
  by: event_id            #   or `entity`: <entity>, <timestamp>, <label> rows as training points
"""

FEATURES_YAML = """\
# Feature definitions: compiled once into the plan used by training AND serving.
defaults:
  - feature_spec_schema
  - _self_

name: orders
version: 1
entity: customer          # whose history the windows aggregate
timestamp: ordered_at     # when the event happened
label:
  column: returned        # what the model predicts (0/1 here; a number -> use a regressor)
  available_at: null      # column with when the label became known; null = at event time.
                          # A row whose label is null is unlabelled, whatever this column holds;
                          # training uses the labels known by the end of its test window
raw: [value]              # numeric columns used as they are
categorical: [channel]    # one-hot encoded
windows:                  # per-customer aggregates over [t - period, t): never the event itself
  - {column: value, aggs: [mean, count], periods: [7d, 30d]}
derived:                  # SQL expressions over columns and features
  - {name: value_vs_usual, expr: "value / (value_mean_30d + 1)"}
"""

README = """\
# A starter mlops project

    mlops action=features                       # point-in-time features -> features.html
    mlops action=train                          # train + register -> train.html (model card)
    mlops action=registry                       # versions, lineage, aliases, audit log

Replace `data/orders.csv` with your events and edit `conf/`. Everything `python run.py`
accepts works here (`mlops -m model=logreg,hgb action=train`).
"""


def sample_events(n_customers: int = 150, days: int = 125, seed: int = 0) -> pl.DataFrame:
    """Deterministic orders: large orders relative to a customer's usual value get returned."""
    rng = np.random.default_rng(seed)
    usual = rng.lognormal(3.5, 0.6, n_customers)
    per_day = rng.uniform(0.15, 0.5, n_customers)
    counts = rng.poisson(per_day * days)
    cust = np.repeat(np.arange(n_customers), counts)
    secs = rng.uniform(0, days * 86400, cust.size)
    value = rng.lognormal(np.log(usual[cust]), 0.7)
    channel = rng.choice(["web", "app", "store"], cust.size, p=[0.5, 0.3, 0.2])
    logit = -3.0 + 1.8 * np.log(value / usual[cust]) + 0.8 * (channel == "web")
    returned = (rng.random(cust.size) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    order = np.argsort(secs, kind="stable")
    start = np.datetime64("2024-01-01T00:00:00", "s")
    return pl.DataFrame({
        "order_id": [f"o{i:06d}" for i in range(cust.size)],
        "customer": [f"c{c:04d}" for c in cust[order]],
        "ordered_at": (start + secs[order].astype("timedelta64[s]")).astype("datetime64[us]"),
        "value": np.round(value[order], 2),
        "channel": channel[order],
        "returned": returned[order],
    })


def write_project(target: Path, *, force: bool = False) -> list[Path]:
    """Write the starter project into ``target``; refuses to overwrite unless ``force``."""
    files = {
        "conf/project.yaml": PROJECT_YAML, "conf/data/events.yaml": DATA_YAML,
        "conf/features/orders.yaml": FEATURES_YAML, "README.md": README,
    }
    existing = [p for p in [*files, "data/orders.csv"] if (target / p).exists()]
    if existing and not force:
        raise FileExistsError(f"{', '.join(existing)} already exist in {target}")
    written = []
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    data = target / "data" / "orders.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    sample_events().write_csv(data)
    written.append(data)
    return written


def main(argv: list[str]) -> int:
    """``mlops init [DIR] [--force]``."""
    force = "--force" in argv
    args = [a for a in argv if a != "--force"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        sys.stderr.write("usage: mlops init [DIR] [--force]\n")
        sys.exit(2)
    target = Path(args[0] if args else ".").resolve()
    try:
        written = write_project(target, force=force)
    except FileExistsError as exc:
        sys.stderr.write(f"error: {exc}. Fix: pick an empty folder or pass --force\n")
        sys.exit(2)
    print(f"wrote a starter project in {target}:")
    for p in written:
        print(f"  {p.relative_to(target)}")
    print("next: cd there and run `mlops action=train`")
    return 0
