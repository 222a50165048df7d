"""Two-dataset drift without a model: which columns to compare, and as what type.

:func:`plan_columns` picks the columns both tables share (or the ones asked for) and types
them from their dtypes: numbers are numeric; strings, categoricals, enums and booleans are
categorical; dates, times, lists and structs are skipped with a reason (a timestamp column
drifts by construction when the two tables cover different periods). ``column_types``
overrides the inference per column. :func:`compare_frames` then fits reference statistics
on the first table and runs :func:`mlops.monitoring.drift.detect_drift` on the second, so
the statistics, tests, thresholds and overrides are exactly those of ``action=monitor``.
:func:`compare_datasets` is ``action=drift``'s pipeline (frames or a fitted reference in,
the drift dict with the multivariate test out; :class:`DatasetDriftResult` is ``drift.json``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from mlops.errors import ConfigError, DataError
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.multivariate import MultivariateSettings, multivariate_check
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.reference import Reference, fit_reference
from mlops.monitoring.verdict import drift_headline, drift_reasons, progress_for, run_status

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


def plan_columns(ref_schema: Mapping[str, pl.DataType], cur_schema: Mapping[str, pl.DataType], *,
                 columns: list[str] | None = None,
                 column_types: Mapping[str, str] | None = None) -> ColumnPlan:
    """The columns to compare (reference order) and their types.

    >>> plan_columns({"x": pl.Float64, "c": pl.String, "d": pl.Date, "only_ref": pl.Int8},
    ...              {"c": pl.String, "x": pl.Int64, "d": pl.Date})
    ColumnPlan(numeric=['x'], categorical=['c'], skipped={'d': 'dtype Date is neither numeric nor categorical'})
    """
    types = _check_types(column_types)
    names = _compared_names(ref_schema, cur_schema, columns)
    unknown = sorted(set(types) - set(names))
    if unknown:
        raise ConfigError(f"names column(s) {unknown} that are not compared ({names})",
                          key="column_types", fix="fix the column name")
    numeric, categorical, skipped = [], [], {}
    for name in names:
        kind = types.get(name) or _inferred(name, ref_schema[name], cur_schema[name],
                                            explicit=columns is not None)
        if kind is None:
            dtype = ref_schema[name] if infer_type(ref_schema[name]) is None else cur_schema[name]
            skipped[name] = f"dtype {dtype} is neither numeric nor categorical"
            continue
        (numeric if kind == "numeric" else categorical).append(name)
    if not numeric and not categorical:
        raise DataError(f"no shared column can be compared (skipped: {skipped})", key="columns",
                        fix="compare numeric or categorical columns, or set column_types")
    return ColumnPlan(numeric=numeric, categorical=categorical, skipped=skipped)


def _check_types(column_types: Mapping[str, str] | None) -> dict[str, str]:
    types = dict(column_types or {})
    for name, kind in types.items():
        if kind not in TYPES:
            raise ConfigError(f"must be 'numeric' or 'categorical'; got {kind!r}",
                              key=f"column_types.{name}", fix="use numeric or categorical")
    return types


def _compared_names(ref_schema: Mapping[str, pl.DataType], cur_schema: Mapping[str, pl.DataType],
                    columns: list[str] | None) -> list[str]:
    """The asked-for columns (each in both datasets), or every shared one."""
    if columns is not None:
        for side, schema in (("reference", ref_schema), ("current", cur_schema)):
            missing = [c for c in columns if c not in schema]
            if missing:
                raise DataError(f"column(s) {missing} are not in the {side} data; it has "
                                f"{list(schema)}", key="columns",
                                fix="list columns that both datasets have, or drop the key")
        return list(dict.fromkeys(columns))
    names = [c for c in ref_schema if c in cur_schema]
    if not names:
        raise DataError(f"the two datasets share no column: reference has {list(ref_schema)}, "
                        f"current has {list(cur_schema)}", key="current",
                        fix="compare files with the same columns, or rename them first")
    return names


def _inferred(name: str, ref_dtype: pl.DataType, cur_dtype: pl.DataType, *,
              explicit: bool) -> str | None:
    """The type both dtypes agree on; None (skipped) when one cannot be compared, unless
    the column was asked for by name (then it is an error)."""
    ref_kind, cur_kind = infer_type(ref_dtype), infer_type(cur_dtype)
    if ref_kind is None or cur_kind is None:
        if explicit:
            raise DataError(f"column {name!r} has dtype {ref_dtype} (reference) / {cur_dtype} "
                            f"(current), which these statistics cannot compare", key="columns",
                            fix=f"drop it from the columns, or compare it as categories "
                                f"(+monitoring.column_types.{name}=categorical)")
        return None
    if ref_kind != cur_kind:
        raise DataError(f"column {name!r} is {ref_kind} in the reference ({ref_dtype}) but "
                        f"{cur_kind} in the current data ({cur_dtype})",
                        key=f"column_types.{name}",
                        fix=f"compare it as categories (+monitoring.column_types.{name}=categorical "
                            f"on the command line), or make it a number in both datasets")
    return ref_kind


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


@dataclass
class DatasetDriftResult:
    """What ``action=drift`` found; :meth:`to_json` is ``drift.json``."""

    drift: dict                      # detect_drift's dict plus ``skipped`` and ``multivariate``
    reference: dict                  # where the reference came from (path, kind, files, rows)
    current: dict                    # path, files, rows
    multivariate_acts: bool
    actions: list[dict] = field(default_factory=list)
    duration_s: float = 0.0

    def reasons(self) -> list[str]:
        return drift_reasons(self.drift, self.multivariate_acts)

    @property
    def found(self) -> bool:
        return bool(self.reasons())

    def to_json(self) -> dict:
        """The ``drift.json`` dict."""
        return {"status": run_status(self.found, self.drift),
                "headline": drift_headline(self.drift), "reference": self.reference,
                "current": self.current, **self.drift, "actions": self.actions,
                "duration_s": self.duration_s}


def compare_datasets(reference: Reference | pl.DataFrame, current: pl.DataFrame,
                     policy: DriftPolicy, *, multivariate: MultivariateSettings,
                     columns: list[str] | None = None,
                     column_types: Mapping[str, str] | None = None) -> tuple[dict, int]:
    """Drift of ``current`` against reference rows or a fitted :class:`Reference`.

    Returns the drift dict (with ``skipped`` and ``multivariate``) and the number of
    reference rows. A fitted reference compares its own columns (``columns`` and
    ``column_types`` apply to reference rows only).
    """
    if isinstance(reference, Reference):
        plan = ColumnPlan(numeric=list(reference.numeric), categorical=list(reference.categorical))
        missing = [c for c in plan.columns if c not in current.columns]
        if missing:
            raise DataError(f"the current data lacks column(s) {missing} of the reference; it "
                            f"has {current.columns}", key="current",
                            fix="compare data with the columns the reference was fitted on")
        drift = detect_drift(reference, current.select(plan.columns), policy,
                             progress=progress_for(current.height, len(plan.columns)))
        drift["skipped"] = {}
        ref_rows, n_ref = reference.sample_frame(), max(
            (f.rows for f in [*reference.numeric.values(), *reference.categorical.values()]),
            default=0)
    else:
        plan = plan_columns(reference.schema, current.schema, columns=columns,
                            column_types=column_types)
        drift = compare_frames(reference, current, plan, policy,
                               progress=progress_for(current.height, len(plan.columns)))
        ref_rows, n_ref = reference, reference.height
    drift["multivariate"] = multivariate_check(multivariate, ref_rows, current, plan.numeric,
                                               plan.categorical, min_rows=policy.min_rows_dataset)
    return drift, n_ref
