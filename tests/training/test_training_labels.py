"""Labels in their own table, joined point-in-time, train exactly like labels in the events."""
from __future__ import annotations

import json

import polars as pl
import pytest
from support import compose_cfg

from mlops.actions.context import RunContext
from mlops.data.synthetic import SyntheticParams, generate
from mlops.training.table import feature_table

TRAIN = ["action=train", "training.warmup_days=5", "training.train_days=35",
         "training.valid_days=10", "training.test_days=10", "training.register=false",
         "training.fairness.attribute=null"]


@pytest.fixture(scope="module")
def events():
    return generate(SyntheticParams(n_users=300, days=110))


def _card(out):
    return json.loads((out / "train.json").read_text())


def test_label_table_by_event_id_gives_the_same_model(run_action, tmp_path, events):
    events.write_parquet(tmp_path / "with_labels.parquet")
    events.drop("is_fraud", "label_ts").write_parquet(tmp_path / "events.parquet")
    (events.select("transaction_id", "is_fraud", "label_ts").sample(fraction=1.0, shuffle=True,
                                                                    seed=1)
     .write_csv(tmp_path / "labels.csv"))
    files = ["data=files", "data.event_id=transaction_id"]
    code, a = run_action(*TRAIN, *files, f"data.path={tmp_path / 'with_labels.parquet'}", out="a")
    assert code == 0
    code, b = run_action(*TRAIN, *files, f"data.path={tmp_path / 'events.parquet'}",
                         f"data.labels.path={tmp_path / 'labels.csv'}", "data.labels.by=event_id",
                         out="b")
    assert code == 0
    ca, cb = _card(a), _card(b)
    assert ca["split"] == cb["split"]          # same labels known by the same cut-off
    assert ca["evaluation"]["test"]["roc_auc"] == cb["evaluation"]["test"]["roc_auc"]


def test_entity_label_spine_uses_only_events_before_each_label(run_action, tmp_path, events):
    events.drop("is_fraud", "label_ts").write_parquet(tmp_path / "events.parquet")
    # one label per (user, day 40..100 at noon): "did the user see fraud that day?"
    days = (events.with_columns(pl.col("event_ts").dt.truncate("1d").alias("day"))
            .group_by("user_id", "day").agg(pl.col("is_fraud").max())
            .with_columns((pl.col("day") + pl.duration(hours=23, minutes=59)).alias("event_ts"))
            .select("user_id", "event_ts", "is_fraud").sort("event_ts"))
    days.write_parquet(tmp_path / "labels.parquet")
    code, out = run_action(*TRAIN, "data=files", f"data.path={tmp_path / 'events.parquet'}",
                           f"data.labels.path={tmp_path / 'labels.parquet'}", "data.labels.by=entity",
                           "features.label.available_at=null", out="spine")
    assert code == 0, (out / "result.json").read_text()
    card = _card(out)
    split = card["split"]
    lo, hi = split["bounds"][0], split["bounds"][-1]
    in_range = days.filter((pl.col("event_ts") >= pl.lit(lo).str.to_datetime())
                           & (pl.col("event_ts") < pl.lit(hi).str.to_datetime()))
    assert split["train_rows"] + split["valid_rows"] + split["test_rows"] == in_range.height


def test_features_builds_the_label_spine_table_train_builds(run_action, tmp_path, events):
    """action=features with labels by entity: one row per label, features as of it; training
    on that table (training.features_path) gives the same split and model as train alone."""
    events.drop("is_fraud", "label_ts").write_parquet(tmp_path / "events.parquet")
    spine = (events.group_by("user_id", pl.col("event_ts").dt.truncate("1d").alias("day"))
             .agg(pl.col("is_fraud").max())
             .select("user_id", (pl.col("day") + pl.duration(hours=12)).alias("event_ts"), "is_fraud")
             .sort("event_ts"))
    spine.write_parquet(tmp_path / "labels.parquet")
    files = ["data=files", f"data.path={tmp_path / 'events.parquet'}", "data.labels.by=entity",
             f"data.labels.path={tmp_path / 'labels.parquet'}", "features.label.available_at=null"]
    code, feats = run_action("action=features", *files, out="features")
    assert code == 0, (feats / "result.json").read_text()
    table = pl.read_parquet(feats / "features.parquet")
    assert table.height == spine.height and table["is_fraud"].null_count() == 0
    ctx = RunContext.from_config(compose_cfg(files, tmp_path))
    direct = feature_table(ctx.plan(), ctx.scan_events(), labels=ctx.scan_labels())
    assert table.equals(direct)
    code, a = run_action(*TRAIN, *files, out="direct")
    code_b, b = run_action(*TRAIN, *files, f"training.features_path={feats / 'features.parquet'}",
                           out="from_table")
    assert code == code_b == 0
    ca, cb = _card(a), _card(b)
    assert ca["split"] == cb["split"] | {"left_out": cb["split"]["left_out"] | {"deduplicated": 0}}
    for metric in ("roc_auc", "pr_auc", "log_loss", "brier"):  # rows sorted apart: round-off only
        assert ca["evaluation"]["test"][metric] == pytest.approx(cb["evaluation"]["test"][metric],
                                                                 rel=1e-7)


def test_class_names_must_be_two(run_action):
    code, out = run_action(*TRAIN, "report.class_names=[a,b,c]", "data.days=40")
    assert code == 2
    assert "report.class_names" in json.loads((out / "result.json").read_text())["error"]
