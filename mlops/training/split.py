"""Time-based train / validation / test split (never a random split across time).

Windows are consecutive day ranges from an anchor (the first event by default).
Training uses the rows whose label is known by the cut-off, the end of the test
window (in production the model is trained at that moment and sees nothing later):

- a row whose label is null is **unlabelled**, whatever ``available_at`` holds;
- with ``available_at``, a labelled row counts once ``available_at <= cut-off``;
  later it is **label known too late**, and a null ``available_at`` is **label time
  missing** (never guessed: a label of unknown time could come from the future);
- rows before the train window (the warm-up) or after the test window are
  **outside the windows**.

Every row left out is counted under exactly one reason, in that order of precedence.

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


LEFT_OUT = ("outside_windows", "unlabelled", "label_time_missing", "label_known_too_late")


def left_out_reason(*, timestamp: str, bounds: list[datetime], label: str | None,
                    available_at: str | None) -> pl.Expr:
    """Why a row is not used for training (one of :data:`LEFT_OUT`), or null when it is."""
    ts = pl.col(timestamp)
    in_windows = ((ts >= bounds[0]) & (ts < bounds[-1])).fill_null(False)
    reason = pl.when(~in_windows).then(pl.lit(LEFT_OUT[0]))
    if label:
        reason = reason.when(pl.col(label).is_null()).then(pl.lit(LEFT_OUT[1]))
    if available_at:
        reason = (reason.when(pl.col(available_at).is_null()).then(pl.lit(LEFT_OUT[2]))
                  .when(pl.col(available_at) > bounds[-1]).then(pl.lit(LEFT_OUT[3])))
    return reason.otherwise(pl.lit(None, pl.String))


def time_split(df: pl.DataFrame, *, timestamp: str, bounds: list[datetime],
               available_at: str | None, label: str | None = None
               ) -> tuple[dict[str, pl.DataFrame], dict]:
    """Split ``df`` into train/valid/test by ``timestamp`` within ``bounds``, keeping the
    rows whose ``label`` is known by the cut-off (``bounds[-1]``).

    Returns the frames and a summary: rows per part, the cut-off, and ``left_out``, the
    count of every row not used, by reason (:data:`LEFT_OUT`).

    >>> t0 = datetime(2024, 1, 1)
    >>> df = pl.DataFrame({"ts": [t0 + timedelta(days=d) for d in range(6)],
    ...                    "y": [1, 0, 1, None, 0, 1]})
    >>> parts, info = time_split(df, timestamp="ts", label="y", available_at=None,
    ...                          bounds=split_bounds(t0, train_days=2, valid_days=1, test_days=2))
    >>> info["left_out"], info["train_rows"], info["valid_rows"], info["test_rows"]
    ({'outside_windows': 1, 'unlabelled': 1, 'label_time_missing': 0, 'label_known_too_late': 0}, 2, 1, 1)
    """
    why = left_out_reason(timestamp=timestamp, bounds=bounds, label=label,
                          available_at=available_at)
    tagged = df.with_columns(why.alias("__left_out"))
    counts = dict(tagged.group_by("__left_out").len().iter_rows())
    used = tagged.filter(pl.col("__left_out").is_null()).drop("__left_out")
    parts, info = {}, {"bounds": [b.isoformat() for b in bounds], "label_cutoff": bounds[-1].isoformat(),
                       "rows": df.height, "used_rows": used.height,
                       "left_out": {reason: int(counts.get(reason, 0)) for reason in LEFT_OUT}}
    for name, lo, hi in (("train", bounds[0], bounds[1]), ("valid", bounds[1], bounds[2]),
                         ("test", bounds[2], bounds[3])):
        parts[name] = used.filter((pl.col(timestamp) >= lo) & (pl.col(timestamp) < hi))
        info[f"{name}_rows"] = parts[name].height
        if parts[name].height == 0:
            raise DataError(f"the {name} window [{lo:%Y-%m-%d}, {hi:%Y-%m-%d}) has no rows with a "
                            f"label known by {bounds[-1]:%Y-%m-%d} (left out: {_said(info)})",
                            key=f"training.split.{name}_days",
                            fix="move or widen the windows so they fall inside the labelled data")
    return parts, info


def _said(info: dict) -> str:
    return ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in info["left_out"].items()
                     if n) or "none"
