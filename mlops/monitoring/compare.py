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

from mlops.constraints import Interval, validate
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
                 column_types: Mapping[str, str] | None = None,
                 exclude: Mapping[str, str] | None = None) -> ColumnPlan:
    """The columns to compare (reference order) and their types.

    ``exclude`` maps columns that are never features (ids, entity, timestamp, label) to the
    reason they are skipped, unless ``columns`` asks for them by name. Every column whose
    two dtypes disagree is listed in one error.

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
    numeric, categorical, skipped, mismatched = [], [], {}, []
    for name in names:
        if name in (exclude or {}) and columns is None and name not in types:
            skipped[name] = exclude[name]
            continue
        try:
            kind = types.get(name) or _inferred(name, ref_schema[name], cur_schema[name],
                                                explicit=columns is not None)
        except _Mismatch as m:
            mismatched.append(m)
            continue
        if kind is None:
            dtype = ref_schema[name] if infer_type(ref_schema[name]) is None else cur_schema[name]
            skipped[name] = f"dtype {dtype} is neither numeric nor categorical"
            continue
        (numeric if kind == "numeric" else categorical).append(name)
    if mismatched:
        raise DataError(
            "column types differ between the datasets: " + "; ".join(m.what for m in mismatched),
            key="column_types",
            fix="declare each column's type (copy as typed): "
                + " ".join(f"+monitoring.column_types.{m.name}={m.suggest}" for m in mismatched)
                + " (a string that is not a number then counts as missing), or fix the data")
    if not numeric and not categorical:
        raise DataError(f"no shared column can be compared (skipped: {skipped})", key="columns",
                        fix="compare numeric or categorical columns, or set column_types")
    return ColumnPlan(numeric=numeric, categorical=categorical, skipped=skipped)


class _Mismatch(Exception):
    def __init__(self, name: str, what: str, suggest: str):
        super().__init__(what)
        self.name, self.what, self.suggest = name, what, suggest


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
                            fix=f"drop it, or set column_types.{name}")
        return None
    if ref_kind != cur_kind:
        raise _Mismatch(name, f"{name!r} is {ref_kind} in the reference ({ref_dtype}) but {cur_kind} "
                              f"in the current data ({cur_dtype})",
                        "numeric" if "numeric" in (ref_kind, cur_kind) else "categorical")
    return ref_kind


def compare_frames(reference: pl.DataFrame, current: pl.DataFrame, plan: ColumnPlan,
                   policy: DriftPolicy, *, max_rows: int | None = None,
                   progress: Callable[[int, int, str], None] | None = None,
                   timestamp: str | None = None) -> dict:
    """Fit reference statistics on ``reference`` and detect drift in ``current``.

    Calibrated limits cut the reference into chunks in ``timestamp`` order (file order
    without one). ``max_rows=None`` keeps every reference value (exact); a number declares a
    sample (:func:`fit_reference`). Returns :func:`detect_drift`'s dict plus ``skipped``.
    """
    # no joint row sample: the multivariate check, when on, reads these rows themselves
    ref = fit_reference(reference, numeric=plan.numeric, categorical=plan.categorical,
                        n_bins=policy.n_bins, max_rows=max_rows, timestamp=timestamp, sample_rows=0)
    out = detect_drift(ref, current.select(plan.columns), policy, progress=progress)
    out["skipped"] = dict(plan.skipped)
    return out


def align_null_columns(reference: pl.DataFrame, current: pl.DataFrame
                       ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A shared column that is all null on one side takes the other side's dtype (a csv
    column with no value reads as text, which is no reason to call it a type mismatch)."""
    fixes: dict[str, list] = {"ref": [], "cur": []}
    for name in [c for c in reference.columns if c in current.columns]:
        r, c = reference.get_column(name), current.get_column(name)
        if r.dtype == c.dtype:
            continue
        if c.null_count() == c.len():
            fixes["cur"].append(pl.lit(None, r.dtype).alias(name))
        elif r.null_count() == r.len():
            fixes["ref"].append(pl.lit(None, c.dtype).alias(name))
    return reference.with_columns(fixes["ref"]), current.with_columns(fixes["cur"])


def skip_identifiers(reference: pl.DataFrame, current: pl.DataFrame, plan: ColumnPlan, *,
                     explicit: list[str] | None) -> ColumnPlan:
    """Text or integer columns with a different value on every row of both datasets are ids,
    not features: skipped with that reason (unless asked for by name)."""
    skipped, keep = dict(plan.skipped), {"numeric": [], "categorical": []}
    for kind, names in (("numeric", plan.numeric), ("categorical", plan.categorical)):
        for name in names:
            dtype = reference.schema[name]
            if (explicit is None and (dtype == pl.String or dtype.is_integer())
                    and _unique_per_row(reference, name) and _unique_per_row(current, name)):
                skipped[name] = "a different value on every row: an identifier, not a feature"
            else:
                keep[kind].append(name)
    return ColumnPlan(numeric=keep["numeric"], categorical=keep["categorical"], skipped=skipped)


def _unique_per_row(df: pl.DataFrame, name: str) -> bool:
    col = df.get_column(name)
    return col.len() >= 20 and col.null_count() == 0 and col.n_unique() == col.len()


def apply_types(reference: pl.DataFrame, current: pl.DataFrame, plan: ColumnPlan
                ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Columns cast to their planned type: text declared numeric is read as numbers (what
    does not read as a number is missing), numbers declared categorical as text."""
    def cast(df: pl.DataFrame) -> pl.DataFrame:
        exprs = [pl.col(n).cast(pl.Float64, strict=False) for n in plan.numeric
                 if not df.schema[n].is_numeric()]
        exprs += [pl.col(n).cast(pl.String) for n in plan.categorical
                  if df.schema[n].is_numeric() or df.schema[n] == pl.Null]
        return df.with_columns(exprs) if exprs else df
    return cast(reference), cast(current)


def _time_column(reference: pl.DataFrame, exclude: Mapping[str, str] | None) -> str | None:
    """The reference's time column for chunk order: the declared timestamp (an ``exclude``
    entry naming it), else its only date-time column, else None (file order)."""
    temporal = [n for n, t in reference.schema.items() if isinstance(t, pl.Datetime) or t == pl.Date]
    declared = [n for n in temporal if n in (exclude or {}) and "timestamp" in exclude[n]]
    if declared:
        return declared[0]
    return temporal[0] if len(temporal) == 1 else None


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
                     column_types: Mapping[str, str] | None = None,
                     exclude: Mapping[str, str] | None = None,
                     reference_max_rows: int | None = None) -> tuple[dict, int]:
    """Drift of ``current`` against reference rows or a fitted :class:`Reference`.

    Returns the drift dict (with ``skipped`` and ``multivariate``) and the number of
    reference rows. A fitted reference compares its own columns (``columns``,
    ``column_types`` and ``exclude`` apply to reference rows only). Rows: a column all null
    on one side takes the other side's type; ids (unique per row) and ``exclude``'s columns
    are skipped with their reason. ``reference_max_rows`` (rows only): None keeps every
    reference value, a number declares a sample.
    """
    validate(dict(reference_max_rows=reference_max_rows),
             {"reference_max_rows": [Interval(int, 2, None), None]})
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
        reference, current = align_null_columns(reference, current)
        plan = plan_columns(reference.schema, current.schema, columns=columns,
                            column_types=column_types, exclude=exclude)
        plan = skip_identifiers(reference, current, plan, explicit=columns)
        reference, current = apply_types(reference, current, plan)
        drift = compare_frames(reference, current, plan, policy, timestamp=_time_column(reference, exclude),
                               max_rows=reference_max_rows,
                               progress=progress_for(current.height, len(plan.columns)))
        ref_rows, n_ref = reference, reference.height
    drift["multivariate"] = multivariate_check(multivariate, ref_rows, current, plan.numeric,
                                               plan.categorical, min_rows=policy.min_rows_dataset)
    return drift, n_ref
