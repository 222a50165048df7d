"""The reference's rows in time order, and the model's scored baseline rows.

Calibrated thresholds (:mod:`mlops.monitoring.calibration`) cut the reference into
consecutive chunks, so beside its sorted values and bins the reference keeps its rows
in time order: :class:`ReferenceRows` (numeric values as float64 with NaN for null or
non-finite, categorical values as codes into the reference's categories, -1 for null).
More than ``max_rows`` rows are thinned evenly (every k-th row), which keeps the order.

:class:`Baseline` holds the model's scores and labels on the windows it was *not*
fitted on (validation and test), in time order: performance per chunk and the
detectors are judged against the spread of the model's own out-of-sample error.

Both are stored in the reference ``.npz`` (format version 2) and are optional: a
reference fitted from files without a time column keeps file order (``time`` is None),
and references written before version 2 have neither (fixed thresholds, with a note).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

MICROS = 1_000_000


@dataclass(frozen=True)
class ReferenceRows:
    """Per-feature values of the reference in time order (``time``: epoch microseconds)."""

    time: np.ndarray | None
    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    step: int = 1                     # every ``step``-th row of the data was kept

    @property
    def rows(self) -> int:
        for values in (*self.numeric.values(), *self.categorical.values()):
            return int(values.size)
        return 0 if self.time is None else int(self.time.size)

    def select(self, names: list[str]) -> ReferenceRows:
        """The same rows with only the features in ``names``."""
        return ReferenceRows(time=self.time, step=self.step,
                             numeric={n: v for n, v in self.numeric.items() if n in names},
                             categorical={n: v for n, v in self.categorical.items() if n in names})

    def arrays(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        """(header, arrays) for an ``.npz``; names are indexed, the header maps them back."""
        header = {"step": self.step, "has_time": self.time is not None,
                  "numeric": list(self.numeric), "categorical": list(self.categorical)}
        arrays = {f"{prefix}num{i}": v for i, v in enumerate(self.numeric.values())}
        arrays.update({f"{prefix}cat{j}": v for j, v in enumerate(self.categorical.values())})
        if self.time is not None:
            arrays[f"{prefix}time"] = self.time
        return header, arrays

    @classmethod
    def from_arrays(cls, header: dict, arrays: dict[str, np.ndarray], prefix: str) -> ReferenceRows:
        return cls(time=arrays[f"{prefix}time"] if header["has_time"] else None,
                   numeric={n: arrays[f"{prefix}num{i}"] for i, n in enumerate(header["numeric"])},
                   categorical={n: arrays[f"{prefix}cat{j}"] for j, n in enumerate(header["categorical"])},
                   step=int(header["step"]))


def reference_rows(df: pl.DataFrame, *, numeric: list[str], categorical: dict[str, tuple[str, ...]],
                   timestamp: str | None, max_rows: int | None) -> ReferenceRows:
    """The rows of ``df`` in time order (file order without ``timestamp``), thinned to
    at most ``max_rows`` rows; categorical values coded by the given category tuples.

    >>> rows = reference_rows(pl.DataFrame({"x": [2.0, None, float("inf")], "c": ["b", "a", None]}),
    ...                       numeric=["x"], categorical={"c": ("a", "b")}, timestamp=None, max_rows=None)
    >>> rows.numeric["x"].tolist(), rows.categorical["c"].tolist()
    ([2.0, nan, nan], [1, 0, -1])
    """
    if timestamp is not None:
        df = df.filter(pl.col(timestamp).is_not_null()).sort(timestamp, maintain_order=True)
    step = 1
    if max_rows is not None and df.height > max_rows:
        step = -(-df.height // max_rows)
        df = df.gather_every(step)
    num = {}
    for name in numeric:
        values = df.get_column(name).cast(pl.Float64).fill_null(float("nan")).to_numpy().copy()
        values[~np.isfinite(values)] = np.nan
        num[name] = values
    cat = {}
    for name, categories in categorical.items():
        codes = df.get_column(name).cast(pl.String).replace_strict(
            list(categories), list(range(len(categories))), default=-1, return_dtype=pl.Int32)
        cat[name] = codes.fill_null(-1).to_numpy().astype(np.int32)
    time = None
    if timestamp is not None:
        time = _epoch_micros(df.get_column(timestamp))
    return ReferenceRows(time=time, numeric=num, categorical=cat, step=step)


@dataclass(frozen=True)
class Baseline:
    """The model's out-of-sample rows in time order: score and label (NaN: unlabelled)."""

    time: np.ndarray
    score: np.ndarray
    label: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.score.size)

    def frame(self, *, time_col: str, label_col: str, score_col: str) -> pl.DataFrame:
        """The baseline as a frame with the monitored data's column names."""
        return pl.DataFrame({
            time_col: pl.Series(self.time, dtype=pl.Int64).cast(pl.Datetime("us")),
            label_col: pl.Series(self.label, dtype=pl.Float64).fill_nan(None),
            score_col: pl.Series(self.score, dtype=pl.Float64)})

    def arrays(self) -> dict[str, np.ndarray]:
        return {"baseline_time": self.time, "baseline_score": self.score, "baseline_label": self.label}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Baseline:
        return cls(time=arrays["baseline_time"], score=arrays["baseline_score"],
                   label=arrays["baseline_label"])


def baseline_from(df: pl.DataFrame, *, timestamp: str, label: str, score: np.ndarray) -> Baseline:
    """A :class:`Baseline` from scored rows (``score`` aligned with ``df``), sorted by time."""
    frame = df.select(pl.col(timestamp), pl.col(label).cast(pl.Float64)).with_columns(
        pl.Series("__score", np.asarray(score, dtype=np.float64))).sort(timestamp, maintain_order=True)
    return Baseline(time=_epoch_micros(frame.get_column(timestamp)),
                    score=frame.get_column("__score").to_numpy().copy(),
                    label=frame.get_column(label).fill_null(float("nan")).to_numpy().copy())


def _epoch_micros(series: pl.Series) -> np.ndarray:
    if series.dtype == pl.Date:
        series = series.cast(pl.Datetime("us"))
    if isinstance(series.dtype, pl.Datetime):  # the physical value is the UTC instant
        return series.dt.cast_time_unit("us").cast(pl.Int64).to_numpy().copy()
    return series.cast(pl.Int64).to_numpy().copy()
