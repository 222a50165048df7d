"""The features of a micro-batch as the stages read them: rows (the rows backend) or a frame.

The pipeline's stages are written once, against :class:`FeatureTable`; a batch carries
:class:`RowTable` (a few records, plain Python dicts: no frame is built) or
:class:`FrameTable` (polars: larger batches, hybrid mode, experiments). Both hold the
plan's features and the engine's :data:`~mlops.features.rules.STATUS` per record.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import polars as pl

from mlops.features.rules import STATUS


class FeatureTable(Protocol):
    """What the stages read from the features of a batch."""

    names: list[str]      # the plan's features, in order

    def __len__(self) -> int: ...

    def column(self, name: str) -> Sequence:
        """One feature's values, per record."""

    def status(self) -> list[str | None]:
        """The engine's verdict per record: None when scorable, else why not."""

    def columns(self, names: list[str], keep: np.ndarray) -> dict[str, Sequence]:
        """Features ``names`` of the records ``keep`` selects."""

    def nonfinite(self, row: int) -> list[tuple[str, float]]:
        """(feature, value) of each non-finite float feature of record ``row``."""

    def model_input(self, bad: Sequence[int], *, rows: bool):
        """What the model is called on (rows as dicts when ``rows`` and the table has them,
        else a frame of the features), non-finite values of records ``bad`` replaced by 0
        (their scores are discarded: the model never sees a non-finite value)."""

    def log_values(self) -> list[list]:
        """Feature values per record in ``names`` order (what the prediction log keeps)."""

    def frame(self) -> pl.DataFrame:
        """The features as a frame."""


def _finite_or_zero(v):
    return 0.0 if isinstance(v, float) and not math.isfinite(v) else v


class RowTable:
    """Features as one dict per record (:func:`mlops.features.backends.rows.row_features`)."""

    def __init__(self, rows: list[dict], names: list[str], dtypes: dict[str, pl.DataType]):
        self.rows, self.names, self.dtypes = rows, names, dtypes

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list:
        return [r[name] for r in self.rows]

    def status(self) -> list[str | None]:
        return [r.get(STATUS) for r in self.rows]

    def columns(self, names: list[str], keep: np.ndarray) -> dict[str, list]:
        kept = self.rows if keep.all() else [r for r, k in zip(self.rows, keep) if k]
        return {n: [r[n] for r in kept] for n in names}

    def nonfinite(self, row: int) -> list[tuple[str, float]]:
        r = self.rows[row]
        return [(n, r[n]) for n in self.names if isinstance(r[n], float) and not math.isfinite(r[n])]

    def model_input(self, bad: Sequence[int], *, rows: bool):
        out = self.rows
        if bad:
            out = list(out)
            for i in bad:
                out[i] = {k: _finite_or_zero(v) for k, v in out[i].items()}
        return out if rows else RowTable(out, self.names, self.dtypes).frame()

    def log_values(self) -> list[list]:
        names = self.names
        return [[r[n] for n in names] for r in self.rows]

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.log_values(), schema={n: self.dtypes[n] for n in self.names},
                            orient="row")


class FrameTable:
    """Features as a polars frame (the frames backend, or the hybrid path)."""

    def __init__(self, features: pl.DataFrame, names: list[str]):
        self.features, self.names = features, names

    def __len__(self) -> int:
        return self.features.height

    def column(self, name: str) -> pl.Series:
        return self.features[name]

    def columns(self, names: list[str], keep: np.ndarray) -> dict[str, pl.Series]:
        sel = self.features if keep.all() else self.features.filter(pl.Series(keep))
        return {n: sel[n] for n in names}

    def status(self) -> list[str | None]:
        if STATUS not in self.features.columns:
            return [None] * self.features.height
        return self.features[STATUS].to_list()

    def nonfinite(self, row: int) -> list[tuple[str, float]]:
        r = self.features.row(row, named=True)
        return [(n, r[n]) for n in self.names if isinstance(r[n], float) and not math.isfinite(r[n])]

    def model_input(self, bad: Sequence[int], *, rows: bool):
        X = self.frame()
        if not bad:
            return X
        floats = [c for c in self.names if X.schema[c].is_float()]
        return X.with_columns(pl.when(pl.col(c).is_finite() | pl.col(c).is_null()).then(pl.col(c))
                              .otherwise(0.0).alias(c) for c in floats)

    def log_values(self) -> list[list]:
        return [list(r) for r in self.frame().rows()]

    def frame(self) -> pl.DataFrame:
        return self.features.select(self.names)
