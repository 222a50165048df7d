"""Model performance over time, once delayed labels arrive (concept drift by its effect).

:func:`performance_by_chunk` splits scored rows into time chunks ("1d", "1w", any polars
duration) or fixed row counts, computes one metric per chunk with scikit-learn, and flags
chunks whose drop against the baseline (e.g. the validation score) exceeds ``max_drop``.
Rows whose label or score is still null (label not arrived) are left out and counted.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import polars as pl

from mlops.constraints import Interval, Options, check, validate
from mlops.errors import ConfigError, DataError
from mlops.monitoring.columns import require_columns

# metric -> (higher is better, needs binary labels, needs both classes in a chunk)
METRICS = {
    "roc_auc": (True, True, True),
    "pr_auc": (True, True, True),
    "log_loss": (False, True, False),
    "brier": (False, True, False),
    "accuracy": (True, True, False),
    "mae": (False, False, False),
    "rmse": (False, False, False),
    "r2": (True, False, False),
}
_DURATION = re.compile(r"^(\d+(ns|us|ms|s|m|h|d|w|mo|q|y))+$")


def performance_by_chunk(df: pl.DataFrame, *, time_col: str, label_col: str, score_col: str,
                         chunk: str | int, metric: str, baseline: float, max_drop: float,
                         higher_is_better: bool | None = None) -> list[dict]:
    """One dict per chunk: ``start, end, rows, unlabelled, positives, value, drop, flag, note``.

    ``chunk`` is a polars duration ("1d", "1w", "6h": windows ``[start, end)`` on ``time_col``
    counted from the first row's time, so a 365-day chunk of a window starting on 1 January is
    that year, not two pieces of it; "1mo", "1q", "1y" follow the calendar; empty windows
    omitted) or a row count N (consecutive N rows in time order;
    ``start``/``end`` are the first and last timestamps). ``value`` is the metric (binary
    metrics take 0/1 labels and a score in [0, 1]; accuracy predicts 1 when score >= 0.5);
    ``drop`` is ``baseline - value`` when higher is better, else ``value - baseline``;
    ``flag`` is ``drop > max_drop``. A chunk with one class gets ``value=None`` for AUC
    metrics, with a note. ``higher_is_better`` defaults to the metric's direction.

    >>> import datetime as dt
    >>> df = pl.DataFrame({"t": [dt.date(2024, 1, d) for d in (1, 1, 2, 2)],
    ...                    "y": [0, 1, 0, 1], "p": [0.2, 0.9, 0.8, 0.3]})
    >>> [(c["start"], c["value"], c["flag"]) for c in performance_by_chunk(
    ...     df, time_col="t", label_col="y", score_col="p", chunk="1d",
    ...     metric="roc_auc", baseline=0.9, max_drop=0.1)]
    [('2024-01-01', 1.0, False), ('2024-01-02', 0.0, True)]
    """
    higher, binary, both_classes = _check_metric(metric)
    if higher_is_better is None:
        higher_is_better = higher
    validate(dict(baseline=baseline, max_drop=max_drop), _PARAMETER_CONSTRAINTS)
    require_columns(df, [time_col, label_col, score_col], what="performance data")
    frame = _chunked(df.select(time_col, label_col, score_col), time_col, chunk)
    out = []
    for part in frame.partition_by("__chunk", maintain_order=True):
        out.append(_chunk_result(part, time_col, label_col, score_col, metric, binary,
                                 both_classes, float(baseline), float(max_drop), higher_is_better))
    return out


def _chunked(df: pl.DataFrame, time_col: str, chunk: str | int) -> pl.DataFrame:
    df = df.sort(time_col, nulls_last=True).filter(pl.col(time_col).is_not_null())
    if isinstance(chunk, int) and not isinstance(chunk, bool):
        if chunk < 1:
            raise ConfigError(f"The 'chunk' parameter must be a duration like '1d' or a row "
                              f"count >= 1; got {chunk!r} instead", key="chunk")
        df = df.with_row_index("__row").with_columns((pl.col("__row") // chunk).alias("__chunk"))
        bounds = pl.col(time_col)
        return df.with_columns(bounds.min().over("__chunk").alias("__start"),
                               bounds.max().over("__chunk").alias("__end"))
    if not isinstance(chunk, str) or not _DURATION.match(chunk):
        raise ConfigError(f"The 'chunk' parameter must be a polars duration such as '1d', '1w', "
                          f"'6h' or a row count; got {chunk!r} instead", key="chunk")
    dtype = df.schema[time_col]
    if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        raise DataError(f"The time column {time_col!r} must be a Date or Datetime to chunk by "
                        f"{chunk!r}; got {dtype}", key=time_col,
                        fix="parse it (str.to_datetime) or chunk by a row count")
    fixed = fixed_duration(chunk)
    if fixed is None:  # calendar units: months, quarters, years
        start = pl.col(time_col).dt.truncate(chunk)
    else:  # fixed lengths count from the first row, so chunks line up with the data's window
        t = pl.col(time_col).cast(pl.Datetime("us"))
        origin = t.min()
        start = (origin + pl.duration(microseconds=((t - origin).dt.total_microseconds() // fixed) * fixed)
                 ).cast(dtype)
    return df.with_columns(start.alias("__start"), start.dt.offset_by(chunk).alias("__end"),
                           start.rank("dense").alias("__chunk"))


_UNIT_US = {"ns": 1e-3, "us": 1, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6, "d": 86400e6, "w": 604800e6}


def fixed_duration(chunk: str) -> int | None:
    """Microseconds of a duration in fixed units ("7d", "1d12h"); None for calendar units.

    >>> fixed_duration("1d12h"), fixed_duration("1mo")
    (129600000000, None)
    """
    parts = re.findall(r"(\d+)(ns|us|ms|s|mo|m|h|d|w|q|y)", chunk)
    if any(unit in ("mo", "q", "y") for _, unit in parts):
        return None
    return int(sum(int(n) * _UNIT_US[unit] for n, unit in parts))


def _chunk_result(part: pl.DataFrame, time_col: str, label_col: str, score_col: str,
                  metric: str, binary: bool, both_classes: bool, baseline: float,
                  max_drop: float, higher_is_better: bool) -> dict:
    labelled = part.filter(pl.col(label_col).is_not_null() & pl.col(score_col).is_not_null())
    y = labelled.get_column(label_col).cast(pl.Float64).to_numpy()
    score = labelled.get_column(score_col).cast(pl.Float64).to_numpy()
    result = {"start": _iso(part["__start"][0]), "end": _iso(part["__end"][0]),
              "rows": int(y.size), "unlabelled": part.height - int(y.size),
              "positives": None, "value": None, "drop": None, "flag": False, "note": None}
    if binary:
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            raise DataError(f"The label column {label_col!r} must hold 0/1 labels for "
                            f"{metric!r}; got {sorted(set(y[bad].tolist()))[:5]}", key=label_col,
                            fix="encode the positive class as 1, or use 'mae'/'rmse'")
        result["positives"] = int(y.sum())
    if y.size == 0:
        result["note"] = "no labelled rows in this chunk yet"
        return result
    if both_classes and np.unique(y).size < 2:
        result["note"] = f"only one class in this chunk: {metric} is undefined"
        return result
    value = metric_value(metric, y, score)
    if not math.isfinite(value):
        result["note"] = f"{metric} is undefined on this chunk"
        return result
    drop = baseline - value if higher_is_better else value - baseline
    result.update(value=value, drop=drop, flag=bool(drop > max_drop))
    return result


def metric_value(metric: str, y: np.ndarray, score: np.ndarray) -> float:
    """``metric`` of labels ``y`` and scores ``score`` (scikit-learn; NaN when undefined)."""
    from sklearn import metrics as skm  # here: action=drift imports this module, never scores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on degenerate chunks; we report a note
        if metric == "roc_auc":
            return float(skm.roc_auc_score(y, score))
        if metric == "pr_auc":
            return float(skm.average_precision_score(y, score))
        if metric == "log_loss":
            return float(skm.log_loss(y, np.clip(score, 0.0, 1.0), labels=[0.0, 1.0]))
        if metric == "brier":
            return float(skm.brier_score_loss(y, score, pos_label=1.0))
        if metric == "accuracy":
            return float(skm.accuracy_score(y, (score >= 0.5).astype(np.float64)))
        if metric == "mae":
            return float(skm.mean_absolute_error(y, score))
        if metric == "r2":
            return float(skm.r2_score(y, score)) if y.size > 1 else float("nan")
        return float(skm.root_mean_squared_error(y, score))


_PARAMETER_CONSTRAINTS = {"baseline": [Interval(float, None, None)],
                          "max_drop": [Interval(float, 0, None)]}


def _check_metric(metric: str) -> tuple[bool, bool, bool]:
    check("metric", metric, [Options(*sorted(METRICS))])
    return METRICS[metric]


def _iso(value: object) -> str | None:
    return None if value is None else value.isoformat()
