"""performance_by_chunk against a brute-force recomputation with scikit-learn."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm

from mlops.errors import ConfigError, DataError
from mlops.monitoring.performance import performance_by_chunk


@pytest.fixture()
def scored() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 3000
    start = dt.datetime(2024, 1, 1)  # a Monday
    hours = np.sort(rng.integers(0, 24 * 21, n))
    y = rng.binomial(1, 0.3, n)
    # The model gets worse over time: the score carries less signal each week.
    signal = np.where(hours < 24 * 7, 1.0, np.where(hours < 24 * 14, 0.5, 0.1))
    p = 1 / (1 + np.exp(-(signal * (2 * y - 1) * 1.5 + rng.normal(0, 1, n))))
    return pl.DataFrame({"t": [start + dt.timedelta(hours=int(h)) for h in hours], "y": y, "p": p})


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "mae", "rmse"])
def test_weekly_chunks_match_sklearn(scored, metric):
    chunks = performance_by_chunk(scored, time_col="t", label_col="y", score_col="p", chunk="1w",
                                  metric=metric, baseline=0.5, max_drop=0.05)
    assert [c["start"] for c in chunks] == ["2024-01-01T00:00:00", "2024-01-08T00:00:00",
                                           "2024-01-15T00:00:00"]
    assert chunks[0]["end"] == "2024-01-08T00:00:00"
    fns = {"roc_auc": skm.roc_auc_score, "pr_auc": skm.average_precision_score,
           "log_loss": skm.log_loss, "brier": skm.brier_score_loss,
           "accuracy": lambda y, p: skm.accuracy_score(y, p >= 0.5),
           "mae": skm.mean_absolute_error, "rmse": skm.root_mean_squared_error}
    higher = metric in ("roc_auc", "pr_auc", "accuracy")
    for week, chunk in enumerate(chunks):
        lo = dt.datetime(2024, 1, 1) + dt.timedelta(weeks=week)
        part = scored.filter((pl.col("t") >= lo) & (pl.col("t") < lo + dt.timedelta(weeks=1)))
        y, p = part["y"].to_numpy(), part["p"].to_numpy()
        expected = fns[metric](y, p)
        assert chunk["rows"] == part.height and chunk["value"] == pytest.approx(expected)
        assert chunk["drop"] == pytest.approx(0.5 - expected if higher else expected - 0.5)
        assert chunk["flag"] == (chunk["drop"] > 0.05)
        if metric != "mae" and metric != "rmse":
            assert chunk["positives"] == int(y.sum())


def test_degrading_model_is_flagged(scored):
    chunks = performance_by_chunk(scored, time_col="t", label_col="y", score_col="p", chunk="1w",
                                  metric="roc_auc", baseline=0.95, max_drop=0.05)
    assert [c["flag"] for c in chunks] == [False, True, True]
    assert chunks[0]["value"] > chunks[1]["value"] > chunks[2]["value"]


def test_row_chunks_follow_time_order(scored):
    shuffled = scored.sample(fraction=1.0, shuffle=True, seed=1)
    chunks = performance_by_chunk(shuffled, time_col="t", label_col="y", score_col="p", chunk=1000,
                                  metric="brier", baseline=0.2, max_drop=0.01)
    assert [c["rows"] for c in chunks] == [1000, 1000, 1000]
    first = scored.head(1000)
    assert chunks[0]["start"] == first["t"][0].isoformat() and chunks[0]["end"] == first["t"][-1].isoformat()
    assert chunks[0]["value"] == pytest.approx(skm.brier_score_loss(first["y"], first["p"]))


def test_single_class_chunk_gives_none_with_note():
    df = pl.DataFrame({"t": [dt.date(2024, 1, 1)] * 3 + [dt.date(2024, 1, 2)] * 2,
                       "y": [1, 1, 1, 0, 1], "p": [0.9, 0.8, 0.7, 0.2, 0.6]})
    chunks = performance_by_chunk(df, time_col="t", label_col="y", score_col="p", chunk="1d",
                                  metric="pr_auc", baseline=0.9, max_drop=0.1)
    assert chunks[0]["value"] is None and "one class" in chunks[0]["note"] and not chunks[0]["flag"]
    assert chunks[0]["positives"] == 3
    assert chunks[1]["value"] == pytest.approx(1.0)


def test_unlabelled_rows_are_counted_not_scored():
    df = pl.DataFrame({"t": [dt.date(2024, 1, 1)] * 4 + [dt.date(2024, 1, 2)] * 2,
                       "y": [0, 1, None, 1, None, None], "p": [0.1, 0.9, 0.5, 0.8, 0.3, 0.2]})
    chunks = performance_by_chunk(df, time_col="t", label_col="y", score_col="p", chunk="1d",
                                  metric="roc_auc", baseline=0.9, max_drop=0.1)
    assert (chunks[0]["rows"], chunks[0]["unlabelled"], chunks[0]["value"]) == (3, 1, 1.0)
    assert chunks[1]["rows"] == 0 and chunks[1]["value"] is None and "no labelled rows" in chunks[1]["note"]


def test_empty_frame_gives_no_chunks():
    df = pl.DataFrame({"t": [], "y": [], "p": []},
                      schema={"t": pl.Datetime, "y": pl.Int64, "p": pl.Float64})
    assert performance_by_chunk(df, time_col="t", label_col="y", score_col="p", chunk="1d",
                                metric="roc_auc", baseline=0.9, max_drop=0.1) == []


def test_explicit_direction_overrides_metric_default(scored):
    chunk = performance_by_chunk(scored, time_col="t", label_col="y", score_col="p", chunk="1w",
                                 metric="mae", baseline=0.1, max_drop=0.0, higher_is_better=True)[0]
    assert chunk["drop"] == pytest.approx(0.1 - chunk["value"])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"metric": "f1"}, ConfigError, "must be one of"),
    ({"chunk": "1 day"}, ConfigError, "polars duration"),
    ({"chunk": 0}, ConfigError, "row count >= 1"),
    ({"max_drop": -1.0}, ConfigError, "max_drop"),
    ({"baseline": float("nan")}, ConfigError, "baseline"),
    ({"label_col": "label"}, DataError, "lacks column"),
])
def test_errors(scored, kwargs, error, match):
    args = {"time_col": "t", "label_col": "y", "score_col": "p", "chunk": "1d",
            "metric": "roc_auc", "baseline": 0.9, "max_drop": 0.1, **kwargs}
    with pytest.raises(error, match=match):
        performance_by_chunk(scored, **args)


def test_binary_metric_rejects_non_binary_labels():
    df = pl.DataFrame({"t": [dt.date(2024, 1, 1)] * 2, "y": [0, 2], "p": [0.1, 0.9]})
    with pytest.raises(DataError, match="0/1 labels"):
        performance_by_chunk(df, time_col="t", label_col="y", score_col="p", chunk="1d",
                             metric="roc_auc", baseline=0.9, max_drop=0.1)


def test_string_time_column_cannot_be_chunked_by_duration():
    df = pl.DataFrame({"t": ["2024-01-01"], "y": [1], "p": [0.5]})
    with pytest.raises(DataError, match="Date or Datetime"):
        performance_by_chunk(df, time_col="t", label_col="y", score_col="p", chunk="1d",
                             metric="mae", baseline=0.9, max_drop=0.1)
