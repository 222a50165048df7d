"""Checks on a user's data before any work: one-line errors, or warnings for the report.

Errors (DataError, exit 2): empty data, duplicate event ids, too few days for the
split. Warnings (strings shown in the model card): all-null or constant features.

Example:
    >>> df = pl.DataFrame({"id": ["a", "a"], "x": [1.0, 1.0]})
    >>> dedupe(df, event_id="id", allow=True).height
    1
"""
from __future__ import annotations

import polars as pl

from mlops.errors import DataError


def require_rows(df: pl.DataFrame, *, what: str, key: str = "data.path") -> None:
    if df.height == 0:
        raise DataError(f"{what} has no rows", key=key,
                        fix="point it at files that contain events (or check the filters)")


def dedupe(df: pl.DataFrame, *, event_id: str | None, allow: bool) -> pl.DataFrame:
    """Refuse duplicate event ids (they would double window sums); with ``allow``
    (``data.dedupe: true``) drop rows that are exact duplicates, then check again."""
    if not event_id or event_id not in df.columns:
        return df
    if allow:
        df = df.unique(maintain_order=True)
    dups = df.height - df[event_id].n_unique()
    if dups:
        exact = df.height - df.unique().height
        hint = ("set data.dedupe: true to drop exact duplicate rows"
                if exact and not allow else "give every event its own id")
        raise DataError(f"{dups:,} duplicate event id(s) in {event_id!r}"
                        f"{f' ({exact:,} rows are exact copies)' if exact else ''}",
                        key="data.event_id", fix=hint)
    return df


def require_days(first, last, *, needed_days: float, parts: str) -> None:
    """Too few days of data for warm-up + train + valid + test: say how many of each.

    Days are calendar days with events (first to last, both included), as a person
    counts them: events from Jan 1 00:18 to Apr 29 23:59 are 120 days of data.
    """
    have = (last.date() - first.date()).days + 1 if first is not None else 0
    if have < needed_days - 1e-9:
        raise DataError(f"the data spans {have} days ({first} to {last}) but {parts} needs "
                        f"{needed_days:g} days", key="training",
                        fix="shorten training.warmup_days/train_days/valid_days/test_days or "
                            "bring more history")


def feature_warnings(df: pl.DataFrame, features: list[str]) -> list[str]:
    """All-null and constant features (they cannot help the model; often a mapping bug)."""
    out = []
    if df.height == 0:
        return out
    stats = df.select([pl.col(f).null_count().alias(f"{f}\x00n") for f in features]
                      + [pl.col(f).drop_nulls().n_unique().alias(f"{f}\x00u") for f in features])
    row = stats.row(0, named=True)
    for f in features:
        if row[f"{f}\x00n"] == df.height:
            out.append(f'feature "{f}" is null on every training row')
        elif row[f"{f}\x00u"] == 1:
            out.append(f'feature "{f}" is constant on the training rows')
    return out
