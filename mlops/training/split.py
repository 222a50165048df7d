"""Time-based train / validation / test split (never a random split across time).

Windows are consecutive day ranges from an anchor (the first event by default).
Only labels known by the end of the test window are used (``available_at``):
rows whose label arrived later are dropped from the labelled set and counted,
because in production the model is trained at that moment and cannot see them.

Example:
    >>> bounds = split_bounds(datetime(2024, 1, 1), train_days=40, valid_days=10, test_days=10)
    >>> [b.isoformat()[:10] for b in bounds]
    ['2024-01-01', '2024-02-10', '2024-02-20', '2024-03-01']
"""
from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from mlops.errors import ConfigError, DataError


def split_bounds(start: datetime, *, train_days: float, valid_days: float, test_days: float,
                 key: str = "training.split") -> list[datetime]:
    """[start, train_end, valid_end, test_end]."""
    for name, v in (("train_days", train_days), ("valid_days", valid_days), ("test_days", test_days)):
        if v is None or v <= 0:
            raise ConfigError(f"must be > 0; got {v!r}", key=f"{key}.{name}",
                              fix="give each window a positive number of days")
    b1 = start + timedelta(days=train_days)
    b2 = b1 + timedelta(days=valid_days)
    return [start, b1, b2, b2 + timedelta(days=test_days)]


def time_split(df: pl.DataFrame, *, timestamp: str, bounds: list[datetime],
               available_at: str | None) -> tuple[dict[str, pl.DataFrame], dict]:
    """Split ``df`` into train/valid/test by ``timestamp`` within ``bounds``.

    Returns the frames and a summary (rows per part, labels not yet known).
    """
    cutoff = bounds[-1]
    parts, info = {}, {"bounds": [b.isoformat() for b in bounds], "unlabelled_dropped": 0}
    known = pl.lit(True) if not available_at else pl.col(available_at) <= cutoff
    if available_at:
        in_range = df.filter((pl.col(timestamp) >= bounds[0]) & (pl.col(timestamp) < cutoff))
        info["unlabelled_dropped"] = int(in_range.filter(~known).height)
    for name, lo, hi in (("train", bounds[0], bounds[1]), ("valid", bounds[1], bounds[2]),
                         ("test", bounds[2], bounds[3])):
        parts[name] = df.filter((pl.col(timestamp) >= lo) & (pl.col(timestamp) < hi) & known)
        info[f"{name}_rows"] = parts[name].height
        if parts[name].height == 0:
            raise DataError(f"the {name} window [{lo:%Y-%m-%d}, {hi:%Y-%m-%d}) has no labelled rows",
                            key=f"training.split.{name}_days",
                            fix="move or widen the windows so they fall inside the data")
    return parts, info
