"""Sufficient statistics per variant and metric: everything the analysis needs.

Per-unit rows are reduced once (in polars) to n, sum and sum of squares (plus the
pre-period covariate sums for CUPED). They add up across days, shards or warehouses,
so the analysis never needs the raw rows again.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from mlops.errors import DataError, ExperimentError


@dataclass(frozen=True)
class SufficientStats:
    """n, sum and sum of squares of a metric over units (+ covariate sums for CUPED).

    >>> s = SufficientStats.from_values([1.0, 2.0, 3.0])
    >>> s.mean, s.variance
    (2.0, 1.0)
    """

    n: int
    sum: float
    sum_sq: float
    sum_pre: float | None = None
    sum_sq_pre: float | None = None
    sum_cross: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 0:
            raise ExperimentError(f"The 'n' of SufficientStats must be an int >= 0; got {self.n!r} instead")
        object.__setattr__(self, "n", int(self.n))
        for name in ("sum", "sum_sq", "sum_pre", "sum_sq_pre", "sum_cross"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value):
                raise ExperimentError(
                    f"The '{name}' of SufficientStats must be a finite number; got {value!r} instead")
            object.__setattr__(self, name, float(value))
        pre = (self.sum_pre, self.sum_sq_pre, self.sum_cross)
        if any(v is None for v in pre) and any(v is not None for v in pre):
            raise ExperimentError(
                "sum_pre, sum_sq_pre and sum_cross of SufficientStats go together; got "
                f"{pre!r}", fix="give all three (CUPED) or none")

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_values(cls, values: Sequence[float] | np.ndarray,
                    pre: Sequence[float] | np.ndarray | None = None) -> SufficientStats:
        """Stats of per-unit values (and their pre-period covariate, when given)."""
        y = np.asarray(values, dtype=np.float64)
        if pre is None:
            return cls(int(y.size), float(y.sum()), float((y * y).sum()))
        x = np.asarray(pre, dtype=np.float64)
        if x.shape != y.shape:
            raise ExperimentError(f"pre has shape {x.shape} but values have shape {y.shape}",
                                  key="pre", fix="give one covariate value per unit")
        return cls(int(y.size), float(y.sum()), float((y * y).sum()),
                   float(x.sum()), float((x * x).sum()), float((x * y).sum()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | SufficientStats) -> SufficientStats:
        if isinstance(data, SufficientStats):
            return data
        if not isinstance(data, Mapping):
            raise ExperimentError(f"expected SufficientStats or a dict of its fields; got {data!r}")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ExperimentError(f"invalid SufficientStats fields: {exc}",
                                  fix="use n, sum, sum_sq[, sum_pre, sum_sq_pre, sum_cross]") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __add__(self, other: SufficientStats) -> SufficientStats:
        """Stats of the union of two disjoint sets of units (e.g. two days)."""
        if not isinstance(other, SufficientStats):
            return NotImplemented
        both = self.has_covariate and other.has_covariate
        return SufficientStats(
            self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq,
            (self.sum_pre + other.sum_pre) if both else None,
            (self.sum_sq_pre + other.sum_sq_pre) if both else None,
            (self.sum_cross + other.sum_cross) if both else None)

    # -- moments --------------------------------------------------------------------------
    @property
    def has_covariate(self) -> bool:
        return self.sum_pre is not None

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); clamped at 0 against rounding of sum_sq - sum**2/n."""
        if self.n < 2:
            return math.nan
        return max(0.0, (self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1))

    @property
    def mean_pre(self) -> float:
        return self.sum_pre / self.n if self.n and self.has_covariate else math.nan

    @property
    def variance_pre(self) -> float:
        if self.n < 2 or not self.has_covariate:
            return math.nan
        return max(0.0, (self.sum_sq_pre - self.sum_pre ** 2 / self.n) / (self.n - 1))

    @property
    def covariance(self) -> float:
        """Sample covariance (ddof=1) of the metric and its pre-period covariate."""
        if self.n < 2 or not self.has_covariate:
            return math.nan
        return (self.sum_cross - self.sum * self.sum_pre / self.n) / (self.n - 1)


def _missing_column(name: str, columns: list[str], role: str) -> DataError:
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f'. Did you mean "{close[0]}"?' if close else ""
    return DataError(f'unable to find the {role} column "{name}"; valid columns: {columns}{hint}',
                     key=role, fix="name an existing column")


def aggregate_units(df: pl.DataFrame | pl.LazyFrame, *, variant_col: str, metric_cols: Sequence[str],
                    covariate_col: str | Mapping[str, str] | None = None,
                    ) -> dict[str, dict[str, SufficientStats]]:
    """Reduce per-unit rows to ``{variant: {metric: SufficientStats}}``.

    One row per unit. ``covariate_col`` is the pre-period column used by CUPED: one name
    for every metric, or ``{metric: covariate column}``. Metrics must be numeric or
    boolean (a proportion is the mean of a 0/1 column) and free of nulls/NaN: a unit with
    no event has value 0, which only the caller can know.

    >>> df = pl.DataFrame({"variant": ["a", "a", "b"], "y": [1.0, 0.0, 1.0]})
    >>> aggregate_units(df, variant_col="variant", metric_cols=["y"])["a"]["y"].n
    2
    """
    lf = df.lazy() if isinstance(df, pl.DataFrame) else df
    metric_cols = list(metric_cols)
    covariates = _covariate_map(covariate_col, metric_cols)
    schema = lf.collect_schema()
    for name, role in [(variant_col, "variant_col")] + [(m, "metric_cols") for m in metric_cols] \
            + [(c, "covariate_col") for c in covariates.values()]:
        if name not in schema:
            raise _missing_column(name, schema.names(), role)
    value_cols = list(dict.fromkeys(metric_cols + list(covariates.values())))
    cast = lf.select(pl.col(variant_col).cast(pl.String),
                     *[pl.col(c).cast(pl.Float64) for c in _numeric(value_cols, schema)])
    _check_complete(cast, variant_col, value_cols)
    table = cast.group_by(variant_col).agg(_sums(metric_cols, covariates)) \
        .sort(variant_col).collect()
    return {row[variant_col]: {m: _stats_of(row, m, m in covariates) for m in metric_cols}
            for row in table.iter_rows(named=True)}


def _covariate_map(covariate_col: str | Mapping[str, str] | None,
                   metric_cols: list[str]) -> dict[str, str]:
    """metric -> its CUPED covariate column."""
    if isinstance(covariate_col, str):
        return {m: covariate_col for m in metric_cols}
    covariates = dict(covariate_col or {})
    unknown = sorted(set(covariates) - set(metric_cols))
    if unknown:
        raise DataError(f"covariate_col names metrics {unknown} that are not in metric_cols {metric_cols}",
                        key="covariate_col")
    return covariates


def _numeric(value_cols: list[str], schema) -> list[str]:
    for c in value_cols:
        dtype = schema[c]
        if not (dtype.is_numeric() or dtype == pl.Boolean):
            raise DataError(f'The column "{c}" must be numeric or boolean; got {dtype} instead',
                            key=c, fix="cast it, e.g. pl.col(c).cast(pl.Float64)")
    return value_cols


def _check_complete(cast: pl.LazyFrame, variant_col: str, value_cols: list[str]) -> None:
    """No null variant, no null/NaN value (one pass over the rows)."""
    exprs = [(pl.col(c).is_null() | pl.col(c).is_nan()).sum().alias(f"__bad_{c}")
             for c in value_cols]
    exprs.append(pl.col(variant_col).is_null().sum().alias("__bad_variant"))
    checks = cast.select(exprs).collect().row(0, named=True)
    if checks["__bad_variant"]:
        raise DataError(f'the variant column "{variant_col}" has {checks["__bad_variant"]} null rows',
                        key=variant_col, fix="drop units without an assignment")
    for c in value_cols:
        if checks[f"__bad_{c}"]:
            raise DataError(f'the column "{c}" has {checks[f"__bad_{c}"]} null/NaN values',
                            key=c, fix="fill_null(0) for counts and conversions, or drop those units")


def _sums(metric_cols: list[str], covariates: dict[str, str]) -> list[pl.Expr]:
    aggs: list[pl.Expr] = [pl.len().alias("__n")]
    for m in metric_cols:
        y = pl.col(m)
        aggs += [y.sum().alias(f"{m}__s"), (y * y).sum().alias(f"{m}__ss")]
        if m in covariates:
            x = pl.col(covariates[m])
            aggs += [x.sum().alias(f"{m}__ps"), (x * x).sum().alias(f"{m}__pss"),
                     (x * y).sum().alias(f"{m}__xs")]
    return aggs


def _stats_of(row: dict, m: str, with_covariate: bool) -> SufficientStats:
    if with_covariate:
        return SufficientStats(row["__n"], row[f"{m}__s"], row[f"{m}__ss"],
                               row[f"{m}__ps"], row[f"{m}__pss"], row[f"{m}__xs"])
    return SufficientStats(row["__n"], row[f"{m}__s"], row[f"{m}__ss"])
