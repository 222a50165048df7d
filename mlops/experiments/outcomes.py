"""A/B outcome metrics declared in YAML: per-row expressions, per-unit aggregates, derived.

An :class:`OutcomeSpec` holds three kinds of metric, all named by the user:

- ``metrics``: a SQL expression over each served row (the source columns, ``score``
  = the model's probability, ``decision`` = 1 when served positive, else 0) and an
  aggregate per unit (``sum``, ``mean``, ``count``, ``min``, ``max``);
- ``derived``: per unit, over the aggregated metrics: a SQL expression, or a ratio
  ``{numerator, denominator}`` (per-unit value; 0 when the denominator is 0);
- ``covariates``: pre-period aggregates per unit over the source rows (CUPED).

Example:
    >>> spec = OutcomeSpec.from_dict({
    ...     "metrics": {"spend": {"expr": "price * decision", "agg": "sum"}},
    ...     "derived": {"per_visit": {"numerator": "spend", "denominator": "visits"}}},
    ...     key="experiment.outcomes")                        # doctest: +SKIP
    >>> unit_outcomes(rows, spec, by=["shop_id", "variant"])  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mlops.errors import ExperimentError, FeatureSpecError
from mlops.features.sql_guard import check_sql

SCORE, DECISION = "score", "decision"
AGGS = {"sum": lambda e: e.sum(), "mean": lambda e: e.mean(), "count": lambda e: e.count(),
        "min": lambda e: e.min(), "max": lambda e: e.max()}


def outcome_expr(expr: str, *, key: str, allowed_columns) -> pl.Expr:
    """Compile one outcome SQL expression, reading only ``allowed_columns``.

    The one place outcome SQL is compiled: the feature engine's SQL sandbox checks it
    first (an expression language, never a query: no subquery, table function or file).
    """
    allowed = sorted(set(allowed_columns))
    try:
        check_sql(str(expr), key=key, allowed_columns=allowed)
    except FeatureSpecError as exc:
        raise ExperimentError(exc.message, key=key, fix=exc.fix) from None
    try:
        compiled = pl.sql_expr(str(expr))
    except Exception as exc:  # polars raises several types for SQL parse errors
        raise ExperimentError(f"invalid SQL expression {expr!r}: {exc}".split("\n")[0],
                              key=key, fix="write a SQL expression such as "
                                           "'CASE WHEN label = 1 THEN price ELSE 0 END'") from None
    return compiled


@dataclass(frozen=True)
class RowMetric:
    """``agg`` of ``expr`` over a unit's rows."""

    name: str
    expr: str
    agg: str
    key: str


@dataclass(frozen=True)
class DerivedMetric:
    """A per-unit expression over aggregated metrics, or a per-unit ratio."""

    name: str
    key: str
    expr: str | None = None
    numerator: str | None = None
    denominator: str | None = None


def _row_metric(name: str, value, key: str) -> RowMetric:
    if isinstance(value, str):  # shorthand: an expression summed per unit
        value = {"expr": value}
    if not isinstance(value, dict) or "expr" not in value or set(value) - {"expr", "agg"}:
        raise ExperimentError(f"must be {{expr: <SQL>, agg: sum|mean|count|min|max}}; got "
                              f"{value!r}", key=key, fix="e.g. {expr: 'decision', agg: sum}")
    agg = str(value.get("agg") or "sum")
    if agg not in AGGS:
        raise ExperimentError(f"unknown agg {agg!r}; valid: {sorted(AGGS)}", key=f"{key}.agg")
    return RowMetric(str(name), str(value["expr"]), agg, key)


def _derived(name: str, value, key: str) -> DerivedMetric:
    if isinstance(value, str):
        return DerivedMetric(str(name), key, expr=value)
    if isinstance(value, dict) and set(value) == {"numerator", "denominator"}:
        return DerivedMetric(str(name), key, numerator=str(value["numerator"]),
                             denominator=str(value["denominator"]))
    raise ExperimentError(f"must be a SQL expression over the metrics or {{numerator: <metric>, "
                          f"denominator: <metric>}}; got {value!r}", key=key,
                          fix="e.g. cost: 'loss + 10 * false_declines'")


@dataclass(frozen=True)
class OutcomeSpec:
    """The outcome metrics of an experiment (see the module docstring)."""

    metrics: tuple[RowMetric, ...]
    derived: tuple[DerivedMetric, ...] = ()
    covariates: tuple[RowMetric, ...] = ()

    @classmethod
    def from_dict(cls, values: dict, *, key: str) -> "OutcomeSpec":
        """From the plain ``metrics`` / ``derived`` / ``covariates`` mappings of the YAML."""
        def mapping(part):
            got = values.get(part) or {}
            if not isinstance(got, dict):
                raise ExperimentError(f"must be a mapping of name -> definition; got {got!r}",
                                      key=f"{key}.{part}")
            return got
        metrics = tuple(_row_metric(n, v, f"{key}.metrics.{n}")
                        for n, v in mapping("metrics").items())
        if not metrics:
            raise ExperimentError("no outcome metrics are declared", key=f"{key}.metrics",
                                  fix="declare per-row metrics, e.g. metrics: {conversions: "
                                      "{expr: 'decision', agg: sum}}")
        derived = tuple(_derived(n, v, f"{key}.derived.{n}") for n, v in mapping("derived").items())
        covariates = tuple(_row_metric(n, v, f"{key}.covariates.{n}")
                           for n, v in mapping("covariates").items())
        names = [m.name for m in (*metrics, *derived, *covariates)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ExperimentError(f"metric name(s) {dup} are declared twice", key=key,
                                  fix="give every metric, derived metric and covariate its own name")
        return cls(metrics, derived, covariates)

    @property
    def names(self) -> list[str]:
        """Per-unit outcome names (metrics, then derived), as the analysis sees them."""
        return [*[m.name for m in self.metrics], *[d.name for d in self.derived]]

    def source_columns(self, available) -> list[str]:
        """Source columns the row metrics and covariates read (checked against ``available``)."""
        allowed = [*available, SCORE, DECISION]
        cols: list[str] = []
        for m in self.metrics:
            cols += outcome_expr(m.expr, key=f"{m.key}.expr", allowed_columns=allowed
                                 ).meta.root_names()
        for c in self.covariates:
            cols += outcome_expr(c.expr, key=f"{c.key}.expr", allowed_columns=available
                                 ).meta.root_names()
        return [c for c in dict.fromkeys(cols) if c not in (SCORE, DECISION)]

    def check(self, available) -> None:
        """Compile every expression against the columns it may read (fails fast)."""
        self.source_columns(available)
        self._derived_exprs()

    def _derived_exprs(self) -> list[pl.Expr]:
        known = [m.name for m in self.metrics]
        out = []
        for d in self.derived:
            if d.expr is not None:
                e = outcome_expr(d.expr, key=d.key, allowed_columns=known)
            else:
                for part in (d.numerator, d.denominator):
                    if part not in known:
                        raise ExperimentError(f"{part!r} is not a metric declared before it; "
                                              f"known: {known}", key=d.key,
                                              fix="name aggregated metrics (or earlier derived)")
                num, den = pl.col(d.numerator), pl.col(d.denominator)
                e = pl.when(den == 0).then(0.0).otherwise(num / den)
            out.append(e.cast(pl.Float64).alias(d.name))
            known.append(d.name)
        return out


def unit_outcomes(rows: pl.DataFrame | pl.LazyFrame, spec: OutcomeSpec, *,
                  by: list[str]) -> pl.DataFrame:
    """One row per ``by`` group (e.g. unit and variant) with every outcome metric.

    ``rows`` are the served rows: the source columns the metrics read, ``score``
    and ``decision``.
    """
    lf = rows.lazy()
    allowed = lf.collect_schema().names()
    aggs = [AGGS[m.agg](outcome_expr(m.expr, key=f"{m.key}.expr", allowed_columns=allowed)
                        .cast(pl.Float64)).cast(pl.Float64).alias(m.name) for m in spec.metrics]
    out = lf.group_by(by).agg(aggs)
    for expr in spec._derived_exprs():  # in declared order: later ones may use earlier ones
        out = out.with_columns(expr)
    return out.sort(by).collect()


def unit_covariates(rows: pl.DataFrame | pl.LazyFrame, spec: OutcomeSpec, *,
                    by: list[str]) -> pl.DataFrame:
    """Pre-period covariates per ``by`` group from source rows (empty spec: just the keys)."""
    lf = rows.lazy()
    allowed = lf.collect_schema().names()
    aggs = [AGGS[c.agg](outcome_expr(c.expr, key=f"{c.key}.expr", allowed_columns=allowed)
                        .cast(pl.Float64)).cast(pl.Float64).alias(c.name) for c in spec.covariates]
    if not aggs:
        return lf.select(by).unique().collect()
    return lf.group_by(by).agg(aggs).collect()
