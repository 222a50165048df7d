"""Labels a user can guess (issue 22): in a starter project whose unlabelled rows carry a
label time anyway, training uses the rows labelled by the cut-off, and the model card
counts every row left out, by reason, exactly as a row-by-row count of the file does."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from own_project import mlops

from mlops.project.init import sample_events


def _project(tmp_path):
    assert mlops(["init", "p"], cwd=tmp_path).returncode == 0
    project = tmp_path / "p"
    events = sample_events()
    rng = np.random.default_rng(1)
    delay = rng.uniform(0, 15, events.height)
    events = events.with_columns(
        # about a third unlabelled, yet every row has a label time (the data)
        pl.when(pl.Series(rng.random(events.height) < 0.33)).then(None)
        .otherwise(pl.col("returned")).alias("returned"),
        (pl.col("ordered_at") + pl.duration(days=pl.Series(delay))).alias("returned_at"),
    )
    events = pl.concat([events, events.head(25)])       # 25 exact copies: data.dedupe drops them
    events.write_csv(project / "data" / "orders.csv")
    spec = project / "conf" / "features" / "orders.yaml"
    spec.write_text(spec.read_text().replace("available_at: null", "available_at: returned_at"))
    return project, events


def test_unlabelled_rows_are_left_out_and_counted_by_reason(tmp_path):
    project, events = _project(tmp_path)
    p = mlops(["action=train", "data.dedupe=true"], cwd=project)
    assert p.returncode == 0, p.stderr
    html = re.search(r"report: (\S+train\.html)", p.stdout).group(1)
    card = json.loads(open(html.replace("train.html", "train.json")).read())
    split = card["split"]
    lo, cutoff = (datetime.fromisoformat(split["bounds"][i]) for i in (0, -1))
    rows = events.unique(maintain_order=True)
    in_windows = rows.filter((pl.col("ordered_at") >= lo) & (pl.col("ordered_at") < cutoff))
    labelled = in_windows.filter(pl.col("returned").is_not_null())
    expected = {
        "outside_windows": rows.height - in_windows.height,
        "unlabelled": in_windows["returned"].null_count(),
        "label_time_missing": 0,
        "label_known_too_late": labelled.filter(pl.col("returned_at") > cutoff).height,
        "deduplicated": 25,
    }
    assert split["left_out"] == expected and all(v for k, v in expected.items()
                                                  if k != "label_time_missing")
    assert split["used_rows"] == labelled.height - expected["label_known_too_late"]
    assert split["used_rows"] == split["train_rows"] + split["valid_rows"] + split["test_rows"]
    assert cutoff == datetime.fromisoformat(split["bounds"][3]) and cutoff - lo == timedelta(days=90)
    text = open(html).read()
    assert "Rows used and left out" in text
    for reason in ("unlabelled", "label known too late", "outside windows", "deduplicated"):
        assert reason in text
    assert f"{expected['unlabelled']:,}" in text
