"""Derived feature expressions as plain Python functions over one row (a dict).

A thin entry to the engine's rows backend (:mod:`mlops.features.backends.row_exprs`):
the expression is parsed by the SQL guard into its typed tree and compiled into a
closure with polars' Float64 semantics. An expression the rows backend has no exact form
for (string functions, LIKE, casts to integers...), or one that reads no column,
returns None and the caller evaluates the plan's polars expressions instead.

Example:
    >>> f = compile_numeric("amount / (amount_mean_7d + 1)", {"amount", "amount_mean_7d"})
    >>> f({"amount": 10.0, "amount_mean_7d": 4.0})
    2.0
"""
from __future__ import annotations

from collections.abc import Callable

from mlops.errors import FeatureSpecError
from mlops.features.backends.row_exprs import compile_expr
from mlops.features.sql_guard import parse_sql

RowFn = Callable[[dict], "float | None"]


def compile_numeric(text: str, columns: set[str]) -> RowFn | None:
    """A row function equal to the Float64 SQL expression ``text`` (``columns``: the
    Float64 columns it may read), or None when it has no exact row form."""
    try:
        expr = compile_expr(parse_sql(text, key="expr"), dict.fromkeys(columns, "float"))
    except FeatureSpecError:
        return None
    if expr is None or expr.const or expr.kind not in ("float", "int", "decimal", "bool"):
        return None
    fn = expr.fn

    def value(row: dict) -> float | None:
        v = fn(row)
        return None if v is None else float(v)
    return value
