"""Turn polars columns into the clean arrays the drift statistics need, counting what was dropped.

Shared by reference fitting and drift detection so both sides treat nulls, NaN and inf
the same way: nulls are counted (null share), NaN/inf are counted (non-finite) and
dropped, and numeric values come back sorted (every statistic reuses the sort).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import polars as pl

from mlops.errors import DataError


@dataclass(frozen=True)
class NumericColumn:
    """Sorted finite values of one numeric column plus what was dropped."""

    sorted_values: np.ndarray
    rows: int
    nulls: int
    nonfinite: int


@dataclass(frozen=True)
class CategoricalColumn:
    """Non-null values of one categorical column as strings, plus the null count."""

    values: pl.Series
    rows: int
    nulls: int


def require_columns(frame: pl.DataFrame, names: list[str], *, what: str) -> None:
    """Raise DataError naming every missing column, with a close match when there is one."""
    missing = [name for name in names if name not in frame.columns]
    if not missing:
        return
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, frame.columns, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise DataError(
        f"{what} lacks column(s) {', '.join(hints)}; it has {frame.columns}",
        key=what,
        fix="select the feature columns the reference was fitted on",
    )


def numeric_column(series: pl.Series) -> NumericColumn:
    """Sorted finite float64 values of a numeric series, with null and NaN/inf counts.

    numpy sorts with -inf first and +inf, NaN last, so the finite values are one contiguous
    slice of the sorted array (numpy's vectorised sort is 5-8x faster than polars' here,
    and one thread per column suits drift's one thread per feature).

    >>> col = numeric_column(pl.Series("x", [2.0, None, float("nan"), 1.0]))
    >>> col.sorted_values.tolist(), col.nulls, col.nonfinite
    ([1.0, 2.0], 1, 1)
    """
    if not (series.dtype.is_numeric() or series.dtype == pl.Null):
        raise DataError(
            f"The numeric column {series.name!r} must have a numeric dtype; got {series.dtype}",
            key=series.name,
            fix="cast it to a number, or list it among the categorical columns",
        )
    rows = series.len()
    nulls = series.null_count()
    values = np.sort(series.drop_nulls().cast(pl.Float64).to_numpy())
    lo = int(np.searchsorted(values, -np.inf, side="right"))
    hi = int(np.searchsorted(values, np.inf, side="left"))
    finite = values[lo:hi]
    return NumericColumn(sorted_values=finite, rows=rows, nulls=nulls,
                         nonfinite=int(values.size - finite.size))


def categorical_column(series: pl.Series) -> CategoricalColumn:
    """Non-null values of a series cast to strings (categories compare as strings).

    >>> categorical_column(pl.Series("c", ["a", None, "b"])).values.to_list()
    ['a', 'b']
    """
    rows = series.len()
    nulls = series.null_count()
    values = series.drop_nulls().cast(pl.String)
    return CategoricalColumn(values=values, rows=rows, nulls=nulls)


def category_counts(values: pl.Series, categories: list[str]) -> tuple[np.ndarray, int]:
    """Counts of ``values`` per category (in the given order) and the count of unseen values.

    >>> counts, unseen = category_counts(pl.Series(["a", "c", "a"]), ["a", "b"])
    >>> counts.tolist(), unseen
    ([2, 0], 1)
    """
    k = len(categories)
    if values.len() == 0 or k == 0:
        return np.zeros(k, dtype=np.int64), int(values.len())
    codes = values.replace_strict(categories, list(range(k)), default=k, return_dtype=pl.Int64)
    counts = np.bincount(codes.to_numpy(), minlength=k + 1).astype(np.int64)
    return counts[:k], int(counts[k])
