"""Two-dataset drift without a model: which columns to compare, and as what type.

:func:`plan_columns` picks the columns both tables share (or the ones asked for) and types
them from their dtypes: numbers are numeric; strings, categoricals, enums and booleans are
categorical; dates, times, lists and structs are skipped with a reason (a timestamp column
drifts by construction when the two tables cover different periods). ``column_types``
overrides the inference per column. :func:`compare_frames` then fits reference statistics
on the first table and runs :func:`mlops.monitoring.drift.detect_drift` on the second, so
the statistics, tests, thresholds and overrides are exactly those of ``action=monitor``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from mlops.errors import ConfigError, DataError
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.reference import fit_reference

TYPES = ("numeric", "categorical")


@dataclass(frozen=True)
class ColumnPlan:
    """Columns to compare by type, plus the shared columns left out and why."""

    numeric: list[str]
    categorical: list[str]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def infer_type(dtype: pl.DataType) -> str | None:
    """'numeric', 'categorical', or None (not comparable by these statistics).

    >>> infer_type(pl.Int64), infer_type(pl.String), infer_type(pl.Boolean), infer_type(pl.Date)
    ('numeric', 'categorical', 'categorical', None)
    """
    if dtype == pl.Boolean or dtype in (pl.String, pl.Categorical) or isinstance(
            dtype, (pl.Categorical, pl.Enum)):
        return "categorical"
    if dtype.is_numeric():
        return "numeric"
    return None


def plan_columns(ref_schema: Mapping[str, pl.DataType], cur_schema: Mapping[str, pl.DataType], *,  # noqa: C901
                 columns: list[str] | None = None,
                 column_types: Mapping[str, str] | None = None) -> ColumnPlan:
    """The columns to compare (reference order) and their types.

    >>> plan_columns({"x": pl.Float64, "c": pl.String, "d": pl.Date, "only_ref": pl.Int8},
    ...              {"c": pl.String, "x": pl.Int64, "d": pl.Date})
    ColumnPlan(numeric=['x'], categorical=['c'], skipped={'d': 'dtype Date is neither numeric nor categorical'})
    """
    types = dict(column_types or {})
    for name, kind in types.items():
        if kind not in TYPES:
            raise ConfigError(f"must be 'numeric' or 'categorical'; got {kind!r}",
                              key=f"column_types.{name}", fix="use numeric or categorical")
    if columns is not None:
        for side, schema in (("reference", ref_schema), ("current", cur_schema)):
            missing = [c for c in columns if c not in schema]
            if missing:
                raise DataError(f"column(s) {missing} are not in the {side} data; it has "
                                f"{list(schema)}", key="columns",
                                fix="list columns that both datasets have, or drop the key")
        names = list(dict.fromkeys(columns))
    else:
        names = [c for c in ref_schema if c in cur_schema]
        if not names:
            raise DataError(f"the two datasets share no column: reference has {list(ref_schema)}, "
                            f"current has {list(cur_schema)}", key="current",
                            fix="compare files with the same columns, or rename them first")
    unknown = sorted(set(types) - set(names))
    if unknown:
        raise ConfigError(f"names column(s) {unknown} that are not compared ({names})",
                          key="column_types", fix="fix the column name")
    numeric, categorical, skipped = [], [], {}
    for name in names:
        ref_kind, cur_kind = infer_type(ref_schema[name]), infer_type(cur_schema[name])
        kind = types.get(name)
        if kind is None:
            if ref_kind is None or cur_kind is None:
                if columns is not None:
                    raise DataError(f"column {name!r} has dtype {ref_schema[name]} (reference) / "
                                    f"{cur_schema[name]} (current), which these statistics cannot "
                                    f"compare", key="columns",
                                    fix=f"drop it, or set column_types.{name}")
                dtype = ref_schema[name] if ref_kind is None else cur_schema[name]
                skipped[name] = f"dtype {dtype} is neither numeric nor categorical"
                continue
            if ref_kind != cur_kind:
                raise DataError(f"column {name!r} is {ref_kind} in the reference "
                                f"({ref_schema[name]}) but {cur_kind} in the current data "
                                f"({cur_schema[name]})", key=f"column_types.{name}",
                                fix=f"set column_types.{name}=numeric or categorical, or fix the data")
            kind = ref_kind
        (numeric if kind == "numeric" else categorical).append(name)
    if not numeric and not categorical:
        raise DataError(f"no shared column can be compared (skipped: {skipped})", key="columns",
                        fix="compare numeric or categorical columns, or set column_types")
    return ColumnPlan(numeric=numeric, categorical=categorical, skipped=skipped)


def compare_frames(reference: pl.DataFrame, current: pl.DataFrame, plan: ColumnPlan,
                   policy: DriftPolicy, *, max_rows: int | None = 200_000,
                   progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Fit reference statistics on ``reference`` and detect drift in ``current``.

    Returns :func:`detect_drift`'s dict plus ``skipped`` (column -> reason).
    """
    ref = fit_reference(reference, numeric=plan.numeric, categorical=plan.categorical,
                        n_bins=policy.n_bins, max_rows=max_rows)
    out = detect_drift(ref, current.select(plan.columns), policy, progress=progress)
    out["skipped"] = dict(plan.skipped)
    return out
